"""Import reps' filled scorecards (客户关系评价表) into the workbook's relationship log (客户关系记录).

A scorecard is a small workbook a rep fills: the rep's 工号 (in the cell named 评分表工号, or
beside a label 工号) and a log table whose header row holds the 客户关系记录 headers (日期, 工号,
客户编码, 联系人, 角色, 动作编码, 次数, 审批状态, 备注), anywhere on a sheet, in any column order.

The merge:
- an entry already in the log (the same 日期, 工号, 客户编码, 联系人, 角色, 动作编码, 次数,
  审批状态 and 备注; 次数 blank = 1) is not added again: importing the same scorecard twice counts
  its entries once. Entries are counted as a multiset, so two identical lines on one card stay two;
- a line whose 工号 is not the scorecard's rep is refused with a message; a blank 工号 is the rep's;
- nothing already in the log is changed: new entries are appended below it.

Files: `import_scorecards(book, files)` appends to the workbook file with xlsx_append (only the log
sheet's part changes). Live Excel: `import_into_port(port, files)` appends through the port.
CLI: `add_import_command(subparsers)` adds `xlsales import BOOK FILES...`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import polars as pl

from xlsales.adapters import xlsx_reader
from xlsales.adapters.filerun import emit
from xlsales.adapters.port import WorkbookPort, header_columns, native, sheet_title
from xlsales.adapters.xlsx_append import append_rows_to_sheet
from xlsales.adapters.xlsx_package import _relationships
from xlsales.adapters.xlsx_reader import (
    CODE_HEADERS,
    REQUIRED_HEADERS,
    WorkbookUnusable,
    _CellIssue,
    _check_headers,
    _code_text,
    _header_map,
    _NotStandard,
    _SheetReader,
    _text_date,
    serial_to_date,
    text_columns,
)
from xlsales.adapters.xlsx_writer import NotAWorkbook, WorkbookLocked, check_writable
from xlsales.core.activity import LOG_SHEET
from xlsales.core.problems import Level, Problem

LOG_HEADERS: tuple[str, ...] = REQUIRED_HEADERS[LOG_SHEET]  # 日期 … 备注: also the identity of an entry
ID_NAME = "评分表工号"  # the defined name of the cell holding the rep's 工号
ID_LABEL = "工号"
# what a rep types; a line without any of these is blank (工号, 次数, 审批状态 may be prefilled)
TYPED_HEADERS = ("日期", "客户编码", "联系人", "角色", "动作编码", "备注")
MAX_LISTED = 10  # refused lines listed per file in the summary

OK, HAS_ERRORS, UNUSABLE = 0, 1, 2


class ScorecardError(Exception):
    """The file cannot be used as a scorecard (the message says why, in Chinese)."""


# --- the identity of an entry -----------------------------------------------------------------

_DATETIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
_SERIAL_TEXT = re.compile(r"\d+(?:\.\d+)?")
_SERIALS = (18264, 109574)  # 1950-01-01 .. 2199-12-31: a number in 日期 in this range is a date serial


def _key_part(header: str, value: Any) -> str | None:
    if isinstance(value, _CellIssue):
        value = value.value or None
    else:
        value = native(value)
        if isinstance(value, _CellIssue):
            value = value.value
    if isinstance(value, str):
        value = value.strip() or None
    if value is None:
        return "1" if header == "次数" else None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    if isinstance(value, (int, Decimal)):
        if header == "日期" and _SERIALS[0] <= value <= _SERIALS[1]:
            return serial_to_date(float(value)).isoformat()  # a date whose format the reader did not know
        return _code_text(value)
    text = str(value)
    if header == "日期":
        if _DATETIME_TEXT.match(text):  # calamine's text of a date cell
            return text[:10]
        if _SERIAL_TEXT.fullmatch(text) and _SERIALS[0] <= float(text) <= _SERIALS[1]:
            return serial_to_date(float(text)).isoformat()
        day = _text_date(text)
        return day.isoformat() if day is not None else text
    if header == "次数":
        try:
            return _code_text(Decimal(text))
        except (InvalidOperation, ValueError):
            return text
    return text


def entry_key(values: Mapping[str, Any]) -> tuple[str | None, ...]:
    """What makes two log entries the same: the nine log columns, normalised (text trimmed, a text
    date read as a date, 1.0 = 1 = "1", 次数 blank = 1)."""
    return tuple(_key_part(h, values.get(h)) for h in LOG_HEADERS)


def _rep_text(value: Any) -> str | None:
    value = native(value) if not isinstance(value, _CellIssue) else None
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return _code_text(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


# --- reading a scorecard ----------------------------------------------------------------------

@dataclass
class Scorecard:
    path: Path
    rep_id: str | None
    sheet: str
    header_row: int
    entries: list[dict[str, Any]]  # log header -> value, plus "row" (the scorecard's row)
    refused: list[str] = field(default_factory=list)  # lines left out while reading (error cells)


_DEFINED_REF = re.compile(r"^=?(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Za-z]{1,3})\$?(\d+)$")


def _grid(cells: Iterable[tuple[int, int, Any]]) -> dict[int, dict[int, Any]]:
    rows: dict[int, dict[int, Any]] = {}
    for r, c, v in cells:
        rows.setdefault(r, {})[c] = v
    return rows


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    return None


def _find_header(rows: Mapping[int, Mapping[int, Any]]) -> tuple[int, dict[str, int]] | None:
    for r in sorted(rows):
        texts: dict[str, int] = {}
        for c in sorted(rows[r]):
            t = _text(rows[r][c])
            if t is not None and t not in texts:
                texts[t] = c
        if all(h in texts for h in LOG_HEADERS):
            return r, {h: texts[h] for h in LOG_HEADERS}
    return None


def _is_label(value: Any) -> bool:
    t = _text(value)
    if t is None:
        return False
    t = t.rstrip(":：").strip()
    return t == ID_LABEL or (t.endswith(ID_LABEL) and len(t) <= 6)


def _label_value(rows: Mapping[int, Mapping[int, Any]], skip_from: int | None) -> str | None:
    """The value beside (or below) a '工号' label, above row `skip_from` (the log's header row)."""
    for r in sorted(rows):
        if skip_from is not None and r >= skip_from:
            break
        for c in sorted(rows[r]):
            if not _is_label(rows[r][c]):
                continue
            for k in range(1, 4):
                value = rows[r].get(c + k)
                if value is None or (isinstance(value, str) and not value.strip()):
                    continue
                if isinstance(value, str) and value.strip().endswith((":", "：")):
                    break
                return _rep_text(value)
            below = _rep_text(rows.get(r + 1, {}).get(c))
            if below is not None and (skip_from is None or r + 1 < skip_from) and _looks_like_id(below):
                return below
    return None


_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def _looks_like_id(text: str) -> bool:
    """A 工号 below its label (not another label, not a name): no Chinese characters or full-width colon."""
    return _CJK.search(text) is None and not text.endswith(":")


def _defined_cell(workbook_xml: bytes) -> tuple[str, int, int] | None:
    """(sheet, row, column index) of the defined name 评分表工号."""
    try:
        root = ET.fromstring(workbook_xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "definedName" and (el.get("name") or "").strip() == ID_NAME:
            m = _DEFINED_REF.match((el.text or "").strip())
            if m:
                sheet = m.group(1).replace("''", "'") if m.group(1) is not None else m.group(2)
                return sheet, int(m.group(4)), xlsx_reader.column_index(m.group(3).upper())
    return None


def _table_end(package: xlsx_reader._Package, part: str, header_row: int) -> int | None:
    """The last row of an Excel table whose header row is the log's header row."""
    folder, base = posixpath.split(part)
    rels_part = posixpath.join(folder, "_rels", base + ".rels")
    if not package.has(rels_part):
        return None
    for rel_type, target in _relationships(package.read(rels_part), folder):
        if not rel_type.endswith("/table") or not package.has(target):
            continue
        m = re.search(rb"""<(?:\w+:)?table\b[^>]*?\sref\s*=\s*["']\$?[A-Z]{1,3}\$?(\d+):\$?[A-Z]{1,3}\$?(\d+)["']""",
                      package.read(target))
        if m and int(m.group(1)) == header_row:
            return int(m.group(2))
    return None


def read_scorecard(path: str | Path) -> Scorecard:
    """Read a filled scorecard. Raises ScorecardError when the file is not a usable scorecard."""
    path = Path(path)
    try:
        package = xlsx_reader._Package(path)
    except WorkbookUnusable as exc:
        raise ScorecardError(str(exc)) from None
    try:
        reader = _SheetReader(package)
        sheets: dict[str, dict[int, dict[int, Any]]] = {}
        found: tuple[str, str, int, dict[str, int]] | None = None
        for name, part in package.sheets:
            if not package.has(part):
                continue
            rows = _grid(reader.cells(package.read(part)))
            sheets[name] = rows
            header = _find_header(rows)
            if header is not None and found is None:
                found = (name, part, *header)
        if found is None:
            raise ScorecardError(f"“{path.name}”里找不到记录表：需要一行表头 {'、'.join(LOG_HEADERS)}（与“客户关系记录”相同）")
        name, part, header_row, columns = found
        end = _table_end(package, part, header_row)
        rep_id = _rep_id(package, sheets, name, header_row)
    except (OSError, KeyError, ValueError, RuntimeError, EOFError) as exc:
        raise ScorecardError(f"“{path.name}”已损坏，无法读取：请用 Excel 打开并另存后重试（{exc}）") from None
    finally:
        package.close()

    rows = sheets[name]
    card = Scorecard(path, rep_id, name, header_row, [])
    for r in sorted(rows):
        if r <= header_row or (end is not None and r > end):
            continue
        values = {h: rows[r].get(c) for h, c in columns.items()}
        if all(_blank(values[h]) for h in TYPED_HEADERS):
            continue
        errors = [(h, v) for h, v in values.items() if isinstance(v, _CellIssue) and v.level is Level.ERROR]
        if errors:
            h, v = errors[0]
            card.refused.append(f"第 {r} 行“{h}”是错误值 {v.value}：这一行没有导入，请修正后重新导入")
            continue
        entry = {h: (None if isinstance(v, _CellIssue) else v) for h, v in values.items()}
        entry["row"] = r
        card.entries.append(entry)
    return card


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, _CellIssue) and not value.value)


