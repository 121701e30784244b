"""sheet_scan: the log's columns found with numpy give exactly calamine's text columns, and any
XML it does not take is refused (NotPlain) so that calamine reads it instead."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlsales.adapters import log_prefetch, sheet_scan
from xlsales.adapters.sheet_scan import NotPlain, scan_text_columns

xlsxwriter = pytest.importorskip("xlsxwriter")
fastexcel = pytest.importorskip("fastexcel")
pytest.importorskip("pyarrow")

SHEET = "记录"


def calamine(path: Path, wanted: list[str] | list[int], sheet: str = SHEET) -> pl.DataFrame:
    reader = fastexcel.read_excel(str(path))
    frame = pl.from_arrow(reader.load_sheet_eager(sheet, header_row=0, use_columns=wanted, dtypes="string"))
    assert isinstance(frame, pl.DataFrame)
    return frame


def scanned(path: Path, wanted: list[str] | list[int], sheet: str = SHEET) -> pl.DataFrame:
    frame = pl.from_arrow(scan_text_columns(path, sheet, wanted))
    assert isinstance(frame, pl.DataFrame)
    return frame


def write(path: Path, header: list[str], rows: list[list[Any]], *, sheet: str = SHEET, **options: Any) -> Path:
    """A workbook as Excel's own writer would lay it out (XlsxWriter: shared strings, r then s then t)."""
    book = xlsxwriter.Workbook(str(path), options)
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    moment = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    book.add_worksheet("其他").write(0, 0, "不相干")
    sheet_ = book.add_worksheet(sheet)
    sheet_.write_row(0, 0, header)
    for r, row in enumerate(rows, 1):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, dt.datetime):
                sheet_.write_datetime(r, c, value, moment)
            elif isinstance(value, dt.date):
                sheet_.write_datetime(r, c, value, date)
            elif isinstance(value, str):
                sheet_.write_string(r, c, value)
            elif isinstance(value, tuple):  # (serial, "date"): a raw number in a date-styled cell
                sheet_.write_number(r, c, value[0], date)
            else:
                sheet_.write_number(r, c, value)
    book.close()
    return path


def with_sheet_xml(path: Path, edit: Any) -> Path:
    """The same workbook with its 记录 sheet's XML changed by `edit` (bytes -> bytes)."""
    out = path.with_name("edited-" + path.name)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, edit(data) if info.filename == "xl/worksheets/sheet2.xml" else data)
    return out


HEADER = ["日期", "工号", "客户编码", "备注", "次数"]
ROWS: list[list[Any]] = [
    [dt.date(2026, 3, 5), "E001", "C1", "首次拜访 & <交流>", 1],
    [dt.datetime(2026, 3, 6, 14, 30, 15), "E002", "C2", None, 2],
    [None, None, None, None, None],  # a blank row inside the data
    [(46010.999999, "date"), 1001, "C3", "", 0.5],  # 工号 typed as a number, 次数 a fraction
    ["2026/03/05", "E001", 7, "备注", -3],  # a text date, a code typed as a number, a negative count
    [dt.date(2026, 12, 31), " E003 ", "C4", None, 1e20],
    [dt.date(2026, 1, 2), "E\r1", "_x0041_ C", None, 1],  # written as _x000D_ and _x005F_x0041_: unescaped
    [None, None, None, "only a note", None],  # the last row holds only an unwanted column
]


def test_the_scan_gives_calamines_text_columns(tmp_path):
    path = write(tmp_path / "b.xlsx", HEADER, ROWS)
    for wanted in (["日期", "工号", "客户编码", "次数"], ["次数", "日期"], [4, 0, 1], HEADER):
        assert scanned(path, wanted).equals(calamine(path, wanted)), wanted
    frame = scanned(path, ["日期", "工号", "次数"])
    assert frame.height == len(ROWS)  # row i is sheet row i + 2, to the last row with a value
    assert frame.row(0) == ("2026-03-05 00:00:00", "E001", "1")
    assert frame.row(3) == ("2025-12-19 23:59:59.914", "1001", "0.5")
    assert scanned(path, ["工号", "客户编码"]).row(6) == ("E\r1", "_x0041_ C")


