"""The workbook as the buttons see it: a small port that live Excel (xlwings) and the tests (FakePort)
both implement, and the reader that turns a port's sheets into what the core takes.

A port hands over a sheet as a grid of Python values, row 1 first (the headers), in the shape
xlwings gives them: text, numbers (floats), datetimes, booleans, None, and error cells as their
text ("#N/A"). `read_port` applies the same contract as the file reader (xlsx_reader): the same
missing-sheet and missing-column errors, columns found by header text in row 1, codes as text,
exact numbers, text dates warned about, the log validated cell by cell with the same messages.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import polars as pl

from xlsales.adapters.xlsx_reader import (
    _RAW_LOG_SCHEMA,
    LOG_COLUMNS,
    OPTIONAL_SHEETS,
    REQUIRED_HEADERS,
    WorkbookData,
    _CellIssue,
    _check_headers,
    _code_text,
    _header_map,
    _rows,
    _Sheet,
    column_letter,
    validate_log,
)
from xlsales.adapters.xlsx_writer import BoardOut, SheetOut
from xlsales.core.activity import LOG_SHEET, ActivityLog
from xlsales.core.problems import Level, Problem

Grid = list[list[Any]]


@runtime_checkable
class WorkbookPort(Protocol):
    """What the entry points need from an open workbook."""

    def sheet_names(self) -> list[str]:
        """Every sheet, in workbook order."""
        ...

    def read_table(self, sheet: str) -> Grid:
        """The sheet's used cells from A1: row 1 holds the headers. Values are Python natives
        (str, int/float, datetime/date, bool, None; an error cell as its text, such as "#N/A")."""
        ...

    def write_sheet(self, sheet: SheetOut) -> None:
        """Replace the sheet's contents (add the sheet at the end when it is missing)."""
        ...

    def write_board(self, board: BoardOut) -> None:
        """Replace a free-form sheet (看板): its cells and its charts (add the sheet when missing)."""
        ...

    def append_rows(self, sheet: str, rows: Grid) -> None:
        """Add rows (values from column A) below the sheet's last row that holds a value."""
        ...

    def alert(self, message: str) -> None:
        """Tell the user something and wait for OK."""
        ...

    def status(self, message: str | None) -> None:
        """Show progress in the status bar; None gives the status bar back to Excel."""
        ...


# --- cell values ------------------------------------------------------------------------------

# what Excel shows for an error cell (xlwings: err_to_str=True)
EXCEL_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
                          "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!",
                          "#PYTHON!", "#EXTERNAL!"})
_EXACT_INTS = 2 ** 53


def _error_issue(text: str) -> _CellIssue:
    return _CellIssue(Level.ERROR, text, f"单元格是错误值 {text}：请修正公式或改成正确的值")  # the file reader's words


def native(value: Any) -> Any:
    """A port's cell value in the form the file reader gives it: whole numbers as int, other numbers
    as exact Decimals (through the float's shortest repr, which is what Excel stores), dates without
    their time, error cells as a _CellIssue."""
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        if not math.isfinite(value):
            return _error_issue(str(value))
        if value.is_integer() and abs(value) < _EXACT_INTS:
            return int(value)
        return Decimal(repr(value))
    if kind is str:
        return _error_issue(value) if value in EXCEL_ERRORS else value
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, (dt.date, Decimal, bool, int)):
        return value
    if isinstance(value, float):
        return native(float(value))
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def to_excel(value: Any) -> Any:
    """A Python value as Excel stores it (and xlwings reads it back): numbers as floats, dates as
    datetimes, enums as their text."""
    if value is None or isinstance(value, (bool, str)):
        return str.__str__(value) if isinstance(value, str) and type(value) is not str else value
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def sheet_title(names: Iterable[str], sheet: str) -> str | None:
    """The workbook's own name of a contract sheet: exact, else ignoring surrounding spaces (as the file reader)."""
    names = list(names)
    if sheet in names:
        return sheet
    return next((name for name in names if name.strip() == sheet), None)


