"""Read a contract workbook (.xlsx / .xlsm) into what the core takes: raw rows per sheet, and the big
relationship log (客户关系记录) as a columnar ActivityLog.

Two readers, one for each size of sheet:

* Every sheet but the log is small (thousands of rows, 50,000 orders at most) and is read exactly by
  this module straight from the sheet XML: numbers from their XML text (so 0.28 is Decimal("0.28"),
  never a float), dates through the cell's number format (styles.xml), text as text, and codes
  (工号, 客户编码 ...) always as text: 1001 typed as a number arrives as "1001". A fast regex pass
  handles the usual cell shapes; a sheet with any shape it does not recognise is parsed with expat.
  The big ones among them (customers, orders, collections ...) are taken from python-calamine
  instead wherever the two give the same rows by construction (see _CalamineTables).
* The log can hold a million rows. It is read by calamine (the Rust reader behind fastexcel) with
  every column as text, so that nothing is lost to type inference, and then validated cell by cell
  with vectorised polars expressions: a bad cell becomes an ERROR naming its cell and the row is left
  out; a text date is read and warned about. A big log is read in a second process (when a core is
  spare) while this one reads the small sheets; there its cells are found in the XML by numpy
  (sheet_scan), which gives calamine's columns, and calamine reads the XML the scan does not take.
  Without fastexcel the exact reader above is used, streaming the sheet a few MB at a time.

Problems the reader finds itself (a missing sheet or column, a text date, an error value such as
#N/A, a bad log cell) are returned with the data; everything else is the core's to check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import importlib.util
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple
from xml.parsers import expat

import polars as pl

from xlsales.adapters import log_prefetch
from xlsales.adapters.log_prefetch import BIG_SHEETS, LogChild, SheetLoader
from xlsales.adapters.xlsx_package import (
    _MAX_SERIAL,
    WorkbookUnusable,
    _CellIssue,
    _local,
    _Package,
    _unescape_x,
    column_index,
    serial_to_date,
)
from xlsales.adapters.xlsx_writer import column_letter
from xlsales.core.accounts import THREE_C_SHEET
from xlsales.core.activity import LOG_HEADERS, LOG_SCHEMA, LOG_SHEET, ActivityLog
from xlsales.core.models import CUSTOMER_SHEET, MONTH_HEADERS, ORDER_SHEET, REP_SHEET
from xlsales.core.payouts import COLLECTION_SHEET, PAYOUT_SHEET, PROGRESS_SHEET
from xlsales.core.people import FIVE_WORD_SHEET
from xlsales.core.problems import Level, Problem
from xlsales.core.ranking import HISTORY_SHEET
from xlsales.core.rulebook import BAND_SHEET, CATALOG_SHEET, PARAM_SHEET, ROLE_SHEET, STAGE_SHEET, TIER_SHEET
from xlsales.core.targets import TARGET_SHEET
from xlsales.core.tiers import OPPORTUNITY_SHEET
from xlsales.core.validation import REPORTED

# --- the contract (shared/spec/workbook.md): sheets read, their required headers, date columns ---

HISTORY_HEADERS = ("月份", "排名", "工号", "姓名", "业绩完成率", "月度关系得分", "综合得分", "分组", "连续垫底月数")

REQUIRED_HEADERS: dict[str, tuple[str, ...]] = {
    PARAM_SHEET: ("参数", "值"),
    CATALOG_SHEET: ("动作编码", "动作名称", "分值", "系数", "每月上限", "指标", "需审批"),
    ROLE_SHEET: ("角色", "系数"),
    REP_SHEET: ("工号", "姓名", "区域", "状态"),
    CUSTOMER_SHEET: ("客户编码", "客户名称", "客户经理", "技术经理", "服务经理", "必保", "战略突破奖", "立场", "自评等级"),  # 重点 optional
    LOG_SHEET: ("日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态", "备注"),
    TIER_SHEET: ("等级", "最低关系分", "必备指标", "赢单概率"),
    TARGET_SHEET: ("年度", "工号", "保底目标", "挑战目标", "自报目标"),  # 1月 … 12月 are optional
    BAND_SHEET: ("起点", "倍数"),
    STAGE_SHEET: ("阶段", "比例"),
    OPPORTUNITY_SHEET: ("商机编码", "客户编码", "工号", "金额", "状态", "状态日期", "预计签约月", "暂缓原因"),
    ORDER_SHEET: ("订单号", "签约日期", "工号", "客户编码", "合同金额", "毛利率", "完工日期"),
    COLLECTION_SHEET: ("订单号", "回款日期", "回款金额"),
    PROGRESS_SHEET: ("订单号", "日期", "累计完工比例"),
    # output sheets read back: finance's 实发日期 and the months ranked so far carry over
    PAYOUT_SHEET: ("行ID", "工号", "姓名", "订单号", "项目", "阶段", "事件日期", "应发日期", "金额", "计算说明", "状态", "实发日期"),
    HISTORY_SHEET: HISTORY_HEADERS,
    # optional input sheets beyond workbook.md (issue 5): read when present
    FIVE_WORD_SHEET: ("季度", "工号", "激情", "自信", "坚持", "专业", "真诚"),  # 评价人, 备注 are optional
    THREE_C_SHEET: ("客户编码", "组织架构", "决策链", "评估委员会", "竞争对手"),  # 备注 is optional
}
OPTIONAL_HEADERS: dict[str, tuple[str, ...]] = {CUSTOMER_SHEET: ("重点",), TARGET_SHEET: MONTH_HEADERS,
                                                FIVE_WORD_SHEET: ("评价人", "备注"),
                                                THREE_C_SHEET: ("备注",)}
OPTIONAL_SHEETS = frozenset({PROGRESS_SHEET, PAYOUT_SHEET, HISTORY_SHEET, FIVE_WORD_SHEET, THREE_C_SHEET})

DATE_HEADERS: dict[str, frozenset[str]] = {
    LOG_SHEET: frozenset({"日期"}),
    OPPORTUNITY_SHEET: frozenset({"状态日期"}),
    ORDER_SHEET: frozenset({"签约日期", "完工日期"}),
    COLLECTION_SHEET: frozenset({"回款日期"}),
    PROGRESS_SHEET: frozenset({"日期"}),
    PAYOUT_SHEET: frozenset({"事件日期", "应发日期", "实发日期"}),
}
DATE_PARAMETERS = frozenset({"评估日期"})  # 参数 rows whose 值 is a date
# codes are text: a number typed there (1001) is handed over as "1001"
CODE_HEADERS = frozenset({"工号", "客户编码", "客户经理", "技术经理", "服务经理", "订单号", "商机编码", "动作编码", "行ID"})

# the log's columns: header -> ActivityLog column
LOG_COLUMNS = {header: name for name, header in LOG_HEADERS.items() if name != "row"}
LOG_REQUIRED_TEXT = ("工号", "客户编码", "角色", "动作编码")
MAX_COUNT = 1_000_000  # 次数 above this is a typo, not a count (and would overflow the exact sums)

TEXT_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")  # what core.models.parse_date accepts


@dataclass
class WorkbookData:
    tables: dict[str, list[dict[str, Any]]]  # every contract sheet present and usable, but the log
    log: ActivityLog | None  # 客户关系记录, columnar (None if the sheet is missing or lacks a column)
    columns: dict[str, dict[str, str]]  # sheet -> header text -> column letter
    sheet_names: list[str]  # all sheets, in workbook order
    problems: list[Problem] = field(default_factory=list)

    @property
    def broken_sheets(self) -> set[str]:
        """Sheets that are missing or lack a required column (their rows are not in `tables`)."""
        return {p.sheet for p in self.problems if p.is_error and p.message.startswith(("缺少工作表", "缺少列"))}


def cell_ref(columns: dict[str, dict[str, str]], problem: Problem) -> str | None:
    """The A1 address of a problem's cell ("E14"); just the column ("E") when the row is unknown;
    None when the field is not a column of the sheet (or there is no field)."""
    if problem.field is None:
        return None
    letter = columns.get(problem.sheet, {}).get(problem.field)
    if letter is None:
        return None
    return f"{letter}{problem.row}" if problem.row is not None else letter


# --- cell values ----------------------------------------------------------------------------

_NO_CACHED_VALUE = "公式没有计算结果（文件没有在 Excel 中保存过），按空白处理：请在 Excel 中打开、保存后再运行"


class _NotStandard(Exception):
    """Sheet XML in a shape the fast path does not take."""


def _number(text: str | bytes) -> int | Decimal:
    """The XML text of a number: an int when it is one, else a Decimal. A cell holds a double, and
    writers spell some with 16–17 digits (0.7 as 0.69999999999999996, XlsxWriter 82.6 as
    82.59999999999999): past 15 significant digits the number is the shortest decimal that is the
    same double, the one the cell shows and the user typed (and what calamine's readers give)."""
    try:
        return int(text)
    except ValueError:
        pass
    value = Decimal(text.decode() if isinstance(text, bytes) else text)
    if not value.is_finite():
        raise InvalidOperation(text)
    if len(value.as_tuple().digits) > _DOUBLE_DIGITS:
        return Decimal(repr(float(value)))
    return value


_DOUBLE_DIGITS = 15  # significant digits every double keeps


# --- sheet XML -> cells ---------------------------------------------------------------------

# The usual cell shapes (Excel, LibreOffice, openpyxl, XlsxWriter, WPS): r first, then s and t in
# either order, an optional formula, an optional <v>. Anything else (inline strings, prefixed
# names, extra attributes) fails the count check and the sheet goes to expat.
_CELL = re.compile(
    rb'<c r="([A-Z]{1,3})([0-9]+)"(?: s="([0-9]+)")?(?: t="([a-zA-Z]+)")?(?: s="([0-9]+)")?\s*'
    rb'(?:/>|>(<f\b[^>]*?(?:/>|>[^<]*</f>))?(?:<v>([^<]*)</v>|<v\s*/>)?</c>)')

# (row, column index, value) where value is the typed cell value, or a _CellIssue
Cell = tuple[int, int, Any]


class _SheetReader:
    """Turns one sheet's XML into typed cells."""

    def __init__(self, package: _Package) -> None:
        self.pkg = package
        self.date_styles = package.date_styles
        self.date1904 = package.date1904
        self._columns: dict[bytes, int] = {}
        self._date_style = {str(i).encode(): True for i, is_date in enumerate(package.date_styles) if is_date}
        self._date_cache: dict[bytes, Any] = {}
        self._number_cache: dict[bytes, Any] = {}
        self._string_cache: dict[bytes, Any] = {}

    def cells(self, data: bytes, max_row: int | None = None, partial: bool = False) -> list[Cell]:
        """Typed cells in document order. `partial`: data is only the start of the sheet XML."""
        start = data.find(b"<sheetData>")
        end = data.rfind(b"</sheetData>")
        if partial and end < 0:
            end = len(data)
        if start >= 0 and end > start:
            body = data[start + 11:end]
            found = _CELL.findall(body)
            if len(found) == body.count(b"<c ") + body.count(b"<c>") + body.count(b"<c/>"):
                return self._convert_fast(found, max_row)
        return self._expat_cells(data, max_row, partial)

    def stream(self, package: _Package, part: str) -> Iterator[list[Cell]]:
        """A big sheet's cells, a few MB of XML at a time (the usual cell shapes only: raises
        _NotStandard otherwise, and the caller reads the whole sheet with cells())."""
        with package.zip.open(package.member(part)) as stream:
            carry = b""
            started = False
            while True:
                chunk = stream.read(STREAM_CHUNK)
                data = carry + chunk
                if not started:
                    at = data.find(b"<sheetData>")
                    if at < 0:
                        if chunk:
                            carry = data
                            continue
                        raise _NotStandard
                    data = data[at + 11:]
                    started = True
                if chunk:
                    cut = data.rfind(b"</row>")
                    if cut < 0:
                        carry = data
                        continue
                    body, carry = data[:cut + 6], data[cut + 6:]
                else:
                    end = data.rfind(b"</sheetData>")
                    body = data[:end] if end >= 0 else data
                found = _CELL.findall(body)
                if len(found) != body.count(b"<c ") + body.count(b"<c>") + body.count(b"<c/>"):
                    raise _NotStandard
                yield self._convert_fast(found, None)
                if not chunk:
                    return

    def table(self, sheet: str, data: bytes, headers: dict[str, int], problems: list[Problem]) -> list[dict[str, Any]]:
        """The data rows of a small sheet as raw rows (header -> value, plus "row")."""
        start = data.find(b"<sheetData>")
        end = data.rfind(b"</sheetData>")
        if start >= 0 and end > start:
            body = data[start + 11:end]
            found = _CELL.findall(body)
            if len(found) == body.count(b"<c ") + body.count(b"<c>") + body.count(b"<c/>"):
                rows = self._rows_fast(sheet, found, headers, problems)
                _parameter_warnings(sheet, rows, problems)
                return rows
        cells = self._expat_cells(data, None)
        return _rows(_Sheet(sheet, headers, cells), problems)

    def _rows_fast(self, sheet: str, found: list[tuple[bytes, ...]], headers: dict[str, int],
                   problems: list[Problem]) -> list[dict[str, Any]]:
        """_convert_fast and _rows in one loop: the hot path of the small sheets."""
        by_col = {col: header for header, col in headers.items()}
        dates_at = DATE_HEADERS.get(sheet, frozenset())
        codes = CODE_HEADERS
        date_style = self._date_style
        dates = self._date_cache
        numbers = self._number_cache
        strings = self._string_cache
        columns = self._columns
        shared = self.pkg.shared_string
        by_row: dict[int, dict[str, Any]] = {}
        current: dict[str, Any] = {}
        current_text = b""
        for letters, row_text, s1, t, s2, formula, v in found:
            ci = columns.get(letters)
            if ci is None:
                ci = self._col(letters)
            header = by_col.get(ci)
            if header is None:
                continue
            if row_text != current_text:
                row = int(row_text)
                if row <= 1:
                    continue
                current_text = row_text
                current = by_row.get(row)  # type: ignore[assignment]
                if current is None:
                    current = by_row[row] = {"row": row}
            if not v:
                if formula:
                    problems.append(Problem(Level.WARNING, sheet, current["row"], header, "", _NO_CACHED_VALUE))
                continue
            try:
                if t == b"s":
                    value: Any = strings.get(v)
                    if value is None:
                        value = strings[v] = shared(int(v))
                    if value.isspace() or not value:
                        continue
                    if header in dates_at:
                        _warn_text_date(sheet, current["row"], header, value, problems)
                    current[header] = value
                    continue
                if not t or t == b"n":
                    if date_style.get(s1 or s2):
                        value = dates.get(v)
                        if value is None:
                            value = dates[v] = self._date(float(v), v.decode())
                    elif b"." in v or b"E" in v or b"e" in v:
                        value = numbers.get(v)
                        if value is None:
                            value = numbers[v] = _number(v)
                    else:
                        value = int(v)
                    if header in codes and not isinstance(value, dt.date):
                        value = _code_text(value)
                else:
                    value = self._typed(t.decode(), html.unescape(v.decode()) if b"&" in v else v.decode(), s1 or s2)
                    if isinstance(value, str):
                        if value.isspace() or not value:
                            continue
                        if header in dates_at:
                            _warn_text_date(sheet, current["row"], header, value, problems)
                    elif header in codes and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                        value = _code_text(value)
            except _CellIssue as issue:
                problems.append(Problem(issue.level, sheet, current["row"], header, issue.value, issue.message))
                if issue.level is Level.ERROR:
                    current.setdefault(REPORTED, set()).add(header)
                continue
            except (ValueError, InvalidOperation, OverflowError):
                problems.append(Problem(Level.ERROR, sheet, current["row"], header, v.decode(errors="replace"),
                                        "单元格的值无法识别：请重新输入"))
                current.setdefault(REPORTED, set()).add(header)
                continue
            current[header] = value
        return sorted((r for r in by_row.values() if len(r) > 1 + (REPORTED in r)), key=lambda r: r["row"])

    def _col(self, letters: bytes) -> int:
        index = self._columns.get(letters)
        if index is None:
            index = self._columns[letters] = column_index(letters.decode())
        return index

    def _convert_fast(self, found: list[tuple[bytes, ...]], max_row: int | None) -> list[Cell]:
        """The hot loop of the small sheets (under 1 µs a cell). Dates, shared strings and
        decimals repeat a lot, so their conversions are remembered by their XML text."""
        out: list[Cell] = []
        append = out.append
        date_style = self._date_style
        dates = self._date_cache
        numbers = self._number_cache
        strings = self._string_cache
        columns = self._columns
        shared = self.pkg.shared_string
        last = max_row if max_row is not None else 1 << 62
        for letters, row_text, s1, t, s2, formula, v in found:
            ci = columns.get(letters)
            if ci is None:
                ci = self._col(letters)
            row = int(row_text)
            if row > last:
                break
            if not v:
                if formula:
                    append((row, ci, _CellIssue(Level.WARNING, "", _NO_CACHED_VALUE)))
                continue
            try:
                if t == b"s":
                    value: Any = strings.get(v)
                    if value is None:
                        value = strings[v] = shared(int(v))
                elif not t or t == b"n":
                    if date_style.get(s1 or s2):
                        value = dates.get(v)
                        if value is None:
                            value = dates[v] = self._date(float(v), v.decode())
                    elif b"." in v or b"E" in v or b"e" in v:
                        value = numbers.get(v)
                        if value is None:
                            value = numbers[v] = _number(v)
                    else:
                        value = int(v)
                else:
                    value = self._typed(t.decode(), html.unescape(v.decode()) if b"&" in v else v.decode(), s1 or s2)
            except _CellIssue as issue:
                value = issue
            except (ValueError, InvalidOperation, OverflowError):
                value = _CellIssue(Level.ERROR, v.decode(errors="replace"), "单元格的值无法识别：请重新输入")
            append((row, ci, value))
        return out

    def _date(self, serial: float, text: str) -> dt.date:
        if not 0 <= serial <= _MAX_SERIAL:
            raise _CellIssue(Level.ERROR, text, f"日期超出范围（日期序号 {text}）：请填写正确的日期，如 2026-03-05")
        return serial_to_date(serial, self.date1904)

    def _typed(self, t: str, text: str, style: bytes | str | None) -> Any:
        """Values of the rarer cell types (t="str", "b", "e", "d", "inlineStr", numbers via expat)."""
        if t in ("str", "inlineStr"):
            return _unescape_x(text)
        if t == "b":
            return text.strip() in ("1", "true", "TRUE")
        if t == "e":
            raise _CellIssue(Level.ERROR, text, f"单元格是错误值 {text}：请修正公式或改成正确的值")
        if t == "d":
            try:
                return dt.date.fromisoformat(text.strip()[:10])
            except ValueError:
                raise _CellIssue(Level.ERROR, text, "日期无法识别：请填写正确的日期，如 2026-03-05") from None
        if t == "s":
            return self.pkg.shared_string(int(text))
        # a number
        s = int(style) if style else 0
        if s < len(self.date_styles) and self.date_styles[s]:
            return self._date(float(text), text)
        return _number(text.strip())

    def _expat_cells(self, data: bytes, max_row: int | None, partial: bool = False) -> list[Cell]:
        """The general path: any valid sheet XML (namespace prefixes, inline and rich strings,
        cells without r, attributes in any order)."""
        out: list[Cell] = []
        buf: list[str] = []
        st: dict[str, Any] = {"row": 0, "next_col": 0, "collect": False, "inline": False, "rph": 0}
        cell: dict[str, Any] = {}
        parser = expat.ParserCreate()
        parser.buffer_text = True

        class _Done(Exception):
            pass

        def start(name: str, attrs: dict[str, str]) -> None:
            local = _local(name)
            if local == "c":
                ref = attrs.get("r")
                row, col = st["row"], st["next_col"]
                if ref:
                    match = re.fullmatch(r"\$?([A-Za-z]{1,3})\$?([0-9]+)", ref)
                    if match:
                        col = column_index(match.group(1).upper())
                        row = int(match.group(2))
                st["next_col"] = col + 1
                cell.update(row=row, col=col, t=attrs.get("t", "n"), s=attrs.get("s"), f=False)
                st["inline"] = cell["t"] == "inlineStr"
                buf.clear()
            elif local == "row":
                if max_row is not None and st["row"] >= max_row:
                    raise _Done
                r = attrs.get("r")
                st["row"] = int(r) if r and r.isdigit() else st["row"] + 1
                st["next_col"] = 0
            elif (local == "v" and not st["inline"]) or (local == "t" and st["inline"] and not st["rph"]):
                st["collect"] = True
            elif local == "f":
                cell["f"] = True
            elif local == "rPh":
                st["rph"] += 1

        def end(name: str) -> None:
            local = _local(name)
            if local in ("v", "t"):
                st["collect"] = False
            elif local == "rPh":
                st["rph"] -= 1
            elif local == "c":
                text = "".join(buf)
                if text == "" and cell["t"] not in ("inlineStr", "str"):
                    if cell["f"]:
                        out.append((cell["row"], cell["col"], _CellIssue(
                            Level.WARNING, "", _NO_CACHED_VALUE)))
                    return
                try:
                    value = self._typed(cell["t"], text, cell["s"])
                except _CellIssue as issue:
                    value = issue
                except (ValueError, InvalidOperation, OverflowError):
                    value = _CellIssue(Level.ERROR, text, "单元格的值无法识别：请重新输入")
                out.append((cell["row"], cell["col"], value))

        def chars(text: str) -> None:
            if st["collect"]:
                buf.append(text)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = chars
        with contextlib.suppress(_Done):
            parser.Parse(data, not partial)
        return out


# --- sheets -> raw rows -----------------------------------------------------------------------

@dataclass
class _Sheet:
    name: str
    headers: dict[str, int]  # header text -> column index (first occurrence)
    cells: list[Cell]


def _header_map(sheet: str, cells: Iterable[Cell], problems: list[Problem]) -> dict[str, int]:
    headers: dict[str, int] = {}
    for _, col, value in sorted((c for c in cells if c[0] == 1), key=lambda c: c[1]):
        if value is None or isinstance(value, _CellIssue):
            continue
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        text = text.strip()
        if not text or text == "row":
            continue
        if text in headers:
            problems.append(Problem(Level.ERROR, sheet, 1, text, text,
                                    f"表头“{text}”出现了两次（{column_letter(headers[text])} 列和 {column_letter(col)} 列）："
                                    f"只读取 {column_letter(headers[text])} 列，请删除或改名另一列"))
            continue
        headers[text] = col
    return headers


def _check_headers(sheet: str, headers: dict[str, int], problems: list[Problem]) -> bool:
    missing = [h for h in REQUIRED_HEADERS[sheet] if h not in headers]
    for header in missing:
        problems.append(Problem(Level.ERROR, sheet, 1, header, "",
                                f"缺少列“{header}”：请在“{sheet}”第 1 行加上表头“{header}”（列的顺序不限）"))
    return not missing


def _text_date(text: str) -> dt.date | None:
    match = TEXT_DATE.fullmatch(text.strip())
    if match is None:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def _text_date_warning(sheet: str, row: int, header: str, text: str) -> Problem | None:
    stripped = text.strip()
    match = TEXT_DATE.fullmatch(stripped)
    if match is None:
        return None
    day = _text_date(stripped)
    if day is None:
        return None  # an impossible date: the core reports it (日期不存在)
    return Problem(Level.WARNING, sheet, row, header, text,
                   f"文本日期：“{stripped}”是文字不是 Excel 日期，已按 {day.isoformat()} 读取；建议把单元格设为日期格式")


def _rows(sheet: _Sheet, problems: list[Problem]) -> list[dict[str, Any]]:
    by_col = {col: header for header, col in sheet.headers.items()}
    dates = DATE_HEADERS.get(sheet.name, frozenset())
    codes = CODE_HEADERS
    by_row: dict[int, dict[str, Any]] = {}
    for row, col, value in sheet.cells:
        if row <= 1:
            continue
        header = by_col.get(col)
        if header is None:
            continue
        if isinstance(value, _CellIssue):
            problems.append(Problem(value.level, sheet.name, row, header, value.value, value.message))
            if value.level is Level.ERROR:
                by_row.setdefault(row, {"row": row}).setdefault(REPORTED, set()).add(header)
            continue
        if isinstance(value, str):
            if not value.strip():
                continue
            if header in dates:
                _warn_text_date(sheet.name, row, header, value, problems)
        elif header in codes and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            value = _code_text(value)
        current = by_row.get(row)
        if current is None:
            current = by_row[row] = {"row": row}
        current[header] = value
    rows = sorted((r for r in by_row.values() if len(r) > 1 + (REPORTED in r)), key=lambda r: r["row"])
    _parameter_warnings(sheet.name, rows, problems)
    return rows


def _parameter_warnings(sheet: str, rows: list[dict[str, Any]], problems: list[Problem]) -> None:
    if sheet != PARAM_SHEET:
        return
    for raw in rows:
        name, value = raw.get("参数"), raw.get("值")
        if isinstance(name, str) and name.strip() in DATE_PARAMETERS and isinstance(value, str):
            _warn_text_date(sheet, raw["row"], "值", value, problems)


def _warn_text_date(sheet: str, row: int, header: str, text: str, problems: list[Problem]) -> None:
    warning = _text_date_warning(sheet, row, header, text)
    if warning is not None:
        problems.append(warning)


# --- the log ----------------------------------------------------------------------------------

_CALAMINE_DATETIME = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
_PLAUSIBLE_SERIALS = (18264, 109574)  # 1950-01-01 .. 2199-12-31


def _log_columns(wanted: dict[str, int]) -> list[int]:
    return sorted({wanted[h] for h in LOG_COLUMNS})


def text_columns(path: Path, sheet: str, columns: list[int]) -> pl.DataFrame | None:
    """Some columns (0-based, ascending) of a sheet, every cell as text, read by calamine (fastexcel)
    in this process, named by their header row. None when fastexcel is missing or fails, or the
    columns are not all there: the callers then use the exact reader."""
    try:
        import fastexcel
    except ImportError:
        return None
    try:
        reader = fastexcel.read_excel(str(path))
        try:
            import pyarrow  # noqa: F401  (the eager load needs it and is much faster)

            frame = pl.from_arrow(reader.load_sheet_eager(sheet, header_row=0, use_columns=columns, dtypes="string"))
        except ImportError:
            frame = pl.DataFrame(reader.load_sheet(sheet, header_row=0, use_columns=columns, dtypes="string"))
    except Exception:  # fastexcel raises its own error types
        return None
    return frame if isinstance(frame, pl.DataFrame) and frame.width == len(columns) else None


def _log_frame_fast(path: Path, sheet: str, wanted: dict[str, int]) -> pl.DataFrame | None:
    """The log's columns as text, read by calamine in this process (None: use the exact reader)."""
    frame = text_columns(path, sheet, _log_columns(wanted))
    return None if frame is None else _shape_log(frame)


def _shape_log(frame: pl.DataFrame) -> pl.DataFrame | None:
    """calamine's frame (columns named by their header text) -> one text column per log header plus
    `row` (row i of the frame is sheet row i + 2). None if it is not exactly the log's columns."""
    names = {name.strip(): name for name in frame.columns}
    if frame.width != len(LOG_COLUMNS) or len(names) != frame.width or any(h not in names for h in LOG_COLUMNS):
        return None
    frame = frame.select([pl.col(names[h]).cast(pl.String).alias(h) for h in LOG_COLUMNS])
    return frame.with_row_index("row", offset=2).with_columns(pl.col("row").cast(pl.Int64))


class _LogRead:
    """Reading the log with calamine: started early in a second process when it pays (or adopted
    from the command line's prefetch, see log_prefetch), finished after the small sheets. `frame()`
    falls back to this process, `close()` never leaves anything behind."""

    def __init__(self, package: _Package, part: str, sheet: str, wanted: dict[str, int],
                 prefetched: LogChild | None = None) -> None:
        self.path, self.sheet, self.wanted = package.path, sheet, wanted
        self.child = prefetched
        if self.child is None:
            size = self._size(package, part)
            if log_prefetch.worth_a_process(size):
                self.child = LogChild(self.path, sheet, _log_columns(wanted), size)

    @staticmethod
    def _size(package: _Package, part: str) -> int:
        try:
            return package.zip.getinfo(package.member(part)).file_size
        except KeyError:
            return 0

    def frame(self) -> pl.DataFrame | None:
        shaped = None
        if self.child is not None:
            try:
                arrow = _arrow_reader() if self.child.running() else None
                out = self.child.wait()
                if out is not None:
                    shaped = _shape_log(_read_arrow_file(out, arrow))
            except (OSError, ValueError, pl.exceptions.PolarsError):
                shaped = None
            finally:
                self.close()
        return shaped if shaped is not None else _log_frame_fast(self.path, self.sheet, self.wanted)

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None


def _arrow_reader() -> Any:
    """pyarrow, with its IPC module, imported while the log's process still runs (0.1 s that would
    otherwise come after it); None without pyarrow or where a mapped file could not be deleted
    (Windows): polars then reads the file itself."""
    if os.name != "posix":
        return None
    try:
        import pyarrow.ipc
    except ImportError:
        return None
    return pyarrow


def _read_arrow_file(path: str, arrow: Any) -> pl.DataFrame:
    """The child's Arrow file as a frame. With pyarrow (see _arrow_reader) the file is memory-mapped
    and the frame made from it: 0.03–0.07 s for the 1M-row log's 90 MB, against 0.10–0.20 s for
    polars' own read (measured 2026-11-27). The file may be deleted while mapped on POSIX."""
    if arrow is None:
        with open(path, "rb") as stream:
            return pl.read_ipc(stream)
    with arrow.memory_map(path) as source:
        table = arrow.ipc.open_file(source).read_all()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _code_text(value: int | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _as_text(value: Any) -> str | None:
    """A typed cell value in the form calamine gives text-typed columns (for the exact fallback)."""
    if value is None or isinstance(value, _CellIssue):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat() + "T00:00:00"
    if isinstance(value, Decimal):
        return _code_text(value)
    return str(value)


STREAM_CHUNK = 1 << 23  # bytes of sheet XML the exact log reader takes at a time
_RAW_LOG_SCHEMA = {"row": pl.Int64, **{h: pl.String for h in LOG_COLUMNS}}


def _log_frame_exact(package: _Package, reader: _SheetReader, part: str, headers: dict[str, int]) -> pl.DataFrame:
    """The log's columns as text, read by this module (when fastexcel is missing or fails), in the
    form calamine gives them. Streamed a few MB of XML at a time, so memory stays bounded."""
    try:
        frames = [_raw_log_chunk(cells, headers) for cells in reader.stream(package, part)]
    except _NotStandard:
        frames = [_raw_log_chunk(reader.cells(package.read(part)), headers)]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=_RAW_LOG_SCHEMA)
    return frame.sort("row") if not frame["row"].is_sorted() else frame


def _raw_log_chunk(cells: list[Cell], headers: dict[str, int]) -> pl.DataFrame:
    slot = {headers[h]: k for k, h in enumerate(LOG_COLUMNS)}
    rows: list[int] = []
    columns: list[list[str | None]] = [[] for _ in LOG_COLUMNS]
    current = -1
    for row, col, value in cells:
        k = slot.get(col)
        if k is None or row <= 1:
            continue
        if row != current:
            current = row
            rows.append(row)
            for column in columns:
                column.append(None)
        columns[k][-1] = _as_text(value)
    return pl.DataFrame({"row": rows, **dict(zip(LOG_COLUMNS, columns, strict=True))}, schema=_RAW_LOG_SCHEMA)


def validate_log(raw: pl.DataFrame, problems: list[Problem], *, numbers_are_dates: bool = False,
                 date1904: bool = False) -> ActivityLog:
    """Raw log columns (text, one per header, plus `row`) -> a clean ActivityLog. Every bad cell is
    an ERROR naming its cell and its row is left out; blank rows are skipped; 次数 blank means 1.

    `numbers_are_dates`: the workbook has date formats calamine does not recognise (the CJK
    built-ins), so a plain number in 日期 may be a date serial."""
    headers = list(LOG_COLUMNS)
    cleaned = _tidy(raw, [h for h in headers if h != "日期"])  # odd dates are looked at one by one
    cleaned = cleaned.filter(pl.any_horizontal(pl.col(h).is_not_null() for h in headers))

    date_col, count_col = "日期", "次数"
    # a date cell, as calamine writes it (other shapes, such as t="d" cells, are looked at one by one)
    real_date = pl.col(date_col).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).dt.date()
    # 次数 as a number once, in a column (an expression that names the cast five times casts five times)
    count_num = pl.col("_count")
    count_ok = pl.col(count_col).is_null() | (
        count_num.is_not_null() & count_num.is_finite() & (count_num == count_num.floor())
        & (count_num >= 1) & (count_num <= MAX_COUNT))
    cleaned = cleaned.with_columns(real_date.alias("date"), pl.col(count_col).cast(pl.Float64, strict=False).alias("_count")) \
        .with_columns(
            _real=pl.col("date").is_not_null(),
            _count_ok=count_ok,
            _text_ok=pl.all_horizontal(pl.col(h).is_not_null() for h in LOG_REQUIRED_TEXT),
        )
    odd = cleaned.filter(~pl.col("_real") | ~pl.col("_count_ok") | ~pl.col("_text_ok"))

    bad_rows: set[int] = set()
    fixed_rows: list[int] = []
    fixed_dates: list[dt.date] = []

    def error(row: int, header: str, value: Any, message: str) -> None:
        problems.append(Problem(Level.ERROR, LOG_SHEET, row, header, "" if value is None else str(value), message))
        bad_rows.add(row)

    for rec in odd.select("row", date_col, count_col, *LOG_REQUIRED_TEXT, "_real", "_count_ok").iter_rows(named=True):
        row = rec["row"]
        if not rec["_real"]:
            day = _odd_date(row, rec[date_col], numbers_are_dates, date1904, problems, error)
            if day is not None:
                fixed_rows.append(row)
                fixed_dates.append(day)
        for header in LOG_REQUIRED_TEXT:
            if rec[header] is None:
                error(row, header, None, f"{header}不能为空：请填写{header}")
        if not rec["_count_ok"]:
            error(row, count_col, rec[count_col], _count_message(rec[count_col]))

    frame = cleaned
    if fixed_rows:
        fixes = pl.DataFrame({"row": fixed_rows, "_fixed": fixed_dates}, schema={"row": pl.Int64, "_fixed": pl.Date})
        frame = frame.join(fixes, on="row", how="left", maintain_order="left").with_columns(
            pl.coalesce("date", "_fixed").alias("date"))
    if bad_rows:
        frame = frame.filter(~pl.col("row").is_in(sorted(bad_rows)))
    frame = frame.select(
        pl.col("row").cast(pl.Int64),
        pl.col("date"),
        *[pl.col(h).alias(LOG_COLUMNS[h]) for h in headers if LOG_COLUMNS[h] not in ("date", "count")],
        pl.col("_count").fill_null(1).cast(pl.Int64).alias("count"),
    ).select(list(LOG_SCHEMA)).cast(LOG_SCHEMA)  # type: ignore[arg-type]
    return ActivityLog(frame)


