"""The rows of a big result sheet as sheetData XML, formatted a column at a time by polars.

The writer's per-cell loop costs about 0.6 µs a cell, and 提成发放表 of a 1M-row workbook has 1.5M
cells. Here each column is looked at once: text, Decimal, date and int columns have their common
cells formatted by polars' string kernels. Every other cell (text that needs escaping or
xml:space, a zero or NaN Decimal, a date before 1900-03-01, a value of any other type or a
mixed column) goes through the writer's own per-cell function, so the XML is byte for byte what
the loop writes (tests/test_writer.py checks that on generated rows).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any, overload

import polars as pl

# text that can be written as it is: no character to escape or drop, no _xHHHH_ look-alike, no
# space or tab at either end (those need xml:space), not empty, not over Excel's cell limit
_NEEDS_CARE = r"[&<>\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]|_x|^[ \t]|[ \t]$|^$"
_ZERO = r"^-?0(\.0+)?(E[+-]?[0-9]+)?$"  # str() of a zero Decimal: the loop writes "0" for these
_NONE = type(None)

CellFn = Callable[[str, str, Any], str]


_DTYPES: dict[str, type[pl.DataType]] = {"text": pl.String, "decimal": pl.String, "date": pl.Int64, "int": pl.Int64}
_KIND_OF: dict[type, str] = {str: "text", Decimal: "decimal", dt.date: "date", int: "int"}


def raw_column(values: Sequence[Any], kind: str | None = None) -> tuple[str | None, pl.Series | None]:
    """A column's values as polars holds them for formatting, and their kind: "text" (str),
    "decimal" (Decimal, as its str()), "date" (date, as its day ordinal) or "int"; None values are
    null. (None, None) for any other column (mixed, other types, or values polars cannot hold,
    such as text with a lone surrogate or an int beyond 64 bits): its cells are made one by one.
    `kind`: the kind the column must have (a column of None only is then a null one of that kind)."""
    types = set(map(type, values)) - {_NONE}
    found = _KIND_OF.get(next(iter(types))) if len(types) == 1 else kind if not types else None
    if found is None or (kind is not None and found != kind):
        return None, None
    try:
        if found == "decimal":
            values = [None if v is None else str(v) for v in values]
        elif found == "date":
            values = [None if v is None else v.toordinal() for v in values]
        return found, pl.Series(values, dtype=_DTYPES[found])
    except (pl.exceptions.PolarsError, OverflowError, TypeError, ValueError):
        return None, None


_FROM_RAW: dict[str, Callable[[Any], Any]] = {"text": lambda v: v, "decimal": Decimal, "date": dt.date.fromordinal,
                                              "int": lambda v: v}


class SheetRows(Sequence[list[Any]]):
    """A sheet's rows held some other way than as a list of rows (ColumnRows, FrameRows): each row
    is made, as a list, only when something indexes or iterates them."""

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def width(self) -> int:
        """How many columns there are."""
        raise NotImplementedError

    def _rows(self, index: slice) -> list[list[Any]]:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> list[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[Any]]: ...

    def __getitem__(self, index: int | slice) -> list[Any] | list[list[Any]]:
        if isinstance(index, slice):
            return self._rows(index)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(index)
        at = index % n
        return self._rows(slice(at, at + 1))[0]

    def __iter__(self) -> Iterator[list[Any]]:
        for start in range(0, len(self), 10_000):
            yield from self._rows(slice(start, start + 10_000))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(
            a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


class FrameRows(SheetRows):
    """A sheet's rows as one polars frame of its columns, each in the form raw_column gives (its
    kind in `kinds`): the writer formats it without a Python object per cell, and rows are made
    back as exactly the Python values that were put in. `FrameRows.of(columns)` makes one from
    Python columns, or gives None if a column has no kind."""

    def __init__(self, frame: pl.DataFrame, kinds: Sequence[str]) -> None:
        if frame.width != len(kinds):
            raise ValueError("FrameRows: one kind per column")
        self.frame, self.kinds = frame, list(kinds)

    @classmethod
    def of(cls, columns: Sequence[Sequence[Any]], kinds: Sequence[str] | None = None) -> FrameRows | None:
        """`kinds`: what each column must be (else None is given)."""
        made = [raw_column(c, None if kinds is None else kinds[j]) for j, c in enumerate(columns)]
        if any(kind is None for kind, _ in made):
            return None
        return cls(pl.DataFrame({f"c{j}": raw for j, (_, raw) in enumerate(made)}),
                   [kind for kind, _ in made])  # type: ignore[misc]

    def __len__(self) -> int:
        return self.frame.height

    @property
    def width(self) -> int:
        return self.frame.width

    def _rows(self, index: slice) -> list[list[Any]]:
        back = [_FROM_RAW[k] for k in self.kinds]
        return [[None if v is None else f(v) for f, v in zip(back, row, strict=True)]
                for row in self.frame[index].rows()]

    def __repr__(self) -> str:
        return f"FrameRows({self.frame.width} columns × {len(self)} rows)"


class _Column:
    """One column of a block: its kind and polars values (raw_column), and its Python values when
    they are at hand (otherwise they are made back from the polars ones, for the few cells that
    need the writer's own function)."""

    def __init__(self, kind: str | None, raw: pl.Series | None, values: Sequence[Any] | None) -> None:
        self.kind, self.raw, self.values = kind, raw, values

    @classmethod
    def of(cls, values: Sequence[Any]) -> _Column:
        kind, raw = raw_column(values)
        return cls(kind, raw, values)

    def value(self, i: int) -> Any:
        if self.values is not None:
            return self.values[i]
        assert self.raw is not None and self.kind is not None
        v = self.raw[i]
        return None if v is None else _FROM_RAW[self.kind](v)


class RowsXml:
    """Formats the rows of one sheet; `styles(fill)` gives the ` s="…"` of each column for a row
    fill (the writer registers styles on first use, in row order, as its loop does)."""

    def __init__(self, letters: list[str], styles: Callable[[str | None], list[str]], unlocked: list[bool],
                 cell: CellFn, epoch: int, min_serial: int, max_chars: int) -> None:
        self.letters, self.styles, self.unlocked, self.cell = letters, styles, unlocked, cell
        self.epoch, self.min_serial, self.max_chars = epoch, min_serial, max_chars

    def block(self, columns: list[_Column], n: int, fills: Sequence[str | None], first_row: int) -> memoryview:
        """The <row> elements of `n` rows given by their columns (sheet row numbers from `first_row`),
        as UTF-8, written by polars straight into a buffer: 提成发放表 is about 100 MB of XML, and a
        trip through Python strings (to_list, join, encode) cost 0.4 s more; through one joined
        string and pyarrow's view of it, 0.1 s more and pyarrow's import (0.17 s).
        Polars is asked three times a block (which cells are plain, where the others are, the rows),
        each a query over every column: one eager call per column and check cost twice the time."""
        ncols = len(self.letters)
        keys = list(dict.fromkeys(fills))  # in order of first use, as the loop registers them
        by_key = [self.styles(k) for k in keys]
        slot = {k: i for i, k in enumerate(keys)}
        columns = columns + [_Column(None, None, (None,) * n)] * (ncols - len(columns))

        data: dict[str, pl.Series] = {
            "r": pl.int_range(first_row, first_row + n, eager=True).cast(pl.String),
            "fill": pl.Series([slot[f] for f in fills], dtype=pl.UInt32),
            "has_fill": pl.Series([f is not None for f in fills], dtype=pl.Boolean)}
        checks: list[pl.Expr] = []
        for j, column in enumerate(columns):
            if column.kind is None:
                assert column.values is not None
                data[f"n{j}"] = pl.Series([v is None for v in column.values], dtype=pl.Boolean)
                continue
            assert column.raw is not None
            data[f"raw{j}"] = column.raw.alias(f"raw{j}")
            checks += [self._plain(column.kind, pl.col(f"raw{j}")).alias(f"v{j}"),
                       pl.col(f"raw{j}").is_null().alias(f"n{j}")]
        frame = pl.DataFrame(data).with_columns(checks)

        # the cells polars does not format: where they are, then each made by the writer's own function
        asked = [j for j in range(ncols) if columns[j].kind is not None]
        where = frame.select([(pl.col(f"v{j}").is_null() & ~pl.col(f"n{j}")).arg_true().implode().alias(f"{j}")
                              for j in asked]).row(0) if asked else ()
        others = dict(zip(asked, where, strict=True))
        numbers = range(first_row, first_row + n)
        special: dict[str, pl.Series] = {}
        for j, column in enumerate(columns):
            if column.kind is not None:
                rest = others[j]
            else:
                assert column.values is not None
                rest = [i for i, v in enumerate(column.values) if v is not None]
            if rest:
                cells: list[str | None] = [None] * n
                letter, cell = self.letters[j], self.cell
                for i in rest:  # as a piece of its row's field (see below): ">" first, its own last ">" left out
                    cells[i] = ">" + cell(f"{letter}{numbers[i]}", by_key[slot[fills[i]]][j], column.value(i))[:-1]
                special[f"x{j}"] = pl.Series(cells, dtype=pl.String)
        if special:
            frame = frame.with_columns(**special)

        # The rows go out as CSV with ">" between fields and after each row (no quotes): a field is
        # an element's XML without its last ">". A column whose every cell is plain is a field of its
        # own; any other column's cells (which may be absent) join the field before them, each as
        # ">" and its XML without the last ">", or "" when absent. Polars writes the fields as they
        # are: no per-row string is made (0.1 s on 提成发放表 of a 1M-row workbook, and a slower CSV).
        fields: list[pl.Expr] = []
        group: list[pl.Expr] = [pl.lit('<row r="'), pl.col("r"), pl.lit('"')]
        for j, column in enumerate(columns):
            style = pl.col("fill").replace_strict(list(range(len(keys))), [styles[j] for styles in by_key],
                                                  return_dtype=pl.String) if len(keys) > 1 else pl.lit(by_key[0][j])
            head = [pl.lit(f'<c r="{self.letters[j]}'), pl.col("r"), pl.lit('"'), style]
            if column.kind == "text":
                body = [*head, pl.lit(' t="inlineStr"><is><t>'), pl.col(f"v{j}"), pl.lit("</t></is></c")]
            else:
                body = [*head, pl.lit("><v>"), pl.col(f"v{j}"), pl.lit("</v></c")]
            if column.kind is not None and not others[j] and not data[f"raw{j}"].has_nulls():
                fields.append(pl.concat_str(group).alias(f"f{len(fields)}"))  # every cell plain
                group = body
                continue
            # a cell is plain, made apart or empty (those three exclude each other), else absent
            blank_wanted = pl.lit(True) if self.unlocked[j] else pl.col("has_fill")
            made = pl.col(f"x{j}") if f"x{j}" in special else pl.lit(None, dtype=pl.String)
            cell_xml = pl.when(made.is_not_null()).then(made)
            if column.kind is not None:
                cell_xml = cell_xml.when(pl.col(f"v{j}").is_not_null()).then(pl.concat_str([pl.lit(">"), *body]))
            cell_xml = cell_xml.when(pl.col(f"n{j}") & blank_wanted).then(pl.concat_str([pl.lit(">"), *head, pl.lit("/")]))
            group.append(cell_xml.otherwise(pl.lit("")))
        fields += [pl.concat_str(group).alias(f"f{len(fields)}"), pl.lit("</row").alias(f"f{len(fields) + 1}")]
        out = io.BytesIO()
        frame.select(fields).write_csv(out, include_header=False, quote_style="never", separator=">", line_terminator=">")
        return out.getbuffer()

    def _plain(self, kind: str, raw: pl.Expr) -> pl.Expr:
        """A cell's inner text where polars can write it as the loop would, null elsewhere."""
        if kind == "text":
            return pl.when(~raw.str.contains(_NEEDS_CARE) & (raw.str.len_chars() <= self.max_chars)).then(raw)
        if kind == "decimal":
            return pl.when(raw.str.contains(r"[0-9]$") & ((raw == "0") | ~raw.str.contains(_ZERO))).then(raw)
        if kind == "date":
            serial = raw - self.epoch
            return pl.when(serial >= self.min_serial).then(serial.cast(pl.String))
        return raw.cast(pl.String)


def render_rows(rows: Sequence[Sequence[Any]], fills: Sequence[str | None] | None, rows_xml: RowsXml,
                block: int) -> Iterator[memoryview]:
    """Every row's XML, `block` rows at a time (memory stays bounded), in sheet order from row 2.
    FrameRows are sliced as they are, ColumnRows by column; other rows are turned into columns
    block by block (short rows padded with None, as the loop treats them)."""
    by_column = getattr(rows, "columns", None)
    for start in range(0, len(rows), block):
        n = min(block, len(rows) - start)
        if isinstance(rows, FrameRows):
            part = rows.frame.slice(start, block)
            columns = [_Column(kind, part.to_series(j), None) for j, kind in enumerate(rows.kinds)]
        elif by_column is not None:
            columns = [_Column.of(c[start:start + block]) for c in by_column]
        else:
            columns = [_Column.of(c) for c in itertools.zip_longest(*rows[start:start + block], fillvalue=None)]
        part_fills = [None] * n if fills is None else list(fills[start:start + block])
        part_fills += [None] * (n - len(part_fills))
        yield rows_xml.block(columns, n, part_fills, start + 2)