def grid_cells(grid: Sequence[Sequence[Any]], max_row: int | None = None) -> Iterator[tuple[int, int, Any]]:
    """(row, column index, value) of every non-empty cell, rows from 1, values as `native` gives them."""
    for i, line in enumerate(grid[:max_row] if max_row is not None else grid, start=1):
        for j, value in enumerate(line):
            if value is not None:
                yield i, j, native(value)


def header_columns(sheet: str, grid: Sequence[Sequence[Any]], problems: list[Problem]) -> dict[str, int]:
    """Header text -> column index, from row 1 (duplicates reported as the file reader does)."""
    return _header_map(sheet, grid_cells(grid, max_row=1), problems)


# --- the reader -------------------------------------------------------------------------------

def read_port(port: WorkbookPort) -> WorkbookData:
    """Every contract sheet of the port's workbook, checked exactly as `xlsx_reader.read_workbook`
    checks a file: the same problems for a missing sheet or column, a duplicate header, an error
    value, a text date, a bad log cell."""
    names = port.sheet_names()
    problems: list[Problem] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    columns: dict[str, dict[str, str]] = {}
    log: ActivityLog | None = None

    titles = {sheet: sheet_title(names, sheet) for sheet in REQUIRED_HEADERS}
    for sheet, title in titles.items():
        if title is None and sheet not in OPTIONAL_SHEETS:
            listed = "、".join(REQUIRED_HEADERS[sheet])
            problems.append(Problem(Level.ERROR, sheet, None, None, "",
                                    f"缺少工作表“{sheet}”：请添加这张表，第 1 行写表头 {listed}"))

    order = {name: i for i, name in enumerate(names)}
    present = sorted((s for s, t in titles.items() if t is not None), key=lambda s: order[titles[s] or ""])
    for sheet in present:
        title = titles[sheet]
        assert title is not None
        grid = port.read_table(title)
        headers = header_columns(sheet, grid, problems)
        columns[sheet] = {h: column_letter(c) for h, c in headers.items()}
        if not _check_headers(sheet, headers, problems):
            continue
        if sheet == LOG_SHEET:
            log = validate_log(log_frame(grid, headers, problems), problems)
        else:
            tables[sheet] = _rows(_Sheet(sheet, headers, list(grid_cells(grid))), problems)
    return WorkbookData(tables=tables, log=log, columns=columns, sheet_names=names, problems=problems)


