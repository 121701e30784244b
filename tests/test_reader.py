"""The workbook reader: typing, the contract's structure, every kind of bad cell with its cell, and the
round trip file -> core -> results."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from xlsales.adapters import log_prefetch, xlsx_reader
from xlsales.adapters.xlsx_package import is_date_format
from xlsales.adapters.xlsx_reader import (
    REQUIRED_HEADERS,
    WorkbookData,
    WorkbookUnusable,
    cell_ref,
    read_workbook,
    serial_to_date,
)
from xlsales.core.activity import LOG_SHEET, ActivityLog
from xlsales.core.intake import read_workbook_tables
from xlsales.core.models import LogEntry
from xlsales.core.pipeline import compute
from xlsales.core.problems import Level, Problem, Problems
from xlsales.core.validation import REPORTED, validate_rows
from xlsales.demo import DEMO_DATE, demo_tables

xlsxwriter = pytest.importorskip("xlsxwriter")

PERCENT_HEADERS = {"毛利率", "赢单概率", "比例", "累计完工比例", "业绩完成率"}


def _no_calamine(cls: Any, package: Any, sheets: Any, loader: Any = None) -> None:
    if loader is not None:
        loader.close()


NO_CALAMINE = classmethod(_no_calamine)  # _CalamineTables.start when the exact path is wanted


@pytest.fixture(autouse=True, params=["exact", "calamine"])
def small_sheet_path(request, monkeypatch):
    """Every test here runs twice: the small sheets read exactly by this module's XML path, and read
    by calamine wherever it can (any size of sheet). Both must pass the same assertions: that is
    what makes the calamine path safe (it falls back to the exact one where the two could differ)."""
    if request.param == "exact":
        monkeypatch.setattr(xlsx_reader._CalamineTables, "start", NO_CALAMINE)
    else:
        monkeypatch.setattr(xlsx_reader, "CALAMINE_MIN_BYTES", 0)
    return request.param
LOG_HEADERS = REQUIRED_HEADERS[LOG_SHEET]


# --- writing test workbooks ----------------------------------------------------------------------

def headers_of(sheet: str, rows: list[dict[str, Any]]) -> list[str]:
    headers = list(REQUIRED_HEADERS.get(sheet, ()))
    for row in rows:
        headers += [k for k in row if k != "row" and k not in headers]
    return headers


def write_book(path: Path, tables: dict[str, list[dict[str, Any]]], *, constant_memory: bool = False,
               date_format: str | int = "yyyy-mm-dd", order: dict[str, list[str]] | None = None,
               text_cells: bool = False) -> Path:
    """Raw rows (header -> value, plus "row") into an .xlsx the way a user's Excel would hold them.
    `order`: the column order of some sheets (headers may be left out or added)."""
    book = xlsxwriter.Workbook(str(path), {"constant_memory": constant_memory})
    date_fmt = book.add_format({"num_format": date_format})
    pct_fmt = book.add_format({"num_format": "0%"})
    blank_fmt = book.add_format({"bg_color": "#FFFF00"})
    for sheet, rows in tables.items():
        ws = book.add_worksheet(sheet)
        headers = (order or {}).get(sheet) or headers_of(sheet, rows)
        ws.write_row(0, 0, headers)
        for raw in sorted(rows, key=lambda r: r["row"]):
            r = raw["row"] - 1
            if all(raw.get(h.strip()) is None for h in headers):
                ws.write_blank(r, 0, None, blank_fmt)  # a styled but empty row
            for c, header in enumerate(headers):
                value = raw.get(header.strip())
                if value is None:
                    continue
                if isinstance(value, dt.date):
                    ws.write_datetime(r, c, dt.datetime(value.year, value.month, value.day), date_fmt)
                elif isinstance(value, bool):
                    ws.write_boolean(r, c, value)
                elif isinstance(value, (int, float, Decimal)):
                    if text_cells:
                        ws.write_string(r, c, str(value))
                    else:
                        ws.write_number(r, c, value, pct_fmt if header in PERCENT_HEADERS else None)
                else:
                    ws.write_string(r, c, str(value))
    book.close()
    return path


_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def craft_book(path: Path, sheets: dict[str, str], *, strings: list[str] = (), numfmts: dict[int, str] | None = None,
               xfs: tuple[int, ...] = (0,), date1904: bool = False, prefix: str = "") -> Path:
    """A workbook from hand-written sheetData XML, for cell shapes that writers do not produce
    (error values, formulas without a cached value, CJK built-in formats, prefixed names ...)."""
    p = f"{prefix}:" if prefix else ""
    ns = f'xmlns:{prefix}="http://schemas.openxmlformats.org/spreadsheetml/2006/main"' if prefix else _NS
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types '
                   'xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
                   f'2006/relationships"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
                   'Target="xl/workbook.xml"/></Relationships>')
        entries = "".join(f'<{p}sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>' for i, name in enumerate(sheets, 1))
        pr = f'<{p}workbookPr date1904="1"/>' if date1904 else ""
        z.writestr("xl/workbook.xml", f'<?xml version="1.0"?><{p}workbook {ns} xmlns:r="{_REL}">{pr}<{p}sheets>{entries}'
                   f"</{p}sheets></{p}workbook>")
        rels = "".join(f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                       for i in range(1, len(sheets) + 1))
        n = len(sheets)
        rels += f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        rels += f'<Relationship Id="rId{n + 2}" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>'
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   f'openxmlformats.org/package/2006/relationships">{rels}</Relationships>')
        fmts = "".join(f'<numFmt numFmtId="{i}" formatCode="{c}"/>' for i, c in (numfmts or {}).items())
        xf = "".join(f'<xf numFmtId="{i}" fontId="0" fillId="0" borderId="0" xfId="0"/>' for i in xfs)
        z.writestr("xl/styles.xml", f'<?xml version="1.0"?><styleSheet {_NS}><numFmts>{fmts}</numFmts>'
                   f'<cellStyleXfs count="1"><xf numFmtId="0"/></cellStyleXfs><cellXfs>{xf}</cellXfs></styleSheet>')
        si = "".join(f"<si>{s}</si>" if s.startswith("<") else f"<si><t>{s}</t></si>" for s in strings)
        z.writestr("xl/sharedStrings.xml", f'<?xml version="1.0"?><sst {_NS}>{si}</sst>')
        for i, body in enumerate(sheets.values(), 1):
            z.writestr(f"xl/worksheets/sheet{i}.xml",
                       f'<?xml version="1.0"?><{p}worksheet {ns}><{p}sheetData>{body}</{p}sheetData></{p}worksheet>')
    return path


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def header_row(headers: list[str] | tuple[str, ...]) -> str:
    return '<row r="1">' + "".join(inline(f"{xlsx_reader.column_letter(i)}1", h) for i, h in enumerate(headers)) + "</row>"


# --- fixtures: a small, complete contract workbook -------------------------------------------------

def small_tables() -> dict[str, list[dict[str, Any]]]:
    """demo_tables() without its planted errors, cut down to a handful of log rows."""
    tables = demo_tables(with_errors=False)
    tables[LOG_SHEET] = tables[LOG_SHEET][:5]
    return tables


def log_rows(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"日期": dt.date(2026, 11, 2), "工号": "E001", "客户编码": "C001", "联系人": "总经理", "角色": "决策层",
            "动作编码": "A02", "次数": 1}
    out = []
    for i, row in enumerate(rows, start=2):
        out.append({"row": i, **({} if row.get("_blank") else base), **{k: v for k, v in row.items() if k != "_blank"}})
    return out


def problems_at(data: WorkbookData, sheet: str, level: Level | None = None) -> dict[tuple[int | None, str | None], Problem]:
    return {(p.row, p.field): p for p in data.problems if p.sheet == sheet and (level is None or p.level == level)}


def run_core(data: WorkbookData, today: dt.date = DEMO_DATE):
    problems = Problems()
    problems.extend(data.problems)
    book, inputs = read_workbook_tables(data.tables, today, problems, log=data.log)
    assert book is not None, [p.message for p in problems.items if p.is_error]
    return compute(inputs, book, problems), problems


# --- the round trip ----------------------------------------------------------------------------------

def as_stored(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The values as a workbook holds them: a cell keeps a double (15 significant digits survive
    every writer; XlsxWriter writes 16)."""
    return {sheet: [{k: Decimal(f"{v:.15g}") if isinstance(v, Decimal) else v for k, v in row.items()} for row in rows]
            for sheet, rows in tables.items()}


