"""The WorkbookPort of live Excel: an open workbook through xlwings (RunPython from the buttons).

This module does not import xlwings: it wraps the `xw.Book` it is given and uses only a few of its
calls, so it imports on any platform and is tested with a stand-in object. What goes through
`.api` (sheet protection, a cell's Locked flag) is Excel's own COM object model on Windows; on
macOS those calls are tried in their AppleScript form and skipped if they fail.

Reads take a sheet's used range from A1 in one call (`.options(ndim=2, err_to_str=True).value`).
Writes are one bulk `.value =` per sheet, after the columns' number formats are set (so that a code
such as "1001" stays text and dates show as dates); row colours are set per colour in a few
multi-area ranges; output sheets are unprotected before and protected again after, with only the
editable columns (实发日期) unlocked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from xlsales.adapters.port import Grid, to_excel
from xlsales.adapters.xlsx_charts import ChartSpec
from xlsales.adapters.xlsx_writer import (
    BOARD_MARK,
    FILLS,
    KIND_FORMATS,
    BoardOut,
    SheetOut,
    board_name,
    column_letter,
    column_widths,
    sheet_of_reference,
)

ALERT_TITLE = "xlsales"
# a VBA Sub in the shipped module, used when app.alert is not available: Sub XlsalesMsgBox(ByVal prompt As String)
MSGBOX_MACRO = "XlsalesMsgBox"
MAX_ADDRESS = 250  # Excel's Range("A1:B2,A5:B7,...") takes an address of at most 255 characters
HEADER_FILL = FILLS["header"]
_FORMULA_START = ("=", "+", "-", "@")


class SheetLocked(Exception):
    """An output sheet is protected with a password: the tool cannot write it."""


def _rgb(argb: str) -> tuple[int, int, int]:
    return int(argb[2:4], 16), int(argb[4:6], 16), int(argb[6:8], 16)


def cell_value(value: Any, kind: str = "text") -> Any:
    """A value as it is handed to Excel: numbers as floats (pywin32 would turn a Decimal into a
    4-decimal currency), dates as datetimes, and text that Excel would read as a formula or a
    number (outside a text-formatted column) behind an apostrophe, which Excel does not store."""
    if isinstance(value, str):
        text = str.__str__(value)
        if text.startswith("=") or (kind != "text" and text[:1] in _FORMULA_START) or (kind != "text" and _looks_like_number(text)):
            return "'" + text
        return text
    return to_excel(value)


def _looks_like_number(text: str) -> bool:
    try:
        Decimal(text.strip().replace(",", "").rstrip("%"))
    except ArithmeticError:
        return False
    return bool(text.strip())


def row_runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted row numbers -> (first, last) of each run of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and r == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], r)
        else:
            runs.append((r, r))
    return runs


def run_addresses(runs: Sequence[tuple[int, int]], last_column: str, limit: int = MAX_ADDRESS) -> list[str]:
    """Multi-area addresses ("A2:L4,A7:L7") of at most `limit` characters covering the row runs."""
    out: list[str] = []
    current = ""
    for first, last in runs:
        area = f"A{first}:{last_column}{last}"
        if current and len(current) + 1 + len(area) > limit:
            out.append(current)
            current = ""
        current = f"{current},{area}" if current else area
    if current:
        out.append(current)
    return out


def column_format(values: Sequence[Any]) -> str | None:
    """The number format a block of new values in one column needs: dates as dates, text as text."""
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return None
    if all(isinstance(v, dt.date) for v in present):
        return KIND_FORMATS["date"]
    if all(isinstance(v, str) for v in present):
        return KIND_FORMATS["text"]
    return None


class XlwingsPort:
    """A WorkbookPort over an open `xlwings.Book`."""

    def __init__(self, book: Any) -> None:
        self.book = book

    @property
    def name(self) -> str:
        return str(self.book.name)

    @property
    def fullname(self) -> str:
        return str(self.book.fullname)

    # --- reading ------------------------------------------------------------------------------

    def sheet_names(self) -> list[str]:
        return [sheet.name for sheet in self.book.sheets]

    def read_table(self, sheet: str) -> Grid:
        sht = self.book.sheets[sheet]
        last = sht.used_range.last_cell
        # formatted or validated empty rows (a table's reserved rows) make the used range long: read
        # down to the last row that holds a value
        rows = min(last.row, self._last_value_row(sht, last.column))
        values = sht.range((1, 1), (rows, last.column)).options(ndim=2, err_to_str=True).value
        return [list(row) for row in values or []]

    # --- writing ------------------------------------------------------------------------------

    def write_sheet(self, sheet: SheetOut) -> None:
        with self._quiet():
            sht = self._sheet_or_new(sheet.name)
            unprotect(sht)
            sht.used_range.clear()
            ncols, nrows = len(sheet.columns), len(sheet.rows)
            last_col = column_letter(ncols - 1)
            kinds = [c.kind for c in sheet.columns]
            sht.range((1, 1), (1, ncols)).number_format = KIND_FORMATS["text"]
            if nrows:
                for j, kind in enumerate(kinds):
                    sht.range((2, j + 1), (nrows + 1, j + 1)).number_format = KIND_FORMATS[kind]
            grid: Grid = [[c.header for c in sheet.columns]]
            for row in sheet.rows:
                cells = [cell_value(v, kinds[j]) if v is not None else None for j, v in enumerate(row)]
                grid.append(cells + [None] * (ncols - len(cells)))
            sht.range((1, 1), (nrows + 1, ncols)).value = grid  # the one bulk write
            header = sht.range((1, 1), (1, ncols))
            header.font.bold = True
            header.color = _rgb(HEADER_FILL)
            if sheet.row_fills:
                by_fill: dict[str, list[int]] = {}
                for i, fill in enumerate(sheet.row_fills[:nrows]):
                    if fill is not None:
                        by_fill.setdefault(fill, []).append(i + 2)
                for fill, rows in by_fill.items():
                    for address in run_addresses(row_runs(rows), last_col):
                        sht.range(address).color = _rgb(FILLS[fill])
            for j, width in enumerate(column_widths(sheet)):
                sht.range((1, j + 1)).column_width = width
            if sheet.protected:
                for j, column in enumerate(sheet.columns):
                    if column.header in sheet.editable:
                        set_locked(sht.range((2, j + 1), (max(nrows, 1) + 1, j + 1)), False)
                protect(sht)

    def write_board(self, board: BoardOut) -> None:
        """Cells in one bulk write, then formats, widths and the charts (xlwings makes each chart from
        its source range; title and colours are set through Excel's object model where it answers)."""
        with self._quiet():
            sht = self._board_sheet(board.name)
            unprotect(sht)
            for chart in list(sht.charts):
                chart.delete()
            sht.used_range.clear()
            if board.cells:
                rows = 1 + max(r for r, _ in board.cells)
                cols = 1 + max(c for _, c in board.cells)
                grid: Grid = [[None] * cols for _ in range(rows)]
                for (r, c), cell in board.cells.items():
                    grid[r][c] = None if cell.value is None else cell_value(cell.value, cell.kind)
                    if cell.kind != "text":
                        sht.range((r + 1, c + 1)).number_format = KIND_FORMATS[cell.kind]
                sht.range((1, 1), (rows, cols)).value = grid
                for (r, c), cell in board.cells.items():
                    if cell.bold:
                        sht.range((r + 1, c + 1)).font.bold = True
                    if cell.fill is not None:
                        sht.range((r + 1, c + 1)).color = _rgb(FILLS[cell.fill])
            for col, width in board.widths.items():
                sht.range((1, col + 1)).column_width = width
            for spec in board.charts:
                row, col = spec.anchor
                anchor = sht.range((row + 1, col + 1))
                # a board's sizes are pixels (as in the file); xlwings places charts in points
                chart = sht.charts.add(anchor.left, anchor.top, spec.width * PT_PER_PX, spec.height * PT_PER_PX)
                chart.chart_type = CHART_TYPES.get(spec.type, spec.type)
                chart.set_source_data(sht.range(chart_source(spec)))
                with contextlib.suppress(Exception):
                    _style_chart(chart.api[1], spec)
            if board.protect:
                protect(sht)

    def append_rows(self, sheet: str, rows: Grid) -> None:
        if not rows:
            return
        sht = self.book.sheets[sheet]
        ncols = max(len(r) for r in rows)
        with self._quiet():
            last = self._last_value_row(sht, ncols)
            first, end = last + 1, last + len(rows)
            for j in range(ncols):
                fmt = column_format([r[j] if j < len(r) else None for r in rows])
                if fmt is not None:
                    sht.range((first, j + 1), (end, j + 1)).number_format = fmt
            grid = [[cell_value(v) if v is not None else None for v in r] + [None] * (ncols - len(r)) for r in rows]
            sht.range((first, 1), (end, ncols)).value = grid
            for table in sht.tables:
                extend_table(sht, table, last, end)

    @staticmethod
    def _last_value_row(sht: Any, ncols: int) -> int:
        """The last row holding a value in the first `ncols` columns (1 when only the headers)."""
        bottom = sht.cells.last_cell.row
        last = 1
        for j in range(1, ncols + 1):
            cell = sht.range((bottom, j))
            row = bottom if cell.value not in (None, "") else cell.end("up").row
            last = max(last, row)
        return last

    def _board_sheet(self, name: str) -> Any:
        """The board's sheet: the one the hidden name _xlsales_board marks (the tool wrote it, maybe
        renamed since); else a new sheet, beside (never over) a sheet of the user's with that name."""
        marked = None
        with contextlib.suppress(Exception):
            marked = sheet_of_reference(str(self.book.names[BOARD_MARK].refers_to))
        names = self.sheet_names()
        if marked in names:
            return self.book.sheets[marked]
        target = board_name(name, names)
        sht = self._sheet_or_new(target)
        with contextlib.suppress(Exception):
            self.book.names[BOARD_MARK].delete()  # a stale mark (its sheet was deleted)
        quoted = "'" + target.replace("'", "''") + "'"
        mark = self.book.names.add(BOARD_MARK, f"={quoted}!$A$1")
        with contextlib.suppress(Exception):
            mark.api.Visible = False  # Windows COM; elsewhere the name stays visible in the Name Manager
        return sht

    def _sheet_or_new(self, name: str) -> Any:
        names = self.sheet_names()
        if name in names:
            return self.book.sheets[name]
        return self.book.sheets.add(name, after=self.book.sheets[len(names) - 1])

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """No screen updates and no recalculation while a sheet is written (restored after)."""
        app = self.book.app
        saved: list[tuple[str, Any]] = []
        for attr, value in (("screen_updating", False), ("calculation", "manual")):
            with contextlib.suppress(Exception):
                saved.append((attr, getattr(app, attr)))
                setattr(app, attr, value)
        try:
            yield
        finally:
            for attr, value in reversed(saved):
                with contextlib.suppress(Exception):
                    setattr(app, attr, value)

    # --- talking to the user ------------------------------------------------------------------

    def alert(self, message: str) -> None:
        try:
            self.book.app.alert(message, title=ALERT_TITLE)
            return
        except Exception:
            pass
        try:
            self.book.macro(MSGBOX_MACRO)(message)
            return
        except Exception:
            pass
        self.status(message.replace("\n", " "))

    def status(self, message: str | None) -> None:
        with contextlib.suppress(Exception):
            self.book.app.status_bar = message if message is not None else False


# --- protection and tables: Excel's own object model behind .api ---------------------------------

def _is_windows_com(api: Any) -> bool:
    return hasattr(api, "Protect") or hasattr(api, "Unprotect")


PT_PER_PX = 0.75  # at Excel's 96 dpi
# xlwings' chart type names for the XlsxWriter types a board uses
CHART_TYPES = {"bar": "bar_clustered", "column": "column_clustered", "line": "line_markers", "pie": "pie"}


def chart_source(spec: ChartSpec) -> str:
    """The source range of a board chart: the header row and the rows of its category column and
    value columns, as one (multi-area) address, e.g. "R8:R20,T8:U20"."""
    _, first, cat_col, last, _ = spec.series[0]["categories"]
    columns = [cat_col, *(s["values"][2] for s in spec.series)]
    return ",".join(f"{column_letter(c)}{first}:{column_letter(c)}{last + 1}" for c in columns)


def _style_chart(api: Any, spec: ChartSpec) -> None:
    """Title, series and point colours through Excel's object model (Windows COM; elsewhere the
    calls fail and the chart keeps Excel's own look)."""
    title = spec.options.get("title", {}).get("name")
    if title:
        api.HasTitle = True
        api.ChartTitle.Text = title
    for i, series in enumerate(spec.series, start=1):
        colour = series.get("fill", {}).get("color")
        if colour:
            api.SeriesCollection(i).Format.Fill.ForeColor.RGB = _bgr(colour)
        for k, point in enumerate(series.get("points", []), start=1):
            api.SeriesCollection(i).Points(k).Format.Fill.ForeColor.RGB = _bgr(point["fill"]["color"])
    if spec.type == "bar":
        api.Axes(1).ReversePlotOrder = True  # xlCategory: the first row at the top, as in the table


def _bgr(hex_colour: str) -> int:
    """"#RRGGBB" as the BGR integer of Excel's COM colours."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return r + (g << 8) + (b << 16)


def unprotect(sht: Any) -> None:
    """Remove a sheet's protection (no password). A password-protected sheet raises SheetLocked."""
    api = sht.api
    try:
        if _is_windows_com(api):
            if getattr(api, "ProtectContents", False):
                api.Unprotect()
        else:
            api.unprotect()
    except Exception as exc:
        raise SheetLocked(f"工作表“{sht.name}”设置了保护密码，无法写入：请先在“审阅 → 撤销工作表保护”里撤销保护，再运行") from exc


def protect(sht: Any) -> None:
    """Protect without a password: only unlocked cells are editable; filtering and resizing stay allowed."""
    api = sht.api
    with contextlib.suppress(Exception):
        if _is_windows_com(api):
            api.Protect(DrawingObjects=True, Contents=True, Scenarios=True, AllowFormattingColumns=True,
                        AllowFormattingRows=True, AllowFiltering=True)
        else:
            api.protect_worksheet(contents=True, allow_formatting_columns=True, allow_formatting_rows=True,
                                  allow_filtering=True)


def set_locked(rng: Any, locked: bool) -> None:
    with contextlib.suppress(Exception):
        api = rng.api
        if hasattr(api, "Locked"):
            api.Locked = locked
        else:
            api.locked.set(locked)


def extend_table(sht: Any, table: Any, last: int, end: int) -> None:
    """Grow an Excel table (ListObject) that ended at the old last row over the rows appended below it."""
    rng = table.range
    bottom = rng.last_cell
    if bottom.row >= end or bottom.row < last or table.show_totals:
        return
    table.resize(sht.range((rng.row, rng.column), (end, bottom.column)))
