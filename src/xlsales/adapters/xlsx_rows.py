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
import itertools
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import polars as pl

# text that can be written as it is: no character to escape or drop, no _xHHHH_ look-alike, no
# space or tab at either end (those need xml:space), not empty, not over Excel's cell limit
_NEEDS_CARE = r"[&<>\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]|_x|^[ \t]|[ \t]$|^$"
_ZERO = r"^-?0(\.0+)?(E[+-]?[0-9]+)?$"  # str() of a zero Decimal: the loop writes "0" for these
_NONE = type(None)

CellFn = Callable[[str, str, Any], str]


class RowsXml:
    """Formats the rows of one sheet; `styles(fill)` gives the ` s="…"` of each column for a row
    fill (the writer registers styles on first use, in row order, as its loop does)."""

    def __init__(self, letters: list[str], styles: Callable[[str | None], list[str]], unlocked: list[bool],
                 cell: CellFn, epoch: int, min_serial: int, max_chars: int) -> None:
        self.letters, self.styles, self.unlocked, self.cell = letters, styles, unlocked, cell
        self.epoch, self.min_serial, self.max_chars = epoch, min_serial, max_chars

    def block(self, columns: list[Sequence[Any]], n: int, fills: Sequence[str | None], first_row: int) -> memoryview:
        """The <row> elements of `n` rows given by their columns (sheet row numbers from `first_row`),
        as UTF-8. Taken from polars' own buffer: 提成发放表 is about 100 MB of XML, and a trip
        through Python strings (to_list, join, encode) cost 0.4 s more."""
        ncols = len(self.letters)
        keys = list(dict.fromkeys(fills))  # in order of first use, as the loop registers them
        by_key = [self.styles(k) for k in keys]
        slot = {k: i for i, k in enumerate(keys)}
        fill_index = pl.Series("fill", [slot[f] for f in fills], dtype=pl.UInt32)
        has_fill = pl.Series("has_fill", [f is not None for f in fills], dtype=pl.Boolean)
        numbers = list(range(first_row, first_row + n))
        columns = columns + [(None,) * n] * (ncols - len(columns))

        data: dict[str, pl.Series] = {"r": pl.int_range(first_row, first_row + n, eager=True).cast(pl.String),
                                      "has_fill": has_fill}
        pieces: list[pl.Expr] = [pl.lit('<row r="'), pl.col("r"), pl.lit('">')]
        mixed: list[pl.Expr] = []  # cells of columns that are not all plain, made apart
        for j, values in enumerate(columns):
            style = pl.Series([styles[j] for styles in by_key], dtype=pl.String).gather(fill_index)
            plain, kind, special, none = self._column(values, j, fills, by_key, slot, numbers)
            data[f"s{j}"], data[f"v{j}"] = style, plain
            head = [pl.lit(f'<c r="{self.letters[j]}'), pl.col("r"), pl.lit('"'), pl.col(f"s{j}")]
            if kind == "text":
                body = [*head, pl.lit(' t="inlineStr"><is><t>'), pl.col(f"v{j}"), pl.lit("</t></is></c>")]
            else:
                body = [*head, pl.lit("><v>"), pl.col(f"v{j}"), pl.lit("</v></c>")]
            if plain.null_count() == 0:  # every cell plain: straight into the row, made once
                pieces += body
                continue
            data[f"x{j}"], data[f"n{j}"] = special, none
            blank_wanted = pl.lit(True) if self.unlocked[j] else pl.col("has_fill")
            mixed.append(pl.when(pl.col(f"v{j}").is_not_null()).then(pl.concat_str(body))
                         .when(pl.col(f"x{j}").is_not_null()).then(pl.col(f"x{j}"))
                         .when(pl.col(f"n{j}") & blank_wanted).then(pl.concat_str([*head, pl.lit("/>")]))
                         .otherwise(pl.lit("")).alias(f"c{j}"))
            pieces.append(pl.col(f"c{j}"))
        pieces.append(pl.lit("</row>"))
        frame = pl.DataFrame(data).with_columns(mixed) if mixed else pl.DataFrame(data)
        row = pl.concat_str(pieces)
        xml = frame.select(row.str.join("").alias("xml"))["xml"]
        value = xml.to_arrow()[0]
        if hasattr(value, "as_buffer"):  # (large) string: a view of polars' buffer
            return memoryview(value.as_buffer())
        return memoryview(str(xml.item()).encode("utf-8"))  # other Arrow string layouts: a copy

    def _column(self, values: Sequence[Any], j: int, fills: Sequence[str | None], by_key: list[list[str]],
                slot: dict[str | None, int], numbers: list[int]) -> tuple[pl.Series, str, pl.Series, pl.Series]:
        """(the plain cells' inner text, "text" or "number", the other cells' whole XML, where the
        value is None); the first two series have a value where their kind of cell is, null elsewhere."""
        n = len(values)
        types = set(map(type, values)) - {_NONE}
        plain: pl.Series | None = None
        none: pl.Series | None = None
        kind = "number"
        nothing = pl.repeat(None, n, dtype=pl.String, eager=True)
        try:
            if types == {str}:
                kind = "text"
                text = pl.Series(values, dtype=pl.String)
                ok = ~text.str.contains(_NEEDS_CARE) & (text.str.len_chars() <= self.max_chars)
                plain, none = text.zip_with(ok.fill_null(False), nothing), text.is_null()
            elif types == {Decimal}:
                text = pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)
                ok = text.str.contains(r"[0-9]$") & ((text == "0") | ~text.str.contains(_ZERO))
                plain, none = text.zip_with(ok.fill_null(False), nothing), text.is_null()
            elif types == {dt.date}:
                serial = pl.Series([None if v is None else v.toordinal() - self.epoch for v in values], dtype=pl.Int64)
                plain = serial.cast(pl.String).zip_with((serial >= self.min_serial).fill_null(False), nothing)
                none = serial.is_null()
            elif types == {int}:
                plain = pl.Series(values, dtype=pl.Int64).cast(pl.String)
                none = plain.is_null()
        except (pl.exceptions.PolarsError, OverflowError, TypeError, ValueError):
            plain = None  # e.g. text with a lone surrogate, an int beyond 64 bits: all per cell
        if plain is None or none is None:
            kind, plain = "number", nothing
            none = pl.Series([v is None for v in values], dtype=pl.Boolean)
            rest = [i for i, v in enumerate(values) if v is not None]
        else:
            rest = (plain.is_null() & ~none).arg_true().to_list()
        special: list[str | None] = [None] * n
        letter, cell = self.letters[j], self.cell
        for i in rest:
            special[i] = cell(f"{letter}{numbers[i]}", by_key[slot[fills[i]]][j], values[i])
        return plain, kind, pl.Series(special, dtype=pl.String), none


def render_rows(rows: Sequence[Sequence[Any]], fills: Sequence[str | None] | None, rows_xml: RowsXml,
                block: int) -> Iterator[memoryview]:
    """Every row's XML, `block` rows at a time (memory stays bounded), in sheet order from row 2.
    Rows given as ColumnRows are sliced by column; others are turned into columns block by block
    (short rows padded with None, as the loop treats them)."""
    by_column = getattr(rows, "columns", None)
    for start in range(0, len(rows), block):
        if by_column is not None:
            part: list[Sequence[Any]] = [c[start:start + block] for c in by_column]
            n = len(part[0]) if part else 0
        else:
            chunk = rows[start:start + block]
            n = len(chunk)
            part = list(itertools.zip_longest(*chunk, fillvalue=None)) if n else []
        part_fills = [None] * n if fills is None else list(fills[start:start + block])
        part_fills += [None] * (n - len(part_fills))
        yield rows_xml.block(part, n, part_fills, start + 2)