def _tidy(raw: pl.DataFrame, headers: list[str]) -> pl.DataFrame:
    """Strip surrounding spaces and make blank text null, in the columns that need it. Whether a
    column needs it is decided on its distinct values (a log column holds a few thousand), which
    costs a fraction of stripping a million strings; the columns are looked at side by side, in one
    query. `\\s` is Unicode's White_Space, which strip_chars() strips (the ideographic space too)."""
    needs = raw.select(pl.col(h).unique().str.contains(r"^\s|\s$|^$").any().alias(h) for h in headers).row(0) \
        if headers else ()
    untidy = [h for h, yes in zip(headers, needs, strict=True) if yes]
    if not untidy:
        return raw
    stripped = [pl.col(h).str.strip_chars() for h in untidy]
    return raw.with_columns([pl.when(e.str.len_bytes() > 0).then(e).alias(h) for h, e in zip(untidy, stripped, strict=True)])


def _odd_date(row: int, text: str | None, numbers_are_dates: bool, date1904: bool, problems: list[Problem],
              error: Callable[[int, str, Any, str], None]) -> dt.date | None:
    header = "日期"
    if text is not None and re.match(_CALAMINE_DATETIME, text):
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            pass
    text = text.strip() if text is not None else None
    if not text:
        error(row, header, None, "日期不能为空：请填写动作发生的日期")
        return None
    number: float | None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        low, high = _PLAUSIBLE_SERIALS
        if numbers_are_dates and low <= number <= high:
            return serial_to_date(number, date1904)
        error(row, header, text, f"日期是数字 {text}，不是日期：请把单元格设为日期格式，并填写日期（如 2026-03-05）")
        return None
    if TEXT_DATE.fullmatch(text) is None:
        error(row, header, text, f"日期“{text}”无法识别：请填写日期，如 2026-03-05")
        return None
    day = _text_date(text)
    if day is None:
        error(row, header, text, f"日期“{text}”不存在：请改成正确的日期")
        return None
    warning = _text_date_warning(LOG_SHEET, row, header, text)
    if warning is not None:
        problems.append(warning)
    return day


