"""The parts of a .xlsx/.xlsm package every reader needs: the zip, the workbook's sheets, the cell
styles that are dates, the shared strings, and what a date serial means.

Standard library only (and the core's problem levels): the log's second process opens the workbook
with it (sheet_scan) before, and without, the engine's imports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import posixpath
import re
import zipfile
from pathlib import Path
from xml.parsers import expat

from xlsales.core.problems import Level


class WorkbookUnusable(Exception):
    """The file cannot be read at all (missing, not a workbook, locked, damaged). The message is Chinese."""


def column_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - 64)
    return index - 1


# --- number formats -------------------------------------------------------------------------

# built-in date/time formats: 14-22 and 45-47 everywhere, 27-36 and 50-58 in CJK locales (Chinese
# Excel writes e.g. numFmtId 31 = yyyy"年"m"月"d"日" and 57/58 without declaring them)
_CJK_DATE_IDS = frozenset(range(27, 37)) | frozenset(range(50, 59))
_BUILTIN_DATE_IDS = frozenset(range(14, 23)) | frozenset({45, 46, 47}) | _CJK_DATE_IDS
_FORMAT_NOISE = re.compile(r'"[^"]*"|\\.|_.|\*.')
_ELAPSED = re.compile(r"\[(?:h+|m+|s+)\]", re.IGNORECASE)
_BRACKETS = re.compile(r"\[[^\]]*\]")
_DATE_LETTERS = re.compile(r"[ymdhs]", re.IGNORECASE)


def is_date_format(fmt_id: int, code: str | None) -> bool:
    """Whether a number format shows a date or time (so the number is an Excel date serial)."""
    if code is None:
        return fmt_id in _BUILTIN_DATE_IDS
    text = _FORMAT_NOISE.sub("", code)
    if _ELAPSED.search(text):
        return True
    text = _BRACKETS.sub("", text).split(";")[0]
    if text.strip().lower() in ("general", "@", ""):
        return False
    return _DATE_LETTERS.search(text) is not None


_EPOCH_1900 = dt.date(1899, 12, 30)
_EPOCH_1904 = dt.date(1904, 1, 1)
_MAX_SERIAL = 2958465  # 9999-12-31


class _CellIssue(Exception):
    """A cell the reader itself reports (error value, impossible date serial ...)."""

    def __init__(self, level: Level, value: str, message: str) -> None:
        super().__init__(message)
        self.level, self.value, self.message = level, value, message


def serial_to_date(serial: float, date1904: bool = False) -> dt.date:
    """Excel date serial -> date (the time of day is dropped). 1900 system: 60 is Excel's phantom
    1900-02-29, serials below it count from 1899-12-31."""
    days = int(serial // 1)
    if date1904:
        return _EPOCH_1904 + dt.timedelta(days=days)
    if days < 60:
        return dt.date(1899, 12, 31) + dt.timedelta(days=days)
    return _EPOCH_1900 + dt.timedelta(days=days)


_X_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape_x(text: str) -> str:
    """OOXML writes control characters as _xHHHH_ (e.g. _x000D_)."""
    return _X_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


# --- the package: zip parts, workbook, relationships, styles, shared strings -----------------

_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _local(name: str) -> str:
    return name[name.rfind(":") + 1:] if ":" in name else name


def _ns_local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


class _Package:
    """An opened .xlsx/.xlsm: its sheets, styles and shared strings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise WorkbookUnusable(f"找不到文件 {path}：请检查路径") from None
        except IsADirectoryError:
            raise WorkbookUnusable(f"{path} 是文件夹，不是工作簿：请给出 .xlsx 或 .xlsm 文件") from None
        except PermissionError:
            raise WorkbookUnusable(f"无法读取 {path}：文件被其他程序占用（可能正在 Excel 中打开）或没有读取权限") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise WorkbookUnusable(
                f"{path.name} 不是 .xlsx/.xlsm 工作簿（或文件已损坏、设置了打开密码）：请用 Excel 另存为 .xlsx 或 .xlsm 后重试"
                f"（{type(exc).__name__}）") from None
        try:
            self._open(path)
        except BaseException:
            self.zip.close()
            raise
        self._sst_raw: list[bytes] | None = None
        self._sst_xml: bytes | None = None
        self._sst: list[str | None] = []

    def _open(self, path: Path) -> None:
        self.members = {info.filename: info.filename for info in self.zip.infolist()}
        self.members_lower = {name.lower(): name for name in self.members}
        try:
            self.workbook_part = self._office_document()
            if self.workbook_part.lower().endswith(".bin"):
                raise WorkbookUnusable(f"{path.name} 是二进制工作簿（.xlsb），无法读取：请用 Excel 另存为 .xlsx 或 .xlsm 后重试")
            if not self.has(self.workbook_part):
                raise WorkbookUnusable(f"{path.name} 不是 Excel 工作簿（里面没有 {self.workbook_part}）：请给出 .xlsx 或 .xlsm 文件")
            self.sheets, self.date1904, rels = self._workbook()
            self.date_styles, self.cjk_date_styles = self._styles(rels.get("styles"))
            self._sst_part = rels.get("sharedStrings")
        except (expat.ExpatError, KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
            raise WorkbookUnusable(f"{path.name} 的工作簿结构已损坏，无法读取：请用 Excel 打开并另存后重试（{exc}）") from None

    def close(self) -> None:
        self.zip.close()

    # parts
    def has(self, part: str) -> bool:
        return part in self.members or part.lower() in self.members_lower

    def member(self, part: str) -> str:
        name = self.members.get(part) or self.members_lower.get(part.lower())
        if name is None:
            raise KeyError(part)
        return name

    def read(self, part: str) -> bytes:
        return self.zip.read(self.member(part))

    def _office_document(self) -> str:
        if self.has("_rels/.rels"):
            for rel_type, target in _relationships(self.read("_rels/.rels"), ""):
                if rel_type.endswith("/officeDocument"):
                    return target
        return "xl/workbook.xml"

    def _workbook(self) -> tuple[list[tuple[str, str]], bool, dict[str, str]]:
        folder = posixpath.dirname(self.workbook_part)
        rels_part = posixpath.join(folder, "_rels", posixpath.basename(self.workbook_part) + ".rels")
        by_id: dict[str, str] = {}
        by_type: dict[str, str] = {}
        if self.has(rels_part):
            parser = expat.ParserCreate(namespace_separator=" ")

            def rel_start(name: str, attrs: dict[str, str]) -> None:
                if _ns_local(name) == "Relationship" and attrs.get("TargetMode") != "External":
                    target = _resolve(folder, attrs.get("Target", ""))
                    by_id[attrs.get("Id", "")] = target
                    by_type.setdefault(attrs.get("Type", "").rsplit("/", 1)[-1], target)

            parser.StartElementHandler = rel_start
            parser.Parse(self.read(rels_part), True)
        sheets: list[tuple[str, str]] = []
        flags = {"date1904": False}
        parser = expat.ParserCreate(namespace_separator=" ")

        def wb_start(name: str, attrs: dict[str, str]) -> None:
            local = _ns_local(name)
            if local == "sheet":
                rid = attrs.get(f"{_REL_NS} id") or next((v for k, v in attrs.items() if k.endswith(" id")), "")
                part = by_id.get(rid) or posixpath.join(folder, f"worksheets/sheet{len(sheets) + 1}.xml")
                sheets.append((attrs.get("name", ""), part))
            elif local == "workbookPr":
                flags["date1904"] = attrs.get("date1904", "").lower() in ("1", "true")

        parser.StartElementHandler = wb_start
        parser.Parse(self.read(self.workbook_part), True)
        return sheets, flags["date1904"], by_type

    def _styles(self, part: str | None) -> tuple[list[bool], bool]:
        """Per cell style index (the `s` of a cell): whether its number format is a date."""
        if part is None or not self.has(part):
            return [], False
        formats: dict[int, str] = {}
        xf_formats: list[int] = []
        where = {"cellXfs": False}
        parser = expat.ParserCreate()

        def start(name: str, attrs: dict[str, str]) -> None:
            local = _local(name)
            if local == "numFmt":
                with contextlib.suppress(ValueError):
                    formats[int(attrs.get("numFmtId", "0"))] = attrs.get("formatCode", "")
            elif local == "cellXfs":
                where["cellXfs"] = True
            elif local == "xf" and where["cellXfs"]:
                try:
                    xf_formats.append(int(attrs.get("numFmtId", "0")))
                except ValueError:
                    xf_formats.append(0)

        def end(name: str) -> None:
            if _local(name) == "cellXfs":
                where["cellXfs"] = False

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.Parse(self.read(part), True)
        dates = [is_date_format(i, formats.get(i)) for i in xf_formats]
        cjk = any(i in _CJK_DATE_IDS and i not in formats for i in xf_formats)
        return dates, cjk

    # shared strings: split fast, decoded on demand (a big log may hold a million notes)
    _SI = re.compile(rb"<si>(.*?)</si>", re.DOTALL)
    _SIMPLE_T = re.compile(rb'<t(?: xml:space="preserve")?>([^<]*)</t>')
    _RPH = re.compile(rb"<rPh\b.*?</rPh>", re.DOTALL)
    _ANY_T = re.compile(rb"<t\b[^>]*?(?:/>|>([^<]*)</t>)")

    def shared_string(self, index: int) -> str:
        if self._sst_raw is None:
            self._load_sst()
        sst = self._sst
        try:
            if index < 0:
                raise IndexError(index)
            text = sst[index]
        except IndexError:
            raise _CellIssue(Level.ERROR, str(index), "单元格引用了不存在的共享文字：文件已损坏，请用 Excel 打开并另存") from None
        if text is None:
            assert self._sst_raw is not None
            raw = self._sst_raw[index]
            simple = self._SIMPLE_T.fullmatch(raw)
            if simple is not None:
                text = simple.group(1).decode()
            else:
                text = "".join(m.group(1).decode() for m in self._ANY_T.finditer(self._RPH.sub(b"", raw)) if m.group(1))
            if "&" in text:
                text = html.unescape(text)
            text = _unescape_x(text)
            sst[index] = text
        return text

    def sst_xml(self) -> bytes | None:
        """The shared strings' XML (None without them), inflated once: the calamine path looks at it
        before _load_sst splits it (and drops it)."""
        if self._sst_xml is None and self._sst_part is not None and self.has(self._sst_part):
            self._sst_xml = self.read(self._sst_part)
        return self._sst_xml

    def _load_sst(self) -> None:
        data = self.sst_xml()
        self._sst_xml = None
        if data is None:
            self._sst_raw, self._sst = [], []
            return
        raw = self._SI.findall(data)
        if b"<sst " in data[:500] and data.count(b"<si>") == len(raw) and b"<si/>" not in data:
            self._sst_raw = raw
            self._sst = [None] * len(raw)
        else:  # prefixed names, empty <si/> ...: parse properly
            self._sst_raw = []
            self._sst = list(_parse_sst(data))

    # sheets
    def sheet_part(self, name: str) -> str | None:
        for sheet, part in self.sheets:
            if sheet == name:
                return part
        for sheet, part in self.sheets:
            if sheet.strip() == name:
                return part
        return None


def _resolve(folder: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(folder, target))


def _relationships(data: bytes, folder: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    parser = expat.ParserCreate(namespace_separator=" ")

    def start(name: str, attrs: dict[str, str]) -> None:
        if _ns_local(name) == "Relationship":
            found.append((attrs.get("Type", ""), _resolve(folder, attrs.get("Target", ""))))

    parser.StartElementHandler = start
    parser.Parse(data, True)
    return found


def _parse_sst(data: bytes) -> list[str | None]:
    strings: list[str | None] = []
    state = {"in_si": False, "in_t": False, "rph": 0}
    buf: list[str] = []
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def start(name: str, attrs: dict[str, str]) -> None:
        local = _local(name)
        if local == "si":
            state["in_si"] = True
            buf.clear()
        elif local == "t" and state["in_si"] and not state["rph"]:
            state["in_t"] = True
        elif local == "rPh":
            state["rph"] += 1

    def end(name: str) -> None:
        local = _local(name)
        if local == "si":
            state["in_si"] = False
            strings.append(_unescape_x("".join(buf)))
        elif local == "t":
            state["in_t"] = False
        elif local == "rPh":
            state["rph"] -= 1

    def chars(text: str) -> None:
        if state["in_t"]:
            buf.append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.Parse(data, True)
    return strings
