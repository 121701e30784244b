"""Append rows to one sheet of an existing .xlsx/.xlsm, and touch nothing else.

Used by the scorecard import: new 客户关系记录 entries go below the log's last row holding a value.
Only that sheet's part changes: its new <row> elements go into <sheetData> (empty formatted rows in
their place are replaced, so the new rows take the place a template reserved for them), its
<dimension> and its <autoFilter> grow to cover them. An Excel table (ListObject) over the log grows
with them (its table part: ref and autoFilter). Every other zip entry is copied byte for byte, in
its raw compressed form; the save is atomic (xlsx_writer's temporary file + fsync + os.replace).

New cells take the cell style their column already uses (a reserved empty row's cell, else the
last data row's, else the column's default style), so a date shows as a date and a code as text.
Only when a date lands in a column without any date style, and the workbook has no date style at
all, is one appended to styles.xml.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from xlsales.adapters import xlsx_reader
from xlsales.adapters.xlsx_writer import (
    REL_STYLES,
    REL_TABLE,
    NotAWorkbook,
    _atomic_write,
    _CellWriter,
    _check_usable,
    _Package,
    _rels_of,
    _resolve,
    _Styles,
    _ZipOut,
    column_letter,
)

_SHEET_DATA = re.compile(rb"<([\w.-]+:)?sheetData\b[^>]*?(/?)>")
_ROW_START = re.compile(rb"<(?:[\w.-]+:)?row(?=[\s>/])")
_R_ATTR = re.compile(rb"""\sr\s*=\s*["'](\d+)["']""")
_CONTENT = re.compile(rb"<(?:[\w.-]+:)?(?:v|f|is)[\s>/]")
_CELL_START = re.compile(rb"<(?:[\w.-]+:)?c\b[^>]*>|<(?:[\w.-]+:)?c\b[^>]*/>")
_CELL_REF = re.compile(rb"""\sr\s*=\s*["']\$?([A-Z]{1,3})\$?\d+["']""")
_S_ATTR = re.compile(rb"""\ss\s*=\s*["'](\d+)["']""")
_DIMENSION = re.compile(rb"""(<(?:[\w.-]+:)?dimension\b[^>]*?\sref\s*=\s*["'])([^"']*)(["'])""")
_AUTOFILTER = re.compile(rb"""(<(?:[\w.-]+:)?autoFilter\b[^>]*?\sref\s*=\s*["'])([^"']*)(["'])""")
_COL = re.compile(rb"<(?:[\w.-]+:)?col\b[^>]*>")
_AREA = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)(?::\$?([A-Z]{1,3})\$?(\d+))?$")


@dataclass
class Appended:
    """Where the rows went: sheet rows first..last (1-based)."""

    sheet: str
    first: int
    last: int


def _col_index(letters: str | bytes) -> int:
    text = letters.decode() if isinstance(letters, bytes) else letters
    index = 0
    for ch in text:
        index = index * 26 + (ord(ch) - 64)
    return index - 1


def _area(ref: str) -> tuple[int, int, int, int] | None:
    """"A1:I50" -> (first col, first row, last col, last row), columns 0-based."""
    m = _AREA.match(ref.strip())
    if m is None:
        return None
    c1, r1 = _col_index(m.group(1)), int(m.group(2))
    c2, r2 = (_col_index(m.group(3)), int(m.group(4))) if m.group(3) else (c1, r1)
    return c1, r1, c2, r2


def _ref(c1: int, r1: int, c2: int, r2: int) -> str:
    return f"{column_letter(c1)}{r1}:{column_letter(c2)}{r2}"


def _grow(ref: bytes, last_row: int, last_col: int | None = None, only_from: int | None = None) -> bytes:
    """A ref with its last row (and column) pushed out to cover new rows. `only_from`: grow only when
    the area currently ends at or below that row (it covered the old data)."""
    area = _area(ref.decode())
    if area is None:
        return ref
    c1, r1, c2, r2 = area
    if only_from is not None and r2 < only_from:
        return ref
    if r2 >= last_row and (last_col is None or c2 >= last_col):
        return ref
    return _ref(c1, r1, max(c2, last_col if last_col is not None else c2), max(r2, last_row)).encode()