def _count_message(text: str) -> str:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return f"次数“{text}”不是数字：请填写不小于 1 的整数（留空按 1 次）"
    if number != number or number in (float("inf"), float("-inf")):
        return f"次数“{text}”不是数字：请填写不小于 1 的整数（留空按 1 次）"
    if number != int(number):
        return f"次数 {text} 不是整数：请填写不小于 1 的整数（留空按 1 次）"
    if number < 1:
        return f"次数 {text} 小于 1：请填写不小于 1 的整数（留空按 1 次）"
    return f"次数 {text} 过大（最多 {MAX_COUNT}）：请核对"


# --- the entry point ------------------------------------------------------------------------

def read_workbook(path: str | Path,
                  while_log_loads: Callable[[dict[str, list[dict[str, Any]]]], None] | None = None,
                  prefetched: LogChild | None = None) -> WorkbookData:
    """Read every contract sheet of the workbook. Raises WorkbookUnusable when the file cannot be
    read at all; everything else (a missing sheet or column, a bad cell) is a problem in the result.

    `while_log_loads(tables)` is called with the small sheets once they are read, before the log is
    waited for: a big log is read in a second process, and this one can do other work meanwhile.
    `prefetched`: that process, already started on this file by log_prefetch.prefetch_log (it is
    used if the log's headers are as expected, and closed in any case)."""
    path = Path(path)
    if prefetched is not None and not prefetched.is_for(path):
        prefetched.close()
        prefetched = None
    try:
        package = _Package(path)
    except BaseException:
        if prefetched is not None:
            prefetched.close()
        raise
    try:
        return _read(package, while_log_loads, prefetched)
    except (zipfile.BadZipFile, OSError, EOFError, expat.ExpatError, KeyError, RuntimeError) as exc:
        raise WorkbookUnusable(f"{path.name} 已损坏，无法读取：请用 Excel 打开并另存后重试（{exc}）") from None
    finally:
        package.close()


