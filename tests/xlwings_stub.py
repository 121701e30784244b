"""A stand-in for the few xlwings calls XlwingsPort makes, so its logic runs without Excel.

It keeps cells in a dict and records what was asked of it (bulk writes, number formats, colours,
protection), with Excel's semantics where they matter: a list of lists written to a range fills it
from its top-left cell, `used_range` is the block of used cells, `end("up")` stops at the last
value above, a multi-area address ("A2:L4,A7:L7") is accepted.
"""

from __future__ import annotations

import re
from typing import Any

MAX_ROW, MAX_COL = 1_048_576, 16_384
Area = tuple[int, int, int, int]  # r1, c1, r2, c2 (1-based, inclusive)


def col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def parse_address(address: str) -> list[Area]:
    areas = []
    for part in address.split(","):
        m = re.fullmatch(r"\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?", part.strip())
        assert m, address
        r1, c1 = int(m.group(2)), col_index(m.group(1))
        r2, c2 = (int(m.group(4)), col_index(m.group(3))) if m.group(3) else (r1, c1)
        areas.append((r1, c1, r2, c2))
    return areas


class _Font:
    def __init__(self, rng: StubRange) -> None:
        self._rng = rng

    @property
    def bold(self) -> bool:
        return all(self._rng.sheet.bold.get(cell, False) for cell in self._rng.cells())

    @bold.setter
    def bold(self, value: bool) -> None:
        for cell in self._rng.cells():
            self._rng.sheet.bold[cell] = value


class _RangeApi:
    def __init__(self, rng: StubRange) -> None:
        self._rng = rng

    @property
    def Locked(self) -> bool:
        return all(self._rng.sheet.locked.get(cell, True) for cell in self._rng.cells())

    @Locked.setter
    def Locked(self, value: bool) -> None:
        for area in self._rng.areas:
            self._rng.sheet.locked_areas.append((area, value))
        for cell in self._rng.cells():
            self._rng.sheet.locked[cell] = value