def append_rows_to_sheet(path: str | Path, sheet: str, rows: Sequence[Sequence[Any]]) -> Appended:
    """Append `rows` (values from column A; None = empty cell) below the last row of `sheet` that holds
    a value. Raises NotAWorkbook / WorkbookLocked (xlsx_writer) with a Chinese message, or ValueError
    for a sheet that is missing or cannot take rows; the file is then left exactly as it was."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    before = _check_usable(path)
    date_styles, date1904 = _reader_styles(path)
    package = _Package(path)
    try:
        ref = next((s for s in package.sheets if s.name == sheet), None) or next(
            (s for s in package.sheets if s.name.strip() == sheet), None)
        if ref is None:
            raise ValueError(f"工作簿“{path.name}”里没有工作表“{sheet}”")
        if ref.part is None or not ref.rel_type.endswith("/worksheet") or not package.has(ref.part):
            raise ValueError(f"“{sheet}”不是普通工作表，无法追加行")
        part = package.by_lower[ref.part.lower()]
        if not rows:
            return Appended(ref.name, 0, -1)
        replaced: dict[str, bytes] = {}
        first, last = _plan(package, part, rows, date_styles, date1904, replaced)
        _atomic_write(path, before, lambda out: _write(package, replaced, out), before_replace=package.close)
        return Appended(ref.name, first, last)
    finally:
        package.close()


def _reader_styles(path: Path) -> tuple[list[bool], bool]:
    """The reader's view of the styles: which cell styles are dates, and the date system."""
    try:
        package = xlsx_reader._Package(path)
    except xlsx_reader.WorkbookUnusable as exc:
        raise NotAWorkbook(str(exc)) from None
    try:
        return list(package.date_styles), bool(package.date1904)
    finally:
        package.close()


def _write(package: _Package, replaced: dict[str, bytes], out: BinaryIO) -> None:
    zout = _ZipOut(out)
    for entry in package.entries:
        content = replaced.get(entry.name)
        if content is None:
            zout.copy_raw(package.fp, entry)
        else:
            zout.write(entry.name, [content], deflate=entry.method != 0)
    zout.close(package.comment)


def _cell_styles(row_xml: bytes) -> dict[int, int]:
    """Column index -> style index of the cells of one <row>."""
    out: dict[int, int] = {}
    for m in _CELL_START.finditer(row_xml):
        tag = m.group(0)
        col, style = _CELL_REF.search(tag), _S_ATTR.search(tag)
        if col and style:
            out[_col_index(col.group(1))] = int(style.group(1))
    return out


def _column_styles(head: bytes) -> dict[int, int]:
    """Column index -> default style, from <cols>."""
    out: dict[int, int] = {}
    for m in _COL.finditer(head):
        tag = m.group(0)
        lo, hi, style = (re.search(rb"""\s%s\s*=\s*["'](\d+)["']""" % name, tag) for name in (b"min", b"max", b"style"))
        if lo and hi and style:
            for j in range(int(lo.group(1)) - 1, min(int(hi.group(1)), 16_384)):
                out[j] = int(style.group(1))
    return out