def test_demo_workbook_round_trip_gives_the_same_results_as_the_raw_rows(tmp_path):
    tables = as_stored(demo_tables())
    data = read_workbook(write_book(tmp_path / "demo.xlsx", tables))

    assert data.log is not None and set(data.tables) == set(tables) - {LOG_SHEET}
    assert data.sheet_names == list(tables)
    from_file, file_problems = run_core(data)

    direct_problems = Problems()
    book, inputs = read_workbook_tables(tables, DEMO_DATE, direct_problems)
    assert book is not None
    direct = compute(inputs, book, direct_problems)

    assert from_file.payouts == direct.payouts
    assert from_file.ranking == direct.ranking and from_file.history == direct.history
    assert from_file.ratings == direct.ratings and from_file.summary == direct.summary
    assert from_file.forecast == direct.forecast
    assert from_file.counts == direct.counts
    # the same cells are in error either way (the reader words the log's own messages)
    errors = {(p.sheet, p.row, p.field) for p in file_problems.items if p.is_error}
    assert errors == {(p.sheet, p.row, p.field) for p in direct_problems.items if p.is_error}
    assert (LOG_SHEET, 22, "次数") in errors  # the planted "两次"
    two_times = next(p for p in data.problems if p.row == 22)
    assert cell_ref(data.columns, two_times) == "G22" and two_times.value == "两次"


def test_log_frame_equals_the_core_built_log(tmp_path):
    tables = demo_tables(with_errors=False)
    data = read_workbook(write_book(tmp_path / "demo.xlsx", tables))
    assert data.problems == []
    expected = ActivityLog.from_entries(validate_rows(LogEntry, LOG_SHEET, tables[LOG_SHEET], Problems()))
    assert data.log is not None
    assert data.log.frame.schema == expected.frame.schema
    assert data.log.frame.equals(expected.frame)


def test_inline_strings_read_the_same_as_shared_strings(tmp_path):
    tables = demo_tables()
    shared = read_workbook(write_book(tmp_path / "shared.xlsx", tables))
    inline_book = read_workbook(write_book(tmp_path / "inline.xlsx", tables, constant_memory=True))
    assert inline_book.tables == shared.tables
    assert inline_book.log is not None and shared.log is not None and inline_book.log.frame.equals(shared.log.frame)
    assert inline_book.problems == shared.problems


def test_output_sheets_are_read_back(tmp_path):
    tables = small_tables()
    tables["提成发放表"] = [{"row": 2, "行ID": "E001/SO1/提成/签约/20260305", "工号": "E001", "项目": "提成", "阶段": "签约",
                         "事件日期": dt.date(2026, 3, 5), "应发日期": dt.date(2026, 3, 6), "金额": Decimal("1234.56"),
                         "状态": "已发", "实发日期": dt.date(2026, 3, 9)}]
    tables["排名历史"] = [{"row": 2, "月份": "2026-10", "排名": 1, "工号": "E001", "姓名": "王建国", "业绩完成率": Decimal("0.85"),
                       "月度关系得分": 40, "综合得分": Decimal("67.1"), "分组": "前30%", "连续垫底月数": 0},
                      {"row": 3, "月份": "2026-10", "排名": 2, "工号": "E002", "姓名": "李娜", "业绩完成率": Decimal("0.15"),
                       "月度关系得分": 5, "综合得分": Decimal("11"), "分组": "后15%", "连续垫底月数": 2, "提示": "需帮扶"}]
    data = read_workbook(write_book(tmp_path / "out.xlsx", tables))
    assert data.tables["提成发放表"][0]["实发日期"] == dt.date(2026, 3, 9)
    assert data.tables["提成发放表"][0]["金额"] == Decimal("1234.56")
    assert data.tables["排名历史"][0]["综合得分"] == Decimal("67.1")
    assert data.tables["排名历史"][0]["业绩完成率"] == Decimal("0.85")
    _, problems = run_core(data)
    assert not [p for p in problems.items if p.sheet in ("提成发放表", "排名历史") and p.is_error]


def test_writers_workbook_reads_back(tmp_path):
    sheets = pytest.importorskip("xlsales.adapters.sheets")
    if not hasattr(sheets, "write_tables"):
        pytest.skip("sheets.write_tables not available")
    path = tmp_path / "written.xlsx"
    sheets.write_tables(path, demo_tables())
    data = read_workbook(path)
    assert data.log is not None and len(data.log) > 700
    assert not [p for p in data.problems if p.is_error and p.sheet != LOG_SHEET]
    results, _ = run_core(data)
    assert results.payouts and results.ranking


# --- typing ------------------------------------------------------------------------------------------

def test_values_are_typed_faithfully(tmp_path):
    tables = small_tables()
    tables["订单"] = [
        {"row": 2, "订单号": 20260001, "签约日期": dt.date(2026, 3, 5), "工号": 1001, "客户编码": "C001",
         "合同金额": Decimal("1234567.89"), "毛利率": Decimal("0.28"), "完工日期": None},
        {"row": 3, "订单号": "SO2", "签约日期": "2026-03-05", "工号": "E001", "客户编码": "C001",
         "合同金额": 100, "毛利率": Decimal("0.3"), "完工日期": "2026/3/6"},
    ]
    data = read_workbook(write_book(tmp_path / "t.xlsx", tables))
    first, second = data.tables["订单"]
    assert first == {"row": 2, "订单号": "20260001", "签约日期": dt.date(2026, 3, 5), "工号": "1001", "客户编码": "C001",
                     "合同金额": Decimal("1234567.89"), "毛利率": Decimal("0.28")}
    assert type(first["签约日期"]) is dt.date
    assert second["签约日期"] == "2026-03-05" and second["合同金额"] == 100 and second["毛利率"] == Decimal("0.3")
    warnings = problems_at(data, "订单", Level.WARNING)
    assert set(warnings) == {(3, "签约日期"), (3, "完工日期")}
    assert "文本日期" in warnings[(3, "签约日期")].message
    assert cell_ref(data.columns, warnings[(3, "签约日期")]) == "B3"
    assert cell_ref(data.columns, warnings[(3, "完工日期")]) == "G3"
    # the core reads the text date as a date
    results, _ = run_core(data)
    assert results is not None