def _read(package: _Package, while_log_loads: Callable[[dict[str, list[dict[str, Any]]]], None] | None,
          prefetched: LogChild | None) -> WorkbookData:
    problems: list[Problem] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    columns: dict[str, dict[str, str]] = {}
    log: ActivityLog | None = None
    names = [name for name, _ in package.sheets]
    reader = _SheetReader(package)

    for sheet in REQUIRED_HEADERS:
        if package.sheet_part(sheet) is None and sheet not in OPTIONAL_SHEETS:
            listed = "、".join(REQUIRED_HEADERS[sheet])
            problems.append(Problem(Level.ERROR, sheet, None, None, "",
                                    f"缺少工作表“{sheet}”：请添加这张表，第 1 行写表头 {listed}"))

    wanted = [s for s in REQUIRED_HEADERS if package.sheet_part(s) is not None]
    order = {name.strip(): i for i, name in enumerate(names)}
    log_part = package.sheet_part(LOG_SHEET)
    log_read = None
    small = [s for s in sorted(wanted, key=lambda s: order.get(s, 0)) if s != LOG_SHEET]
    loader = prefetched.sheets if prefetched is not None else None
    if prefetched is not None:
        prefetched.sheets = None  # taken over here, whatever becomes of the log's process
    fast = _CalamineTables.start(package, small, loader)
    try:
        if log_part is not None:
            log_read = _start_log(package, reader, log_part, problems, columns, prefetched)
            prefetched = None  # _start_log adopted or closed it
        for sheet in small:
            _read_table(package, reader, sheet, problems, tables, columns, fast)
        if while_log_loads is not None:
            while_log_loads(tables)
        if log_read is not None:
            assert log_part is not None
            log = _finish_log(package, reader, log_part, log_read, problems)
    finally:
        if fast is not None:
            fast.close()
        if log_read is not None:
            log_read[1].close()
        if prefetched is not None:
            prefetched.close()
    return WorkbookData(tables=tables, log=log, columns=columns, sheet_names=names, problems=problems)