def _rep_id(package: xlsx_reader._Package, sheets: Mapping[str, dict[int, dict[int, Any]]], log_sheet: str,
            header_row: int) -> str | None:
    cell = _defined_cell(package.read(package.workbook_part))
    if cell is not None:
        sheet, row, col = cell
        rows = sheets.get(sheet) or next((v for k, v in sheets.items() if k.strip() == sheet.strip()), {})
        value = _rep_text(rows.get(row, {}).get(col))
        if value is not None:
            return value
    value = _label_value(sheets.get(log_sheet, {}), header_row)
    if value is not None:
        return value
    for name, rows in sheets.items():
        if name != log_sheet:
            value = _label_value(rows, None)
            if value is not None:
                return value
    return None


# --- the merge ---------------------------------------------------------------------------------

@dataclass
class FileResult:
    file: str
    rep_id: str | None = None
    entries: int = 0  # filled lines on the scorecard
    added: int = 0
    duplicates: int = 0  # already in the log: not added again
    refused: list[str] = field(default_factory=list)
    error: str | None = None  # the whole file was refused


@dataclass
class ImportReport:
    workbook: str
    files: list[FileResult] = field(default_factory=list)
    exit_code: int = OK
    message: str = ""
    rows_at: tuple[int, int] | None = None  # rows of 客户关系记录 the new entries went to (files only)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def refused(self) -> int:
        return sum(len(f.refused) for f in self.files)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(added=self.added, duplicates=self.duplicates, refused=self.refused)
        return out

    def lines(self) -> list[str]:
        out = [self.message]
        for f in self.files:
            name = Path(f.file).name
            if f.error is not None:
                out.append(f"· {name}：没有导入。{f.error}")
                continue
            text = f"· {name}（工号 {f.rep_id}）：评分表 {f.entries} 条，新增 {f.added} 条，已存在 {f.duplicates} 条"
            out.append(text + (f"，拒绝 {len(f.refused)} 条" if f.refused else ""))
            out.extend(f"    {m}" for m in f.refused[:MAX_LISTED])
            if len(f.refused) > MAX_LISTED:
                out.append(f"    ……另有 {len(f.refused) - MAX_LISTED} 条被拒绝")
        return out


