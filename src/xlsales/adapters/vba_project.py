"""Build an Excel ``vbaProject.bin`` from VBA module sources kept as text.

The result is a *source-only* VBA project, the form that Excel accepts from tools other than
itself: every module stream holds only its compressed source (``MODULEOFFSET`` 0, no performance
cache) and ``_VBA_PROJECT`` carries version 0xFFFF, so Excel compiles the project when it opens the
workbook. Put it in a workbook with XlsxWriter::

    workbook.add_vba_project(io.BytesIO(build_vba_project(modules)), is_stream=True)
    workbook.set_vba_name("ThisWorkbook"); sheet.set_vba_name("Sheet1")

Pieces, each after its specification:

- :func:`compress` / :func:`decompress`: the MS-OVBA 2.4.1 CompressedContainer (an LZ77 variant in
  4096-byte chunks). The compressor follows the normative algorithm exactly (longest match, the
  nearest one on ties), so it reproduces the worked examples of MS-OVBA 3.2 byte for byte.
- the ``dir`` stream (MS-OVBA 2.3.4.2), ``PROJECT`` (2.3.1) with its CMG/DPB/GC values encrypted
  per 2.4.3 (unprotected, no password, visible), ``PROJECTwm`` (2.3.3) and ``_VBA_PROJECT`` (2.3.4.1).
- a Compound File Binary writer (MS-CFB, version 3, 512-byte sectors, a mini stream for streams
  under 4096 bytes). The directory tree of each storage is all black, siblings sorted by
  (name length, upper-case name) and linked as a right-leaning chain: the layout of the
  ``vbaProject.bin`` that xlwings ships and that Excel opens.

Module text: give the code without ``Attribute VB_*`` header lines; they are generated (a leading
header from a VBE export, ``VERSION 1.0 CLASS`` ... ``Attribute VB_Name`` ..., is dropped and
regenerated). Line ends become CRLF.

Code page: source, project and module names are stored in the project's code page (MBCS). The
default is 936 (GBK), what Chinese Windows and so Chinese Excel writes: string literals in Chinese
then show and run as written there. A character the code page cannot encode is an error, not a
``?``. On a Windows whose ANSI code page is not 936 such literals come out garbled whatever the
project says; :func:`vba_string_expr` builds a code-page-independent expression
(``"Total: " & ChrW(&H5408) & ChrW(&H8BA1)``) for text that must survive any locale.
"""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_REFERENCES",
    "OFFICE_REFERENCE",
    "STDOLE_REFERENCE",
    "VBA_PROJECT_STREAM",
    "VbaModule",
    "build_vba_project",
    "compress",
    "decompress",
    "decrypt_project_value",
    "encrypt_project_value",
    "excel_document_modules",
    "module_source",
    "vba_string_expr",
    "write_compound_file",
]

ModuleKind = Literal["standard", "document", "class"]


@dataclass(frozen=True)
class VbaModule:
    """One VBA module. ``document`` modules stand for the workbook (``ThisWorkbook``) and its sheets
    (one per sheet code name, e.g. ``Sheet1``); Excel pairs them with the code names that
    ``workbook.xml`` / the sheet parts declare (XlsxWriter: ``set_vba_name``)."""

    name: str
    code: str
    kind: ModuleKind = "standard"


# ---------------------------------------------------------------------------------------------------
# MS-OVBA 2.4.1 compression

_CHUNK = 4096
_MAX_COMPRESSED_CHUNK = 4098  # header included
_RAW_CHUNK_HEADER = 0x3FFF  # size field 4095, signature 0b011, flag 0
_SIGNATURE = 0x01


def _copy_token_bits(difference: int) -> int:
    """Bits of a CopyToken's offset field: the smallest n >= 4 with 2**n >= difference (2.4.1.3.19.1)."""
    return max((difference - 1).bit_length(), 4)