def test_builtin_and_custom_date_formats(tmp_path):
    for fmt in (14, 22, "yyyy/m/d", 'yyyy"年"m"月"d"日"', "[$-804]yyyy-mm-dd;@", "d-mmm-yy"):
        tables = small_tables()
        tables["回款"] = [{"row": 2, "订单号": "SO2026001", "回款日期": dt.date(2026, 4, 30), "回款金额": 5}]
        data = read_workbook(write_book(tmp_path / "d.xlsx", tables, date_format=fmt))
        assert data.tables["回款"][0]["回款日期"] == dt.date(2026, 4, 30), fmt
        assert data.log is not None and data.log.frame["date"].null_count() == 0


def test_columns_in_any_order_with_extra_columns(tmp_path):
    tables = small_tables()
    order = {"订单": ["备注", "合同金额", "订单号", "完工日期", "客户编码", "说明", "毛利率", "工号", "签约日期"],
             LOG_SHEET: ["次数", "备注", "动作编码", "我的列", "日期", "客户编码", "工号", "角色", "联系人", "审批状态"]}
    tables["订单"][0]["说明"] = "额外的列"
    data = read_workbook(write_book(tmp_path / "o.xlsx", tables, order=order))
    assert data.problems == []
    assert data.columns["订单"]["合同金额"] == "B" and data.columns["订单"]["签约日期"] == "I"
    assert data.columns[LOG_SHEET]["次数"] == "A" and data.columns[LOG_SHEET]["日期"] == "E"
    original = small_tables()["订单"][0]
    row = data.tables["订单"][0]
    assert row["合同金额"] == original["合同金额"] and row["签约日期"] == original["签约日期"]
    assert row["说明"] == "额外的列"
    assert data.log is not None and data.log.frame["date"].to_list() == [r["日期"] for r in tables[LOG_SHEET]]


def test_headers_are_found_by_stripped_text(tmp_path):
    tables = small_tables()
    order = {"回款": [" 订单号", "回款日期 ", "　回款金额"]}
    data = read_workbook(write_book(tmp_path / "h.xlsx", tables, order=order))
    assert not [p for p in data.problems if p.sheet == "回款"]
    assert data.tables["回款"][0]["回款金额"] == tables["回款"][0]["回款金额"]


def test_month_columns_are_optional(tmp_path):
    tables = small_tables()
    tables["业绩目标"] = [{k: v for k, v in row.items() if not k.endswith("月")} for row in tables["业绩目标"]]
    data = read_workbook(write_book(tmp_path / "m.xlsx", tables))
    assert data.problems == []
    run_core(data)


def test_cjk_builtin_date_format_and_1904_dates(tmp_path):
    # numFmtId 31 (yyyy"年"m"月"d"日") is a date in Chinese Excel though styles.xml does not declare it
    body = header_row(["订单号", "回款日期", "回款金额"]) + '<row r="2">' + inline("A2", "SO1") + \
        '<c r="B2" s="1"><v>46010</v></c><c r="C2"><v>5</v></c></row>'
    log = header_row(LOG_HEADERS) + '<row r="2"><c r="A2" s="1"><v>46010</v></c>' + inline("B2", "E001") + \
        inline("C2", "C001") + inline("E2", "决策层") + inline("F2", "A02") + "</row>"
    data = read_workbook(craft_book(tmp_path / "cjk.xlsx", {"回款": body, LOG_SHEET: log}, xfs=(0, 31)))
    assert data.tables["回款"][0]["回款日期"] == dt.date(2025, 12, 19)
    assert data.log is not None and data.log.frame["date"].to_list() == [dt.date(2025, 12, 19)]
    data = read_workbook(craft_book(tmp_path / "1904.xlsx", {"回款": body}, xfs=(0, 14), date1904=True))
    assert data.tables["回款"][0]["回款日期"] == dt.date(1904, 1, 1) + dt.timedelta(days=46010)


def test_error_values_and_formulas_without_a_result(tmp_path):
    body = header_row(["订单号", "回款日期", "回款金额"]) + \
        '<row r="2">' + inline("A2", "SO1") + '<c r="B2" s="1"><v>46010</v></c><c r="C2" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>' \
        '<row r="3">' + inline("A3", "SO2") + '<c r="B3" s="1"><v>46010</v></c><c r="C3"><f>C2*2</f></c></row>' \
        '<row r="4"><c r="A4" t="str"><f>"SO"&amp;"3"</f><v>SO&amp;3</v></c><c r="B4" s="1"><f>TODAY()</f><v>46011</v></c>' \
        '<c r="C4"><v>7</v></c></row>'
    data = read_workbook(craft_book(tmp_path / "e.xlsx", {"回款": body}, xfs=(0, 14)))
    found = problems_at(data, "回款")
    assert found[(2, "回款金额")].level == Level.ERROR and found[(2, "回款金额")].value == "#DIV/0!"
    assert cell_ref(data.columns, found[(2, "回款金额")]) == "C2"
    assert found[(3, "回款金额")].level == Level.WARNING and "公式" in found[(3, "回款金额")].message
    rows = data.tables["回款"]
    assert [r.get("回款金额") for r in rows] == [None, None, 7]
    assert rows[2] == {"row": 4, "订单号": "SO&3", "回款日期": dt.date(2025, 12, 20), "回款金额": 7}


def test_rare_cell_types_on_the_fast_path(tmp_path):
    """Shared strings only (the usual Excel file), with every cell type and rich shared strings."""
    strings = ["订单号", "回款日期", "<r><t>回款</t></r><r><rPr><b/></rPr><t>金额</t></r><rPh sb='0' eb='1'><t>ふり</t></rPh>",
               "A&amp;B_x000D_", '<t xml:space="preserve"> SO2 </t>']
    body = '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>' \
        '<row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" s="1"><v>46010</v></c><c r="C2" t="e"><v>#N/A</v></c></row>' \
        '<row r="3"><c r="A3" t="s"><v>4</v></c><c r="B3" s="1"><v>-5</v></c><c r="C3"><f>C2</f></c></row>' \
        '<row r="4"><c r="A4" t="str"><f>X</f><v>a&lt;b</v></c><c r="B4" t="d"><v>2026-03-05T00:00:00</v></c>' \
        '<c r="C4" t="b"><v>1</v></c></row>' \
        '<row r="5"><c r="A5" t="s"><v>99</v></c><c r="B5" t="d"><v>soon</v></c><c r="C5" s="0" t="n"><v>1.5E3</v></c></row>'
    data = read_workbook(craft_book(tmp_path / "f.xlsx", {"回款": body}, strings=strings, xfs=(0, 14)))
    assert data.columns["回款"] == {"订单号": "A", "回款日期": "B", "回款金额": "C"}
    rows = {r["row"]: r for r in data.tables["回款"]}
    # a cell reported as an error is named under REPORTED, so that intake does not call it blank too
    assert rows[2] == {"row": 2, "订单号": "A&B\r", "回款日期": dt.date(2025, 12, 19), REPORTED: {"回款金额"}}
    assert rows[3] == {"row": 3, "订单号": " SO2 ", REPORTED: {"回款日期"}}  # 回款金额: a warning only
    assert rows[4] == {"row": 4, "订单号": "a<b", "回款日期": dt.date(2026, 3, 5), "回款金额": True}
    assert rows[5] == {"row": 5, "回款金额": Decimal("1.5E3"), REPORTED: {"订单号", "回款日期"}}
    found = problems_at(data, "回款")
    assert found[(2, "回款金额")].value == "#N/A" and found[(2, "回款金额")].is_error
    assert found[(3, "回款日期")].is_error and "超出范围" in found[(3, "回款日期")].message
    assert found[(3, "回款金额")].level == Level.WARNING
    assert found[(5, "订单号")].is_error and found[(5, "回款日期")].is_error
    assert cell_ref(data.columns, found[(5, "回款日期")]) == "B5"