def merge(card: Scorecard, present: Counter[tuple[str | None, ...]], result: FileResult) -> list[dict[str, Any]]:
    """The card's entries that are new to the log (`present`, updated with them); refusals in `result`."""
    result.rep_id = card.rep_id
    result.refused.extend(card.refused)
    result.entries = len(card.entries) + len(card.refused)
    if card.rep_id is None:
        result.error = (f"评分表里找不到工号：请在名为“{ID_NAME}”的单元格（或“工号”标签旁）填写本人工号后重新导入")
        result.entries = 0
        result.refused.clear()
        return []
    available = present.copy()
    new: list[dict[str, Any]] = []
    for entry in card.entries:
        rep = _rep_text(entry.get("工号"))
        if rep is None:
            entry = {**entry, "工号": card.rep_id}
        elif rep != card.rep_id:
            result.refused.append(f"第 {entry['row']} 行的工号“{rep}”与评分表工号“{card.rep_id}”不一致："
                                  f"评分表只能导入本人的记录，这一行没有导入")
            continue
        key = entry_key(entry)
        if available[key] > 0:
            available[key] -= 1
            result.duplicates += 1
            continue
        new.append(entry)
        result.added += 1
    present.update(entry_key(e) for e in new)
    return new


def _stored(header: str, value: Any) -> Any:
    """A scorecard value as it goes into the log: codes as text, blank as empty."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if header in CODE_HEADERS and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return _code_text(value)
    return value


def as_rows(entries: Sequence[Mapping[str, Any]], columns: Mapping[str, int]) -> list[list[Any]]:
    """Entries as rows in the log's own column order (columns: header -> index)."""
    width = max(columns.values()) + 1
    rows = []
    for entry in entries:
        row: list[Any] = [None] * width
        for header, j in columns.items():
            if header in LOG_HEADERS:
                row[j] = _stored(header, entry.get(header))
        rows.append(row)
    return rows