def test_a_sheet_with_only_its_header_has_no_rows(tmp_path):
    path = write(tmp_path / "b.xlsx", HEADER, [])
    frame = scanned(path, ["日期", "次数"])
    assert frame.height == 0 and frame.columns == ["日期", "次数"] and frame.equals(calamine(path, ["日期", "次数"]))


NUMBERS = st.one_of(
    st.integers(-10**6, 10**6), st.integers(0, 10**20),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e25, max_value=1e25),
    st.sampled_from([0.1, 0.30000000000000004, 1e-7, -0.0, 2.0**53 + 1, 123.456e-5, 1 / 1024, 123456789.123456789,
                    -1e-10, 2.0000000001, 1.5e-9, 1e300]),  # calamine: whole numbers exact, others to 9 decimals
)
CELLS = st.one_of(
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6),
    NUMBERS,
    st.dates(dt.date(1950, 1, 1), dt.date(2199, 12, 31)),
    st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2199, 12, 31)).map(lambda d: d.replace(microsecond=0)),
    st.tuples(st.floats(0, 80000), st.just("date")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELLS, min_size=5, max_size=5), max_size=12), order=st.permutations(range(5)))
def test_any_values_scan_as_calamine_reads_them(tmp_path, rows, order):
    header = [HEADER[i] for i in order]
    path = write(tmp_path / "p.xlsx", header, rows)
    wanted = header[:3]
    assert scanned(path, wanted).equals(calamine(path, wanted))


def test_a_big_sheet_is_scanned_block_by_block(tmp_path, monkeypatch):
    """Blocks are cut after a </row>, wherever the inflated pieces end: pieces of a few hundred bytes
    cut rows, tags and values in two, with the same result."""
    rows = [[dt.date(2026, 1, 1) + dt.timedelta(days=i % 300), f"E{i % 37:03d}", f"C{i}", None, i % 5 + 1] for i in range(3000)]
    path = write(tmp_path / "b.xlsx", HEADER, rows)
    whole = scanned(path, ["日期", "工号", "客户编码", "次数"])
    monkeypatch.setattr(sheet_scan, "READ_BYTES", 257)
    assert scanned(path, ["日期", "工号", "客户编码", "次数"]).equals(whole)
    assert whole.equals(calamine(path, ["日期", "工号", "客户编码", "次数"]))


def test_attributes_in_either_order_and_empty_cells_are_taken(tmp_path):
    path = write(tmp_path / "b.xlsx", HEADER, ROWS[:2])

    def edit(xml: bytes) -> bytes:
        xml = xml.replace(b'<c r="B2" t="s">', b'<c r="B2" t="s" s="0">')  # t before s
        xml = xml.replace(b'<c r="E2">', b'<c r="E2" t="n" s="0">').replace(b'<c r="A2" s="1">', b'<c r="A2" s="1" t="n">')
        xml = xml.replace(b"<v>1</v></c></row>", b'<v>1</v></c><c r="F2" s="1"/><c r="G2"></c></row>')  # empty cells
        return xml.replace(b"</row></sheetData>", b'</row><row r="9" ht="20" customHeight="1"/></sheetData>')

    edited = with_sheet_xml(path, edit)
    xml = zipfile.ZipFile(edited).read("xl/worksheets/sheet2.xml")
    assert b't="s" s="0"' in xml and b'<c r="F2" s="1"/>' in xml and b'<row r="9" ht' in xml
    assert scanned(edited, HEADER).equals(calamine(edited, HEADER))
    assert scanned(edited, HEADER).equals(scanned(path, HEADER))


E2 = b'<c r="E2"><v>1</v>'