def _plan(package: _Package, part: str, rows: Sequence[Sequence[Any]], date_styles: list[bool], date1904: bool,
          replaced: dict[str, bytes]) -> tuple[int, int]:
    xml = package.read(part)
    m = _SHEET_DATA.search(xml)
    if m is None:
        raise NotAWorkbook(f"工作表“{part}”的结构无法识别：请用 Excel 打开并另存后重试")
    prefix = (m.group(1) or b"").decode()
    if m.group(2):  # <sheetData/>
        head, body, tail = xml[:m.start()], b"", xml[m.end():]
        open_tag = m.group(0)[:-2].rstrip() + b">"
    else:
        close = xml.rfind(f"</{prefix}sheetData>".encode())
        if close < m.end():
            raise NotAWorkbook(f"工作表“{part}”的结构无法识别：请用 Excel 打开并另存后重试")
        head, body, tail = xml[:m.start()], xml[m.end():close], xml[close + len(f"</{prefix}sheetData>"):]
        open_tag = m.group(0)
    close_tag = f"</{prefix}sheetData>".encode()

    # the rows from the last one holding a value to the end, numbered (a big log is not scanned whole)
    spans, numbers, last_index = _tail_rows(body, prefix) or _all_rows(body)
    last_value = numbers[last_index] if last_index >= 0 else 0
    n = len(rows)
    first, last = last_value + 1, last_value + n

    # cell styles for the new cells: a reserved empty row's, the last data row's, the column's
    from_last = _cell_styles(body[spans[last_index][0]:spans[last_index][1]]) if last_index >= 0 and last_value > 1 else {}
    from_cols = _column_styles(head)
    reserved = {numbers[i]: _cell_styles(body[s:e]) for i, (s, e) in enumerate(spans) if first <= numbers[i] <= last}
    styles_part, styles = _styles_of(package)
    date_style: int | None = None

    def style_for(row: int, col: int, value: Any) -> int | None:
        nonlocal date_style
        style = reserved.get(row, {}).get(col, from_last.get(col, from_cols.get(col)))
        if isinstance(value, dt.date):
            if style is not None and style < len(date_styles) and date_styles[style]:
                return style
            for candidate in (from_last.get(col), from_cols.get(col)):
                if candidate is not None and candidate < len(date_styles) and date_styles[candidate]:
                    return candidate
            if date_style is None:
                date_style = next((i for i, d in enumerate(date_styles) if d), None)
                if date_style is None and styles is not None:
                    date_style = styles.xf("yyyy-mm-dd")
            return date_style
        return style

    writer = _CellWriter(date1904)
    ncols = 0
    new_rows: list[str] = []
    for k, values in enumerate(rows):
        r = first + k
        cells = []
        for j, value in enumerate(values):
            if value is None or (isinstance(value, str) and value == ""):
                continue
            ncols = max(ncols, j + 1)
            style = style_for(r, j, value)
            cells.append(writer.cell(f"{column_letter(j)}{r}", f' s="{style}"' if style is not None else "", value))
        new_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    new_xml = "".join(new_rows)
    if prefix:
        new_xml = re.sub(r"<(/?)(row|c|is|t|v)\b", rf"<\1{prefix}\2", new_xml)

    # the body: rows up to the last value, the new rows, then later rows (reserved empty ones dropped)
    cut = spans[last_index][1] if last_index >= 0 else 0
    rest = bytearray()
    position = cut
    for i in range(last_index + 1, len(spans)):
        s, e = spans[i]
        if first <= numbers[i] <= last:
            rest += body[position:s]
            position = e
    rest += body[position:]
    if last_index >= 0 and not body[spans[last_index][0]:cut].rstrip().endswith((b"</row>", b"/>")):
        raise NotAWorkbook(f"工作表“{part}”的结构无法识别：请用 Excel 打开并另存后重试")
    new_body = body[:cut] + new_xml.encode("utf-8") + bytes(rest)

    last_col = max(ncols - 1, 0)
    head = _DIMENSION.sub(lambda d: d.group(1) + _grow(d.group(2), last, last_col) + d.group(3), head, count=1)
    tail = _AUTOFILTER.sub(lambda a: a.group(1) + _grow(a.group(2), last, None, only_from=last_value) + a.group(3), tail,
                           count=1)
    replaced[part] = head + open_tag + new_body + close_tag + tail
    _grow_tables(package, part, last_value, last, replaced)
    if styles is not None and styles_part is not None:
        rendered = styles.render()
        if rendered is not None:
            replaced[styles_part] = rendered.encode("utf-8")
    return first, last


Spans = list[tuple[int, int]]