def test_text_date_parameter_is_warned(tmp_path):
    tables = small_tables()
    tables["参数"] = [{"row": 2, "参数": "年度", "值": 2026}, {"row": 3, "参数": "评估日期", "值": "2026-11-30"}]
    data = read_workbook(write_book(tmp_path / "p.xlsx", tables))
    warning = problems_at(data, "参数", Level.WARNING)[(3, "值")]
    assert "文本日期" in warning.message and cell_ref(data.columns, warning) == "B3"
    results, _ = run_core(data)
    assert results.book.evaluation_date == dt.date(2026, 11, 30)


def test_prefixed_names_rich_text_and_cells_without_address(tmp_path):
    """Sheet XML the fast path does not take goes through expat: namespace prefixes, rich text,
    cells without r (positional), phonetic runs."""
    body = '<x:row r="1"><x:c t="inlineStr"><x:is><x:t>订单号</x:t></x:is></x:c><x:c t="s"><x:v>0</x:v></x:c>' \
        '<x:c t="inlineStr"><x:is><x:t>回款金额</x:t></x:is></x:c></x:row>' \
        '<x:row r="2"><x:c t="inlineStr"><x:is><x:r><x:t>S</x:t></x:r><x:r><x:t>O1</x:t></x:r>' \
        '<x:rPh sb="0" eb="1"><x:t>ignored</x:t></x:rPh></x:is></x:c><x:c s="1"><x:v>46010</x:v></x:c>' \
        '<x:c><x:v>0.1</x:v></x:c></x:row>'
    data = read_workbook(craft_book(tmp_path / "x.xlsx", {"回款": body}, strings=["回款日期"], xfs=(0, 14), prefix="x"))
    assert data.tables["回款"] == [{"row": 2, "订单号": "SO1", "回款日期": dt.date(2025, 12, 19), "回款金额": Decimal("0.1")}]


# --- the log, cell by cell ---------------------------------------------------------------------------

BAD_LOG = (
    {},                                                     # 2 fine
    {"次数": "两次"},                                        # 3 text in a number cell
    {"日期": "2026-02-30"},                                  # 4 impossible text date
    {"日期": None},                                          # 5 blank date
    {"次数": -1},                                            # 6 negative count
    {"次数": 0},                                             # 7 zero count
    {"次数": 1.5},                                           # 8 not an integer
    {"日期": "2026-03-05"},                                  # 9 text date: read, warned
    {"_blank": True},                                        # 10 blank row: skipped silently
    {"工号": 1001},                                          # 11 a code typed as a number
    {"次数": None},                                          # 12 blank count means 1
    {"工号": " E001 ", "角色": "决策层 "},                     # 13 spaces around
    {"日期": 46010},                                         # 14 a number without a date format
    {"日期": "下周一"},                                        # 15 not a date at all
    {"客户编码": None},                                       # 16 blank required code
    {"次数": "3"},                                           # 17 a count typed as text is still a count
)


def bad_log_book(tmp_path: Path, **kw: Any) -> WorkbookData:
    tables = small_tables()
    tables[LOG_SHEET] = log_rows(*BAD_LOG)
    return read_workbook(write_book(tmp_path / "log.xlsx", tables, **kw))


def check_bad_log(data: WorkbookData) -> None:
    assert data.log is not None
    frame = data.log.frame
    assert frame["row"].to_list() == [2, 9, 11, 12, 13, 17]
    by_row = {r["row"]: r for r in frame.iter_rows(named=True)}
    assert by_row[9]["date"] == dt.date(2026, 3, 5)
    assert by_row[11]["rep_id"] == "1001"
    assert by_row[12]["count"] == 1 and by_row[17]["count"] == 3
    assert by_row[13]["rep_id"] == "E001" and by_row[13]["role"] == "决策层"
    errors = problems_at(data, LOG_SHEET, Level.ERROR)
    assert set(errors) == {(3, "次数"), (4, "日期"), (5, "日期"), (6, "次数"), (7, "次数"), (8, "次数"), (14, "日期"),
                           (15, "日期"), (16, "客户编码")}
    assert errors[(3, "次数")].value == "两次" and "不是数字" in errors[(3, "次数")].message
    assert "不存在" in errors[(4, "日期")].message and errors[(4, "日期")].value == "2026-02-30"
    assert "不能为空" in errors[(5, "日期")].message
    assert "小于 1" in errors[(6, "次数")].message and errors[(6, "次数")].value == "-1"
    assert "小于 1" in errors[(7, "次数")].message
    assert "不是整数" in errors[(8, "次数")].message and errors[(8, "次数")].value == "1.5"
    assert "日期格式" in errors[(14, "日期")].message
    assert "无法识别" in errors[(15, "日期")].message
    assert all("请" in p.message for p in errors.values())  # each says what to fix
    warnings = problems_at(data, LOG_SHEET, Level.WARNING)
    assert set(warnings) == {(9, "日期")} and "文本日期" in warnings[(9, "日期")].message
    cells = {cell_ref(data.columns, p) for p in data.problems if p.sheet == LOG_SHEET}
    assert cells == {"G3", "A4", "A5", "G6", "G7", "G8", "A9", "A14", "A15", "C16"}


