"""Build the user-facing workbooks from the text sources in workbook/src/:

    python scripts/build_workbook.py            # workbook/BigAccount.xlsm, BigAccount-demo.xlsm, template/客户关系评价表.xlsx
    python scripts/build_workbook.py --check    # rebuild into a temporary folder and compare with the committed files

Sources: ``sheets.toml`` (every sheet: order, columns, widths, formats, input hints, dropdowns,
validation, protection, the text of 说明, xlwings.conf, the scorecard template) and ``vba/*.bas``
/ ``vba/*.cls`` (the macros behind the buttons, xlwings' VBA module and its Dictionary class). The
VBA project is made by :func:`xlsales.adapters.vba_project.build_vba_project` (source only: Excel
compiles it on open). The default rule tables and parameters come from the engine itself
(``core.rulebook.default_tables``, ``adapters.sheets.parameter_rows``), the demo rows from
``xlsales.demo.demo_tables``.

The output is deterministic: fixed document properties and dates, so a rebuild of unchanged
sources gives the same parts (compare them with :func:`differing_parts`; zip timestamps aside).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import math
import re
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import xlsxwriter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # the engine of this checkout, whatever else is installed

from xlsales.adapters.sheets import parameter_rows  # noqa: E402
from xlsales.adapters.vba_project import VbaModule, build_vba_project  # noqa: E402
from xlsales.adapters.xlsx_writer import BOARD_MARK, display_width  # noqa: E402
from xlsales.core.rulebook import CATALOG_SHEET, PARAM_SHEET, default_tables  # noqa: E402

WORKBOOK_DIR = ROOT / "workbook"
SOURCES = WORKBOOK_DIR / "src"

Spec = dict[str, Any]
Rows = Sequence[Mapping[str, Any]]

NUMERIC_FORMATS = {"money", "money0", "percent", "int", "number"}
CENTERED = {"date", "int"}  # short fixed-width values, easier to read centred between text columns
DEFAULT_VALIDATION_ROWS = 20_000
ENTRY = {"bg_color": "#FFF2CC", "border": 1, "border_color": "#BF9000"}  # a cell the user is asked to fill in
LINE_HEIGHT = 16.5  # points per wrapped line of 11-point CJK text (Excel and LibreOffice both fit)


# --------------------------------------------------------------------------------------------------
# sources

def load_spec(src: Path = SOURCES) -> Spec:
    """sheets.toml, checked for what the builder relies on."""
    with open(src / "sheets.toml", "rb") as f:
        spec = tomllib.load(f)
    names = [s["name"] for s in spec["sheet"]]
    if len(set(names)) != len(names):
        raise ValueError("sheets.toml: a sheet name appears twice")
    codes = [s["code_name"] for s in spec["sheet"]]
    if len({c.lower() for c in codes}) != len(codes):
        raise ValueError("sheets.toml: a code_name appears twice")
    for sheet in spec["sheet"]:
        for column in sheet.get("column", []):
            if "list" in column and column["list"] not in spec["lists"]:
                raise ValueError(f"sheets.toml: {sheet['name']}.{column['header']}: unknown list {column['list']!r}")
            if "ref" in column and column["ref"] not in spec["refs"]:
                raise ValueError(f"sheets.toml: {sheet['name']}.{column['header']}: unknown ref {column['ref']!r}")
            if len(column.get("hint", "")) > 255:
                raise ValueError(f"sheets.toml: {sheet['name']}.{column['header']}: hint longer than 255 characters")
    return spec


def sheet_spec(spec: Spec, name: str) -> Spec:
    return next(s for s in spec["sheet"] if s["name"] == name)


def vba_modules(spec: Spec, src: Path = SOURCES) -> list[VbaModule]:
    """The workbook's VBA modules: ThisWorkbook, one document module per sheet code name, then the
    standard modules (vba/*.bas) and class modules (vba/*.cls), each named after its file."""
    modules = [VbaModule(spec["workbook"]["workbook_code_name"], "", "document")]
    modules += [VbaModule(s["code_name"], "", "document") for s in spec["sheet"]]
    folder = src / "vba"
    for path in sorted(folder.glob("*.bas")) + sorted(folder.glob("*.cls")):
        code = path.read_text(encoding="ascii")  # Chinese text goes through ChrW(), see vba/README.md
        declared = re.search(r'^Attribute VB_Name = "([^"]+)"', code, re.MULTILINE)
        if declared and declared.group(1) != path.stem:
            raise ValueError(f"{path.name}: VB_Name {declared.group(1)!r} differs from the file name")
        modules.append(VbaModule(path.stem, code, "class" if path.suffix == ".cls" else "standard"))
    return modules


def vba_project(spec: Spec, src: Path = SOURCES) -> bytes:
    return build_vba_project(vba_modules(spec, src), spec["workbook"]["vba_project"],
                             workbook_module=spec["workbook"]["workbook_code_name"])


def default_workbook_tables() -> dict[str, list[dict[str, Any]]]:
    """What a new workbook holds: the default rule tables and every parameter with its default."""
    tables = {k: list(v) for k, v in default_tables().items()}
    tables[PARAM_SHEET] = parameter_rows()
    return _explicit_no(tables)


def _explicit_no(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """需审批 blank means 否; the catalog shows it, so that a manager sees a choice, not a gap."""
    tables[CATALOG_SHEET] = [{**r, "需审批": r.get("需审批") or "否"} for r in tables.get(CATALOG_SHEET, [])]
    return tables


def demo_workbook_tables(with_errors: bool = True) -> dict[str, list[dict[str, Any]]]:
    """demo_tables(), with 参数 listing every parameter (the demo's values where it sets one)."""
    from xlsales.demo import demo_tables

    tables = demo_tables(with_errors=with_errors)
    values = {r["参数"]: r["值"] for r in tables[PARAM_SHEET]}
    tables[PARAM_SHEET] = [{**r, "值": values.get(r["参数"], r["值"])} for r in parameter_rows()]
    return _explicit_no(tables)


# --------------------------------------------------------------------------------------------------
# formats

class Formats:
    """XlsxWriter formats, made once per distinct set of properties."""

    def __init__(self, book: Any, spec: Spec) -> None:
        self.book = book
        self.codes: dict[str, str] = spec["formats"]
        self.header_fill: str = spec["workbook"]["header_fill"]
        self.cache: dict[tuple[tuple[str, Any], ...], Any] = {}

    def get(self, **props: Any) -> Any:
        kind = props.pop("kind", None)
        if kind in self.codes:
            props["num_format"] = self.codes[kind]
        key = tuple(sorted(props.items()))
        if key not in self.cache:
            self.cache[key] = self.book.add_format(dict(props))
        return self.cache[key]

    def cell(self, kind: str | None, **extra: Any) -> Any:
        if kind in CENTERED:
            extra.setdefault("align", "center")
        return self.get(kind=kind, **extra) if (kind in self.codes or extra) else None

    def header(self) -> Any:
        return self.get(kind="text", bold=True, bg_color=self.header_fill, valign="vcenter", border=1,
                        border_color="#9BC2E6")


# --------------------------------------------------------------------------------------------------
# cells

def _number(text: str) -> float | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return float(value) if value.is_finite() else None


def is_numeric(column: Spec) -> bool:
    return (column.get("format") in NUMERIC_FORMATS or column.get("numbers", False)
            or column.get("validate", {}).get("type") in ("decimal", "integer"))


def write_value(ws: Any, formats: Formats, r: int, c: int, value: Any, kind: str | None, numeric: bool = False,
                **extra: Any) -> None:
    """One cell: text as text (never a formula or a number), numbers, dates as Excel dates."""
    if isinstance(value, str) and numeric and _number(value) is not None:
        value = _number(value)
    if value is None:
        fmt = formats.cell(kind, **extra)
        if fmt is not None:
            ws.write_blank(r, c, None, fmt)
    elif isinstance(value, str):
        ws.write_string(r, c, value, formats.cell(kind, **extra))
    elif isinstance(value, bool):
        ws.write_boolean(r, c, value, formats.cell(kind, **extra))
    elif isinstance(value, (int, float, Decimal)):
        ws.write_number(r, c, float(value), formats.cell(kind, **extra))
    elif isinstance(value, (dt.date, dt.datetime)):
        day = value if isinstance(value, dt.datetime) else dt.datetime(value.year, value.month, value.day)
        ws.write_datetime(r, c, day, formats.cell("date", **extra))
    else:
        ws.write_string(r, c, str(value), formats.cell(kind, **extra))


def page_setup(ws: Any, landscape: bool = True, repeat_header: bool = True) -> None:
    """Printing (and the PDF preview): A4, one page wide, header row on every page, the sheet name
    at the top and page numbers at the bottom."""
    ws.set_paper(9)
    if landscape:
        ws.set_landscape()
    ws.fit_to_pages(1, 0)
    if repeat_header:
        ws.repeat_rows(0)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_header("&C&A")
    ws.set_footer("&C&P / &N")


def tab_color(spec: Spec, sheet: Spec) -> str | None:
    return sheet.get("tab_color") or spec["owners"].get(sheet.get("owner", ""))


# --------------------------------------------------------------------------------------------------
# data validation: dropdowns, number and date rules, input hints

def validation(spec: Spec, column: Spec, refs: Mapping[str, Spec]) -> dict[str, Any] | None:
    """The data-validation options of a column (XlsxWriter form), or None."""
    header = column["header"]
    options: dict[str, Any] | None = None
    if "list" in column:
        values = spec["lists"][column["list"]]
        options = {"validate": "list", "source": list(values), "error_type": "stop", "error_title": header,
                   "error_message": f"请从下拉列表中选择：{'、'.join(values)}"}
    elif "ref" in column:
        ref = refs[column["ref"]]
        options = {"validate": "list", "source": f"={ref['name']}", "error_type": "warning", "error_title": header,
                   "error_message": ref.get("message") or
                   f"“{ref['sheet']}”表的{ref['column']}里还没有这个值：请先在“{ref['sheet']}”表登记，或从下拉列表选择。"}
    elif "validate" in column:
        rule = column["validate"]
        kind = rule["type"]
        lo, hi = rule.get("min"), rule.get("max")
        if lo is not None and hi is not None:
            bounds = {"criteria": "between", "minimum": lo, "maximum": hi}
        elif lo is not None:
            bounds = {"criteria": ">=", "value": lo}
        else:
            bounds = {"criteria": "<=", "value": hi}
        message = {"date": "请填写日期，如 2026-03-05。",
                   "integer": "请填写整数" + _range_text(lo, hi) + "。",
                   "decimal": "请填写数字" + _range_text(lo, hi) + "。"}[kind]
        options = {"validate": kind, **bounds, "error_type": "stop", "error_title": header, "error_message": message}
    hint = column.get("hint")
    if hint:
        options = options or {"validate": "any"}
        options.update({"input_title": header[:32], "input_message": hint})
    return options


def _range_text(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"（{lo} 到 {hi}）"
    if lo is not None:
        return f"（不小于 {lo}）"
    if hi is not None:
        return f"（不大于 {hi}）"
    return ""


def define_refs(book: Any, spec: Spec, present: set[str], refs: Mapping[str, Spec] | None = None) -> None:
    """A defined name per dropdown source: the table column, so that the list grows with the table
    and follows the column wherever it is moved."""
    for ref in (refs or spec["refs"]).values():
        if "formula" in ref:
            book.define_name(ref["name"], ref["formula"])
        elif ref["sheet"] in present:
            table = sheet_spec(spec, ref["sheet"])["table"]
            book.define_name(ref["name"], f"={table}[{ref['column']}]")


# --------------------------------------------------------------------------------------------------
# sheets

def input_sheet(book: Any, formats: Formats, spec: Spec, sheet: Spec, rows: Rows,
                refs: Mapping[str, Spec] | None = None, hidden: bool = False, validate: bool = True, table_rows: int = 1) -> Any:
    """An input sheet as an Excel table: the contract headers (then any extra keys of the rows),
    formats, widths, dropdowns, validation and input hints. The table spans at least `table_rows`
    data rows (empty ones take the column formats)."""
    ws = book.add_worksheet(sheet["name"])
    ws.set_vba_name(sheet["code_name"])
    columns: list[Spec] = [dict(c) for c in sheet["column"]]
    known = {c["header"] for c in columns}
    for row in rows:
        for key in row:
            if key != "row" and key not in known:
                known.add(key)
                columns.append({"header": key, "width": max(10, display_width(key) + 4)})
    last = 1
    next_row = 1
    for raw in rows:
        r = raw.get("row")
        r = r - 1 if isinstance(r, int) and r >= 2 else next_row
        next_row = r + 1
        last = max(last, r)
        for j, column in enumerate(columns):
            write_value(ws, formats, r, j, raw.get(column["header"]), column.get("format"), is_numeric(column), **_look(column))
    if not rows:  # the table's one empty row: formatted, so that typing there gives text / dates
        for j, column in enumerate(columns):
            write_value(ws, formats, 1, j, None, column.get("format"), **_look(column))
    last = max(last, table_rows)
    header = formats.header()
    ws.add_table(0, 0, last, len(columns) - 1, {
        "name": sheet["table"], "style": spec["workbook"]["table_style"], "autofilter": True,
        "columns": [{"header": c["header"], "header_format": header} for c in columns]})
    for j, column in enumerate(columns):
        width = column.get("width", max(10, display_width(column["header"]) + 4))
        ws.set_column(j, j, width, formats.cell(column.get("format"), **_look(column)))
    ws.set_row(0, 20)
    ws.freeze_panes(1, 0)
    n = sheet.get("validation_rows", DEFAULT_VALIDATION_ROWS)
    for j, column in enumerate(columns if validate else ()):
        if column.get("per_row"):
            continue  # validated cell by cell (参数 值): ranges of data validation must not overlap
        options = validation(spec, column, refs or spec["refs"])
        if options:
            ws.data_validation(1, j, n - 1, j, options)
    color = tab_color(spec, sheet)
    if color:
        ws.set_tab_color(color)
    page_setup(ws)
    if hidden:
        ws.hide()
    return ws


def _look(column: Spec) -> dict[str, Any]:
    """Cell format properties a column asks for besides its number format: align, wrap."""
    return {**({"align": column["align"]} if "align" in column else {}), **({"text_wrap": True} if column.get("wrap") else {})}


def parameter_cells(ws: Any, formats: Formats, spec: Spec, sheet: Spec, rows: Rows) -> None:
    """参数: each 值 cell gets the format and validation of its parameter, and its 说明 as the hint."""
    value_column = next(c for c in sheet["column"] if c.get("per_row"))
    j = [c["header"] for c in sheet["column"]].index(value_column["header"])
    for i, raw in enumerate(rows, start=1):
        rule = spec["parameters"].get(raw.get("参数"))
        if rule is None:
            continue
        kind = rule.get("format")
        write_value(ws, formats, i, j, raw.get("值"), None if kind == "general" else kind, numeric=True, align="right")
        about = raw.get("说明") or ""
        hint = about if "留空" in about else "；".join(h for h in (about, value_column.get("hint")) if h)
        column = {"header": raw["参数"], "hint": hint[:255], **({"validate": rule["validate"]} if "validate" in rule else {})}
        options = validation(spec, column, {})
        if options:
            ws.data_validation(i, j, i, j, options)


def output_sheet(book: Any, formats: Formats, spec: Spec, sheet: Spec, rows: Rows = ()) -> Any:
    """An output sheet: styled header, widths, number formats, protected (no password) with only
    the `editable` columns open for typing. Rows (the demo's ledger and history) are written as is."""
    ws = book.add_worksheet(sheet["name"])
    ws.set_vba_name(sheet["code_name"])
    columns = sheet["column"]
    editable = set(sheet.get("editable", ()))
    header = formats.header()
    for j, column in enumerate(columns):
        ws.write_string(0, j, column["header"], header)
        extra = {"locked": False} if column["header"] in editable else {}
        ws.set_column(j, j, column["width"], formats.cell(column["format"], **extra))
    for i, raw in enumerate(rows, start=1):
        for j, column in enumerate(columns):
            extra = {"locked": False} if column["header"] in editable else {}
            write_value(ws, formats, i, j, raw.get(column["header"]), column["format"], **extra)
    ws.set_row(0, 20)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(len(rows), 0), len(columns) - 1)
    if sheet.get("protect") or editable:
        ws.protect("", {"autofilter": True, "format_columns": True, "format_rows": True, "select_locked_cells": True,
                        "select_unlocked_cells": True})
    color = tab_color(spec, sheet)
    if color:
        ws.set_tab_color(color)
    page_setup(ws)
    return ws


def board_sheet(book: Any, formats: Formats, spec: Spec, sheet: Spec) -> Any:
    """看板 until the first compute draws it: a title and what will be here. The hidden-to-VBA
    defined name BOARD_MARK tells the tool this sheet is its board (a sheet of the user's with
    the same name would be left alone)."""
    ws = book.add_worksheet(sheet["name"])
    ws.set_vba_name(sheet["code_name"])
    ws.write_string(0, 0, sheet["name"], formats.get(kind="text", bold=True))
    ws.write_string(1, 0, "运行“计算排名”（或 xlsales compute）后，这里显示本月的图表。", formats.get(kind="text"))
    ws.hide_gridlines(2)
    ws.protect("", {"objects": True, "select_locked_cells": True, "select_unlocked_cells": True})
    ws.set_tab_color(tab_color(spec, sheet))
    page_setup(ws, repeat_header=False)
    quoted = "'" + sheet["name"].replace("'", "''") + "'"
    book.define_name(BOARD_MARK, f"={quoted}!$A$1")
    return ws


def config_sheet(book: Any, formats: Formats, spec: Spec, sheet: Spec) -> Any:
    """xlwings.conf: key / value pairs from A1 down (what xlwings reads), notes in column C."""
    ws = book.add_worksheet(sheet["name"])
    ws.set_vba_name(sheet["code_name"])
    key, note = formats.get(kind="text", bold=True), formats.get(font_color="#7F7F7F")
    fill_in = set(sheet.get("fill_in", ()))
    for i, (k, v, n) in enumerate(sheet["rows"]):
        ws.write_string(i, 0, k, key)
        value = formats.get(kind="text", **(ENTRY if k in fill_in else {}))
        if v:
            ws.write_string(i, 1, v, value)
        else:
            ws.write_blank(i, 1, None, value)
        ws.write_string(i, 2, n, note)
    for j, width in enumerate(sheet["columns"]):
        ws.set_column(j, j, width)
    ws.set_tab_color(tab_color(spec, sheet))
    page_setup(ws, repeat_header=False)
    return ws


def _lines(text: str, width: float) -> int:
    """Lines a wrapped text takes in a column `width` characters wide (CJK are a little over two)."""
    return max(1, math.ceil(display_width(text) * 1.02 / max(width - 2, 1)))


def guide_sheet(book: Any, formats: Formats, spec: Spec, sheet: Spec) -> Any:
    """说明: title, the four buttons with what each does, every sheet with who fills it, the monthly
    routine and notes."""
    guide = spec["guide"]
    ws = book.add_worksheet(sheet["name"])
    ws.set_vba_name(sheet["code_name"])
    widths = guide["columns"]
    for j, width in enumerate(widths):
        ws.set_column(j, j, width)
    text_width = widths[3]
    title = formats.get(bold=True, font_size=18, font_color="#1F4E78", valign="vcenter")
    subtitle = formats.get(font_color="#595959", valign="vcenter")
    section = formats.get(bold=True, font_size=12, bg_color=formats.header_fill, valign="vcenter")
    label = formats.get(bold=True, valign="vcenter", text_wrap=True)
    who = formats.get(valign="vcenter", font_color="#404040", text_wrap=True)
    body = formats.get(valign="vcenter", text_wrap=True)

    ws.set_row(0, 36)
    ws.write_string(0, 1, guide["title"], title)
    ws.write_string(1, 1, guide["subtitle"], subtitle)
    row = 3

    def heading(text: str, second: str = "", third: str = "") -> None:
        nonlocal row
        ws.set_row(row, 22)
        for j, value in enumerate((text, second, third), start=1):
            ws.write_string(row, j, value, section)
        row += 1

    under_button = formats.get(bold=True, align="center", valign="vcenter")

    def line(first: str, second: str, text: str, height: float | None = None, first_format: Any = label) -> None:
        nonlocal row
        ws.set_row(row, height or max(20, _lines(text, text_width) * LINE_HEIGHT + 5))
        ws.write_string(row, 1, first, first_format)
        ws.write_string(row, 2, second, who)
        ws.write_string(row, 3, text, body)
        row += 1

    heading("按钮", "谁来点", "做什么")
    for button in guide["button"]:
        ws.insert_button(row, 1, {"macro": button["macro"], "caption": button["caption"], "width": 104, "height": 30,
                                  "x_offset": 6, "y_offset": 12})
        # the caption is also the cell's text, under the button: what a printout (which omits buttons) shows
        line(button["caption"], button["who"], button["text"], height=max(42, _lines(button["text"], text_width) * LINE_HEIGHT + 8),
             first_format=under_button)
    row += 1
    heading("工作表", "谁来填", "内容")
    for other in spec["sheet"]:
        if other is sheet:
            continue
        line(other["name"], other.get("owner", ""), other.get("about", ""))
    row += 1
    heading("每月怎么用", "谁", "")
    for i, step in enumerate(guide["step"], start=1):
        line(f"第 {i} 步", step["who"], step["text"])
    row += 1
    heading("注意", "", "")
    for note in guide["notes"]["items"]:
        line("•", "", note)
    ws.set_tab_color(tab_color(spec, sheet))
    ws.hide_gridlines(2)
    ws.activate()
    ws.set_first_sheet()
    page_setup(ws, landscape=False, repeat_header=False)
    return ws


# --------------------------------------------------------------------------------------------------
# workbooks

def _properties(spec: Spec, title: str | None = None, subject: str | None = None) -> dict[str, Any]:
    info = spec["workbook"]
    created = info["created"]
    return {"title": title or info["title"], "subject": subject or info["subject"], "author": info["author"],
            "company": info["company"], "keywords": info["keywords"], "comments": info["comments"],
            "created": created.replace(tzinfo=None) if isinstance(created, dt.datetime) else created}


def _new_book(path: Path) -> Any:
    return xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_numbers": False,
                                           "strings_to_urls": False})


def build_workbook(path: Path, spec: Spec | None = None, tables: Mapping[str, Rows] | None = None,
                   src: Path = SOURCES) -> Path:
    """BigAccount.xlsm (tables=None: the defaults) or a copy filled with `tables` (raw rows per sheet)."""
    spec = spec or load_spec(src)
    tables = default_workbook_tables() if tables is None else tables
    book = _new_book(path)
    book.set_properties(_properties(spec))
    book.set_vba_name(spec["workbook"]["workbook_code_name"])
    book.add_vba_project(io.BytesIO(vba_project(spec, src)), is_stream=True)
    formats = Formats(book, spec)
    for sheet in spec["sheet"]:
        role = sheet["role"]
        rows = tables.get(sheet["name"], [])
        if role == "guide":
            guide_sheet(book, formats, spec, sheet)
        elif role == "input":
            ws = input_sheet(book, formats, spec, sheet, rows)
            if sheet["name"] == PARAM_SHEET:
                parameter_cells(ws, formats, spec, sheet, rows)
        elif role == "output":
            output_sheet(book, formats, spec, sheet, rows)
        elif role == "config":
            config_sheet(book, formats, spec, sheet)
        elif role == "board":
            board_sheet(book, formats, spec, sheet)
        else:
            raise ValueError(f"sheets.toml: sheet {sheet['name']}: unknown role {role!r}")
    define_refs(book, spec, {s["name"] for s in spec["sheet"] if s["role"] == "input"})
    book.close()
    return path


def build_scorecard(path: Path, spec: Spec | None = None, tables: Mapping[str, Rows] | None = None,
                    rep_id: str | None = None, rep_name: str | None = None, src: Path = SOURCES) -> Path:
    """The rep's 客户关系评价表: a cover with the rep's 工号 (the defined name 评分表工号) and the
    catalog, the log with exactly the workbook's 客户关系记录 columns and dropdowns, and hidden copies
    of 动作库, 角色系数 and 客户 feeding those dropdowns, so that the file works on its own."""
    spec = spec or load_spec(src)
    card = spec["scorecard"]
    tables = default_workbook_tables() if tables is None else tables
    book = _new_book(path)
    book.set_properties(_properties(spec, card["title"], card["subject"]))
    formats = Formats(book, spec)

    ws = book.add_worksheet(card["cover"])
    for j, width in enumerate(card["columns"]):
        ws.set_column(j, j, width)
    ws.set_row(0, 36)
    ws.write_string(0, 1, card["title"], formats.get(bold=True, font_size=18, font_color="#1F4E78", valign="vcenter"))
    label = formats.get(bold=True, valign="vcenter")
    entry = formats.get(kind="text", valign="vcenter", locked=False, **ENTRY)
    ws.write_string(2, 1, "工号", label)
    ws.write_string(3, 1, "姓名", label)
    for r, value in ((2, rep_id), (3, rep_name)):
        if value:
            ws.write_string(r, 2, value, entry)
        else:
            ws.write_blank(r, 2, None, entry)
    ws.data_validation(2, 2, 2, 2, {"validate": "any", "input_title": "工号", "input_message": "本人工号，按文本填写，如 E001。"})
    book.define_name(card["id_name"], f"='{card['cover']}'!$C$3")
    book.define_name(card["name_name"], f"='{card['cover']}'!$C$4")
    row = 5
    ws.write_string(row, 1, "怎么填", formats.get(bold=True, font_size=12))
    row += 1
    for i, step in enumerate(card["steps"], start=1):
        ws.write_string(row, 1, f"{i}. {step}")
        row += 1
    row += 1
    catalog_columns = ["动作编码", "动作名称", "分值", "需审批", "指标"]
    ws.write_string(row, 1, "可选的动作（动作库）", formats.get(bold=True, font_size=12))
    row += 1
    header = formats.header()
    for j, h in enumerate(catalog_columns, start=1):
        ws.write_string(row, j, h, header)
    for action in tables.get("动作库", []):
        row += 1
        for j, h in enumerate(catalog_columns, start=1):
            write_value(ws, formats, row, j, action.get(h), "text" if h == "动作编码" else None, numeric=h == "分值",
                        **({"align": "center"} if h in ("分值", "需审批") else {}))
    ws.hide_gridlines(2)
    ws.activate()
    page_setup(ws, landscape=False, repeat_header=False)

    log = sheet_spec(spec, card["log_sheet"])
    refs = dict(spec["refs"])
    refs["工号"] = {"name": card["id_name"], "formula": f"='{card['cover']}'!$C$3", "sheet": card["cover"], "column": "工号",
                  "message": "工号应与“填写说明”页上的本人工号一致。"}
    input_sheet(book, formats, spec, log, [], refs=refs, table_rows=card["table_rows"])
    for name in card["helpers"]:
        helper = sheet_spec(spec, name)
        wanted = card["helper_columns"][name]
        columns = [c for c in helper["column"] if c["header"] in wanted]
        rows = [{h: r.get(h) for h in wanted} for r in tables.get(name, [])]
        input_sheet(book, formats, spec, {**helper, "column": columns}, rows, hidden=True, validate=False)
    define_refs(book, spec, set(card["helpers"]), {k: v for k, v in refs.items() if k != "工号" and v["sheet"] in card["helpers"]})
    book.close()
    return path


def build_all(out: Path = WORKBOOK_DIR, src: Path = SOURCES, demo: bool = True, template: bool = True,
              compute_demo: bool = True) -> list[Path]:
    """Every file: the workbook, the demo copy (computed, when the file adapter is there) and the template."""
    spec = load_spec(src)
    out.mkdir(parents=True, exist_ok=True)
    built = [build_workbook(out / spec["workbook"]["file"], spec, src=src)]
    if demo:
        path = build_workbook(out / spec["workbook"]["demo_file"], spec, demo_workbook_tables(), src=src)
        if compute_demo:
            compute_workbook(path)
        built.append(path)
    if template:
        path = out / spec["scorecard"]["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        built.append(build_scorecard(path, spec, src=src))
    return built


def can_compute() -> bool:
    return importlib.util.find_spec("xlsales.adapters.filerun") is not None


def compute_workbook(path: Path) -> int | None:
    """Run `xlsales compute` on a built workbook (None when the file adapter is not available)."""
    try:
        from xlsales.adapters.filerun import run_workbook
    except ImportError:
        return None
    report, _, _ = run_workbook(path, "compute")
    if report.exit_code == 2:
        raise RuntimeError(f"xlsales compute {path.name}: {report.message}")
    return report.exit_code


# --------------------------------------------------------------------------------------------------
# comparing builds

def zip_parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def differing_parts(a: Path, b: Path) -> list[str]:
    """Parts (zip entries) whose content differs between two workbooks; timestamps are not compared."""
    left, right = zip_parts(a), zip_parts(b)
    return sorted(name for name in left.keys() | right.keys() if left.get(name) != right.get(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=WORKBOOK_DIR, help="output folder (default: workbook/)")
    parser.add_argument("--no-demo", action="store_true", help="skip BigAccount-demo.xlsm")
    parser.add_argument("--no-template", action="store_true", help="skip the scorecard template")
    parser.add_argument("--no-compute", action="store_true", help="leave the demo copy uncomputed")
    parser.add_argument("--check", action="store_true",
                        help="build every file into a temporary folder and compare with the committed ones "
                             "(the demo only when it can be computed)")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = build_all(Path(tmp), demo=can_compute())
            stale = 0
            for path in fresh:
                committed = WORKBOOK_DIR / path.relative_to(tmp)
                diff = differing_parts(committed, path) if committed.exists() else ["(missing)"]
                if diff:
                    stale += 1
                    print(f"{committed.relative_to(ROOT)} is not what the sources build: {', '.join(diff)}", file=sys.stderr)
        if stale:
            print("run: python scripts/build_workbook.py", file=sys.stderr)
            return 1
        print("workbook files match their sources")
        return 0
    for path in build_all(args.out, demo=not args.no_demo, template=not args.no_template, compute_demo=not args.no_compute):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