def _read_cards(files: Sequence[str | Path], report: ImportReport, book: Path | None = None) -> list[tuple[Scorecard, FileResult]]:
    """Every scorecard that can be read (the others are refused in the report), with its result."""
    cards: list[tuple[Scorecard, FileResult]] = []
    for file in files:
        result = FileResult(str(file))
        report.files.append(result)
        path = Path(file)
        if book is not None and path.exists() and book.exists() and path.resolve() == book.resolve():
            result.error = "这是工作簿本身，不是评分表"
            continue
        try:
            cards.append((read_scorecard(path), result))
        except ScorecardError as exc:
            result.error = str(exc)
    return cards


def _reps(cards: Sequence[tuple[Scorecard, FileResult]]) -> set[str]:
    return {card.rep_id for card, _ in cards if card.rep_id is not None}


def _merge_all(cards: Sequence[tuple[Scorecard, FileResult]], present: Counter[tuple[str | None, ...]]) -> list[dict[str, Any]]:
    new: list[dict[str, Any]] = []
    for card, result in cards:
        new.extend(merge(card, present, result))
    return new


def _finish(report: ImportReport) -> ImportReport:
    refused_files = sum(f.error is not None for f in report.files)
    report.message = (f"导入完成：新增 {report.added} 条记录，{report.duplicates} 条已存在（没有重复导入）"
                      + (f"，{report.refused} 条被拒绝" if report.refused else "")
                      + (f"，{refused_files} 个文件没有导入" if refused_files else ""))
    if report.rows_at is not None:
        report.message += f"；已追加到“{LOG_SHEET}”第 {report.rows_at[0]}–{report.rows_at[1]} 行"
    if report.refused or refused_files:
        report.exit_code = HAS_ERRORS
    return report