def _log_text(value: Any) -> Any:
    """A log cell as text, in the form the file reader's log columns have (calamine, text-typed)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return _error_issue(value) if value in EXCEL_ERRORS else value
    if isinstance(value, dt.date):  # datetime too: the time of day is dropped, as by the file reader
        return f"{value.isoformat()[:10]} 00:00:00"
    if isinstance(value, bool):
        return "true" if value else "false"
    value = native(value)
    if isinstance(value, _CellIssue):
        return value
    if isinstance(value, (int, Decimal)):
        return _code_text(value)
    return str(value)


def log_frame(grid: Sequence[Sequence[Any]], headers: Mapping[str, int], problems: list[Problem]) -> pl.DataFrame:
    """The log's columns as text (one per header, plus `row`), ready for `validate_log`. A row with
    an error cell is reported (its cell named) and left out."""
    wanted = [(header, headers[header]) for header in LOG_COLUMNS]
    rows: list[int] = []
    out: list[list[str | None]] = [[] for _ in wanted]
    for i, line in enumerate(grid[1:], start=2):
        width = len(line)
        texts = [_log_text(line[j]) if j < width else None for _, j in wanted]
        if all(t is None for t in texts):
            continue
        issues = [(header, t) for (header, _), t in zip(wanted, texts, strict=True) if isinstance(t, _CellIssue)]
        if issues:
            problems.extend(Problem(t.level, LOG_SHEET, i, header, t.value, t.message) for header, t in issues)
            continue
        rows.append(i)
        for k, t in enumerate(texts):
            out[k].append(t)
    data = {"row": rows, **{header: column for (header, _), column in zip(wanted, out, strict=True)}}
    return pl.DataFrame(data, schema=_RAW_LOG_SCHEMA)


# --- an in-memory port for tests and headless runs ---------------------------------------------

class FakePort:
    """A workbook held in memory: sheets as grids of the values Excel would hand back (floats,
    datetimes). Records what the entry points did: sheets written, rows appended, alerts, status."""

    def __init__(self, sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None, name: str = "内存工作簿.xlsm") -> None:
        self.name = name
        self.sheets: dict[str, Grid] = {k: [list(r) for r in v] for k, v in (sheets or {}).items()}
        self.written: list[SheetOut] = []
        self.boards: dict[str, BoardOut] = {}  # boards written, by sheet
        self.appended: list[tuple[str, Grid]] = []
        self.alerts: list[str] = []
        self.statuses: list[str | None] = []
        self.protected: dict[str, set[str]] = {}  # sheet -> the columns left editable

    @classmethod
    def from_tables(cls, tables: Mapping[str, Sequence[Mapping[str, Any]]], headers: Mapping[str, Sequence[str]] | None = None,
                    name: str = "内存工作簿.xlsm") -> FakePort:
        """Raw rows (header -> value, plus "row") as sheets: contract headers first (or `headers`), then
        any other keys; a row goes to its "row" (else the next row)."""
        from xlsales.adapters.sheets import _RULE_NUMBERS, _as_number, _headers

        sheets: dict[str, Grid] = {}
        for sheet, rows in tables.items():
            heads = list(headers[sheet]) if headers and sheet in headers else _headers(sheet, rows)
            numbers = _RULE_NUMBERS.get(sheet, set())  # rule defaults written as Decimal text are stored as numbers
            grid: Grid = [list(heads)]
            for raw in rows:
                r = raw.get("row")
                at = r if isinstance(r, int) and r >= 2 else len(grid) + 1
                while len(grid) < at:
                    grid.append([None] * len(heads))
                values = [raw.get(h) for h in heads]
                values = [_as_number(v) if isinstance(v, str) and h in numbers and _as_number(v) is not None else v
                          for h, v in zip(heads, values, strict=True)]
                grid[at - 1] = [to_excel(v) for v in values]
            sheets[sheet] = grid
        return cls(sheets, name=name)

    def sheet_names(self) -> list[str]:
        return list(self.sheets)

    def read_table(self, sheet: str) -> Grid:
        if sheet not in self.sheets:
            raise KeyError(f"没有工作表“{sheet}”")
        return [list(r) for r in self.sheets[sheet]]

    def write_sheet(self, sheet: SheetOut) -> None:
        grid: Grid = [[c.header for c in sheet.columns]]
        grid.extend([to_excel(v) for v in row] + [None] * (len(sheet.columns) - len(row)) for row in sheet.rows)
        self.sheets[sheet.name] = grid
        self.written.append(sheet)
        if sheet.protected:
            self.protected[sheet.name] = set(sheet.editable)
        else:
            self.protected.pop(sheet.name, None)

    def write_board(self, board: BoardOut) -> None:
        rows = 1 + max((r for r, _ in board.cells), default=0)
        cols = 1 + max((c for _, c in board.cells), default=0)
        grid: Grid = [[None] * cols for _ in range(rows)]
        for (r, c), cell in board.cells.items():
            grid[r][c] = to_excel(cell.value)
        self.sheets[board.name] = grid
        self.boards[board.name] = board
        if board.protect:
            self.protected[board.name] = set()
        else:
            self.protected.pop(board.name, None)

    def append_rows(self, sheet: str, rows: Grid) -> None:
        grid = self.sheets.setdefault(sheet, [])
        while grid and all(v is None or v == "" for v in grid[-1]):
            grid.pop()
        grid.extend([to_excel(v) for v in row] for row in rows)
        self.appended.append((sheet, [list(r) for r in rows]))

    def alert(self, message: str) -> None:
        self.alerts.append(message)

    def status(self, message: str | None) -> None:
        self.statuses.append(message)

    # conveniences for tests
    def records(self, sheet: str) -> list[dict[str, Any]]:
        """A sheet's data rows as header -> value."""
        grid = self.sheets[sheet]
        heads = grid[0] if grid else []
        return [dict(zip(heads, row, strict=False)) for row in grid[1:]]
