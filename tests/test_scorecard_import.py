"""Importing reps' scorecards into 客户关系记录: once per entry, own entries only, nothing lost, nothing else touched."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from xlsales.adapters.filerun import OK, run_workbook
from xlsales.adapters.port import FakePort
from xlsales.adapters.scorecard import (
    ID_NAME,
    add_import_command,
    entry_key,
    import_into_port,
    import_scorecards,
    read_scorecard,
)
from xlsales.adapters.sheets import write_tables
from xlsales.adapters.xlsx_append import _row_numbers, append_rows_to_sheet
from xlsales.adapters.xlsx_reader import read_workbook
from xlsales.core.activity import LOG_SHEET
from xlsales.demo import DEMO_DATE, demo_tables

LOG_HEADERS = ("日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态", "备注")

ROWS = [
    [dt.date(2026, 11, 3), "E001", "C001", "总经理", "决策层", "A02", 1, None, "上门拜访"],
    [dt.date(2026, 11, 4), None, "C001", "采购经理", "技术/采购层", "A03", 2, None, None],
    [dt.date(2026, 11, 5), "E001", "C013", "信息中心主任", "管理层", "A07", None, None, "高层会见"],
]


def scorecard(path: Path, rep: Any, rows: Sequence[Sequence[Any]], *, defined_name: bool = True, label: bool = True,
              header_row: int = 5, table: bool = True, reserved: int = 5, order: Sequence[str] = LOG_HEADERS,
              notes: bool = False) -> Path:
    """A filled scorecard as the template has it: a title, the rep's 工号 (named cell and/or label),
    then the log table (an Excel table with a few reserved empty rows)."""
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet("客户关系评价表")
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    ws.write(0, 0, "客户关系评价表")
    if label:
        ws.write(1, 0, "工号：")
    if rep is not None:
        ws.write(1, 1, rep)
    ws.write(2, 0, "姓名：")
    ws.write(2, 1, "王建国")
    if defined_name:
        book.define_name(ID_NAME, "='客户关系评价表'!$B$2")
    top = header_row - 1
    last = top + len(rows) + reserved
    if table:
        ws.add_table(top, 0, last, len(order) - 1, {"columns": [{"header": h} for h in order], "autofilter": True})
    else:
        for j, h in enumerate(order):
            ws.write(top, j, h)
    for i, row in enumerate(rows, start=top + 1):
        values = dict(zip(LOG_HEADERS, row, strict=True))
        for j, h in enumerate(order):
            v = values[h]
            if isinstance(v, dt.date):
                ws.write_datetime(i, j, dt.datetime(v.year, v.month, v.day), date)
            elif v is not None:
                ws.write(i, j, v)
    for i in range(top + 1 + len(rows), last + 1):
        ws.write_blank(i, 0, None, date)
    if notes:
        ws.write(last + 3, 0, "说明：每次拜访当天填写")
    book.close()
    return path


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = tmp_path / "销售.xlsx"
    write_tables(path, demo_tables(with_errors=False))
    return path


def log_rows(path: Path) -> list[dict[str, Any]]:
    data = read_workbook(path)
    assert data.log is not None
    return data.log.frame.to_dicts()


def raw_entries(path: Path) -> dict[str, tuple[int, int, bytes]]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: (i.CRC, i.compress_size, z.read(i.filename)) for i in z.infolist()}


def log_part(path: Path) -> str:
    from xlsales.adapters.xlsx_writer import _Package

    package = _Package(path)
    try:
        return next(s.part for s in package.sheets if s.name == LOG_SHEET)  # type: ignore[return-value]
    finally:
        package.close()


# --- the merge ------------------------------------------------------------------------------------

def test_importing_the_same_scorecard_twice_counts_once(book, tmp_path):
    card = scorecard(tmp_path / "王建国.xlsx", "E001", ROWS)
    before = log_rows(book)
    first = import_scorecards(book, [card])
    assert first.exit_code == OK and first.added == 3 and first.duplicates == 0
    assert first.rows_at == (before[-1]["row"] + 1, before[-1]["row"] + 3)
    second = import_scorecards(book, [card, card])
    assert second.added == 0 and second.duplicates == 6 and second.exit_code == OK
    assert "新增 0 条记录，6 条已存在" in second.message
    after = log_rows(book)
    assert len(after) == len(before) + 3
    assert after[: len(before)] == before  # nothing already in the log is lost or changed
    new = after[len(before):]
    assert [(r["date"], r["rep_id"], r["customer"], r["action"], r["count"]) for r in new] == [
        (dt.date(2026, 11, 3), "E001", "C001", "A02", 1), (dt.date(2026, 11, 4), "E001", "C001", "A03", 2),
        (dt.date(2026, 11, 5), "E001", "C013", "A07", 1)]


def test_a_line_of_another_rep_is_refused_with_a_clear_message(book, tmp_path):
    rows = [*ROWS, [dt.date(2026, 11, 6), "E002", "C002", "总经理", "决策层", "A02", 1, None, None]]
    report = import_scorecards(book, [scorecard(tmp_path / "c.xlsx", "E001", rows)])
    assert report.added == 3 and report.refused == 1 and report.exit_code == 1
    (message,) = report.files[0].refused
    assert message == "第 9 行的工号“E002”与评分表工号“E001”不一致：评分表只能导入本人的记录，这一行没有导入"
    assert all(r["rep_id"] == "E001" for r in log_rows(book)[-3:])
    assert any("拒绝 1 条" in line for line in report.lines())


def test_identical_lines_on_one_card_stay_two_and_still_import_once(book, tmp_path):
    twice = [ROWS[0], ROWS[0]]
    card = scorecard(tmp_path / "c.xlsx", "E001", twice)
    assert import_scorecards(book, [card]).added == 2
    assert import_scorecards(book, [card]).added == 0
    # an entry already in the log (by anyone typing it in) counts as present, with 次数 blank = 1, 1.0 = 1
    assert entry_key({**dict(zip(LOG_HEADERS, ROWS[0], strict=True)), "次数": None}) == entry_key(
        dict(zip(LOG_HEADERS, ROWS[0], strict=True)))
    assert entry_key({"日期": "2026/11/3", "工号": 1001.0}) == entry_key({"日期": dt.datetime(2026, 11, 3), "工号": "1001 "})


def test_other_parts_stay_byte_identical(book, tmp_path):
    before = raw_entries(book)
    import_scorecards(book, [scorecard(tmp_path / "c.xlsx", "E001", ROWS)])
    after = raw_entries(book)
    part = log_part(book)
    assert list(after) == list(before)  # the same parts, in the same order
    changed = [name for name in before if before[name] != after[name]]
    assert changed == [part]


def test_the_appended_workbook_still_reads_and_computes(book, tmp_path):
    baseline, _, _ = run_workbook(book, "compute", DEMO_DATE)
    import_scorecards(book, [scorecard(tmp_path / "c.xlsx", "E001", ROWS)])
    data = read_workbook(book)
    assert not [p for p in data.problems if p.sheet == LOG_SHEET]
    report, results, problems = run_workbook(book, "compute", DEMO_DATE)
    assert report.exit_code == baseline.exit_code == OK
    assert report.rows_read[LOG_SHEET] == baseline.rows_read[LOG_SHEET] + 3
    assert results is not None and not [p for p in problems if p.is_error]


def test_the_scorecard_reader_is_tolerant(tmp_path):
    order = ("备注", "客户编码", "日期", "工号", "联系人", "角色", "动作编码", "次数", "审批状态")
    card = read_scorecard(scorecard(tmp_path / "c.xlsx", 1001, ROWS, defined_name=False, header_row=8, order=order,
                                    table=False, notes=False))
    assert card.rep_id == "1001" and card.header_row == 8 and len(card.entries) == 3
    assert card.entries[0]["客户编码"] == "C001" and card.entries[0]["日期"] == dt.date(2026, 11, 3)
    # rows below the Excel table (a note under the form) are not entries
    card = read_scorecard(scorecard(tmp_path / "d.xlsx", "E001", ROWS, notes=True))
    assert len(card.entries) == 3


def test_a_scorecard_without_a_rep_or_a_log_is_refused(book, tmp_path):
    no_rep = scorecard(tmp_path / "no_rep.xlsx", None, ROWS, defined_name=False)
    not_a_card = tmp_path / "notes.xlsx"
    write_tables(not_a_card, {"备忘": [{"row": 2, "内容": "x"}]})
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    report = import_scorecards(book, [no_rep, not_a_card, broken, book])
    errors = [f.error for f in report.files]
    assert "找不到工号" in errors[0] and "找不到记录表" in errors[1] and "不是 .xlsx/.xlsm 工作簿" in errors[2]
    assert errors[3] == "这是工作簿本身，不是评分表"
    assert report.added == 0 and report.exit_code == 1 and "4 个文件没有导入" in report.message


def test_error_cells_on_a_scorecard_refuse_their_line(book, tmp_path):
    path = tmp_path / "e.xlsx"
    scorecard(path, "E001", ROWS)
    # put an error value (#N/A) into the first line's 客户编码, as Excel stores it
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    import re

    sheet = re.sub(r'<c r="C6"[^>]*>.*?</c>', '<c r="C6" t="e"><v>#N/A</v></c>', sheet)
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    report = import_scorecards(book, [path])
    assert report.added == 2 and report.files[0].refused == ["第 6 行“客户编码”是错误值 #N/A：这一行没有导入，请修正后重新导入"]


def test_an_unusable_workbook_is_left_alone(book, tmp_path):
    card = scorecard(tmp_path / "c.xlsx", "E001", ROWS)
    lock = book.with_name("~$" + book.name)
    lock.write_text("x")
    before = book.read_bytes()
    report = import_scorecards(book, [card])
    assert report.exit_code == 2 and "正在被其他程序" in report.message and book.read_bytes() == before
    lock.unlink()
    no_log = tmp_path / "无记录.xlsx"
    write_tables(no_log, {"参数": []})
    report = import_scorecards(no_log, [card])
    assert report.exit_code == 2 and report.message.startswith("缺少工作表“客户关系记录”")


# --- appending to a sheet: tables, reserved rows, styles --------------------------------------------

def test_append_grows_an_excel_table_and_fills_reserved_rows(tmp_path):
    path = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(LOG_SHEET)
    date = wb.add_format({"num_format": "yyyy-mm-dd"})
    text = wb.add_format({"num_format": "@"})
    ws.add_table(0, 0, 3, 2, {"columns": [{"header": "日期"}, {"header": "工号"}, {"header": "客户编码"}]})
    ws.write_datetime(1, 0, dt.datetime(2026, 1, 2), date)
    ws.write_string(1, 1, "E1", text)
    ws.write_string(1, 2, "C1", text)
    for r in (2, 3, 4):  # reserved formatted rows, inside and below the table
        ws.write_blank(r, 0, None, date)
        ws.write_blank(r, 1, None, text)
    wb.add_worksheet("其他").write(0, 0, "不变")
    wb.close()
    before = raw_entries(path)
    where = append_rows_to_sheet(path, LOG_SHEET, [[dt.date(2026, 2, 1), "1001", "C2"], [dt.date(2026, 2, 2), "E3", "C3"],
                                                   [dt.date(2026, 2, 3), "E4", None]])
    assert (where.first, where.last) == (3, 5)
    after = raw_entries(path)
    assert sorted(n for n in before if before[n] != after[n]) == ["xl/tables/table1.xml", "xl/worksheets/sheet1.xml"]
    with zipfile.ZipFile(path) as z:
        table = z.read("xl/tables/table1.xml").decode()
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert 'ref="A1:C5"' in table and '<autoFilter ref="A1:C5"/>' in table
    assert '<dimension ref="A1:C5"/>' in sheet and sheet.count('<row r="3"') == 1 and sheet.count('<row r="5"') == 1
    import openpyxl

    ws2 = openpyxl.load_workbook(path)[LOG_SHEET]
    assert [[c.value for c in row] for row in ws2.iter_rows(min_row=2, max_row=5)] == [
        [dt.datetime(2026, 1, 2), "E1", "C1"], [dt.datetime(2026, 2, 1), "1001", "C2"],
        [dt.datetime(2026, 2, 2), "E3", "C3"], [dt.datetime(2026, 2, 3), "E4", None]]
    assert ws2["A3"].number_format == "yyyy-mm-dd" and ws2["B3"].number_format == "@"


def test_append_refuses_a_table_with_a_totals_row(tmp_path):
    path = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(LOG_SHEET)
    ws.add_table(0, 0, 2, 1, {"columns": [{"header": "工号"}, {"header": "次数", "total_function": "sum"}],
                              "data": [["E1", 1]], "total_row": True})
    wb.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match="汇总行"):
        append_rows_to_sheet(path, LOG_SHEET, [["E2", 2]])
    assert path.read_bytes() == before


def test_append_adds_a_date_style_only_when_the_workbook_has_none(tmp_path):
    path = tmp_path / "plain.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet(LOG_SHEET).write_row(0, 0, ["日期", "工号"])
    wb.close()
    append_rows_to_sheet(path, LOG_SHEET, [[dt.date(2026, 3, 5), "E1"]])
    import openpyxl

    ws = openpyxl.load_workbook(path)[LOG_SHEET]
    assert ws["A2"].value == dt.datetime(2026, 3, 5) and ws["A2"].number_format == "yyyy-mm-dd"
    with pytest.raises(ValueError, match="没有工作表"):
        append_rows_to_sheet(path, "没有这张表", [["x"]])


def test_row_numbers_without_r_attributes():
    body = b'<row r="1"><c/></row><row><c/></row><row r="7"/><row>'
    starts = [0, 21, 38, 50]
    assert _row_numbers(body, starts) == [1, 2, 7, 8]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_libreoffice_opens_the_appended_workbook(book, tmp_path):
    import_scorecards(book, [scorecard(tmp_path / "c.xlsx", "E001", ROWS)])
    out = tmp_path / "csv"
    filt = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
    subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp_path}/lo", "--headless", "--convert-to", filt,
                    "--outdir", str(out), str(book)], check=True, capture_output=True, timeout=180)
    log_csv = next(out.glob(f"*{LOG_SHEET}*.csv")).read_text(encoding="utf-8").splitlines()
    assert log_csv[-3].startswith("2026-11-03,E001,C001,总经理,决策层,A02,1")
    assert log_csv[-1].startswith("2026-11-05,E001,C013,信息中心主任,管理层,A07")


# --- through a port (live Excel), and the command line ---------------------------------------------

def test_import_through_a_port_follows_the_same_rules(tmp_path):
    port = FakePort.from_tables(demo_tables(with_errors=False))
    size = len(port.sheets[LOG_SHEET])
    rows = [*ROWS, [dt.date(2026, 11, 6), "E002", "C002", "总经理", "决策层", "A02", 1, None, None]]
    card = scorecard(tmp_path / "c.xlsx", "E001", rows)
    first = import_into_port(port, [card])
    assert first.added == 3 and first.refused == 1 and len(port.sheets[LOG_SHEET]) == size + 3
    assert port.appended[0][1][0][:3] == [dt.date(2026, 11, 3), "E001", "C001"]
    second = import_into_port(port, [card])
    assert second.added == 0 and second.duplicates == 3 and len(port.appended) == 1
    assert import_into_port(FakePort(), [card]).exit_code == 2


def test_the_import_command(book, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="xlsales")
    add_import_command(parser.add_subparsers(dest="command", required=True))
    card = scorecard(tmp_path / "c.xlsx", "E001", ROWS)
    args = parser.parse_args(["import", str(book), str(card)])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("导入完成：新增 3 条记录") and "c.xlsx（工号 E001）：评分表 3 条，新增 3 条" in out
    args = parser.parse_args(["import", str(book), str(card), "--json"])
    assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["added"] == 0 and summary["duplicates"] == 3 and summary["files"][0]["rep_id"] == "E001"


# --- the shipped files (workbook/): the template filled by a rep, imported into BigAccount.xlsm --------

WORKBOOK = Path(__file__).resolve().parents[1] / "workbook"
TEMPLATE = WORKBOOK / "template" / "客户关系评价表.xlsx"


@pytest.mark.skipif(not (TEMPLATE.exists() and (WORKBOOK / "BigAccount-demo.xlsm").exists()),
                    reason="the workbook files are not built")
def test_the_shipped_template_imports_into_the_shipped_workbook(tmp_path):
    import openpyxl

    card = tmp_path / "王建国.xlsx"
    filled = openpyxl.load_workbook(TEMPLATE)  # a rep filling the template (openpyxl stands in for Excel)
    cover = next(ws for ws in filled.worksheets if ws.sheet_state == "visible" and ws.title != LOG_SHEET)
    sheet, cell = next(iter(filled.defined_names[ID_NAME].destinations))
    filled[sheet][cell.replace("$", "")] = "E001"
    assert cover.title == sheet
    log = filled[LOG_SHEET]
    for i, row in enumerate(ROWS, start=2):
        for j, value in enumerate(row, start=1):
            log.cell(i, j, value)
    filled.save(card)

    book = tmp_path / "BigAccount-demo.xlsm"
    shutil.copyfile(WORKBOOK / "BigAccount-demo.xlsm", book)
    before_rows = log_rows(book)
    before = raw_entries(book)
    first = import_scorecards(book, [card])
    assert (first.exit_code, first.added, first.files[0].rep_id) == (OK, 3, "E001")
    changed = sorted(n for n in before if before[n] != raw_entries(book)[n])
    assert changed[0].startswith("xl/tables/") and changed[1] == log_part(book) and len(changed) == 2  # the log's table grew
    assert import_scorecards(book, [card]).added == 0
    after = log_rows(book)
    assert after[: len(before_rows)] == before_rows and len(after) == len(before_rows) + 3
    report, results, _ = run_workbook(book, "compute", DEMO_DATE)
    assert results is not None and report.rows_read[LOG_SHEET] == len(after)


def test_both_ways_of_reading_the_log_find_the_same_entries(book, tmp_path, monkeypatch):
    from xlsales.adapters import scorecard as sc

    card = scorecard(tmp_path / "c.xlsx", "E001", ROWS)
    import_scorecards(book, [card])
    fast = sc._book_log(book, {"E001", "E002"})[2]
    monkeypatch.setattr(sc, "_count_fast", lambda *a: None)  # no fastexcel: the exact reader counts
    exact = sc._book_log(book, {"E001", "E002"})[2]
    assert fast == exact and sum(fast.values()) > 3
    assert import_scorecards(book, [card]).added == 0


def test_dates_in_a_chinese_date_format_are_matched(tmp_path):
    path = tmp_path / "cjk.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(LOG_SHEET)
    ws.write_row(0, 0, LOG_HEADERS)
    cjk = wb.add_format({"num_format": 31})  # 年月日, a built-in id that calamine reads as a plain number
    ws.write_datetime(1, 0, dt.datetime(2026, 11, 3), cjk)
    ws.write_row(1, 1, ROWS[0][1:7])
    ws.write(1, 8, ROWS[0][8])
    wb.close()
    report = import_scorecards(path, [scorecard(tmp_path / "c.xlsx", "E001", ROWS[:1])])
    assert report.added == 0 and report.duplicates == 1


def test_append_to_rows_without_numbers(tmp_path):
    path = tmp_path / "norows.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(LOG_SHEET)
    ws.write_row(0, 0, ["工号", "次数"])
    ws.write_row(1, 0, ["E1", 1])
    wb.close()
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    import re

    parts["xl/worksheets/sheet1.xml"] = re.sub(rb'<row r="\d+"', b"<row", parts["xl/worksheets/sheet1.xml"])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    where = append_rows_to_sheet(path, LOG_SHEET, [["E2", 2]])
    assert (where.first, where.last) == (3, 3)
    data = read_workbook(path)
    assert data.sheet_names == [LOG_SHEET]
    import openpyxl

    assert [[c.value for c in r] for r in openpyxl.load_workbook(path)[LOG_SHEET].iter_rows()] == [
        ["工号", "次数"], ["E1", 1], ["E2", 2]]
