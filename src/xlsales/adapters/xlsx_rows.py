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
        as UTF-8, written by polars straight into a buffer: 提成发放表 is about 100 MB of XML, and a
        trip through Python strings (to_list, join, encode) cost 0.4 s more; through one joined
        string and pyarrow's view of it, 0.1 s more and pyarrow's import (0.17 s).
        Polars is asked three times a block (which cells are plain, where the others are, the rows),
        each a query over every column: one eager call per column and check cost twice the time."""
        ncols = len(self.letters)
        keys = list(dict.fromkeys(fills))  # in order of first use, as the loop registers them
        by_key = [self.styles(k) for k in keys]
        slot = {k: i for i, k in enumerate(keys)}
        columns = columns + [(None,) * n] * (ncols - len(columns))

        data: dict[str, pl.Series] = {
            "r": pl.int_range(first_row, first_row + n, eager=True).cast(pl.String),
            "fill": pl.Series([slot[f] for f in fills], dtype=pl.UInt32),
            "has_fill": pl.Series([f is not None for f in fills], dtype=pl.Boolean)}
        checks: list[pl.Expr] = []
        kinds: list[str | None] = []  # "text"/"number": a column polars formats; None: every cell apart
        for j, values in enumerate(columns):
            kind, raw, plain, none = self._column(values, pl.col(f"raw{j}"))
            kinds.append(kind)
            if kind is None:
                data[f"n{j}"] = none
                continue
            data[f"raw{j}"] = raw
            checks += [plain.alias(f"v{j}"), pl.col(f"raw{j}").is_null().alias(f"n{j}")]
        frame = pl.DataFrame(data).with_columns(checks)

        # the cells polars does not format: where they are, then each made by the writer's own function
        asked = [j for j in range(ncols) if kinds[j] is not None]
        where = frame.select([(pl.col(f"v{j}").is_null() & ~pl.col(f"n{j}")).arg_true().implode().alias(f"{j}")
                              for j in asked]).row(0) if asked else ()
        others = dict(zip(asked, where, strict=True))
        numbers = range(first_row, first_row + n)
        special: dict[str, pl.Series] = {}
        for j, values in enumerate(columns):
            rest = others[j] if kinds[j] is not None else [i for i, v in enumerate(values) if v is not None]
            if rest:
                cells: list[str | None] = [None] * n
                letter, cell = self.letters[j], self.cell
                for i in rest:
                    cells[i] = cell(f"{letter}{numbers[i]}", by_key[slot[fills[i]]][j], values[i])
                special[f"x{j}"] = pl.Series(cells, dtype=pl.String)
        if special:
            frame = frame.with_columns(**special)

        pieces: list[pl.Expr] = [pl.lit('<row r="'), pl.col("r"), pl.lit('">')]
        cells_of: list[pl.Expr] = []
        for j in range(ncols):
            style = pl.col("fill").replace_strict(list(range(len(keys))), [styles[j] for styles in by_key],
                                                  return_dtype=pl.String) if len(keys) > 1 else pl.lit(by_key[0][j])
            head = [pl.lit(f'<c r="{self.letters[j]}'), pl.col("r"), pl.lit('"'), style]
            if kinds[j] == "text":
                body = [*head, pl.lit(' t="inlineStr"><is><t>'), pl.col(f"v{j}"), pl.lit("</t></is></c>")]
            else:
                body = [*head, pl.lit("><v>"), pl.col(f"v{j}"), pl.lit("</v></c>")]
            if kinds[j] is not None and not others[j] and not data[f"raw{j}"].has_nulls():
                cells_of.append(pl.concat_str(body).alias(f"c{j}"))  # every cell plain
                continue
            blank_wanted = pl.lit(True) if self.unlocked[j] else pl.col("has_fill")
            made = pl.col(f"x{j}") if f"x{j}" in special else pl.lit(None, dtype=pl.String)
            cell_xml = pl.when(pl.col(f"n{j}") & blank_wanted).then(pl.concat_str([*head, pl.lit("/>")]))
            if kinds[j] is not None:
                cell_xml = pl.when(pl.col(f"v{j}").is_not_null()).then(pl.concat_str(body)).when(
                    made.is_not_null()).then(made).when(pl.col(f"n{j}") & blank_wanted).then(
                    pl.concat_str([*head, pl.lit("/>")]))
            else:
                cell_xml = pl.when(made.is_not_null()).then(made).when(pl.col(f"n{j}") & blank_wanted).then(
                    pl.concat_str([*head, pl.lit("/>")]))
            cells_of.append(cell_xml.otherwise(pl.lit("")).alias(f"c{j}"))
        pieces += [pl.col(f"c{j}") for j in range(ncols)]
        pieces.append(pl.lit("</row>"))
        rows = frame.with_columns(cells_of).select(pl.concat_str(pieces).alias("xml"))
        out = io.BytesIO()  # each row's XML back to back: one column, no header, quotes or line ends
        rows.write_csv(out, include_header=False, quote_style="never", line_terminator="")
        return out.getbuffer()

    def _column(self, values: Sequence[Any], raw: pl.Expr) -> tuple[str | None, pl.Series | None, pl.Expr,
                                                                     pl.Series | None]:
        """(kind, the values as polars holds them, which of them are plain as the cell's inner text or
        null, where the value is None). kind "text" or "number" for a column of one type polars can
        format; None (and where the values are None) for any other: every cell is made apart.
        `raw`: the column the values will be in."""
        types = set(map(type, values)) - {_NONE}
        try:
            if types == {str}:
                series = pl.Series(values, dtype=pl.String)
                plain = ~raw.str.contains(_NEEDS_CARE) & (raw.str.len_chars() <= self.max_chars)
                return "text", series, pl.when(plain).then(raw), None
            if types == {Decimal}:
                series = pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)
                ok = raw.str.contains(r"[0-9]$") & ((raw == "0") | ~raw.str.contains(_ZERO))
                return "number", series, pl.when(ok).then(raw), None
            if types == {dt.date}:
                series = pl.Series([None if v is None else v.toordinal() - self.epoch for v in values], dtype=pl.Int64)
                return "number", series, pl.when(raw >= self.min_serial).then(raw.cast(pl.String)), None
            if types == {int}:
                return "number", pl.Series(values, dtype=pl.Int64), raw.cast(pl.String), None
        except (pl.exceptions.PolarsError, OverflowError, TypeError, ValueError):
            pass  # e.g. text with a lone surrogate, an int beyond 64 bits: all per cell
        return None, None, pl.lit(None), pl.Series([v is None for v in values], dtype=pl.Boolean)


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