def _tail_rows(body: bytes, prefix: str) -> tuple[Spans, list[int], int] | None:
    """The <row> elements from the last one holding a value to the end, walking back from the end:
    their (start, end) in `body`, their numbers, and the index of the one with a value (0, or -1 when
    no row holds a value). None when a row has no r attribute (then every row must be numbered)."""
    tag = f"<{prefix}row".encode()
    found: list[tuple[int, int]] = []
    pos = len(body)
    while True:
        s = body.rfind(tag, 0, pos)
        if s < 0:
            break
        pos = s
        if body[s + len(tag):s + len(tag) + 1] not in (b" ", b">", b"/", b"\t", b"\n", b"\r"):
            continue
        end = body.find(b">", s)
        r = _R_ATTR.search(body, s, end if end >= 0 else len(body))
        if r is None:
            return None
        next_start = found[-1][0] if found else len(body)
        found.append((s, int(r.group(1))))
        if _CONTENT.search(body, s, next_start):
            break
    found.reverse()
    starts = [s for s, _ in found]
    spans = [(s, starts[i + 1] if i + 1 < len(starts) else len(body)) for i, s in enumerate(starts)]
    last_index = 0 if spans and _CONTENT.search(body, *spans[0]) else -1
    return spans, [n for _, n in found], last_index


def _all_rows(body: bytes) -> tuple[Spans, list[int], int]:
    starts = [s.start() for s in _ROW_START.finditer(body)]
    spans = [(s, starts[i + 1] if i + 1 < len(starts) else len(body)) for i, s in enumerate(starts)]
    numbers = _row_numbers(body, starts)
    last_index = next((i for i in range(len(spans) - 1, -1, -1) if _CONTENT.search(body, *spans[i])), -1)
    return spans, numbers, last_index


def _row_numbers(body: bytes, starts: list[int]) -> list[int]:
    """Each <row>'s number: its r attribute, else one more than the row before."""
    numbers: list[int] = []
    previous = 0
    for s in starts:
        end = body.find(b">", s)
        r = _R_ATTR.search(body, s, end if end >= 0 else len(body))
        previous = int(r.group(1)) if r else previous + 1
        numbers.append(previous)
    return numbers


def _styles_of(package: _Package) -> tuple[str | None, _Styles | None]:
    rel = next((r for r in package.workbook_rels if r.type == REL_STYLES and not r.external), None)
    if rel is None:
        return None, None
    part = _resolve(package.workbook_part, rel.target)
    if not package.has(part):
        return None, None
    part = package.by_lower[part.lower()]
    return part, _Styles(package.read(part).decode("utf-8"))


_TABLE_REF = re.compile(rb"""(<(?:[\w.-]+:)?table\b[^>]*?\sref\s*=\s*["'])([^"']*)(["'])""")
_TOTALS = re.compile(rb"""\stotalsRowCount\s*=\s*["']([1-9]\d*)["']""")


def _grow_tables(package: _Package, part: str, last_value: int, last: int, replaced: dict[str, bytes]) -> None:
    """Excel tables on the sheet that ended at (or below) the old last row grow over the new rows."""
    if not package.has(_rels_of(part)):
        return
    for rel in package.rels(part):
        if rel.external or rel.type != REL_TABLE:
            continue
        table_part = _resolve(part, rel.target)
        if not package.has(table_part):
            continue
        table_part = package.by_lower[table_part.lower()]
        xml = package.read(table_part)
        m = _TABLE_REF.search(xml)
        area = _area(m.group(2).decode()) if m else None
        if m is None or area is None:
            continue
        _, r1, _, r2 = area
        if r2 < last_value or r2 >= last or r1 > last_value:
            continue
        root_end = xml.find(b">", m.end())
        if _TOTALS.search(xml, 0, root_end if root_end >= 0 else len(xml)):
            name = posixpath.basename(table_part)
            raise ValueError(f"“{name}”表格有汇总行，新行无法追加到汇总行下面：请先取消表格的汇总行，再导入")
        xml = _TABLE_REF.sub(lambda t: t.group(1) + _grow(t.group(2), last) + t.group(3), xml, count=1)
        xml = _AUTOFILTER.sub(lambda a: a.group(1) + _grow(a.group(2), last) + a.group(3), xml, count=1)
        replaced[table_part] = xml