def _read_table(package: _Package, reader: _SheetReader, sheet: str, problems: list[Problem],
                tables: dict[str, list[dict[str, Any]]], columns: dict[str, dict[str, str]],
                fast: _CalamineTables | None = None) -> None:
    part = package.sheet_part(sheet)
    assert part is not None
    data = package.read(part)
    # the XML's checks first: they let go of the GIL, so calamine may still be parsing meanwhile
    scan = fast.scan(data) if fast is not None and sheet in fast.take else None
    grid = fast.grid(sheet) if fast is not None else None
    if grid is not None and scan is not None and scan.readable:
        found: list[Problem] = []
        try:
            table, dates = _calamine_table(sheet, grid, found, columns)
            # every date-styled cell (by this module's reading of styles.xml) came as a date, and
            # no other did: the two readers agree on which numbers are dates
            if dates != scan.date_cells:
                raise _NotStandard
        except _NotStandard:
            columns.pop(sheet, None)  # read again below, exactly
        else:
            problems += found
            if table is not None:
                tables[sheet] = table
            return
    end = _first_row_end(data)
    head = reader.cells(data[:end] if end else data, max_row=1, partial=bool(end))
    headers = _header_map(sheet, head, problems)
    columns[sheet] = {h: column_letter(c) for h, c in headers.items()}
    if _check_headers(sheet, headers, problems):
        tables[sheet] = reader.table(sheet, data, headers, problems)


