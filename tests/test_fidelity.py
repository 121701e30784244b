"""Writing the output sheets into a rich macro workbook keeps everything else byte for byte.

The workbook has what a real one has and what openpyxl would lose: a VBA project, form buttons bound
to a macro (one of them on an output sheet), a text box, a chart, an image, a dropdown that points at
another sheet, comments, a defined name and a formula over an output sheet. The output sheets are
written twice (added, then replaced); every zip part the tool does not own must be unchanged, the
owned sheets must read back as written, and LibreOffice must open the result with the buttons still
bound to their macro.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import struct
import subprocess
import zipfile
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter

from xlsales.adapters.sheets import EXTRA_OUTPUT_COLUMNS, OUTPUT_SHEETS, result_sheets
from xlsales.adapters.xlsx_writer import BoardOut, SheetOut, SheetsWrite, clean_text, write_sheets
from xlsales.core.intake import read_workbook_tables
from xlsales.core.pipeline import compute
from xlsales.core.problems import Problems
from xlsales.demo import DEMO_DATE, demo_tables

# the contract sheets, then the extra ones, then the board: the workbook already has a 看板 of the
# user's own (a formula, a chart and a picture), so the tool's board goes beside it
BOARD = "看板（xlsales）"
WRITTEN = (*OUTPUT_SHEETS, *EXTRA_OUTPUT_COLUMNS, BOARD)
FIXTURES = Path(__file__).parent / "fixtures"
VBA = FIXTURES / "vbaProject.bin"
MACRO = "vnd.sun.star.script:VBAProject.Module1.SampleCall?language=Basic&location=document"
SHARED_PARTS = {"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml", "xl/styles.xml"}
NO_SOFFICE = "LibreOffice is not installed (apt-get install -y libreoffice-calc-nogui python3-uno)"


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def build_rich_xlsm(path: Path) -> Path:
    wb = xlsxwriter.Workbook(str(path))
    wb.set_vba_name("ThisWorkbook")
    wb.add_vba_project(str(VBA))
    date = wb.add_format({"num_format": "yyyy-mm-dd"})

    params = wb.add_worksheet("参数")
    params.set_vba_name("Sheet1")
    params.write_row(0, 0, ["参数", "值"])
    params.write(1, 0, "评估日期")
    params.write_datetime(1, 1, dt.datetime(2026, 11, 30), date)
    params.write(2, 0, "必保")
    params.insert_button("D2", {"macro": "SampleCall", "caption": "计算排名", "width": 120, "height": 30})
    params.insert_textbox("D6", "点“计算排名”按钮重新计算")
    params.write_comment("B2", "评估日期留空取今天")
    params.data_validation("B3", {"validate": "list", "source": "='选项'!$A$1:$A$3"})

    options = wb.add_worksheet("选项")
    options.set_vba_name("Sheet2")
    options.write_column(0, 0, ["是", "否", "待定"])
    wb.define_name("选项列表", "='选项'!$A$1:$A$3")

    board = wb.add_worksheet("看板")
    board.write_formula("A1", "=SUM('提成汇总'!G:G)")
    board.write_row(2, 0, [1, 2, 3])
    chart = wb.add_chart({"type": "column"})
    chart.add_series({"values": "='看板'!$A$3:$C$3"})
    board.insert_chart("E2", chart)
    board.insert_image("A6", "dot.png", {"image_data": io.BytesIO(_png())})

    # an output sheet that already exists, with the manager's button on it
    ranking = wb.add_worksheet("月度排名")
    ranking.write_row(0, 0, ["旧内容", "会被替换"])
    ranking.write_row(40, 0, ["旧的第 41 行"])
    ranking.insert_button("L2", {"macro": "SampleCall", "caption": "重新排名"})
    ranking.write_comment("L5", "按钮：重新计算")
    ranking.set_tab_color("#FF9900")
    ranking.set_landscape()
    ranking.set_header("&C月度排名")
    wb.close()
    return path


def snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return {i.filename: (z.read(i), i.compress_type) for i in z.infolist()}


def sheet_parts(path: Path) -> dict[str, str]:
    """sheet name -> its part, through workbook.xml and its rels."""
    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    targets = dict(re.findall(r'<Relationship Id="([^"]+)" Type="[^"]+" Target="([^"]+)"', rels))
    return {name: "xl/" + targets[rid] for name, rid in re.findall(r'<sheet name="([^"]+)" sheetId="\d+" r:id="([^"]+)"', wb)}


def rels_of(part: str) -> str:
    folder, base = part.rsplit("/", 1)
    return f"{folder}/_rels/{base}.rels"


def owned_parts(path: Path) -> set[str]:
    """The parts the tool writes: shared parts, its sheets with their rels, and the board's drawing
    with its charts."""
    parts = sheet_parts(path)
    owned = set(SHARED_PARTS)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for name in WRITTEN:
            part = parts[name]
            owned |= {part, rels_of(part)}
            if name == BOARD:
                rels = z.read(rels_of(part)).decode()
                (drawing,) = re.findall(r'Target="\.\./drawings/([^"]+)"', rels)
                owned |= {f"xl/drawings/{drawing}", rels_of(f"xl/drawings/{drawing}")}
                charts = re.findall(r'Target="\.\./charts/([^"]+)"', z.read(rels_of(f"xl/drawings/{drawing}")).decode())
                assert len(charts) == 5
                owned |= {f"xl/charts/{c}" for c in charts}
        assert owned - SHARED_PARTS - {rels_of(parts[n]) for n in WRITTEN} <= names
    return owned


def assert_unowned_identical(before: dict[str, tuple[bytes, int]], after: dict[str, tuple[bytes, int]],
                             owned: set[str]) -> None:
    for name, (data, compression) in before.items():
        if name in owned:
            continue
        assert name in after, f"{name} was removed"
        assert after[name][0] == data, f"{name} changed"
        assert after[name][1] == compression, f"{name} changed its compression"
    assert set(after) - set(before) <= owned, f"unexpected new parts: {set(after) - set(before) - owned}"


def expected(value: Any) -> Any:
    if isinstance(value, Decimal):
        return pytest.approx(float(value), rel=1e-12, abs=1e-9)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        return clean_text(value)
    return value


def assert_reads_back(path: Path, sheets: list[SheetOut | BoardOut]) -> None:
    wb = openpyxl.load_workbook(path)
    for sheet in sheets:
        if isinstance(sheet, BoardOut):
            ws = wb[BOARD]
            assert {(c.row - 1, c.column - 1): c.value for row in ws.iter_rows() for c in row if c.value is not None} == {
                pos: expected(cell.value) for pos, cell in sheet.cells.items() if cell.value is not None}
            continue
        ws = wb[sheet.name]
        assert ws.max_row == len(sheet.rows) + 1, sheet.name
        rows = list(ws.iter_rows(values_only=True, max_col=len(sheet.columns)))
        assert list(rows[0]) == [c.header for c in sheet.columns]
        for got, want in zip(rows[1:], sheet.rows, strict=True):
            assert list(got) == [expected(v) for v in want], sheet.name


@pytest.fixture(scope="module")
def run():
    tables = demo_tables()
    problems = Problems()
    book, inputs = read_workbook_tables(tables, DEMO_DATE, problems)
    results = compute(inputs, book, problems)
    return results, problems


@pytest.fixture
def written(tmp_path, run):
    """(original snapshot, path, snapshot after the first write, sheets) of the rich workbook."""
    results, problems = run
    path = build_rich_xlsm(tmp_path / "销售管理.xlsm")
    original = snapshot(path)
    sheets = result_sheets(results, problems.items)
    write_sheets(path, sheets)
    return original, path, snapshot(path), sheets


def test_first_write_keeps_every_other_part(written):
    original, path, after, sheets = written
    assert_unowned_identical(original, after, owned_parts(path))
    assert after["xl/vbaProject.bin"] == original["xl/vbaProject.bin"]
    names = list(sheet_parts(path))
    assert names[:4] == ["参数", "选项", "看板", "月度排名"]  # the existing output sheet kept its place
    assert names[4:] == [n for n in WRITTEN if n != "月度排名"]  # the others added at the end
    assert sheet_parts(path)["月度排名"] == "xl/worksheets/sheet4.xml"
    wb_xml = after["xl/workbook.xml"][0].decode()
    assert re.search(r'<sheet name="月度排名" sheetId="4" r:id="rId4"/>', wb_xml)
    assert '<definedName name="选项列表">' in wb_xml
    assert b"macroEnabled" in after["[Content_Types].xml"][0]
    assert_reads_back(path, sheets)


def test_button_and_page_setup_on_a_replaced_sheet_survive(written):
    original, _, after, _ = written
    old = original["xl/worksheets/sheet4.xml"][0].decode()
    new = after["xl/worksheets/sheet4.xml"][0].decode()
    for pattern in (r"<sheetPr\b.*?</sheetPr>", r"<legacyDrawing [^>]*/>", r"<pageSetup [^>]*/>", r"<headerFooter>.*?</headerFooter>"):
        found = re.search(pattern, old)
        assert found and found.group(0) in new, pattern
    assert after["xl/worksheets/_rels/sheet4.xml.rels"] == original["xl/worksheets/_rels/sheet4.xml.rels"]
    assert "旧内容" not in new and "旧的第 41 行" not in new


def test_a_replaced_sheet_started_early_keeps_its_button_too(tmp_path, run):
    """SheetsWrite.start on a sheet that replaces one with a button: the old sheet's parts are read
    in the thread that makes it, and carried over as write_sheets carries them."""
    results, problems = run
    path = build_rich_xlsm(tmp_path / "销售管理.xlsm")
    original = snapshot(path)
    sheets = result_sheets(results, problems.items)
    ranking = next(s for s in sheets if s.name == "月度排名")
    assert isinstance(ranking, SheetOut)
    with SheetsWrite(path) as write:
        write.start(ranking)
        write.finish(sheets)
    after = snapshot(path)
    assert_unowned_identical(original, after, owned_parts(path))
    old = original["xl/worksheets/sheet4.xml"][0].decode()
    new = after["xl/worksheets/sheet4.xml"][0].decode()
    for pattern in (r"<sheetPr\b.*?</sheetPr>", r"<legacyDrawing [^>]*/>", r"<pageSetup [^>]*/>", r"<headerFooter>.*?</headerFooter>"):
        found = re.search(pattern, old)
        assert found and found.group(0) in new, pattern
    assert_reads_back(path, sheets)


def test_second_write_replaces_in_place(written, run):
    _, path, first, _ = written
    first_parts = sheet_parts(path)
    results, problems = run
    again = result_sheets(results, problems.items[:3])  # fewer problems this time
    write_sheets(path, again)
    second = snapshot(path)
    assert_unowned_identical(first, second, owned_parts(path))
    assert sheet_parts(path) == first_parts  # same parts, same order
    assert second["xl/styles.xml"] == first["xl/styles.xml"]  # nothing new to add
    assert set(second) == set(first)
    assert_reads_back(path, again)
    ws = openpyxl.load_workbook(path)["校验结果"]
    assert ws.max_row == 4
    assert "校验结果'!$A$1:$E$4<" in second["xl/workbook.xml"][0].decode()


def test_formats_of_the_output_sheets(written):
    _, path, _, _ = written
    wb = openpyxl.load_workbook(path)
    payouts = wb["提成发放表"]
    assert payouts.freeze_panes == "A2"
    assert payouts.auto_filter.ref == f"A1:L{payouts.max_row}"
    assert payouts["G2"].number_format == "yyyy-mm-dd" and payouts["I2"].number_format == "#,##0.00"
    assert payouts.protection.sheet and not payouts["L2"].protection.locked and payouts["K2"].protection.locked
    colours = {"逾期": "FFFFC7CE", "已取消": "FFD9D9D9", "已发": "FFC6EFCE"}
    for row in payouts.iter_rows(min_row=2):
        status = row[10].value
        rgb = row[0].fill.fgColor.rgb if row[0].fill.fill_type == "solid" else None
        assert rgb == colours.get(status), status
    ranking = wb["月度排名"]
    assert ranking["E2"].number_format == "0.00%"
    for row in ranking.iter_rows(min_row=2):
        rgb = row[0].fill.fgColor.rgb if row[0].fill.fill_type == "solid" else None
        assert rgb == {"前30%": "FFC6EFCE", "后15%": "FFFFC7CE"}.get(row[7].value)


def test_customer_named_like_a_formula_stays_text(tmp_path, run):
    results, problems = run
    path = build_rich_xlsm(tmp_path / "f.xlsm")
    sheets = result_sheets(results, problems.items)
    ratings = sheets[0]
    ratings.rows[0][1] = "=1+1"
    ratings.rows[1][1] = "=HYPERLINK(\"http://example.com\",\"点我\")"
    write_sheets(path, sheets)
    ws = openpyxl.load_workbook(path)["关系评分"]
    assert ws["B2"].value == "=1+1" and ws["B2"].data_type == "s"
    assert ws["B3"].data_type == "s"


# --- LibreOffice ------------------------------------------------------------------------------------

def _soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(_soffice() is None, reason=NO_SOFFICE)
def test_libreoffice_opens_the_result(written, tmp_path):
    _, path, _, sheets = written
    out = tmp_path / "csv"
    subprocess.run([_soffice(), f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
                    "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
                    "--outdir", str(out), str(path)], check=True, timeout=300, capture_output=True)
    files = {f.stem.split("-", 1)[1]: f for f in out.glob("*.csv")}
    assert set(files) == {"参数", "选项", "看板", *WRITTEN}

    def read(name: str) -> list[list[str]]:
        with open(files[name], encoding="utf-8", newline="") as f:
            return list(csv.reader(f))

    by_name = {s.name: s for s in sheets}
    payouts = read("提成发放表")
    assert payouts[0] == [c.header for c in by_name["提成发放表"].columns]
    assert len(payouts) == len(by_name["提成发放表"].rows) + 1
    first = by_name["提成发放表"].rows[0]
    assert payouts[1][0] == first[0]
    assert payouts[1][6] == first[6].isoformat()  # a real date, shown yyyy-mm-dd
    assert payouts[1][8] == f"{first[8]:,.2f}"  # money with thousands separators
    ranking = read("月度排名")
    headers = [c.header for c in by_name["月度排名"].columns]
    assert ranking[0][:len(headers)] == headers  # (the manager's button further right widens the used area)
    assert ranking[1][4].endswith("%")
    assert read("参数")[1] == ["评估日期", "2026-11-30"]
    assert read("选项") == [["是"], ["否"], ["待定"]]


@pytest.mark.skipif(_soffice() is None, reason=NO_SOFFICE)
def test_libreoffice_sees_the_buttons_bound_to_their_macro(written, tmp_path):
    _, path, _, sheets = written
    before_path = build_rich_xlsm(tmp_path / "before.xlsm")

    def inspect(workbook: Path, *cells: str) -> dict[str, Any]:
        done = subprocess.run(["/usr/bin/python3", str(FIXTURES / "lo_inspect.py"), str(workbook),
                               str(tmp_path / f"profile-{workbook.stem}"), *cells],
                              capture_output=True, text=True, timeout=300)
        if "No module named 'uno'" in done.stderr:
            pytest.fail("LibreOffice is installed but python3-uno is not: apt-get install -y python3-uno")
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    before = inspect(before_path)
    after = inspect(path, "提成汇总!A2", "提成发放表!I2", "校验结果!A2")
    assert after["sheets"] == ["参数", "选项", "看板", "月度排名", *[n for n in WRITTEN if n != "月度排名"]]
    for name in ("参数", "选项", "看板", "月度排名"):
        assert after["shapes"][name] == before["shapes"][name], name
        assert after["buttons"][name] == before["buttons"][name], name
    assert after["buttons"]["参数"] == [{"label": "计算排名", "macros": [MACRO]}]
    assert after["buttons"]["月度排名"] == [{"label": "重新排名", "macros": [MACRO]}]
    by_name = {s.name: s for s in sheets}
    assert after["cells"]["提成汇总!A2"] == by_name["提成汇总"].rows[0][0]
    assert after["cells"]["提成发放表!I2"] == f"{by_name['提成发放表'].rows[0][8]:,.2f}"
    assert after["cells"]["校验结果!A2"] == by_name["校验结果"].rows[0][0]