def _match_length(data: bytes, candidate: int, current: int, known: int, limit: int) -> int:
    """Length of the common prefix of data[candidate:] and data[current:limit], given that the first
    ``known`` bytes match; galloping, then a binary search, on slices (the C comparison does the work)."""
    n, step, maximum = known, 16, limit - current
    while n < maximum:
        m = min(n + step, maximum)
        if data[candidate + n:candidate + m] == data[current + n:current + m]:
            n, step = m, step * 2
            continue
        lo, hi = n, m  # the first lo bytes match, the first hi do not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if data[candidate + lo:candidate + mid] == data[current + lo:current + mid]:
                lo = mid
            else:
                hi = mid
        return lo
    return n


def _compress_chunk(data: bytes, start: int, end: int) -> bytes:
    """One CompressedChunk (2.4.1.3.7). Matches are found through a table of 3-byte prefixes; since a
    match shorter than 3 is never used, walking a prefix's positions from the nearest one back gives
    the same choice as the specification's scan of every earlier position."""
    out = bytearray(2)
    current = start
    full = False  # the specification's "CompressedCurrent = CompressedEnd"
    positions: dict[bytes, list[int]] = {}
    indexed = start
    while current < end and not full and len(out) < _MAX_COMPRESSED_CHUNK:
        flag_index = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if current >= end or full or len(out) >= _MAX_COMPRESSED_CHUNK:
                break
            while indexed < current:  # every earlier position of the chunk is a candidate
                if indexed + 3 <= end:
                    positions.setdefault(data[indexed:indexed + 3], []).append(indexed)
                indexed += 1
            best_length, best_candidate = 0, 0
            if current + 3 <= end:
                longest_possible = end - current
                for candidate in reversed(positions.get(data[current:current + 3], ())):
                    # to beat the best so far, a candidate must match one byte further (checked first)
                    if best_length and (data[candidate + best_length] != data[current + best_length]
                                        or data[candidate:candidate + best_length] != data[current:current + best_length]):
                        continue
                    length = _match_length(data, candidate, current, max(best_length + 1, 3), end)
                    if length > best_length:
                        best_length, best_candidate = length, candidate
                        if length == longest_possible:
                            break
            if best_length >= 3:
                bit_count = _copy_token_bits(current - start)
                length = min(best_length, (0xFFFF >> bit_count) + 3)
                if len(out) + 1 < _MAX_COMPRESSED_CHUNK:
                    token = ((current - best_candidate - 1) << (16 - bit_count)) | (length - 3)
                    out += token.to_bytes(2, "little")
                    flags |= 1 << bit
                    current += length
                else:
                    full = True
            elif len(out) < _MAX_COMPRESSED_CHUNK:
                out.append(data[current])
                current += 1
            else:
                full = True
        out[flag_index] = flags
    if current < end:  # did not fit: a raw chunk, the last one padded to 4096 bytes (2.4.1.3.10)
        return _RAW_CHUNK_HEADER.to_bytes(2, "little") + data[start:start + _CHUNK].ljust(_CHUNK, b"\0")
    out[0:2] = (0xB000 | (len(out) - 3)).to_bytes(2, "little")
    return bytes(out)


def compress(data: bytes) -> bytes:
    """MS-OVBA 2.4.1.3.6: a CompressedContainer (signature byte 0x01, then one chunk per 4096 bytes).

    A final chunk shorter than 4096 bytes that does not compress (about 3,640+ bytes of noise; never
    text) is stored raw and so padded with zero bytes, as the specification prescribes:
    ``decompress`` then returns the data followed by those zeros."""
    data = bytes(data)
    out = bytearray([_SIGNATURE])
    for start in range(0, len(data), _CHUNK):
        out += _compress_chunk(data, start, min(start + _CHUNK, len(data)))
    return bytes(out)