def test_log_text_is_stripped_as_strip_chars_strips_it():
    """_tidy decides which columns need stripping on their distinct values (in one query): the
    result is every value stripped, blank made null, whichever columns have such values."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    # spaces Python's strip() and polars' (Unicode White_Space) agree on, the ideographic one too
    value = st.one_of(st.none(), st.text(alphabet="aE0 \t\n\u3000\xa0", max_size=4))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(value, value), min_size=1, max_size=8))
    def check(rows):
        raw = pl.DataFrame({"a": [r[0] for r in rows], "b": [r[1] for r in rows]}, schema={"a": pl.String, "b": pl.String})
        tidy = xlsx_reader._tidy(raw, ["a", "b"])
        for column in ("a", "b"):
            assert tidy[column].to_list() == [None if v is None else (v.strip() or None) for v in raw[column]]

    check()


def test_every_bad_log_cell_is_reported_with_its_cell_and_its_row_left_out(tmp_path):
    check_bad_log(bad_log_book(tmp_path))


def test_exact_reader_reports_the_log_the_same_way(tmp_path, monkeypatch):
    fast = bad_log_book(tmp_path)
    monkeypatch.setattr(xlsx_reader, "_log_frame_fast", lambda *a, **k: None)
    exact = bad_log_book(tmp_path)
    check_bad_log(exact)
    assert fast.log is not None and exact.log is not None and exact.log.frame.equals(fast.log.frame)
    assert exact.problems == fast.problems


@pytest.mark.parametrize("still_running", [False, True])
def test_big_log_is_read_in_a_second_process_with_the_same_result(tmp_path, monkeypatch, still_running):
    """The same log either way; a child still reading when it is waited for has its file mapped
    by pyarrow (imported meanwhile), one already done has it read by polars."""
    pytest.importorskip("fastexcel")
    pytest.importorskip("pyarrow")
    path = write_book(tmp_path / "p.xlsx", demo_tables())
    in_process = read_workbook(path)
    monkeypatch.setattr(log_prefetch, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(log_prefetch, "spare_core", lambda: True)
    monkeypatch.setattr(log_prefetch.LogChild, "running", lambda self: still_running)
    started: list[Any] = []
    original = log_prefetch.LogChild.__init__
    monkeypatch.setattr(log_prefetch.LogChild, "__init__",
                        lambda self, *a: (started.append(self), original(self, *a))[1])
    used: list[Any] = []
    read_file = xlsx_reader._read_arrow_file
    monkeypatch.setattr(xlsx_reader, "_read_arrow_file", lambda p, arrow: (used.append(arrow), read_file(p, arrow))[1])
    in_child = read_workbook(path)
    assert started and started[0].proc is None and started[0].out is None  # waited for and cleaned up
    assert len(used) == 1 and (used[0] is not None) == (still_running and os.name == "posix")
    assert in_child.log is not None and in_process.log is not None and in_child.log.frame.equals(in_process.log.frame)
    assert in_child.problems == in_process.problems and in_child.tables == in_process.tables


def test_the_childs_arrow_file_read_mapped_is_the_same_frame_and_outlives_the_file(tmp_path):
    """While the child still reads, pyarrow is imported and its file is then memory-mapped; the
    frame must equal polars' own read, and stay whole once the child's file is deleted."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.ipc as ipc

    texts = ["2026-01-05 00:00:00", None, "客户“甲”", "x" * 40, "", "R001"] * 50
    batch = pa.record_batch({"日期": pa.array(texts, pa.string()), "次数": pa.array(list(reversed(texts)), pa.string())})
    path = tmp_path / "log.arrow"
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    arrow = xlsx_reader._arrow_reader()
    if os.name == "posix":
        assert arrow is not None
    plain = xlsx_reader._read_arrow_file(str(path), None)
    mapped = xlsx_reader._read_arrow_file(str(path), arrow)
    path.unlink()
    assert mapped.equals(plain) and mapped.schema == plain.schema and mapped.height == len(texts)
    assert mapped.get_column("日期").to_list() == texts


def test_the_log_child_writes_the_columns_as_text(tmp_path):
    """The child itself succeeds (a failing one would go unnoticed: the reader falls back)."""
    pytest.importorskip("fastexcel")
    pytest.importorskip("pyarrow")
    path = write_book(tmp_path / "p.xlsx", small_tables())
    child = log_prefetch.LogChild(path, LOG_SHEET, ["工号", "次数"])
    try:
        out = child.wait()
        assert out is not None
        frame = pl.read_ipc(out)
        assert frame.columns == ["工号", "次数"] and frame.height == 5
        assert frame.schema == pl.Schema({"工号": pl.String, "次数": pl.String})
    finally:
        child.close()
    by_index = log_prefetch.LogChild(path, LOG_SHEET, [1, 6])
    try:
        out = by_index.wait()
        assert out is not None and pl.read_ipc(out).height == 5
    finally:
        by_index.close()


