"""`xlsales statements BOOK OUTDIR`: one workbook per rep, holding that rep's numbers and nobody else's."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from xlsales.adapters.sheets import write_tables
from xlsales.adapters.statements import add_statements_command, statement_filename, write_statements
from xlsales.core.intake import read_workbook_tables
from xlsales.core.pipeline import compute
from xlsales.core.problems import Problems
from xlsales.demo import demo_tables


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo book, its statements (no PDF) and a direct compute of the same tables."""
    root = tmp_path_factory.mktemp("statements")
    tables = demo_tables()
    book_path = root / "demo.xlsx"
    write_tables(book_path, tables)
    report = write_statements(book_path, root / "out", pdf=False)
    problems = Problems()
    book, inputs = read_workbook_tables(tables, dt.date.today(), problems)
    assert book is not None
    results = compute(inputs, book, problems)
    return report, results, tables, root


def _cells(path: Path) -> dict[str, list[list[object]]]:
    wb = openpyxl.load_workbook(path)
    return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb}


def _records(rows: list[list[object]]) -> list[dict[str, object]]:
    headers = rows[0]
    return [dict(zip(headers, r, strict=True)) for r in rows[1:] if any(v is not None for v in r)]


def _money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_one_file_per_active_rep_with_a_target(demo):
    report, results, tables, root = demo
    assert report.exit_code == 0, report.message
    active = {r["工号"] for r in tables["销售人员"] if r["状态"] == "在职"}
    with_target = {t["工号"] for t in tables["业绩目标"]}
    names = {r["工号"]: r["姓名"] for r in tables["销售人员"]}
    month = f"{results.book.evaluation_date:%Y-%m}"
    expected = {statement_filename(rep, names[rep], month) for rep in active & with_target}
    assert expected  # the demo has such reps
    assert {Path(f).name for f in report.files} == {statement_filename(s.rep_id, s.name, month) for s in results.summary}
    assert expected <= {p.name for p in (root / "out").glob("*.xlsx")}
    assert "E001-王建国-2026-11.xlsx" in {Path(f).name for f in report.files}
    assert report.pdfs == [] and "--no-pdf" in report.pdf_note


def test_no_other_rep_appears_anywhere(demo):
    report, _, tables, _ = demo
    reps = {r["工号"]: r["姓名"] for r in tables["销售人员"]}
    for file in report.files:
        sheets = _cells(Path(file))
        own = Path(file).name.split("-")[0]
        others = [v for rep, name in reps.items() if rep != own for v in (rep, name)]
        for title, rows in sheets.items():
            for rec in _records(rows):
                for header in ("工号", "客户经理"):
                    if header in rec:
                        assert rec[header] == own, (file, title, rec)
                if "姓名" in rec:
                    assert rec["姓名"] == reps[own]
            for row in rows:
                for value in row:
                    if value is None:
                        continue
                    text = str(value)
                    leaked = [o for o in others if o in text]
                    assert not leaked, (file, title, text, leaked)


def test_payout_lines_and_rows_equal_a_direct_compute(demo):
    report, results, _, _ = demo
    for s in results.summary:
        file = next(f for f in report.files if Path(f).name.startswith(f"{s.rep_id}-"))
        sheets = _cells(Path(file))
        lines = _records(sheets["提成发放表"])
        direct = [x for x in results.payouts if x.rep_id == s.rep_id]
        assert [r["行ID"] for r in lines] == [x.line_id for x in direct]
        assert [_money(r["金额"]) for r in lines] == [_money(x.amount) for x in direct]
        assert [r["计算说明"] for r in lines] == [str(x.explanation) for x in direct]
        assert [r["项目"] for r in lines] == [x.item.value for x in direct]
        assert [r["状态"] for r in lines] == [x.status.value for x in direct]
        assert sheets["提成发放表"][0][:12] == ["行ID", "工号", "姓名", "订单号", "项目", "阶段", "事件日期", "应发日期",
                                           "金额", "计算说明", "状态", "实发日期"]

        ranking = _records(sheets["月度排名"])
        assert [(r["月份"], r["排名"], r["分组"]) for r in ranking] == [
            (r.month, r.rank, r.group.value) for r in results.ranking if r.rep_id == s.rep_id]
        history = _records(sheets["排名历史"])
        assert [(r["月份"], r["排名"]) for r in history] == [
            (r.month, r.rank) for r in results.history if r.rep_id == s.rep_id]
        ratings = _records(sheets["关系评分"])
        assert [r["客户编码"] for r in ratings] == [r.code for r in results.ratings if r.account_manager == s.rep_id]