def decompress(data: bytes) -> bytes:
    """MS-OVBA 2.4.1.3.1; raises ``ValueError`` on a malformed container."""
    data = bytes(data)
    if not data or data[0] != _SIGNATURE:
        raise ValueError("not a CompressedContainer: the first byte must be 0x01")
    out = bytearray()
    pos, total = 1, len(data)
    while pos < total:
        if pos + 2 > total:
            raise ValueError(f"truncated chunk header at byte {pos}")
        header = int.from_bytes(data[pos:pos + 2], "little")
        if (header >> 12) & 0b111 != 0b011:
            raise ValueError(f"bad chunk signature at byte {pos}: header 0x{header:04X}")
        chunk_end = pos + (header & 0x0FFF) + 3
        pos += 2
        chunk_start = len(out)
        if not header & 0x8000:
            if chunk_end != pos + _CHUNK or chunk_end > total:
                raise ValueError(f"raw chunk at byte {pos - 2} does not hold 4096 bytes")
            out += data[pos:chunk_end]
            pos = chunk_end
            continue
        chunk_end = min(chunk_end, total)  # as the specification reads a truncated last chunk
        while pos < chunk_end:
            flags = data[pos]
            pos += 1
            for bit in range(8):
                if pos >= chunk_end:
                    break
                if not (flags >> bit) & 1:
                    out.append(data[pos])
                    pos += 1
                    continue
                if pos + 2 > chunk_end:
                    raise ValueError(f"truncated copy token at byte {pos}")
                token = int.from_bytes(data[pos:pos + 2], "little")
                pos += 2
                produced = len(out) - chunk_start
                if produced == 0:
                    raise ValueError("a chunk cannot start with a copy token")
                bit_count = _copy_token_bits(produced)
                length = (token & (0xFFFF >> bit_count)) + 3
                offset = (token >> (16 - bit_count)) + 1
                if offset > produced:
                    raise ValueError(f"copy token at byte {pos - 2} reaches before its chunk")
                source = len(out) - offset
                if offset >= length:
                    out += out[source:source + length]
                else:  # overlapping copy: the pattern repeats
                    pattern = out[source:]
                    out += (pattern * (length // offset + 1))[:length]
        if len(out) - chunk_start > _CHUNK:
            raise ValueError("a chunk decompressed to more than 4096 bytes")
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# MS-OVBA 2.4.3 data encryption (the CMG, DPB and GC values of the PROJECT stream)


def _project_key(project_id: str) -> int:
    return sum(project_id.encode("ascii")) & 0xFF


def encrypt_project_value(data: bytes, project_id: str, seed: int, ignored: bytes = b"") -> str:
    """2.4.3.2; returns the upper-case hex text written after ``CMG=`` / ``DPB=`` / ``GC=``.
    ``ignored`` supplies the (seed & 6) // 2 filler bytes (zeros if short)."""
    seed &= 0xFF
    version, key = 2, _project_key(project_id)
    out = bytearray([seed, seed ^ version, seed ^ key])
    unencrypted1, encrypted1, encrypted2 = key, seed ^ key, seed ^ version
    filler = ignored.ljust((seed & 6) // 2, b"\0")[: (seed & 6) // 2]
    for byte in filler + len(data).to_bytes(4, "little") + data:
        byte_enc = byte ^ ((encrypted2 + unencrypted1) & 0xFF)
        out.append(byte_enc)
        encrypted2, encrypted1, unencrypted1 = encrypted1, byte_enc, byte
    return out.hex().upper()


def decrypt_project_value(text: str) -> bytes:
    """2.4.3.3, the inverse of :func:`encrypt_project_value`; raises ``ValueError`` on a bad value."""
    raw = bytes.fromhex(text)
    if len(raw) < 7:
        raise ValueError("encrypted value too short")
    seed, version = raw[0], raw[1] ^ raw[0]
    if version != 2:
        raise ValueError(f"encryption version {version}, expected 2")
    key = raw[2] ^ seed
    unencrypted1, encrypted1, encrypted2 = key, raw[2], raw[1]
    plain = bytearray()
    for byte_enc in raw[3:]:
        byte = byte_enc ^ ((encrypted2 + unencrypted1) & 0xFF)
        plain.append(byte)
        encrypted2, encrypted1, unencrypted1 = encrypted1, byte_enc, byte
    body = plain[(seed & 6) // 2:]
    length = int.from_bytes(body[:4], "little")
    if len(body) != 4 + length:
        raise ValueError("encrypted value length does not match its data")
    return bytes(body[4:])


# ---------------------------------------------------------------------------------------------------
# module source

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")
_WORKBOOK_BASE = "0{00020819-0000-0000-C000-000000000046}"
_WORKSHEET_BASE = "0{00020820-0000-0000-C000-000000000046}"
_CLASS_BASE = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"
# the module-level attributes this module writes itself; any of them at the top of a source is dropped
_GENERATED_ATTRIBUTES = ("VB_Name", "VB_Base", "VB_GlobalNameSpace", "VB_Creatable", "VB_PredeclaredId",
                         "VB_Exposed", "VB_TemplateDerived", "VB_Customizable")
_EXPORT_HEADER_LINE = re.compile(r"\s*(VERSION\s+\d|BEGIN\b|END\s*$|MultiUse\s*=)", re.IGNORECASE)
_ATTRIBUTE_LINE = re.compile(r"\s*Attribute\s+(VB_\w+)\s*=", re.IGNORECASE)


def _header(module: VbaModule, workbook_module: str) -> list[str]:
    lines = [f'Attribute VB_Name = "{module.name}"']
    if module.kind == "standard":
        return lines
    if module.kind == "document":
        base = _WORKBOOK_BASE if module.name == workbook_module else _WORKSHEET_BASE
        flags = ("False", "False", "True", "True", "False", "True")
    else:
        base, flags = _CLASS_BASE, ("False", "False", "False", "False", "False", "False")
    lines.append(f'Attribute VB_Base = "{base}"')
    lines += [f"Attribute {name} = {value}" for name, value in zip(_GENERATED_ATTRIBUTES[2:], flags, strict=True)]
    return lines


def module_source(module: VbaModule, workbook_module: str = "ThisWorkbook") -> str:
    """The text stored for ``module``: generated ``Attribute VB_*`` header, then the code, CRLF line
    ends. A header already at the top of ``module.code`` (as a VBE export has) is replaced; other
    module attributes there (``VB_Description``) are kept, after the generated ones."""
    lines = module.code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    kept: list[str] = []
    index = 0
    in_class_header = False
    while index < len(lines):
        line = lines[index]
        attribute = _ATTRIBUTE_LINE.match(line)
        if attribute:
            if attribute.group(1).lower() not in {a.lower() for a in _GENERATED_ATTRIBUTES}:
                kept.append(line.strip())
        elif _EXPORT_HEADER_LINE.match(line):
            in_class_header = not re.match(r"\s*END\s*$", line, re.IGNORECASE)
        elif not in_class_header:
            break
        index += 1
    body = lines[index:]
    return "".join(f"{line}\r\n" for line in [*_header(module, workbook_module), *kept, *body])


def vba_string_expr(text: str) -> str:
    """A VBA expression for ``text`` that does not depend on the code page: printable ASCII stays a
    quoted literal, anything else becomes ``ChrW(&Hxxxx)`` (``""`` for the empty string). Note that
    VBA's own ``MsgBox`` still shows only characters of the Windows ANSI code page."""
    if not text:
        return '""'
    parts: list[str] = []
    literal = ""
    for char in text:
        if " " <= char <= "~":
            literal += '""' if char == '"' else char
            continue
        if literal:
            parts.append(f'"{literal}"')
            literal = ""
        if ord(char) > 0xFFFF:  # a surrogate pair: two UTF-16 units
            units = char.encode("utf-16-le")
            parts += [f"ChrW(&H{int.from_bytes(units[i:i + 2], 'little'):X})" for i in (0, 2)]
        else:
            parts.append(f"ChrW(&H{ord(char):X})")
    if literal:
        parts.append(f'"{literal}"')
    return " & ".join(parts)


def excel_document_modules(sheet_code_names: Iterable[str], workbook_module: str = "ThisWorkbook") -> list[VbaModule]:
    """Empty document modules for the workbook and each sheet code name (what Excel itself keeps)."""
    return [VbaModule(workbook_module, "", "document")] + [VbaModule(name, "", "document") for name in sheet_code_names]


# ---------------------------------------------------------------------------------------------------
# the dir stream (MS-OVBA 2.3.4.2)

# REFERENCEREGISTERED records as a fresh Excel workbook has them; the host (Excel) and VBA libraries
# are implicit. Excel finds a registered type library by GUID and version; the path is a hint only.
STDOLE_REFERENCE = ("stdole", r"*\G{00020430-0000-0000-C000-000000000046}#2.0#0#C:\Windows\System32\stdole2.tlb#OLE Automation")
OFFICE_REFERENCE = ("Office", r"*\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0#C:\Program Files\Common Files"
                              r"\Microsoft Shared\OFFICE16\MSO.DLL#Microsoft Office 16.0 Object Library")
DEFAULT_REFERENCES = (STDOLE_REFERENCE, OFFICE_REFERENCE)

_SYSKIND_WIN64 = 3
_LCID = 0x0409  # MUST be 0x409
_COOKIE = 0xFFFF


def _record(record_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", record_id, len(payload)) + payload


def _dual(record_id: int, text_bytes: bytes, unicode_id: int, text: str) -> bytes:
    return _record(record_id, text_bytes) + _record(unicode_id, text.encode("utf-16-le"))


def _dir_stream(modules: list[VbaModule], project_name: str, codepage: str, codepage_number: int,
                references: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray()
    out += _record(0x0001, struct.pack("<I", _SYSKIND_WIN64))  # PROJECTSYSKIND
    out += _record(0x0002, struct.pack("<I", _LCID))  # PROJECTLCID
    out += _record(0x0014, struct.pack("<I", _LCID))  # PROJECTLCIDINVOKE
    out += _record(0x0003, struct.pack("<H", codepage_number))  # PROJECTCODEPAGE
    out += _record(0x0004, project_name.encode(codepage))  # PROJECTNAME
    out += _dual(0x0005, b"", 0x0040, "")  # PROJECTDOCSTRING
    out += _dual(0x0006, b"", 0x003D, "")  # PROJECTHELPFILEPATH (HelpFile1, HelpFile2)
    out += _record(0x0007, struct.pack("<I", 0))  # PROJECTHELPCONTEXT
    out += _record(0x0008, struct.pack("<I", 0))  # PROJECTLIBFLAGS
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)  # PROJECTVERSION: Reserved=4, major, minor
    out += _dual(0x000C, b"", 0x003C, "")  # PROJECTCONSTANTS
    for name, libid in references:  # REFERENCENAME + REFERENCEREGISTERED
        out += _dual(0x0016, name.encode(codepage), 0x003E, name)
        libid_bytes = libid.encode("ascii")
        out += _record(0x000D, struct.pack("<I", len(libid_bytes)) + libid_bytes + struct.pack("<IH", 0, 0))
    out += _record(0x000F, struct.pack("<H", len(modules)))  # PROJECTMODULES
    out += _record(0x0013, struct.pack("<H", _COOKIE))  # PROJECTCOOKIE
    for module in modules:
        mbcs_name = module.name.encode(codepage)
        out += _record(0x0019, mbcs_name)  # MODULENAME
        out += _record(0x0047, module.name.encode("utf-16-le"))  # MODULENAMEUNICODE
        out += _dual(0x001A, mbcs_name, 0x0032, module.name)  # MODULESTREAMNAME
        out += _dual(0x001C, b"", 0x0048, "")  # MODULEDOCSTRING
        out += _record(0x0031, struct.pack("<I", 0))  # MODULEOFFSET: source only
        out += _record(0x001E, struct.pack("<I", 0))  # MODULEHELPCONTEXT
        out += _record(0x002C, struct.pack("<H", _COOKIE))  # MODULECOOKIE
        out += _record(0x0021 if module.kind == "standard" else 0x0022, b"")  # MODULETYPE
        out += _record(0x002B, b"")  # module terminator
    out += _record(0x0010, b"")  # dir terminator
    return bytes(out)


_NOT_PROTECTED, _NO_PASSWORD, _VISIBLE = bytes(4), b"\x00", b"\xff"  # CMG, DPB, GC data (2.3.1.15-17)


def _project_stream(modules: list[VbaModule], project_name: str, project_id: str, codepage: str) -> bytes:
    seed = hashlib.sha256(project_id.encode("ascii")).digest()  # deterministic "random" seeds and filler
    lines = [f'ID="{project_id}"']
    for module in modules:
        lines.append({"document": f"Document={module.name}/&H00000000", "class": f"Class={module.name}",
                      "standard": f"Module={module.name}"}[module.kind])
    lines += [
        f'Name="{project_name}"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
        f'CMG="{encrypt_project_value(_NOT_PROTECTED, project_id, seed[0], seed[1:4])}"',
        f'DPB="{encrypt_project_value(_NO_PASSWORD, project_id, seed[4], seed[5:8])}"',
        f'GC="{encrypt_project_value(_VISIBLE, project_id, seed[8], seed[9:12])}"',
        "",
        "[Host Extender Info]",
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
        "",
        "[Workspace]",
        *(f"{module.name}=0, 0, 0, 0, C" for module in modules),
        "",
    ]
    return "\r\n".join(lines).encode(codepage)


def _project_wm_stream(modules: list[VbaModule], codepage: str) -> bytes:
    out = bytearray()
    for module in modules:
        out += module.name.encode(codepage) + b"\0" + module.name.encode("utf-16-le") + b"\0\0"
    return bytes(out + b"\0\0")


# source-only header: Reserved1 0x61CC, Version 0xFFFF, Reserved2 0x00, Reserved3 (ignored)
VBA_PROJECT_STREAM = bytes.fromhex("CC61FFFF000000")


def build_vba_project(modules: list[VbaModule], project_name: str = "VBAProject", codepage: int = 936,
                      *, references: Iterable[tuple[str, str]] = DEFAULT_REFERENCES, project_id: str | None = None,
                      workbook_module: str = "ThisWorkbook") -> bytes:
    """The bytes of a source-only ``vbaProject.bin`` holding ``modules`` (in that order).

    ``codepage``: the Windows code page of the project (936 GBK, 1252 Western, 65001 is not allowed
    by VBA); module code that it cannot encode raises ``ValueError``. ``references``: (name, libid)
    pairs of registered type libraries, by default stdole and the Office library as Excel writes them.
    ``project_id``: the ``{GUID}`` of the PROJECT stream, by default derived from the project name and
    module names so that the same input gives the same bytes. ``workbook_module``: the document module
    that stands for the workbook (any other document module is a worksheet)."""
    if not modules:
        raise ValueError("a VBA project needs at least one module")
    try:
        encoding = f"cp{codepage}"
        "".encode(encoding)
    except LookupError as error:
        raise ValueError(f"unknown code page {codepage}") from error
    if codepage == 65001:
        raise ValueError("VBA source cannot be stored as UTF-8 (code page 65001)")
    for name in [project_name, *(m.name for m in modules)]:
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a VBA name (a letter, then up to 30 letters, digits or _)")
    seen: set[str] = set()
    for module in modules:
        if module.kind not in ("standard", "document", "class"):
            raise ValueError(f"module {module.name}: unknown kind {module.kind!r}")
        if module.name.lower() in seen:
            raise ValueError(f"two modules named {module.name!r} (VBA names ignore case)")
        seen.add(module.name.lower())
    if project_id is None:
        key = "\0".join([project_name, *(m.name for m in modules)])
        project_id = "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "xlsales-vba:" + key)).upper() + "}"
    elif not re.fullmatch(r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}", project_id):
        raise ValueError(f"project_id {project_id!r} is not an upper-case {{GUID}}")

    streams: dict[str, bytes] = {
        "PROJECT": _project_stream(modules, project_name, project_id, encoding),
        "PROJECTwm": _project_wm_stream(modules, encoding),
        "VBA/_VBA_PROJECT": VBA_PROJECT_STREAM,
        "VBA/dir": compress(_dir_stream(modules, project_name, encoding, codepage, references)),
    }
    for module in modules:
        for number, line in enumerate(module.code.splitlines(), 1):
            try:
                line.encode(encoding)
            except UnicodeEncodeError as error:
                raise ValueError(f"module {module.name}, line {number}: {line[error.start:error.end]!r} is not in code page "
                                 f"{codepage}; use vba_string_expr() for it") from error
        source = module_source(module, workbook_module).encode(encoding)
        compressed = compress(source)
        if decompress(compressed) != source:
            # the last chunk did not compress and was padded with NULs (only near-random text does
            # that): fill it up with blank lines instead, so that it is a whole raw chunk
            missing = -len(source) % _CHUNK
            source += b" " * (missing % 2) + b"\r\n" * (missing // 2)
            compressed = compress(source)
        streams[f"VBA/{module.name}"] = compressed
    return write_compound_file(streams)


# ---------------------------------------------------------------------------------------------------
# MS-CFB version 3 writer

_SECTOR = 512
_MINI_SECTOR = 64
_MINI_CUTOFF = 4096
_FREESECT, _ENDOFCHAIN, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
_STORAGE, _STREAM, _ROOT = 1, 2, 5
_BLACK = 1


@dataclass
class _Entry:
    name: str
    kind: int
    data: bytes = b""
    children: list[_Entry] | None = None
    left: int = _NOSTREAM
    right: int = _NOSTREAM
    child: int = _NOSTREAM
    start: int = _ENDOFCHAIN
    size: int = 0


def _sort_key(entry: _Entry) -> tuple[int, str]:
    return len(entry.name), entry.name.upper()  # MS-CFB 2.6.4 (upper-casing close enough for ASCII names)


def _sectors(size: int, sector: int) -> int:
    return -(-size // sector)


def write_compound_file(streams: dict[str, bytes]) -> bytes:
    """A CFB v3 file holding ``streams`` ({"STORAGE/STREAM": bytes}, ``/``-separated paths)."""
    root = _Entry("Root Entry", _ROOT, children=[])
    for path, data in streams.items():
        *storages, name = path.split("/")
        parent = root
        for storage in storages:
            assert parent.children is not None
            found = next((e for e in parent.children if e.name.upper() == storage.upper()), None)
            if found is None:
                found = _Entry(storage, _STORAGE, children=[])
                parent.children.append(found)
            elif found.kind != _STORAGE:
                raise ValueError(f"{path}: {storage} is a stream")
            parent = found
        assert parent.children is not None
        if any(e.name.upper() == name.upper() for e in parent.children):
            raise ValueError(f"{path}: duplicate name")
        parent.children.append(_Entry(name, _STREAM, data=bytes(data)))

    entries: list[_Entry] = []

    def number(entry: _Entry) -> int:
        if not 0 < len(entry.name) <= 31 or any(c in entry.name for c in "/\\:!"):
            raise ValueError(f"bad compound file entry name {entry.name!r}")
        index = len(entries)
        entries.append(entry)
        if entry.children:
            ordered = sorted(entry.children, key=_sort_key)
            ids = [number(child) for child in ordered]
            entry.child = ids[0]
            for child, next_id in zip(ordered, ids[1:], strict=False):
                child.right = next_id  # all black, a right-leaning chain: a valid (if unbalanced) tree
        return index

    number(root)

    # mini stream for the small streams, regular sectors for the others
    mini_stream, mini_fat = bytearray(), []
    big = [e for e in entries if e.kind == _STREAM and len(e.data) >= _MINI_CUTOFF]
    for entry in entries:
        entry.size = len(entry.data)
        if entry.kind == _STREAM and 0 < entry.size < _MINI_CUTOFF:
            first, count = len(mini_stream) // _MINI_SECTOR, _sectors(entry.size, _MINI_SECTOR)
            entry.start = first
            mini_fat += [*range(first + 1, first + count), _ENDOFCHAIN]
            mini_stream += entry.data.ljust(count * _MINI_SECTOR, b"\0")
        elif entry.kind == _STORAGE:
            entry.start = 0
    dir_sectors = _sectors(len(entries) * 128, _SECTOR)
    mini_fat_sectors = _sectors(len(mini_fat) * 4, _SECTOR)
    mini_stream_sectors = _sectors(len(mini_stream), _SECTOR)
    big_sectors = sum(_sectors(len(e.data), _SECTOR) for e in big)
    others = dir_sectors + mini_fat_sectors + mini_stream_sectors + big_sectors
    fat_sectors = 1
    while fat_sectors * (_SECTOR // 4) < fat_sectors + others:
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("compound file too large for a header-only DIFAT (about 6.8 MB)")

    fat: list[int] = [_FATSECT] * fat_sectors
    body = bytearray()

    def place(data: bytes) -> int:
        count = _sectors(len(data), _SECTOR)
        if count == 0:
            return _ENDOFCHAIN
        first = len(fat)
        fat.extend([*range(first + 1, first + count), _ENDOFCHAIN])
        body.extend(data.ljust(count * _SECTOR, b"\0"))
        return first

    first_dir = len(fat)
    fat.extend([*range(first_dir + 1, first_dir + dir_sectors), _ENDOFCHAIN])  # directory: filled in below
    body.extend(bytes(dir_sectors * _SECTOR))
    first_mini_fat = place(b"".join(struct.pack("<I", n) for n in mini_fat).ljust(mini_fat_sectors * _SECTOR, b"\xff"))
    root.start = place(bytes(mini_stream))
    root.size = len(mini_stream)
    for entry in big:
        entry.start = place(entry.data)
    fat.extend([_FREESECT] * (fat_sectors * (_SECTOR // 4) - len(fat)))

    directory = bytearray()
    for entry in entries:
        utf16_name = entry.name.encode("utf-16-le") + b"\0\0"
        directory += struct.pack("<64sHBBIII16sIQQIQ", utf16_name, len(utf16_name), entry.kind, _BLACK, entry.left, entry.right,
                                 entry.child, bytes(16), 0, 0, 0, entry.start, entry.size)
    while len(directory) % _SECTOR:  # unused entries
        directory += struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM, bytes(16), 0, 0, 0, 0, 0)
    body[0:len(directory)] = directory

    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("D0CF11E0A1B11AE1"), bytes(16), 0x003E, 0x0003, 0xFFFE, 9, 6, bytes(6),
        0, fat_sectors, first_dir, 0, _MINI_CUTOFF,
        first_mini_fat, mini_fat_sectors, _ENDOFCHAIN, 0,
    )
    header += b"".join(struct.pack("<I", n) for n in range(fat_sectors))
    header += b"\xff" * (_SECTOR - len(header))
    fat_bytes = b"".join(struct.pack("<I", n) for n in fat)
    return bytes(header + fat_bytes + body)
