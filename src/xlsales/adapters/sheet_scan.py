"""Some columns of a big sheet, found in its XML with numpy instead of an XML parser.

The log's second process (log_prefetch) reads a million-row 客户关系记录 this way before it asks
calamine: on the benchmark's 264 MB of sheet XML the scan takes about half of calamine's CPU and
less than two thirds of its memory (see the README's speed section). It gives exactly what
calamine's text-typed columns give the reader (fastexcel `dtypes="string"`): one text column per
header, row i being sheet row i + 2, shared strings as their text, numbers as calamine writes them
("7", "1.5"), date-styled numbers as "YYYY-MM-DD HH:MM:SS", empty cells as null.

It takes only the plain XML that spreadsheet programs write for typed values: <row r="N"> elements
holding <c r="A1"> cells with optional s="…" and t="s"/"n" attributes and an optional <v>, with
nothing between the tags. Anything else (a formula, an inline string, a boolean or error cell, text
in a number cell, white space between tags, prefixed element names, rows or cells out of order)
raises NotPlain, and the caller reads the sheet with calamine as before: the scan only ever saves
time.

The work is a handful of whole-array passes per block of rows: every "<" is found once, the
element after it is told by its next byte, and the cells' attributes and values are read by
walking all cells one byte position at a time (a value is a few digits: a shared-string index or
a serial). A block is about 4 MB of XML, so memory stays bounded whatever the sheet's size.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xlsales.adapters.xlsx_package import _MAX_SERIAL, _CellIssue, _Package, serial_to_date

try:
    from isal import isal_zlib as _inflater  # ISA-L inflates the sheet about twice as fast as zlib
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _inflater = zlib  # type: ignore[assignment]

Ints = npt.NDArray[np.int64]
Codes = npt.NDArray[np.int32]
Bytes = npt.NDArray[np.uint8]

READ_BYTES = 1 << 19  # compressed bytes inflated at a time: about 4 MB of sheet XML
MAX_DIGITS = 15  # a value with more digits is read by Python (a double keeps 15)
_LT, _GT, _SLASH, _QUOTE = 60, 62, 47, 34
_C, _V, _R, _S, _T, _N = 99, 118, 114, 115, 116, 110


class NotPlain(Exception):
    """The sheet holds XML this scan does not take; calamine reads it instead."""


def scan_text_columns(path: str | Path, sheet: str, wanted: list[str] | list[int]) -> Any:
    """Columns of `sheet` (by header text in row 1, or 0-based index) as a pyarrow Table of text
    columns named by their headers, as calamine gives them. Raises NotPlain (or an OSError /
    zipfile error for a file it cannot read) when the caller should ask calamine instead."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names, columns = scan_columns(path, sheet, wanted)
    arrays = []
    while columns:  # each column's codes freed once its text column is made
        codes, texts = columns.pop(0)
        arrays.append(pc.take(pa.array(texts, pa.string()), pa.array(codes, mask=codes < 0)))
    return pa.table(dict(zip(names, arrays, strict=True))) if names else pa.table({})


def scan_columns(path: str | Path, sheet: str, wanted: list[str] | list[int]) -> tuple[list[str], list[tuple[Codes, list[str]]]]:
    """The scan itself, without pyarrow: the header of each wanted column, and for each one its
    cells as codes into a list of texts (-1: empty), one code per sheet row from row 2."""
    package = _Package(Path(path))
    try:
        part = package.sheet_part(sheet)
        if part is None:
            raise NotPlain(f"no sheet {sheet}")
        scan = _Scan(package, wanted)
        for block in _row_blocks(_inflated(package, part)):
            scan.block(block)
        return scan.finish()
    finally:
        package.close()


# --- the sheet's XML, inflated, in blocks of whole rows ------------------------------------------

def _inflated(package: _Package, part: str) -> Iterator[bytes]:
    """The part's bytes, inflated a piece at a time (ISA-L on the raw deflate stream, CRC checked)."""
    info = package.zip.getinfo(package.member(part))
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
        with package.zip.open(info) as stream:
            while piece := stream.read(READ_BYTES * 8):
                yield piece
        return
    with open(package.path, "rb") as raw:
        raw.seek(info.header_offset)
        head = raw.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise NotPlain("local header")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        raw.seek(info.header_offset + 30 + name_len + extra_len)
        inflater = _inflater.decompressobj(-15)
        left, crc = info.compress_size, 0
        while left > 0:
            data = raw.read(min(READ_BYTES, left))
            if not data:
                raise NotPlain("truncated part")
            left -= len(data)
            piece = inflater.decompress(data)
            crc = _inflater.crc32(piece, crc)
            yield piece
        piece = inflater.flush()
        crc = _inflater.crc32(piece, crc)
        yield piece
    if crc != info.CRC:
        raise NotPlain("CRC")