# --- into a workbook file ----------------------------------------------------------------------

def _book_log(path: Path, reps: set[str]) -> tuple[str, dict[str, int], Counter[tuple[str | None, ...]]]:
    """The log sheet of a workbook file: its title, header columns and the entries of `reps` already
    in it (only those can match a scorecard line: every imported line carries its card's 工号)."""
    package = xlsx_reader._Package(path)
    try:
        part = package.sheet_part(LOG_SHEET)
        if part is None:
            listed = "、".join(LOG_HEADERS)
            raise ScorecardError(f"缺少工作表“{LOG_SHEET}”：请添加这张表，第 1 行写表头 {listed}")
        title = next(name for name, p in package.sheets if p == part)
        reader = _SheetReader(package)
        head, partial = xlsx_reader._head(package, part)
        problems: list[Problem] = []
        headers = _header_map(LOG_SHEET, reader.cells(head, max_row=1, partial=partial), problems)
        if not _check_headers(LOG_SHEET, headers, problems):
            raise ScorecardError("；".join(p.message for p in problems if p.is_error))
        if not reps:
            return title, headers, Counter()
        present = _count_fast(path, title, headers, reps)
        if present is None:
            by_col = {c: h for h, c in headers.items() if h in LOG_HEADERS}
            try:
                present = _count(reader.stream(package, part), by_col, reps)
            except _NotStandard:
                present = _count([reader.cells(package.read(part))], by_col, reps)
        return title, headers, present
    finally:
        package.close()


def _count_fast(path: Path, title: str, headers: Mapping[str, int], reps: set[str]) -> Counter[tuple[str | None, ...]] | None:
    """The reps' entries through calamine (fastexcel), every column as text, filtered by 工号 in polars
    before any Python sees a row. None when fastexcel is missing or fails (the exact reader then counts)."""
    order = sorted({headers[h] for h in LOG_HEADERS})
    frame = text_columns(path, title, order)
    if frame is None:
        return None
    names = dict(zip(order, frame.columns, strict=True))
    if any(names[headers[h]].strip() != h for h in LOG_HEADERS):
        return None
    frame = frame.select([pl.col(names[headers[h]]).cast(pl.String).alias(h) for h in LOG_HEADERS])
    rep = pl.col("工号").str.strip_chars().str.replace(r"^(\d+)\.0+$", "${1}")
    present: Counter[tuple[str | None, ...]] = Counter()
    for row in frame.filter(rep.is_in(sorted(reps))).iter_rows(named=True):
        present[entry_key(row)] += 1
    return present


def _count(chunks: Iterable[list[Any]], by_col: Mapping[int, str], reps: set[str]) -> Counter[tuple[str | None, ...]]:
    """The reps' entries of a (possibly big, streamed) log sheet, as a multiset of entry keys."""
    present: Counter[tuple[str | None, ...]] = Counter()
    for row in _group_rows(chunks, by_col):
        if _rep_text(row.get("工号")) in reps:
            present[entry_key(row)] += 1
    return present