class StubRange:
    def __init__(self, sheet: StubSheet, areas: list[Area]) -> None:
        self.sheet = sheet
        self.areas = areas
        self._options: dict[str, Any] = {}

    # geometry
    @property
    def row(self) -> int:
        return self.areas[0][0]

    @property
    def column(self) -> int:
        return self.areas[0][1]

    @property
    def last_cell(self) -> StubRange:
        _, _, r2, c2 = self.areas[0]
        return StubRange(self.sheet, [(r2, c2, r2, c2)])

    @property
    def address(self) -> str:
        def ref(r: int, c: int) -> str:
            letters = ""
            while c:
                c, rem = divmod(c - 1, 26)
                letters = chr(65 + rem) + letters
            return f"{letters}{r}"
        return ",".join(f"{ref(r1, c1)}:{ref(r2, c2)}" for r1, c1, r2, c2 in self.areas)

    @property
    def left(self) -> float:
        return (self.column - 1) * 48.0  # points: Excel's default column width

    @property
    def top(self) -> float:
        return (self.row - 1) * 15.0  # points: Excel's default row height

    @property
    def shape(self) -> tuple[int, int]:
        r1, c1, r2, c2 = self.areas[0]
        return r2 - r1 + 1, c2 - c1 + 1

    def cells(self) -> list[tuple[int, int]]:
        out = []
        for r1, c1, r2, c2 in self.areas:
            out.extend((r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1))
        return out

    def options(self, **options: Any) -> StubRange:
        rng = StubRange(self.sheet, self.areas)
        rng._options = options
        return rng

    # values
    @property
    def value(self) -> Any:
        self.sheet.reads.append((self.areas[0], dict(self._options)))
        r1, c1, r2, c2 = self.areas[0]
        grid = [[self.sheet.values.get((r, c)) for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]
        if self._options.get("ndim") == 2:
            return grid
        if len(grid) == 1 and len(grid[0]) == 1:
            return grid[0][0]
        return grid

    @value.setter
    def value(self, data: Any) -> None:
        r1, c1 = self.areas[0][0], self.areas[0][1]
        rows = data if isinstance(data, list) and data and isinstance(data[0], list) else [[data]]
        self.sheet.writes.append((r1, c1, len(rows), max((len(r) for r in rows), default=0)))
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                cell = (r1 + i, c1 + j)
                if v is None or v == "":
                    self.sheet.values.pop(cell, None)
                elif isinstance(v, str) and v.startswith("'"):
                    self.sheet.values[cell] = v[1:]  # Excel keeps the apostrophe as a prefix, not in the value
                else:
                    fmt = self.sheet.formats.get(cell)
                    if isinstance(v, str) and fmt != "@" and re.fullmatch(r"-?\d+(\.\d+)?", v):
                        v = float(v)  # what Excel does to "1001" in a General cell
                    self.sheet.values[cell] = v

    # formats
    @property
    def number_format(self) -> str | None:
        return self.sheet.formats.get((self.row, self.column))

    @number_format.setter
    def number_format(self, fmt: str) -> None:
        self.sheet.format_calls.append((self.areas[0], fmt))
        for cell in self.cells():
            self.sheet.formats[cell] = fmt

    @property
    def color(self) -> Any:
        return self.sheet.colors.get((self.row, self.column))

    @color.setter
    def color(self, value: Any) -> None:
        self.sheet.color_calls.append((tuple(self.areas), value))
        for cell in self.cells():
            self.sheet.colors[cell] = value

    @property
    def font(self) -> _Font:
        return _Font(self)

    @property
    def column_width(self) -> float | None:
        return self.sheet.widths.get(self.column)

    @column_width.setter
    def column_width(self, width: float) -> None:
        self.sheet.widths[self.column] = width

    @property
    def api(self) -> _RangeApi:
        return _RangeApi(self)

    def clear(self) -> None:
        for cell in self.cells():
            for store in (self.sheet.values, self.sheet.formats, self.sheet.colors, self.sheet.bold, self.sheet.locked):
                store.pop(cell, None)
        self.sheet.clears += 1

    def end(self, direction: str) -> StubRange:
        assert direction == "up"
        r, c = self.row, self.column
        used = [row for (row, col) in self.sheet.values if col == c and row < r]
        return StubRange(self.sheet, [(max(used) if used else 1, c, max(used) if used else 1, c)])


class _SheetApi:
    def __init__(self, sheet: StubSheet) -> None:
        self._sheet = sheet
        self.ProtectContents = False
        self.password = False
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def Protect(self, **kw: Any) -> None:
        self.calls.append(("Protect", kw))
        self.ProtectContents = True

    def Unprotect(self, *args: Any) -> None:
        self.calls.append(("Unprotect", {}))
        if self.password:
            raise RuntimeError("The password you supplied is not correct.")
        self.ProtectContents = False


class StubTable:
    def __init__(self, sheet: StubSheet, r1: int, c1: int, r2: int, c2: int, show_totals: bool = False) -> None:
        self.sheet = sheet
        self.area = (r1, c1, r2, c2)
        self.show_totals = show_totals

    @property
    def range(self) -> StubRange:
        return StubRange(self.sheet, [self.area])

    def resize(self, rng: StubRange) -> None:
        self.area = rng.areas[0]


class StubChart:
    def __init__(self, sheet: StubSheet, left: float, top: float, width: float, height: float) -> None:
        self.sheet = sheet
        self.place = (left, top, width, height)
        self.chart_type: str | None = None
        self.source: str | None = None

    def set_source_data(self, rng: StubRange) -> None:
        self.source = rng.address

    def delete(self) -> None:
        self.sheet.charts.remove(self)

    @property
    def api(self) -> Any:
        raise AttributeError("no COM object model here")


class StubCharts(list):  # type: ignore[type-arg]
    def __init__(self, sheet: StubSheet) -> None:
        super().__init__()
        self.sheet = sheet

    def add(self, left: float = 0, top: float = 0, width: float = 355, height: float = 211) -> StubChart:
        chart = StubChart(self.sheet, left, top, width, height)
        self.append(chart)
        return chart


class StubName:
    def __init__(self, names: StubNames, name: str, refers_to: str) -> None:
        self.names, self.name, self.refers_to = names, name, refers_to

    def delete(self) -> None:
        del self.names.by_name[self.name]


class StubNames:
    def __init__(self) -> None:
        self.by_name: dict[str, StubName] = {}

    def __getitem__(self, name: str) -> StubName:
        return self.by_name[name]

    def add(self, name: str, refers_to: str) -> StubName:
        self.by_name[name] = StubName(self, name, refers_to)
        return self.by_name[name]


class StubSheet:
    def __init__(self, book: StubBook, name: str, grid: list[list[Any]] | None = None) -> None:
        self.book = book
        self.name = name
        self.values: dict[tuple[int, int], Any] = {}
        self.formats: dict[tuple[int, int], str] = {}
        self.colors: dict[tuple[int, int], Any] = {}
        self.bold: dict[tuple[int, int], bool] = {}
        self.locked: dict[tuple[int, int], bool] = {}
        self.widths: dict[int, float] = {}
        self.writes: list[tuple[int, int, int, int]] = []
        self.reads: list[Any] = []
        self.format_calls: list[Any] = []
        self.color_calls: list[Any] = []
        self.locked_areas: list[Any] = []
        self.clears = 0
        self.tables: list[StubTable] = []
        self.charts = StubCharts(self)
        self.api = _SheetApi(self)
        for i, row in enumerate(grid or [], start=1):
            for j, v in enumerate(row, start=1):
                if v is not None:
                    self.values[(i, j)] = v

    @property
    def used_range(self) -> StubRange:
        used = set(self.values) | set(self.formats) | set(self.colors)  # formatting makes a cell "used", as in Excel
        if not used:
            return StubRange(self, [(1, 1, 1, 1)])
        rows = [r for r, _ in used]
        cols = [c for _, c in used]
        return StubRange(self, [(min(rows), min(cols), max(rows), max(cols))])

    @property
    def cells(self) -> StubRange:
        return StubRange(self, [(1, 1, MAX_ROW, MAX_COL)])

    def range(self, first: Any, last: Any = None) -> StubRange:
        if isinstance(first, str):
            return StubRange(self, parse_address(first))
        r1, c1 = first
        r2, c2 = last if last is not None else first
        return StubRange(self, [(r1, c1, r2, c2)])

    def grid(self) -> list[list[Any]]:
        if not self.values:
            return []
        rows = max(r for r, _ in self.values)
        cols = max(c for _, c in self.values)
        return [[self.values.get((r, c)) for c in range(1, cols + 1)] for r in range(1, rows + 1)]


class StubSheets:
    def __init__(self, book: StubBook) -> None:
        self.book = book
        self._sheets: list[StubSheet] = []

    def __iter__(self) -> Any:
        return iter(list(self._sheets))

    def __len__(self) -> int:
        return len(self._sheets)

    def __getitem__(self, key: str | int) -> StubSheet:
        if isinstance(key, int):
            return self._sheets[key]
        for sheet in self._sheets:
            if sheet.name == key:
                return sheet
        raise KeyError(key)

    def add(self, name: str, before: Any = None, after: Any = None) -> StubSheet:
        sheet = StubSheet(self.book, name)
        at = self._sheets.index(after) + 1 if after is not None else 0
        self._sheets.insert(at, sheet)
        return sheet


class _AppApi:
    def __init__(self) -> None:
        self.open_result: Any = False
        self.dialogs: list[dict[str, Any]] = []

    def GetOpenFilename(self, **kw: Any) -> Any:
        self.dialogs.append(kw)
        return self.open_result


class StubApp:
    def __init__(self) -> None:
        self.alerts: list[tuple[str, str | None]] = []
        self.status_history: list[Any] = []
        self.screen_updating = True
        self.calculation = "automatic"
        self.calc_history: list[str] = []
        self.fail_alert = False
        self.api = _AppApi()

    def alert(self, prompt: str, title: str | None = None, buttons: str = "ok", mode: str | None = None,
              callback: str | None = None) -> str:
        if self.fail_alert:
            raise RuntimeError("no alert here")
        self.alerts.append((prompt, title))
        return "ok"

    @property
    def status_bar(self) -> Any:
        return self.status_history[-1] if self.status_history else False

    @status_bar.setter
    def status_bar(self, value: Any) -> None:
        self.status_history.append(value)


class StubBook:
    def __init__(self, sheets: dict[str, list[list[Any]]] | None = None, name: str = "销售.xlsm",
                 fullname: str | None = None) -> None:
        self.name = name
        self.fullname = fullname or f"/nowhere/{name}"
        self.app = StubApp()
        self.sheets = StubSheets(self)
        self.names = StubNames()
        self.macros: list[tuple[str, tuple[Any, ...]]] = []
        self.fail_macro = False
        for sheet_name, grid in (sheets or {}).items():
            self.sheets._sheets.append(StubSheet(self, sheet_name, grid))

    def macro(self, name: str) -> Any:
        def call(*args: Any) -> None:
            if self.fail_macro:
                raise RuntimeError("no such macro")
            self.macros.append((name, args))
        return call