def test_totals_match_the_summary(demo):
    report, results, _, _ = demo
    for s in results.summary:
        file = next(f for f in report.files if Path(f).name.startswith(f"{s.rep_id}-"))
        sheets = _cells(Path(file))
        cover = {r[0]: (r[1], r[2]) for r in sheets["封面"][1:]}
        assert cover["工号"][0] == s.rep_id and cover["姓名"][0] == s.name
        assert cover["月份"][0] == "2026-11"
        assert cover["评估日期"][0].date() == results.book.evaluation_date
        for label, value in (("应发合计", s.due_total), ("已发合计", s.paid_total), ("未发合计", s.unpaid_total),
                             ("追回合计", s.clawback_total)):
            assert _money(cover[label][1]) == _money(value), (s.rep_id, label)
        (summary,) = _records(sheets["提成汇总"])
        assert summary["工号"] == s.rep_id
        assert _money(summary["应发合计"]) == _money(s.due_total)
        # the statement's lines add up to its totals (cancelled lines left out, as in 提成汇总)
        lines = _records(sheets["提成发放表"])
        due = sum((_money(r["金额"]) for r in lines if r["状态"] != "已取消"
                   and r["事件日期"] is not None and r["事件日期"].year == results.book.year), Decimal(0))
        assert due == _money(s.due_total)


def test_a_bad_rulebook_writes_nothing(tmp_path):
    tables = demo_tables()
    tables["参数"] = [*tables["参数"], {"row": len(tables["参数"]) + 2, "参数": "没有这个参数", "值": 1}]
    book = tmp_path / "bad.xlsx"
    write_tables(book, tables)
    report = write_statements(book, tmp_path / "out", pdf=False)
    assert report.exit_code == 1
    assert "未生成对账单" in report.message
    assert report.files == [] and not (tmp_path / "out").exists()


def test_an_unusable_book_exits_2(tmp_path):
    report = write_statements(tmp_path / "missing.xlsx", tmp_path / "out", pdf=False)
    assert report.exit_code == 2 and report.message
    (tmp_path / "junk.xlsx").write_text("not a workbook", encoding="utf-8")
    assert write_statements(tmp_path / "junk.xlsx", tmp_path / "out", pdf=False).exit_code == 2


def test_the_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="xlsales")
    add_statements_command(parser.add_subparsers(dest="command", required=True))
    book = tmp_path / "demo.xlsx"
    write_tables(book, demo_tables())
    args = parser.parse_args(["statements", str(book), str(tmp_path / "out"), "--no-pdf", "--today", "2026-12-01"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "对账单已生成" in out and "未生成 PDF" in out
    assert len(list((tmp_path / "out").glob("*.xlsx"))) == 11
    args = parser.parse_args(["statements", str(tmp_path / "nope.xlsx"), str(tmp_path / "out2")])
    assert args.run(args) == 2


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_pdf_per_rep(tmp_path):
    book = tmp_path / "demo.xlsx"
    write_tables(book, demo_tables())
    report = write_statements(book, tmp_path / "out")
    assert report.exit_code == 0, report.message
    assert len(report.pdfs) == len(report.files) > 0
    for pdf in report.pdfs:
        data = Path(pdf).read_bytes()
        assert data.startswith(b"%PDF") and len(data) > 1000


def test_without_soffice_pdfs_are_skipped_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    book = tmp_path / "demo.xlsx"
    write_tables(book, demo_tables())
    report = write_statements(book, tmp_path / "out")
    assert report.exit_code == 0 and report.pdfs == [] and report.files
    assert "LibreOffice" in report.pdf_note and report.pdf_note in report.lines()