def _group_rows(chunks: Iterable[list[Any]], by_col: Mapping[int, str]) -> Iterator[dict[str, Any]]:
    current_row = -1
    current: dict[str, Any] = {}
    for cells in chunks:
        for r, c, v in cells:
            if r <= 1:
                continue
            header = by_col.get(c)
            if header is None:
                continue
            if r != current_row:
                if current:
                    yield current
                current_row, current = r, {}
            current[header] = v
    if current:
        yield current


def import_scorecards(book_path: str | Path, files: Sequence[str | Path]) -> ImportReport:
    """Add the scorecards' new entries to the 客户关系记录 sheet of the workbook file (appended in place,
    every other part of the file untouched). Exit code 0: all imported; 1: lines or files refused;
    2: the workbook cannot be used (nothing written)."""
    book = Path(book_path)
    report = ImportReport(workbook=str(book))
    try:
        check_writable(book)
    except (WorkbookLocked, NotAWorkbook) as exc:
        report.exit_code, report.message = UNUSABLE, str(exc)
        return report
    cards = _read_cards(files, report, book)
    try:
        title, headers, present = _book_log(book, _reps(cards))
    except (WorkbookUnusable, ScorecardError) as exc:
        report.files.clear()
        report.exit_code, report.message = UNUSABLE, str(exc)
        return report
    new = _merge_all(cards, present)
    if new:
        try:
            where = append_rows_to_sheet(book, title, as_rows(new, headers))
        except (WorkbookLocked, NotAWorkbook, ValueError) as exc:
            for f in report.files:
                f.added = 0
            report.exit_code, report.message = UNUSABLE, f"没有导入：{exc}"
            return report
        report.rows_at = (where.first, where.last)
    return _finish(report)


# --- into an open workbook (live Excel) --------------------------------------------------------

def import_into_port(port: WorkbookPort, files: Sequence[str | Path]) -> ImportReport:
    """The same import through a WorkbookPort: the log is read and appended to through the port."""
    report = ImportReport(workbook=str(getattr(port, "name", "")))
    title = sheet_title(port.sheet_names(), LOG_SHEET)
    if title is None:
        report.exit_code = UNUSABLE
        report.message = f"缺少工作表“{LOG_SHEET}”：请添加这张表，第 1 行写表头 {'、'.join(LOG_HEADERS)}"
        return report
    grid = port.read_table(title)
    problems: list[Problem] = []
    headers = header_columns(LOG_SHEET, grid, problems)
    if not _check_headers(LOG_SHEET, headers, problems):
        report.exit_code = UNUSABLE
        report.message = "；".join(p.message for p in problems if p.is_error)
        return report
    cards = _read_cards(files, report)
    reps = _reps(cards)
    present: Counter[tuple[str | None, ...]] = Counter()
    rep_col = headers["工号"]
    for line in grid[1:]:
        if rep_col < len(line) and _rep_text(line[rep_col]) in reps:
            present[entry_key({h: line[j] if j < len(line) else None for h, j in headers.items() if h in LOG_HEADERS})] += 1
    new = _merge_all(cards, present)
    if new:
        port.append_rows(title, as_rows(new, headers))
    return _finish(report)


# --- the command line --------------------------------------------------------------------------

def add_import_command(subparsers: Any) -> argparse.ArgumentParser:
    """`xlsales import BOOK FILES...` on an argparse subparsers object (dispatch: args.run(args) -> exit code)."""
    sub: argparse.ArgumentParser = subparsers.add_parser(
        "import", help="把销售填好的“客户关系评价表”导入工作簿的“客户关系记录”（同一条记录只导入一次）")
    sub.add_argument("workbook", help="要导入的工作簿（.xlsx/.xlsm）")
    sub.add_argument("files", nargs="+", help="一个或多个评分表文件")
    sub.add_argument("--json", action="store_true", help="输出机器可读的 JSON 摘要")
    sub.set_defaults(run=run_import_command)
    return sub


def run_import_command(args: argparse.Namespace) -> int:
    return emit(import_scorecards(args.workbook, args.files), args.json)