def _row_blocks(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """The inside of <sheetData>, cut after a </row>: each block holds whole elements only."""
    buf = b""
    started = False
    for piece in pieces:
        buf = buf + piece if buf else piece
        if not started:
            at = buf.find(b"<sheetData")
            end = buf.find(b">", at) if at >= 0 else -1
            if end < 0:
                continue
            if buf[end - 1] == _SLASH:  # <sheetData/>: no rows
                return
            buf, started = buf[end + 1:], True
        cut = buf.rfind(b"</row>")
        if cut >= 0:
            cut += 6
            yield buf[:cut]
            buf = buf[cut:]
    if not started:
        raise NotPlain("no <sheetData>")
    end = buf.find(b"</sheetData>")
    if end < 0:
        raise NotPlain("no </sheetData>")
    if end:
        yield buf[:end]


# --- the scan ------------------------------------------------------------------------------------

def _digits(a: Bytes, start: Ints, limit: int) -> tuple[Ints, Ints]:
    """The decimal number at each start (value, digit count), reading up to `limit` digits."""
    value = np.zeros(len(start), np.int64)
    count = np.zeros(len(start), np.int64)
    live = np.ones(len(start), bool)
    last = len(a) - 1
    for j in range(limit + 1):
        digit = a[np.minimum(start + j, last)] - np.uint8(48)
        live &= digit <= 9
        if not live.any():
            break
        value = np.where(live, value * 10 + digit, value)
        count += live
    return value, count


def _distinct(values: Ints) -> tuple[Ints, Ints]:
    """np.unique(values, return_inverse=True), by a table instead of a sort where the values are
    small (shared-string indexes, date serials): a million values in a few milliseconds."""
    if not len(values):
        return values, values
    top = int(values.max())
    if top > 4 * len(values) + (1 << 16):
        return np.unique(values, return_inverse=True)  # type: ignore[no-any-return]
    seen = np.zeros(top + 1, bool)
    seen[values] = True
    distinct = np.flatnonzero(seen)
    slot = np.cumsum(seen) - 1
    return distinct, slot[values]


def _all_bytes(a: Bytes, at: Ints, text: bytes) -> bool:
    """Whether the bytes at every position in `at` spell `text` (positions past the block: no)."""
    try:
        return all(bool((a[at + j] == ch).all()) for j, ch in enumerate(text))
    except IndexError:
        return False


@dataclass
class _Column:
    """A wanted column's valued cells, block by block."""

    rows: list[Ints] = field(default_factory=list)
    kinds: list[npt.NDArray[np.int8]] = field(default_factory=list)  # _NUMBER, _SHARED or _DATE
    values: list[Ints] = field(default_factory=list)
    odd: list[tuple[int, str]] = field(default_factory=list)  # (row, text) read by Python


_NUMBER, _SHARED, _DATE = 0, 1, 2


class _Scan:
    def __init__(self, package: _Package, wanted: list[str] | list[int]) -> None:
        self.package = package
        self.wanted = wanted
        self.date_styles = np.array([*package.date_styles, False], bool)
        self.last_row = 0
        self.max_row = 1
        self.header: dict[int, str] | None = None
        self.columns: dict[int, _Column] = {}  # the wanted columns, by index
        self.names: list[str] = []

    def block(self, chunk: bytes) -> None:
        a = np.frombuffer(chunk, np.uint8)
        if not len(a):
            return
        lt = np.flatnonzero(a == _LT)
        if not len(lt) or lt[0] != 0:
            raise NotPlain("text before the first element")
        nx = a[lt + 1]
        is_c, is_v, is_r = nx == _C, nx == _V, nx == _R
        if not (is_c | is_v | is_r | (nx == _SLASH)).all():
            raise NotPlain("an element other than row, c, v")  # <f>, <is>, prefixed names ...
        # nothing between tags but a value's text: the byte before each "<" closes a tag
        if not ((a[lt[1:] - 1] == _GT) | is_v[:-1]).all():
            raise NotPlain("text between tags")

        rk = np.flatnonzero(is_r)
        rpos = lt[rk]
        if not _all_bytes(a, rpos, b'<row r="'):
            raise NotPlain("a row without r first")
        rownum, rlen = _digits(a, rpos + 8, 7)
        if not _all_bytes(a, rpos + 8 + rlen, b'"') or (rlen == 0).any():
            raise NotPlain("row number")
        if len(rownum) and (rownum[0] <= self.last_row or (np.diff(rownum) <= 0).any()):
            raise NotPlain("rows out of order")
        if len(rownum):
            self.last_row = int(rownum[-1])

        ck = np.flatnonzero(is_c)
        if not len(ck):
            return
        cpos = lt[ck]
        if not _all_bytes(a, cpos + 2, b' r="'):  # "<c" is known
            raise NotPlain("a cell without r first")
        owner = np.searchsorted(rpos, cpos) - 1  # the row each cell is in
        if (owner < 0).any():
            raise NotPlain("a cell outside a row")
        first = a[cpos + 6] - np.uint8(65)
        second = a[cpos + 7] - np.uint8(65)
        two = second < 26
        if (first >= 26).any() or (two & (a[cpos + 8] - np.uint8(65) < 26)).any():
            raise NotPlain("column past ZZ")
        col = np.where(two, (first.astype(np.int64) + 1) * 26 + second, first.astype(np.int64))
        crow = rownum[owner]
        ref_end = cpos + 6 + 1 + two + rlen[owner]  # the reference's closing quote
        if not _all_bytes(a, ref_end, b'"'):
            raise NotPlain("cell reference")
        same_row = owner[1:] == owner[:-1]
        if (same_row & (col[1:] <= col[:-1])).any():
            raise NotPlain("cells out of order")

        tag_end = lt[ck + 1] - 1  # the cell's start tag ends right before the next "<"
        closed = a[tag_end - 1] == _SLASH
        style, kind = self._attributes(a, ref_end + 1, tag_end - closed)
        has_value = ~closed & is_v[np.minimum(ck + 1, len(lt) - 1)]
        if self.header is None:
            self._take_header(a, lt, ck, crow, col, style, kind, has_value)
        if len(crow):
            valued = crow[has_value]
            if len(valued):
                self.max_row = max(self.max_row, int(valued.max()))
        take = has_value & np.isin(col, list(self.columns)) & (crow >= 2)
        if not take.any():
            return
        vk = ck[take] + 1
        start = lt[vk] + 3
        if not _all_bytes(a, lt[vk] + 2, b">"):  # "<v" is known
            raise NotPlain("a <v> with attributes")
        length = lt[vk + 1] - start
        value, ndig = _digits(a, start, MAX_DIGITS)
        plain = (ndig == length) & (length > 0) & (length <= MAX_DIGITS)
        shared = kind[take] == 1
        if (shared & ~plain).any():
            raise NotPlain("a shared-string index that is not a number")
        dates = ~shared & self.date_styles[np.minimum(style[take], len(self.date_styles) - 1)]
        kinds = np.where(shared, _SHARED, np.where(dates, _DATE, _NUMBER)).astype(np.int8)
        rows, cols = crow[take], col[take]
        for index, column in self.columns.items():  # a block's cells are few: these stay in the cache
            mine = cols == index
            ok = mine & plain
            column.rows.append(rows[ok])
            column.kinds.append(kinds[ok])
            column.values.append(value[ok])
        for k in np.flatnonzero(~plain):
            text = chunk[int(start[k]):int(start[k] + length[k])].decode()
            self.columns[int(cols[k])].odd.append((int(rows[k]), self._odd_text(text, bool(dates[k]))))

    def _attributes(self, a: Bytes, at: Ints, end: Ints) -> tuple[Ints, Ints]:
        """Each cell's s (style, 0 without) and t (1 for "s", 0 for "n" or none), read from the
        bytes between its reference and the end of its start tag; any other attribute or shape
        is NotPlain. Two rounds take s and t in either order."""
        style = np.zeros(len(at), np.int64)
        kind = np.zeros(len(at), np.int64)
        pos = at.copy()
        last = len(a) - 1
        for _ in range(2):
            more = pos < end
            if not more.any():
                break
            p = pos[more]
            if not (_all_bytes(a, p, b" ") and _all_bytes(a, p + 2, b'="')):
                raise NotPlain("attribute")
            name = a[np.minimum(p + 1, last)]
            is_s, is_t = name == _S, name == _T
            if not (is_s | is_t).all():
                raise NotPlain("an attribute other than s and t")
            number, ndig = _digits(a, p + 4, 6)
            after_s = p + 4 + ndig
            letter = a[np.minimum(p + 4, last)]
            if (is_s & ((ndig == 0) | (a[np.minimum(after_s, last)] != _QUOTE))).any():
                raise NotPlain("style")
            if (is_t & (((letter != _S) & (letter != _N)) | (a[np.minimum(p + 5, last)] != _QUOTE))).any():
                raise NotPlain("a cell type other than s and n")  # b, e, d, str, inlineStr
            idx = np.flatnonzero(more)
            style[idx] = np.where(is_s, number, style[idx])
            kind[idx] = np.where(is_t, letter == _S, kind[idx])
            pos[idx] = np.where(is_s, after_s + 1, p + 6)
        if (pos != end).any():
            raise NotPlain("attributes")
        return style, kind

    def _take_header(self, a: Bytes, lt: Ints, ck: Ints, crow: Ints, col: Ints, style: Ints, kind: Ints,
                     has_value: npt.NDArray[np.bool_]) -> None:
        """Row 1: each column's header text, and which columns are wanted."""
        if not len(crow) or crow[0] != 1:
            raise NotPlain("no header in row 1")
        header: dict[int, str] = {}
        for k in np.flatnonzero((crow == 1) & has_value):
            start = int(lt[ck[k] + 1]) + 3
            text = a[start:int(lt[ck[k] + 2])].tobytes().decode()
            if kind[k] == 1:
                header[int(col[k])] = self._shared(int(text) if text.isdigit() else -1)
            else:
                dated = bool(self.date_styles[min(int(style[k]), len(self.date_styles) - 1)])
                header[int(col[k])] = self._odd_text(text, dated)
        self.header = header
        if all(isinstance(w, int) for w in self.wanted):
            indexes = [int(w) for w in self.wanted]
            if any(i not in header for i in indexes):
                raise NotPlain("a wanted column without a header")
        else:
            by_name: dict[str, list[int]] = {}
            for index, name in header.items():
                by_name.setdefault(name, []).append(index)
            if any(len(by_name.get(str(w), [])) != 1 for w in self.wanted):
                raise NotPlain("a wanted header missing or repeated")
            indexes = [by_name[str(w)][0] for w in self.wanted]
        self.names = [header[i] for i in indexes]
        self.columns = {i: _Column() for i in indexes}

    def _shared(self, index: int) -> str:
        try:
            return self.package.shared_string(index)
        except _CellIssue:
            raise NotPlain("a shared-string index out of range") from None

    def _odd_text(self, text: str, dated: bool) -> str:
        """A number that is not a short run of digits (a sign, a fraction, an exponent, 16 digits or
        more), as calamine gives it: a whole number exactly ("-0" too), any other rounded to 9
        decimals without trailing zeros; a date-styled one as its date and time, with milliseconds
        if any."""
        try:
            number = float(text)
        except ValueError:
            raise NotPlain("a number cell holding text") from None
        if not math.isfinite(number):
            raise NotPlain("not a finite number")
        if dated:
            if not 0 <= number <= _MAX_SERIAL:
                raise NotPlain("a date serial out of range")
            moment = dt.datetime.combine(serial_to_date(number, self.package.date1904), dt.time())
            moment += dt.timedelta(milliseconds=math.floor((number - math.floor(number)) * 86_400_000 + 0.5))
            shown = moment.strftime("%Y-%m-%d %H:%M:%S")
            return shown + f".{moment.microsecond // 1000:03d}" if moment.microsecond else shown
        if number.is_integer():
            return "-0" if number == 0 and math.copysign(1, number) < 0 else str(int(number))
        return format(number, ".9f").rstrip("0").rstrip(".")  # calamine's text: 9 decimals at most

    def finish(self) -> tuple[list[str], list[tuple[Codes, list[str]]]]:
        if self.header is None:
            raise NotPlain("an empty sheet")
        height = self.max_row - 1
        out: list[tuple[Codes, list[str]]] = []
        for column in self.columns.values():
            codes = np.full(height, -1, np.int32)
            texts: list[str] = []
            rows = np.concatenate(column.rows) if column.rows else np.zeros(0, np.int64)
            kinds = np.concatenate(column.kinds) if column.kinds else np.zeros(0, np.int8)
            values = np.concatenate(column.values) if column.values else np.zeros(0, np.int64)
            column.rows, column.kinds, column.values = [], [], []  # the blocks' pieces, no longer needed
            single = len(kinds) and kinds.min() == kinds.max()  # a column usually holds one kind
            for kind in (_SHARED, _NUMBER, _DATE):
                if single:
                    if kinds[0] != kind:
                        continue
                    these, where = values, rows
                else:
                    mine = kinds == kind
                    these, where = values[mine], rows[mine]
                if not len(these):
                    continue
                distinct, inverse = _distinct(these)
                codes[where - 2] = inverse + len(texts)
                texts += [self._text(kind, int(v)) for v in distinct]
            for row, text in column.odd:
                codes[row - 2] = len(texts)
                texts.append(text)
            out.append((codes, texts))
        return self.names, out

    def _text(self, kind: int, value: int) -> str:
        if kind == _SHARED:
            return self._shared(value)
        if kind == _DATE:
            if value > _MAX_SERIAL:
                raise NotPlain("a date serial out of range")
            return serial_to_date(value, self.package.date1904).isoformat() + " 00:00:00"
        return str(value)