# --- the small sheets through calamine --------------------------------------------------------
#
# python-calamine parses a sheet in Rust without holding the GIL and hands over each cell as a Python
# value (str, float, date, datetime). On the 1M-row benchmark workbook the small sheets (customers,
# opportunities, 50,000 orders, collections, progress: about a million cells) took 1.1 s of this
# process's Python by the regex path; calamine parses them in a thread, and what is left here is
# turning its values into the same rows (see _calamine_table).
#
# It must give exactly what the exact path gives, so it is used only where the two agree by
# construction: not on a 1904 workbook nor one with the CJK built-in date formats that calamine does
# not know as dates (_CalamineTables.start), not on a sheet with formulas, error values, booleans,
# ISO-date cells or _xHHHH_ escapes (_XmlScan), and a value it cannot vouch for (a time, a
# date before 1900-03-01, an integer beyond 2^53) sends the sheet back to the exact path. tests/
# test_reader.py compares the two paths on the demo workbook and on generated sheets.

class _CalamineTables:
    """The small sheets this run takes from calamine: a SheetLoader (adopted from the command line's
    prefetch, or started here), and how this module's styles mark a date-styled cell."""

    def __init__(self, loader: SheetLoader, take: list[str], date_styles: list[bool]) -> None:
        self.loader, self.take = loader, set(take)
        # how a cell with a date style starts its attributes after r="…" (a row's own s="…" may match
        # too: the counts then differ and the sheet is read exactly); an empty cell with a date style
        # (an editable date column, a cleared cell) ends right after it, and has no date to count
        dated = "|".join(str(k) for k, is_date in enumerate(date_styles) if is_date)
        self.date_cell = f'" s="(?:{dated})"' if dated else None
        self.blank_cell = f'" s="(?:{dated})"/>' if dated else None

    def scan(self, data: bytes) -> _XmlScan:
        """A sheet's XML looked at for what the calamine path needs to know, in one pass of polars
        per question, outside the GIL: six `in` tests and a dozen counts of bytes took 1.0 s of this
        process on the re-run's 100 MB 提成发放表, against 0.16 s (2026-11-27)."""
        text = _one_text(data)
        if text is None:
            return _XmlScan(False, 0)  # not UTF-8: the exact path says what is wrong with it
        checks = [pl.col("xml").str.contains(_NOT_FOR_CALAMINE).alias("odd")]
        if self.date_cell is not None and self.blank_cell is not None:
            checks += [pl.col("xml").str.count_matches(self.date_cell).alias("dated"),
                       pl.col("xml").str.count_matches(self.blank_cell).alias("blank")]
        try:
            found = pl.DataFrame(text).select(checks).row(0, named=True)
        except pl.exceptions.PolarsError:  # the checks could not be made: the exact path reads it
            return _XmlScan(False, 0)
        return _XmlScan(not found["odd"], found.get("dated", 0) - found.get("blank", 0))

    @classmethod
    def start(cls, package: _Package, sheets: list[str], loader: SheetLoader | None = None) -> _CalamineTables | None:
        """For those of the sheets big enough to be worth it (None: read them all exactly). `loader`:
        one already loading this file's BIG_SHEETS; taken over (closed by close())."""
        big = [s for s in sheets if _part_size(package, package.sheet_part(s)) >= CALAMINE_MIN_BYTES]
        if loader is not None:
            big = [s for s in big if s in BIG_SHEETS]
        if package.date1904 or package.cjk_date_styles or not big or _sst_needs_care(package) \
                or importlib.util.find_spec("python_calamine") is None:
            if loader is not None:
                loader.close()
            return None
        if loader is None:
            loader = SheetLoader(package.path, big)
        return cls(loader, big, package.date_styles)

    def grid(self, sheet: str) -> list[list[Any]] | None:
        return self.loader.grid(sheet) if sheet in self.take else None

    def close(self) -> None:
        self.loader.close()