def test_the_log_childs_file_goes_to_memory_only_with_room(tmp_path, monkeypatch):
    """scratch_dir: /dev/shm (here a stand-in folder) when it has twice the sheet's size free, else
    the system's temporary folder; the child's file is made there and removed by close()."""
    pytest.importorskip("fastexcel")
    pytest.importorskip("pyarrow")
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(log_prefetch, "SHM_DIR", str(shm))
    free = shutil.disk_usage(shm).free
    assert log_prefetch.scratch_dir(free // 2 - 1) == str(shm)
    assert log_prefetch.scratch_dir(free // 2 + (1 << 30)) is None
    monkeypatch.setattr(log_prefetch, "SHM_DIR", str(tmp_path / "absent"))
    assert log_prefetch.scratch_dir(0) is None
    monkeypatch.setattr(log_prefetch, "SHM_DIR", str(shm))
    path = write_book(tmp_path / "p.xlsx", small_tables())
    child = log_prefetch.LogChild(path, LOG_SHEET, ["工号"], sheet_bytes=1)
    try:
        out = child.wait()
        assert out is not None and Path(out).parent == shm and pl.read_ipc(out).height == 5
    finally:
        child.close()
    assert list(shm.iterdir()) == []


def test_a_failing_second_process_falls_back(tmp_path, monkeypatch):
    pytest.importorskip("fastexcel")
    pytest.importorskip("pyarrow")
    path = write_book(tmp_path / "p.xlsx", small_tables())
    expected = read_workbook(path)
    monkeypatch.setattr(log_prefetch, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(log_prefetch, "spare_core", lambda: True)
    monkeypatch.setattr(log_prefetch, "CHILD", "import sys; sys.exit(3)")
    data = read_workbook(path)
    assert data.log is not None and expected.log is not None and data.log.frame.equals(expected.log.frame)


def test_prefetch_reads_the_columns_the_reader_checks():
    assert set(log_prefetch.LOG_HEADERS) == set(xlsx_reader.LOG_COLUMNS)
    assert log_prefetch.LOG_SHEET == LOG_SHEET


def force_prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastexcel")
    pytest.importorskip("pyarrow")
    monkeypatch.setattr(log_prefetch, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(log_prefetch, "spare_core", lambda: True)


def test_a_prefetched_log_read_is_adopted_with_the_same_result(tmp_path, monkeypatch):
    """The command line starts the log's read by header text before its imports; the reader adopts
    it (no second child) and gets exactly what it reads itself."""
    path = write_book(tmp_path / "p.xlsx", demo_tables())
    expected = read_workbook(path)
    force_prefetch(monkeypatch)
    child = log_prefetch.prefetch_log(path)
    assert child is not None and child.proc is not None
    started: list[Any] = []
    monkeypatch.setattr(log_prefetch.LogChild, "__init__", lambda self, *a: started.append(a))
    data = read_workbook(path, prefetched=child)
    assert not started and child.proc is None and child.out is None  # adopted, waited for, cleaned up
    assert data.log is not None and expected.log is not None and data.log.frame.equals(expected.log.frame)
    assert data.problems == expected.problems and data.tables == expected.tables


def test_the_big_sheets_prefetched_by_calamine_are_taken_over_with_the_same_result(tmp_path, monkeypatch):
    """prefetch_log also starts loading the big small sheets (log_prefetch.BIG_SHEETS) in a thread;
    the reader takes that loader over, reads them through it, and closes it."""
    pytest.importorskip("python_calamine")
    path = write_book(tmp_path / "p.xlsx", demo_tables())
    monkeypatch.setattr(xlsx_reader._CalamineTables, "start", NO_CALAMINE)
    expected = read_workbook(path)
    monkeypatch.setattr(xlsx_reader._CalamineTables, "start", _CALAMINE_START)
    monkeypatch.setattr(xlsx_reader, "CALAMINE_MIN_BYTES", 0)
    force_prefetch(monkeypatch)
    child = log_prefetch.prefetch_log(path)
    assert child is not None and child.sheets is not None
    loader = child.sheets
    asked: list[str] = []
    grid = log_prefetch.SheetLoader.grid
    monkeypatch.setattr(log_prefetch.SheetLoader, "grid", lambda self, name: asked.append(name) or grid(self, name))
    monkeypatch.setattr(log_prefetch.SheetLoader, "__init__", lambda self, *a: pytest.fail("a second loader"))
    data = read_workbook(path, prefetched=child)
    assert child.sheets is None and not loader._thread.is_alive()  # taken over and closed
    assert set(asked) == set(log_prefetch.BIG_SHEETS) & set(data.tables)
    assert data.tables == expected.tables and data.problems == expected.problems and data.columns == expected.columns


def test_the_prefetched_big_sheets_are_contract_sheets():
    assert set(log_prefetch.BIG_SHEETS) <= set(REQUIRED_HEADERS) - {LOG_SHEET}


def read_prefetched(monkeypatch: pytest.MonkeyPatch, path: Path, started_on: Path | None = None) -> WorkbookData:
    """read_workbook(path) with a prefetch started on `started_on` (default: path) as the command
    line does; the child must be gone afterwards, and its file too."""
    force_prefetch(monkeypatch)
    child = log_prefetch.prefetch_log(started_on or path)
    assert child is not None
    out = child.out
    data = read_workbook(path, prefetched=child)
    assert child.proc is None and out is not None and not Path(out).exists()
    return data


def test_a_prefetch_of_another_file_is_not_used(tmp_path, monkeypatch):
    path = write_book(tmp_path / "p.xlsx", small_tables())
    other_tables = small_tables()
    other_tables[LOG_SHEET] = other_tables[LOG_SHEET][:2]
    other = write_book(tmp_path / "other.xlsx", other_tables)
    data = read_prefetched(monkeypatch, path, started_on=other)
    assert data.log is not None and len(data.log) == 5


@pytest.mark.parametrize("header", ["工号 ", "repeated"])
def test_a_prefetch_that_cannot_match_the_headers_falls_back(tmp_path, monkeypatch, header):
    """A header with a space after it (the child selects by exact text and fails), or a header that
    appears twice (the child might pick the other one): the log is still read exactly."""
    tables = small_tables()
    headers = list(REQUIRED_HEADERS[LOG_SHEET])
    # (write_book finds a column's values by its stripped header)
    order = [*headers, "工号"] if header == "repeated" else [header if h == "工号" else h for h in headers]
    path = write_book(tmp_path / "h.xlsx", tables, order={LOG_SHEET: order})
    expected = read_workbook(path)
    data = read_prefetched(monkeypatch, path)
    assert data.log is not None and expected.log is not None and data.log.frame.equals(expected.log.frame)
    assert len(data.log) == 5 and data.problems == expected.problems


def test_a_prefetch_of_a_workbook_without_the_log_is_closed(tmp_path, monkeypatch):
    tables = small_tables()
    del tables[LOG_SHEET]
    data = read_prefetched(monkeypatch, write_book(tmp_path / "nolog.xlsx", tables))
    assert data.log is None and any(p.sheet == LOG_SHEET and p.message.startswith("缺少工作表") for p in data.problems)


def test_no_prefetch_for_small_or_unreadable_files(tmp_path):
    path = write_book(tmp_path / "p.xlsx", small_tables())
    assert log_prefetch.prefetch_log(path) is None  # far below PARALLEL_MIN_BYTES
    assert log_prefetch.prefetch_log(tmp_path / "missing.xlsx") is None
    (tmp_path / "not.xlsx").write_text("hello")
    assert log_prefetch.prefetch_log(tmp_path / "not.xlsx") is None


@pytest.mark.parametrize("constant_memory", [False, True])
def test_exact_reader_streams_in_chunks(tmp_path, monkeypatch, constant_memory):
    """Chunk boundaries fall inside rows; inline strings take the whole-sheet path."""
    tables = small_tables()
    tables[LOG_SHEET] = demo_tables(with_errors=False)[LOG_SHEET]
    path = write_book(tmp_path / "s.xlsx", tables, constant_memory=constant_memory)
    fast = read_workbook(path)
    monkeypatch.setattr(xlsx_reader, "_log_frame_fast", lambda *a, **k: None)
    monkeypatch.setattr(xlsx_reader, "STREAM_CHUNK", 777)
    exact = read_workbook(path)
    assert fast.log is not None and exact.log is not None and exact.log.frame.equals(fast.log.frame)
    assert len(exact.log) == len(tables[LOG_SHEET]) and exact.problems == fast.problems


def test_log_dates_in_other_shapes(tmp_path):
    """t="d" cells, a date with a time of day, a text date with spaces around it."""
    rest = inline("B{r}", "E001") + inline("C{r}", "C001") + inline("E{r}", "决策层") + inline("F{r}", "A02")
    cells = ['<c r="A2" t="d"><v>2026-03-05T00:00:00</v></c>', '<c r="A3" s="1"><v>46010.75</v></c>',
             inline("A4", " 2026-03-07 "), '<c r="A5" s="1"><v>46010</v></c><c r="G5" s="1"><v>2</v></c>']
    body = header_row(LOG_HEADERS) + "".join(f'<row r="{r}">{c}{rest.format(r=r)}</row>' for r, c in enumerate(cells, 2))
    data = read_workbook(craft_book(tmp_path / "d.xlsx", {LOG_SHEET: body}, xfs=(0, 14)))
    assert data.log is not None
    assert data.log.frame["date"].to_list() == [dt.date(2026, 3, 5), dt.date(2025, 12, 19), dt.date(2026, 3, 7)]
    problems = problems_at(data, LOG_SHEET)
    assert problems[(4, "日期")].level == Level.WARNING
    # a count formatted as a date is not a count
    assert problems[(5, "次数")].is_error


def test_log_typed_as_text_everywhere(tmp_path):
    """Numbers typed as text (次数 "2") are still numbers; the core's rules decide the rest."""
    tables = small_tables()
    data = read_workbook(write_book(tmp_path / "t.xlsx", tables, text_cells=True))
    assert data.log is not None and data.log.frame["count"].to_list() == [r["次数"] for r in tables[LOG_SHEET]]


def test_big_counts_are_rejected_before_they_overflow_the_sums(tmp_path):
    tables = small_tables()
    tables[LOG_SHEET] = log_rows({"次数": 10**15})
    data = read_workbook(write_book(tmp_path / "c.xlsx", tables))
    assert data.log is not None and len(data.log) == 0
    assert "过大" in problems_at(data, LOG_SHEET)[(2, "次数")].message


def test_validate_log_on_a_frame():
    raw = pl.DataFrame({"row": [2, 3, 4], "日期": ["2026-01-02 00:00:00", "2026/1/3", None],
                        "工号": ["E1", "E2", None], "客户编码": ["C1", "C1", None], "联系人": [None, None, None],
                        "角色": ["决策层", "决策层", None], "动作编码": ["A01", "A01", None], "次数": [None, "2", None],
                        "审批状态": [None, None, None]}, schema_overrides={"联系人": pl.String, "审批状态": pl.String})
    problems: list[Problem] = []
    log = xlsx_reader.validate_log(raw, problems)
    assert log.frame["date"].to_list() == [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
    assert log.frame["count"].to_list() == [1, 2]
    assert [(p.level, p.row) for p in problems] == [(Level.WARNING, 3)]


# --- structure -----------------------------------------------------------------------------------------

def test_missing_sheets_and_columns_are_errors_naming_them(tmp_path):
    tables = small_tables()
    del tables["回款"], tables["进度"]
    tables["订单"] = [{k: v for k, v in r.items() if k != "毛利率"} for r in tables["订单"]]
    order = {"订单": [h for h in headers_of("订单", tables["订单"]) if h != "毛利率"],
             LOG_SHEET: [h for h in LOG_HEADERS if h != "次数"]}
    data = read_workbook(write_book(tmp_path / "s.xlsx", tables, order=order))
    errors = [p for p in data.problems if p.is_error]
    messages = {(p.sheet, p.field): p.message for p in errors}
    assert set(messages) == {("回款", None), ("订单", "毛利率"), (LOG_SHEET, "次数")}
    assert "回款" in messages[("回款", None)] and "回款金额" in messages[("回款", None)]
    assert "毛利率" in messages[("订单", "毛利率")]
    assert "订单" not in data.tables and data.log is None and "进度" not in data.tables  # 进度 is optional
    assert data.broken_sheets == {"回款", "订单", LOG_SHEET}
    assert data.columns["订单"]["订单号"] == "A"
    assert all(cell_ref(data.columns, p) is None for p in errors)


def test_duplicate_header_is_an_error(tmp_path):
    tables = small_tables()
    order = {"回款": ["订单号", "回款日期", "回款金额", "回款金额"]}
    data = read_workbook(write_book(tmp_path / "dup.xlsx", tables, order=order))
    dup = problems_at(data, "回款", Level.ERROR)[(1, "回款金额")]
    assert "C 列和 D 列" in dup.message and cell_ref(data.columns, dup) == "C1"
    assert data.tables["回款"][0]["回款金额"] == tables["回款"][0]["回款金额"]


def test_empty_sheets_and_blank_rows(tmp_path):
    tables = small_tables()
    tables["进度"] = []
    tables["回款"] = [{"row": 2, "订单号": "SO2026001", "回款日期": dt.date(2026, 5, 1), "回款金额": 1},
                    {"row": 3}, {"row": 5, "订单号": "SO2026001", "回款日期": dt.date(2026, 6, 1), "回款金额": 2}]
    data = read_workbook(write_book(tmp_path / "b.xlsx", tables))
    assert data.tables["进度"] == []
    assert [r["row"] for r in data.tables["回款"]] == [2, 5]


def test_unusable_files(tmp_path):
    with pytest.raises(WorkbookUnusable, match="找不到文件"):
        read_workbook(tmp_path / "nope.xlsx")
    (tmp_path / "text.xlsx").write_text("not a workbook")
    with pytest.raises(WorkbookUnusable, match=r"不是 \.xlsx/\.xlsm 工作簿"):
        read_workbook(tmp_path / "text.xlsx")
    with pytest.raises(WorkbookUnusable, match="文件夹"):
        read_workbook(tmp_path)
    with zipfile.ZipFile(tmp_path / "empty.xlsx", "w") as z:
        z.writestr("hello.txt", "x")
    with pytest.raises(WorkbookUnusable, match="不是 Excel 工作簿"):
        read_workbook(tmp_path / "empty.xlsx")
    with zipfile.ZipFile(tmp_path / "binary.xlsb", "w") as z:
        z.writestr("_rels/.rels", f'<Relationships xmlns="x"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
                                  'Target="xl/workbook.bin"/></Relationships>')
        z.writestr("xl/workbook.bin", b"\x00")
    with pytest.raises(WorkbookUnusable, match="xlsb"):
        read_workbook(tmp_path / "binary.xlsb")
    good = write_book(tmp_path / "good.xlsx", small_tables())
    (tmp_path / "cut.xlsx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WorkbookUnusable):
        read_workbook(tmp_path / "cut.xlsx")


def test_cell_ref():
    columns = {"订单": {"合同金额": "E"}}
    assert cell_ref(columns, Problem(Level.ERROR, "订单", 14, "合同金额", "x", "m")) == "E14"
    assert cell_ref(columns, Problem(Level.ERROR, "订单", None, "合同金额", "x", "m")) == "E"
    assert cell_ref(columns, Problem(Level.ERROR, "订单", 14, None, "x", "m")) is None
    assert cell_ref(columns, Problem(Level.ERROR, "订单", 14, "别的", "x", "m")) is None
    assert cell_ref(columns, Problem(Level.ERROR, "回款", 14, "合同金额", "x", "m")) is None


def test_bad_cells_in_small_sheets_reach_the_core_with_their_cell(tmp_path):
    tables = small_tables()
    tables["订单"][1]["合同金额"] = "待定"
    tables["订单"][2]["签约日期"] = "2026-02-30"
    data = read_workbook(write_book(tmp_path / "bad.xlsx", tables))
    _, problems = run_core(data)
    errors = {(p.sheet, p.row, p.field): p for p in problems.items if p.is_error}
    amount = errors[("订单", 3, "合同金额")]
    assert amount.value == "待定" and cell_ref(data.columns, amount) == "E3"
    assert cell_ref(data.columns, errors[("订单", 4, "签约日期")]) == "B4"


# --- number formats and serials --------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt_id", "code", "expected"), [
    (14, None, True), (22, None, True), (31, None, True), (57, None, True), (10, None, False), (0, None, False),
    (49, None, False), (164, "yyyy-mm-dd", True), (164, 'yyyy"年"m"月"d"日"', True), (164, "[$-804]yyyy/m/d;@", True),
    (164, "0.00%", False), (164, '0.0"天"', False), (164, "#,##0.00_);[Red](#,##0.00)", False), (164, "@", False),
    (164, "General", False), (164, "[h]:mm", True), (164, "h:mm AM/PM", True), (164, "0.00E+00", False),
    (164, '"d"0', False), (164, "[Red]0.00", False),
])
def test_is_date_format(fmt_id, code, expected):
    assert is_date_format(fmt_id, code) is expected


def test_serials():
    assert serial_to_date(46010) == dt.date(2025, 12, 19)
    assert serial_to_date(46010.75) == dt.date(2025, 12, 19)
    assert serial_to_date(61) == dt.date(1900, 3, 1)
    assert serial_to_date(59) == dt.date(1900, 2, 28)
    assert serial_to_date(0, date1904=True) == dt.date(1904, 1, 1)


# --- the small sheets through calamine -------------------------------------------------------------

_CALAMINE_START = xlsx_reader._CalamineTables.__dict__["start"]  # before small_sheet_path patches it


def read_both(monkeypatch: pytest.MonkeyPatch, path: Path) -> tuple[WorkbookData, list[str], WorkbookData]:
    """The workbook read with calamine wherever it can (and which sheets it took), and read exactly
    (whichever path small_sheet_path chose for the rest of the test)."""
    monkeypatch.setattr(xlsx_reader._CalamineTables, "start", _CALAMINE_START)
    monkeypatch.setattr(xlsx_reader, "CALAMINE_MIN_BYTES", 0)
    taken: list[str] = []
    real = xlsx_reader._calamine_table

    def spy(sheet: str, *args: Any) -> Any:
        taken.append(sheet)
        return real(sheet, *args)

    exact_reads: list[str] = []
    table = xlsx_reader._SheetReader.table

    def exact(self: Any, sheet: str, *args: Any) -> Any:
        exact_reads.append(sheet)
        return table(self, sheet, *args)

    monkeypatch.setattr(xlsx_reader, "_calamine_table", spy)
    monkeypatch.setattr(xlsx_reader._SheetReader, "table", exact)
    fast = read_workbook(path)
    by_calamine = [s for s in taken if s not in exact_reads]
    monkeypatch.setattr(xlsx_reader._CalamineTables, "start", NO_CALAMINE)
    return fast, by_calamine, read_workbook(path)


def same_reading(a: WorkbookData, b: WorkbookData) -> None:
    assert a.columns == b.columns and a.tables == b.tables and a.problems == b.problems


def test_calamine_reads_a_plain_workbook_exactly_as_the_exact_path(tmp_path, monkeypatch):
    """The demo workbook (planted mistakes, text dates, numeric codes, styled blank rows) read both ways."""
    fast, by_calamine, exact = read_both(monkeypatch, write_book(tmp_path / "demo.xlsx", demo_tables()))
    assert set(by_calamine) == set(exact.tables)  # every sheet but the log went through calamine
    same_reading(fast, exact)


def test_only_big_sheets_go_through_calamine(tmp_path, monkeypatch):
    path = write_book(tmp_path / "demo.xlsx", demo_tables())
    taken: list[str] = []
    real = xlsx_reader._calamine_table
    monkeypatch.setattr(xlsx_reader, "_calamine_table", lambda sheet, *a: taken.append(sheet) or real(sheet, *a))
    monkeypatch.setattr(xlsx_reader, "CALAMINE_MIN_BYTES", 20 << 10)
    monkeypatch.setattr(xlsx_reader._CalamineTables, "start", _CALAMINE_START)
    read_workbook(path)
    sizes = {s: xlsx_reader._part_size(p, p.sheet_part(s)) for p in [xlsx_reader._Package(path)] for s in taken}
    assert taken and all(size >= 20 << 10 for size in sizes.values())
    assert "参数" not in taken and "动作库" not in taken


NUMBERS_IN_XML = {  # XML text of a number -> what both paths read (past 15 digits: the double's shortest form)
    "0.69999999999999996": Decimal("0.7"), "82.59999999999999": Decimal("82.6"), "1.0049999999999999": Decimal("1.005"),
    "0.30000000000000004": Decimal("0.30000000000000004"), "2070000": 2070000, "0.32": Decimal("0.32"),
}


def test_numbers_with_17_digits_read_as_the_number_the_cell_shows(tmp_path, monkeypatch):
    rows = "".join(f'<row r="{i}">{inline(f"A{i}", f"SO{i}")}<c r="B{i}" s="1"><v>46010</v></c><c r="C{i}"><v>{text}</v></c></row>'
                   for i, text in enumerate(NUMBERS_IN_XML, start=2))
    path = craft_book(tmp_path / "n.xlsx", {"回款": header_row(["订单号", "回款日期", "回款金额"]) + rows}, xfs=(0, 14))
    fast, by_calamine, exact = read_both(monkeypatch, path)
    assert by_calamine == ["回款"]
    same_reading(fast, exact)
    assert [r["回款金额"] for r in exact.tables["回款"]] == list(NUMBERS_IN_XML.values())


@pytest.mark.parametrize("cells, why", [
    ('<c r="C2"><f>1+1</f><v>2</v></c>', "a formula"),
    ('<c r="C2" t="e"><v>#N/A</v></c>', "an error value"),
    ('<c r="C2" t="b"><v>1</v></c>', "a boolean"),
    ('<c r="C2" s="1" t="inlineStr"><is><t>x</t></is></c>', "a date-styled text cell (the date counts differ)"),
    ('<c r="C2"><v>12345678901234567</v></c>', "an integer beyond 2^53"),
    ('<c r="C2" s="1"><v>3000000</v></c>', "a date serial beyond 9999-12-31"),
    ('<c r="C2" t="d"><v>2026-01-05T00:00:00</v></c>', "an ISO-date cell"),
    ('<c r="C2" t="inlineStr"><is><t>A_x000D_B</t></is></c>', "an _xHHHH_ escape in a text cell"),
    ('<c r="C2" xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:f>1+1</x:f><v>2</v></c>',
     "a formula with a namespace prefix"),
])
def test_calamine_leaves_a_sheet_to_the_exact_path_where_they_could_differ(tmp_path, monkeypatch, cells, why):
    body = header_row(["订单号", "回款日期", "回款金额"]) + f'<row r="2">{inline("A2", "SO1")}<c r="B2" s="1"><v>46010</v></c>' \
        f'{cells}</row><row r="3">{inline("A3", "SO2")}<c r="B3" s="1"><v>46011</v></c><c r="C3"><v>5</v></c></row>'
    fast, by_calamine, exact = read_both(monkeypatch, craft_book(tmp_path / "x.xlsx", {"回款": body}, xfs=(0, 14)))
    assert by_calamine == [], why
    same_reading(fast, exact)


def test_a_sheet_whose_xml_checks_fail_is_read_exactly(tmp_path, monkeypatch):
    """The calamine path only saves time: if its checks of a sheet's XML cannot be made (here a
    pattern polars refuses), the sheet is read by the exact path, with the same result."""
    path = write_book(tmp_path / "demo.xlsx", demo_tables())
    monkeypatch.setattr(xlsx_reader, "_NOT_FOR_CALAMINE", "(")  # not a regex: polars raises
    fast, by_calamine, exact = read_both(monkeypatch, path)
    assert by_calamine == []
    same_reading(fast, exact)


def test_empty_date_styled_cells_stay_on_the_calamine_path(tmp_path, monkeypatch):
    """提成发放表 as the tool writes it has an empty, date-styled, unlocked 实发日期 cell on every
    unpaid line: a re-run reads the tool's own ledger through calamine (the exact path took 11 s for
    the 1M-row benchmark's 122,617 lines), with the same result."""
    body = header_row(["订单号", "回款日期", "回款金额"]) + f'<row r="2">{inline("A2", "SO1")}<c r="B2" s="1"/>' \
        f'<c r="C2"><v>5</v></c></row><row r="3">{inline("A3", "SO2")}<c r="B3" s="1"><v>46011</v></c><c r="C3" s="1"/></row>'
    fast, by_calamine, exact = read_both(monkeypatch, craft_book(tmp_path / "e.xlsx", {"回款": body}, xfs=(0, 14)))
    assert by_calamine == ["回款"]
    same_reading(fast, exact)


def test_a_computed_workbook_reads_back_through_calamine_the_same(tmp_path, monkeypatch):
    """A re-run reads the tool's own output sheets (提成发放表, 排名历史): through calamine, as exactly."""
    from xlsales.adapters.filerun import run_workbook

    path = write_book(tmp_path / "demo.xlsx", demo_tables())
    report, _, _ = run_workbook(path, "compute", today=DEMO_DATE)
    assert "提成发放表" in report.sheets_written
    fast, by_calamine, exact = read_both(monkeypatch, path)
    assert {"提成发放表", "排名历史", "订单"} <= set(by_calamine)
    same_reading(fast, exact)


def test_a_number_where_a_date_goes_and_1904_workbooks_are_read_exactly(tmp_path, monkeypatch):
    body = header_row(["订单号", "回款日期", "回款金额"]) + f'<row r="2">{inline("A2", "SO1")}<c r="B2"><v>46010</v></c>' \
        '<c r="C2"><v>5</v></c></row>'
    for name, kw in (("number.xlsx", {}), ("1904.xlsx", {"date1904": True})):
        fast, by_calamine, exact = read_both(monkeypatch, craft_book(tmp_path / name, {"回款": body}, xfs=(0, 14), **kw))
        assert by_calamine == [], name
        same_reading(fast, exact)