@pytest.mark.parametrize(("name", "edit"), [
    ("a formula", lambda x: x.replace(E2, b'<c r="E2"><f>1+0</f><v>1</v>')),
    ("an inline string", lambda x: x.replace(b'<c r="B2" t="s"><v>6</v>', b'<c r="B2" t="inlineStr"><is><t>E9</t></is>')),
    ("a boolean", lambda x: x.replace(E2, b'<c r="E2" t="b"><v>1</v>')),
    ("an error value", lambda x: x.replace(E2, b'<c r="E2" t="e"><v>#N/A</v>')),
    ("text in a number cell", lambda x: x.replace(E2, b'<c r="E2"><v>abc</v>')),
    ("a date before 1900", lambda x: x.replace(b'<c r="A2" s="1"><v>46086</v>', b'<c r="A2" s="1"><v>-5</v>')),
    ("white space between tags", lambda x: x.replace(b"</row>", b"</row>\n")),
    ("a row without r", lambda x: x.replace(b'<row r="2"', b"<row")),
    ("a cell without r", lambda x: x.replace(b'<c r="B2"', b"<c")),
    ("a cell outside its row's order", lambda x: x.replace(b'<c r="B2"', b'<c r="A2"')),
    ("rows out of order", lambda x: x.replace(b'<row r="3"', b'<row r="2"')),
    ("another attribute", lambda x: x.replace(b'<c r="B2"', b'<c r="B2" cm="1"')),
    ("a prefixed name", lambda x: x.replace(b"<c ", b"<x:c ").replace(b"</c>", b"</x:c>")),
])
def test_xml_it_does_not_take_is_left_to_calamine(tmp_path, name, edit):
    path = write(tmp_path / "b.xlsx", HEADER, ROWS[:2])
    assert scanned(path, HEADER).equals(calamine(path, HEADER))  # the unedited sheet is taken
    edited = with_sheet_xml(path, edit)
    assert zipfile.ZipFile(edited).read("xl/worksheets/sheet2.xml") != zipfile.ZipFile(path).read("xl/worksheets/sheet2.xml")
    with pytest.raises(NotPlain):
        scan_text_columns(edited, SHEET, HEADER)


def test_headers_it_cannot_match_are_left_to_calamine(tmp_path):
    path = write(tmp_path / "b.xlsx", ["日期", "工号", "日期"], [[dt.date(2026, 1, 1), "E1", 1]])
    with pytest.raises(NotPlain):
        scan_text_columns(path, SHEET, ["日期"])  # twice
    with pytest.raises(NotPlain):
        scan_text_columns(path, SHEET, ["次数"])  # missing
    with pytest.raises(NotPlain):
        scan_text_columns(path, "没有这张表", ["工号"])


def test_the_log_child_scans_a_plain_log_and_asks_calamine_for_any_other(tmp_path, monkeypatch):
    """The second process gives the same columns either way; which reader it used shows in whether
    the scan was asked and refused."""
    plain = write(tmp_path / "b.xlsx", HEADER, ROWS, sheet=log_prefetch.LOG_SHEET)
    odd = with_sheet_xml(plain, lambda x: x.replace(E2, b'<c r="E2"><f>1+0</f><v>1</v>'))
    wanted = ["日期", "工号", "次数"]
    for path in (plain, odd):
        child = log_prefetch.LogChild(path, log_prefetch.LOG_SHEET, wanted)
        try:
            out = child.wait()
            assert out is not None
            assert pl.read_ipc(out).equals(calamine(path, wanted, log_prefetch.LOG_SHEET))
        finally:
            child.close()
    with pytest.raises(NotPlain):
        scan_text_columns(odd, log_prefetch.LOG_SHEET, wanted)
    scan_text_columns(plain, log_prefetch.LOG_SHEET, wanted)


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_a_log_saved_by_libreoffice_is_scanned_as_calamine_reads_it(tmp_path):
    """A real spreadsheet program's own XML (LibreOffice writes its attributes, spans and empty
    cells its own way): taken by the scan, not refused, and the same columns as calamine's."""
    path = write(tmp_path / "b.xlsx", HEADER, ROWS * 20, sheet=log_prefetch.LOG_SHEET)
    out = tmp_path / "lo"
    subprocess.run(["soffice", f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
                    "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), str(path)],
                   check=True, timeout=300, capture_output=True)
    saved = out / "b.xlsx"
    assert saved.exists()
    frame = scanned(saved, HEADER, log_prefetch.LOG_SHEET)  # raises NotPlain if refused
    assert frame.equals(calamine(saved, HEADER, log_prefetch.LOG_SHEET)) and frame.height == len(ROWS) * 20