CALAMINE_MIN_BYTES = 256 << 10  # sheet XML below this is read exactly here (the rule tables, small teams)


def _part_size(package: _Package, part: str | None) -> int:
    try:
        return package.zip.getinfo(package.member(part)).file_size if part is not None else 0
    except KeyError:
        return 0


def _sst_needs_care(package: _Package) -> bool:
    """Shared strings with _xHHHH_ escapes or phonetic runs: the exact path decides what they say."""
    data = package.sst_xml()
    return data is not None and (b"_x" in data or b"<rPh" in data)


class _XmlScan(NamedTuple):
    readable: bool  # only cells that calamine and the exact path give alike
    date_cells: int  # cells with a date style and a value


# What only the exact path reads as this module means it: formulas (<f>, or <x:f> with a prefix),
# error, boolean and ISO-date cells, and _xHHHH_ escapes.
_NOT_FOR_CALAMINE = r'<f|:f|t="e"|t="b"|t="d"|_x'


def _one_text(data: bytes) -> pl.Series | None:
    """The bytes as a polars text Series of one value (a decode and a Series of the str cost 0.47 s
    on 100 MB, this 0.02–0.06 s); None if they are not UTF-8, or too long for one polars value."""
    if len(data) >= 1 << 32:
        return None
    try:
        return pl.Series("xml", [data], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        return None


_FIRST_DAY = dt.date(1900, 3, 1)  # before it Excel's phantom 1900-02-29 makes readers disagree
_EXACT_INT = 2 ** 53


def _calamine_value(value: Any, numbers: dict[float, Any]) -> Any:
    """A calamine cell as the exact path types it ("" for an empty cell); _NotStandard for a value
    only the exact path can vouch for."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        known = numbers.get(value)
        if known is None:
            if value.is_integer():
                if not -_EXACT_INT < value < _EXACT_INT:
                    raise _NotStandard
                known = int(value)
            elif value != value or value in (float("inf"), float("-inf")):
                raise _NotStandard
            else:
                known = _number(repr(value))
            numbers[value] = known
        return known
    if kind is dt.date or kind is dt.datetime:
        day = value.date() if kind is dt.datetime else value
        if day < _FIRST_DAY:
            raise _NotStandard
        return day
    if kind is int and not isinstance(value, bool):
        return value
    raise _NotStandard  # a time, a duration, a boolean ...


def _calamine_table(sheet: str, grid: list[list[Any]], problems: list[Problem],
                    columns: dict[str, dict[str, str]]) -> tuple[list[dict[str, Any]] | None, int]:
    """_read_table's result from calamine's cells: the same header map, rows, codes as text, text
    dates warned about (None when a required column is missing); and how many dates were seen."""
    numbers: dict[float, Any] = {}
    head = [(1, j, _calamine_value(v, numbers)) for j, v in enumerate(grid[0]) if v != ""] if grid else []
    dates = sum(type(v) is dt.date for _, _, v in head)
    headers = _header_map(sheet, head, problems)
    columns[sheet] = {h: column_letter(c) for h, c in headers.items()}
    if not _check_headers(sheet, headers, problems):
        return None, dates + sum(type(v) in (dt.date, dt.datetime) for row in grid[1:] for v in row)
    dates_at = DATE_HEADERS.get(sheet, frozenset())
    wanted = sorted((col, header, header in CODE_HEADERS, header in dates_at) for header, col in headers.items())
    rows: list[dict[str, Any]] = []
    for i in range(1, len(grid)):
        cells = grid[i]
        width = len(cells)
        row: dict[str, Any] | None = None
        for col, header, is_code, is_date in wanted:
            if col >= width:
                break
            value = cells[col]
            if value == "":
                continue
            kind = type(value)
            if kind is str:
                if value.isspace():
                    continue
                if is_date:
                    _warn_text_date(sheet, i + 1, header, value, problems)
            elif kind is dt.date or kind is dt.datetime:
                value = _calamine_value(value, numbers)
                dates += 1
            elif is_date:
                raise _NotStandard  # a number where a date goes: the exact path says what it is
            else:
                value = _calamine_value(value, numbers)
                if is_code:
                    value = _code_text(value)
            if row is None:
                row = {"row": i + 1}
            row[header] = value
        if row is not None:
            rows.append(row)
    _parameter_warnings(sheet, rows, problems)
    return rows, dates


def _start_log(package: _Package, reader: _SheetReader, part: str, problems: list[Problem],
               columns: dict[str, dict[str, str]], prefetched: LogChild | None) -> tuple[dict[str, int], _LogRead] | None:
    """Read the log's header; if it is complete, start reading the log (or adopt `prefetched`, which
    reads the columns by header text: only when no header is repeated, so that both pick the same
    column). `prefetched` is closed if not adopted."""
    try:
        head, partial = _head(package, part)
        header_cells = reader.cells(head, max_row=1, partial=partial)
        repeated = len(problems)
        headers = _header_map(LOG_SHEET, header_cells, problems)
        repeated = len(problems) - repeated  # _header_map only reports repeated headers
        columns[LOG_SHEET] = {h: column_letter(c) for h, c in headers.items()}
        if not _check_headers(LOG_SHEET, headers, problems):
            return None
        adopted = None if repeated else prefetched
        if adopted is not None:
            prefetched = None
        return headers, _LogRead(package, part, _sheet_title(package, LOG_SHEET), headers, adopted)
    finally:
        if prefetched is not None:
            prefetched.close()


def _finish_log(package: _Package, reader: _SheetReader, part: str, started: tuple[dict[str, int], _LogRead],
                problems: list[Problem]) -> ActivityLog:
    headers, log_read = started
    raw = log_read.frame()
    numbers_are_dates = package.cjk_date_styles
    if raw is None:
        raw = _log_frame_exact(package, reader, part, headers)
        numbers_are_dates = False
    return validate_log(raw, problems, numbers_are_dates=numbers_are_dates, date1904=package.date1904)


def _sheet_title(package: _Package, sheet: str) -> str:
    for name, _ in package.sheets:
        if name == sheet or name.strip() == sheet:
            return name
    return sheet


def _head(package: _Package, part: str, limit: int = 1 << 16) -> tuple[bytes, bool]:
    """The start of a sheet's XML, up to the end of its first row (and whether it is cut short)."""
    chunks: list[bytes] = []
    with package.zip.open(package.member(part)) as stream:
        while True:
            chunk = stream.read(limit)
            if not chunk:
                break
            chunks.append(chunk)
            data = b"".join(chunks)
            end = _first_row_end(data)
            if end is not None:
                return data[:end], True
        data = b"".join(chunks)
    return data, False


_ROW_END = re.compile(rb"</(?:\w+:)?row>|<(?:\w+:)?row\b[^>]*/>|</(?:\w+:)?sheetData>|<(?:\w+:)?sheetData\s*/>")


def _first_row_end(data: bytes) -> int | None:
    match = _ROW_END.search(data)
    if match is None:
        return None
    if b"sheetData" in match.group(0):
        return None  # an empty sheet: read it whole (it is short)
    return match.end()
