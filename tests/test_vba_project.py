"""vbaProject.bin writer (xlsales.adapters.vba_project).

- compression: the worked examples of MS-OVBA 3.2, agreement with a literal transcription of the
  normative algorithm, round trips (hypothesis) across chunk boundaries, malformed input;
- the PROJECT stream's encrypted values against an Excel-written one;
- module text: generated attribute headers, ChrW expressions;
- the compound file: read back by olefile (strict) and oletools' olevba, directly and inside an
  .xlsm made by XlsxWriter; dir stream records checked one by one;
- LibreOffice (skipped only when soffice is absent): the modules are listed, a form button is bound,
  and a macro runs and writes cells (Chinese literal in code page 936, ChrW text, a class module).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import struct
import subprocess
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlsales.adapters.vba_project import (
    VBA_PROJECT_STREAM,
    VbaModule,
    build_vba_project,
    compress,
    decompress,
    decrypt_project_value,
    encrypt_project_value,
    excel_document_modules,
    module_source,
    vba_string_expr,
    write_compound_file,
)

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# ---------------------------------------------------------------------------------------------------
# compression: MS-OVBA 3.2 examples

NO_COMPRESSION = (b"abcdefghijklmnopqrstuv.",
                  unhex("01 19 B0 00 61 62 63 64 65 66 67 68 00 69 6A 6B 6C 6D 6E 6F 70 00 71 72 73 74 75 76 2E"))
NORMAL_TEXT = b"#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa"
# the current revision of MS-OVBA 3.2.2 (nearest match on ties, as the normative algorithm says)
NORMAL_COMPRESSED = unhex("01 2F B0 00 23 61 61 61 62 63 64 65 82 66 00 70 61 67 68 69 6A 01 38 08 61 6B 6C 00 20 6D 6E 6F"
                          "70 06 71 02 70 04 00 72 73 74 75 76 10 77 78 79 7A 00 2C")
# older revisions printed another valid encoding of the same text (farther matches); it must still decompress
NORMAL_COMPRESSED_OLD = unhex("01 2F B0 00 23 61 61 61 62 63 64 65 82 66 00 70 61 67 68 69 6A 01 38 08 61 6B 6C 00 30 6D 6E 6F"
                              "70 06 71 02 70 04 10 72 73 74 75 76 10 77 78 79 7A 00 3C")
MAXIMUM_COMPRESSION = (b"a" * 73, unhex("01 03 B0 02 61 45 00"))


@pytest.mark.parametrize(("text", "compressed"), [NO_COMPRESSION, (NORMAL_TEXT, NORMAL_COMPRESSED), MAXIMUM_COMPRESSION],
                         ids=["no-compression", "normal", "maximum"])
def test_specification_examples_compress_to_the_published_bytes(text, compressed):
    assert compress(text) == compressed
    assert decompress(compressed) == text


def test_the_older_published_encoding_decompresses_too():
    assert decompress(NORMAL_COMPRESSED_OLD) == NORMAL_TEXT


def test_empty_input_is_the_signature_byte_alone():
    assert compress(b"") == b"\x01"
    assert decompress(b"\x01") == b""


def test_a_chunk_cut_short_is_read_up_to_the_end_of_the_data():
    assert decompress(b"\x01\x10\xb0\x00abc") == b"abc"  # MS-OVBA 2.4.1.3.1: CompressedEnd = min(...)


# ---------------------------------------------------------------------------------------------------
# compression: a literal transcription of MS-OVBA 2.4.1.3.6-2.4.1.3.19.4, quadratic, for small inputs


def spec_compress(data: bytes) -> bytes:
    out = bytearray(b"\x01")
    dec_current, dec_buffer_end = 0, len(data)
    while dec_current < dec_buffer_end:
        chunk_start = len(out)
        comp_end = chunk_start + 4098
        comp_current = chunk_start + 2
        out += b"\0\0"
        dec_chunk_start = dec_current
        dec_end = min(dec_current + 4096, dec_buffer_end)
        while dec_current < dec_end and comp_current < comp_end:
            flag_index = comp_current
            out.append(0)
            comp_current += 1
            flags = 0
            for index in range(8):
                if not (dec_current < dec_end and comp_current < comp_end):
                    continue
                best_len, best_cand = 0, 0
                cand = dec_current - 1
                while cand >= dec_chunk_start:
                    c, d, length = cand, dec_current, 0
                    while d < dec_end and data[d] == data[c]:
                        length, c, d = length + 1, c + 1, d + 1
                    if length > best_len:
                        best_len, best_cand = length, cand
                    cand -= 1
                if best_len >= 3:
                    difference = dec_current - dec_chunk_start
                    bit_count = 4
                    while (1 << bit_count) < difference:
                        bit_count += 1
                    length = min(best_len, (0xFFFF >> bit_count) + 3)
                    offset = dec_current - best_cand
                    if comp_current + 1 < comp_end:
                        token = ((offset - 1) << (16 - bit_count)) | (length - 3)
                        out += struct.pack("<H", token)
                        flags |= 1 << index
                        comp_current += 2
                        dec_current += length
                    else:
                        comp_current = comp_end
                elif comp_current < comp_end:
                    out.append(data[dec_current])
                    comp_current += 1
                    dec_current += 1
                else:
                    comp_current = comp_end
            out[flag_index] = flags
        if dec_current < dec_end:
            del out[chunk_start + 2:]
            out[chunk_start:chunk_start + 2] = struct.pack("<H", 0x3FFF)
            out += data[dec_chunk_start:dec_chunk_start + 4096].ljust(4096, b"\0")
            dec_current = dec_end
        else:
            out[chunk_start:chunk_start + 2] = struct.pack("<H", 0xB000 | (comp_current - chunk_start - 3))
    return bytes(out)


def test_the_transcription_reproduces_the_specification_examples():
    for text, compressed in [NO_COMPRESSION, (NORMAL_TEXT, NORMAL_COMPRESSED), MAXIMUM_COMPRESSION]:
        assert spec_compress(text) == compressed


small_alphabet = st.lists(st.sampled_from([b"a", b"b", b"ab", b"abc", b" ", b"\r\n", b"aaaa"]), max_size=300).map(b"".join)


@SLOW
@given(st.one_of(st.binary(max_size=700), small_alphabet))
def test_compression_is_byte_identical_to_the_normative_algorithm(data):
    assert compress(data) == spec_compress(data)


def test_compression_is_byte_identical_across_a_chunk_boundary():
    rng = random.Random(7)
    words = [b"Dim ", b"x", b"y", b" = ", b"1", b"\r\n", b"    ", b"Range(\"A1\")", b"End Sub", b"If ", b"Then"]
    data = b"".join(rng.choice(words) for _ in range(1700))[:4096 + 700]
    assert len(data) > 4096
    assert compress(data) == spec_compress(data)


# ---------------------------------------------------------------------------------------------------
# compression: round trips


def chunks(container: bytes) -> list[tuple[bool, int]]:
    """(compressed?, chunk size with header) of every chunk."""
    out, pos = [], 1
    while pos < len(container):
        header = struct.unpack_from("<H", container, pos)[0]
        assert (header >> 12) & 7 == 3
        size = (header & 0x0FFF) + 3
        out.append((bool(header & 0x8000), size))
        pos += size
    assert pos == len(container)
    return out


def assert_round_trip(data: bytes) -> None:
    container = compress(data)
    result = decompress(container)
    layout = chunks(container)
    assert len(layout) == -(-len(data) // 4096)
    assert all(size <= 4098 for _, size in layout)
    assert all(size == 4098 for flag, size in layout if not flag)
    if layout and not layout[-1][0] and len(data) % 4096:
        # an incompressible short last chunk is stored raw, padded with zeros (MS-OVBA 2.4.1.3.10)
        assert result == data.ljust(len(layout) * 4096, b"\0")
    else:
        assert result == data


def repetitive_text(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    lines = ["Sub Calc()", "    Dim total As Double", '    total = total + Range("B" & i).Value',
             "    If total > 100 Then", '        MsgBox "超额"', "    End If", "Next i", "End Sub", ""]
    text = "\r\n".join(rng.choice(lines) for _ in range(size // 8 + 1)).encode("gbk")
    return text[:size]


@SLOW
@given(st.binary(max_size=20_000))
def test_round_trip_random_bytes(data):
    assert_round_trip(data)


@SLOW
@given(st.integers(0, 20_000), st.integers(0, 2**32))
def test_round_trip_random_bytes_of_any_size(size, seed):
    assert_round_trip(random.Random(seed).randbytes(size))


def mixed(seed: int, size: int) -> bytes:
    """Noise and copies of earlier bytes (near and far, short and long, overlapping): every kind of token."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        if out and rng.random() < 0.6:
            start = max(0, len(out) - rng.choice([1, 2, 17, 300, 4095, 9000]))
            start = rng.randint(start, len(out) - 1)
            for _ in range(rng.choice([3, 4, 10, 100, 2000])):
                out.append(out[start])
                start += 1
        else:
            out += rng.randbytes(rng.randint(1, 40))
    return bytes(out[:size])


@SLOW
@given(st.integers(0, 20_000), st.integers(0, 2**32))
def test_round_trip_noise_and_copies(size, seed):
    assert_round_trip(mixed(seed, size))


def test_mixed_data_is_byte_identical_to_the_normative_algorithm_across_a_chunk_boundary():
    data = mixed(11, 4096 + 500)
    assert compress(data) == spec_compress(data)


@SLOW
@given(st.integers(0, 2**32), st.integers(0, 20_000))
def test_round_trip_long_repetitive_text(seed, size):
    data = repetitive_text(seed, size)
    assert_round_trip(data)
    assert decompress(compress(data)) == data  # text is never stored as a padded raw chunk


@pytest.mark.parametrize("size", [1, 2, 3, 4095, 4096, 4097, 8191, 8192, 8193, 12_288, 20_000])
@pytest.mark.parametrize("kind", ["random", "text", "run"])
def test_round_trip_at_chunk_boundaries(size, kind):
    data = {"random": random.Random(size).randbytes(size), "text": repetitive_text(size, size), "run": b"a" * size}[kind]
    assert_round_trip(data)


def test_an_incompressible_short_last_chunk_is_raw_and_padded():
    data = random.Random(1).randbytes(4096 + 3900)
    container = compress(data)
    assert [flag for flag, _ in chunks(container)] == [False, False]
    assert decompress(container) == data + bytes(196)


@pytest.mark.parametrize(("bad", "message"), [
    (b"", "first byte"),
    (b"\x02\x00\xb0", "first byte"),
    (b"\x01\x00", "truncated chunk header"),
    (b"\x01\x03\xa0\x00abc", "chunk signature"),
    (b"\x01\x02\xb0\x01\x00\x00", "cannot start with a copy token"),
    (b"\x01\x03\xb0\x02\x61\x00\x10", "before its chunk"),
    (b"\x01\xff\x3f" + bytes(100), "4096 bytes"),
    (b"\x01\x02\xb0\x02a\x01", "truncated copy token"),
])
def test_malformed_containers_raise_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        decompress(bad)


@SLOW
@given(st.binary(max_size=300))
def test_garbage_raises_only_value_error(data):
    with contextlib.suppress(ValueError):
        decompress(b"\x01" + data)


# ---------------------------------------------------------------------------------------------------
# PROJECT stream encryption (MS-OVBA 2.4.3)

# from the PROJECT stream of an Excel-saved vbaProject.bin (xlwings 0.37.8's quickstart workbook)
EXCEL_PROJECT_ID = "{5CF9CDAB-B77B-4FE4-BD7E-D29900070E1B}"
EXCEL_VALUES = {"CMG": ("8D8FA61394EA98EA98EA98EA98", bytes(4)), "DPB": ("8D8FA61394EF95EF95EF", b"\x00"),
                "GC": ("8D8FA61394EF95EF9510", b"\xff")}


@pytest.mark.parametrize("key", sorted(EXCEL_VALUES))
def test_excel_written_values_decrypt_and_re_encrypt(key):
    text, plain = EXCEL_VALUES[key]
    assert decrypt_project_value(text) == plain
    raw = bytes.fromhex(text)
    assert raw[2] ^ raw[0] == sum(EXCEL_PROJECT_ID.encode()) & 0xFF  # the project key
    # recover Excel's filler bytes (MS-OVBA 2.4.3.3), then encrypting with its seed gives its text exactly
    unencrypted1, encrypted1, encrypted2, filler = raw[2] ^ raw[0], raw[2], raw[1], bytearray()
    for byte_enc in raw[3:3 + (raw[0] & 6) // 2]:
        filler.append(byte_enc ^ ((encrypted2 + unencrypted1) & 0xFF))
        encrypted2, encrypted1, unencrypted1 = encrypted1, byte_enc, filler[-1]
    assert encrypt_project_value(plain, EXCEL_PROJECT_ID, raw[0], bytes(filler)) == text


@given(st.binary(max_size=64), st.integers(0, 255), st.binary(min_size=3, max_size=3), st.uuids())
def test_encryption_round_trip(data, seed, ignored, guid):
    project_id = "{" + str(guid).upper() + "}"
    assert decrypt_project_value(encrypt_project_value(data, project_id, seed, ignored)) == data


# ---------------------------------------------------------------------------------------------------
# module text


def test_standard_module_gets_only_vb_name_and_crlf():
    source = module_source(VbaModule("Calc", "Sub A()\nEnd Sub"))
    assert source == 'Attribute VB_Name = "Calc"\r\nSub A()\r\nEnd Sub\r\n'


def test_document_and_class_headers():
    workbook = module_source(VbaModule("ThisWorkbook", "", "document")).split("\r\n")
    sheet = module_source(VbaModule("Sheet1", "", "document")).split("\r\n")
    klass = module_source(VbaModule("Tally", "Public N As Long", "class")).split("\r\n")
    assert workbook[:2] == ['Attribute VB_Name = "ThisWorkbook"', 'Attribute VB_Base = "0{00020819-0000-0000-C000-000000000046}"']
    assert sheet[1] == 'Attribute VB_Base = "0{00020820-0000-0000-C000-000000000046}"'
    assert workbook[2:8] == ["Attribute VB_GlobalNameSpace = False", "Attribute VB_Creatable = False",
                             "Attribute VB_PredeclaredId = True", "Attribute VB_Exposed = True",
                             "Attribute VB_TemplateDerived = False", "Attribute VB_Customizable = True"]
    assert klass[1] == 'Attribute VB_Base = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"'
    assert klass[2:9] == ["Attribute VB_GlobalNameSpace = False", "Attribute VB_Creatable = False",
                          "Attribute VB_PredeclaredId = False", "Attribute VB_Exposed = False",
                          "Attribute VB_TemplateDerived = False", "Attribute VB_Customizable = False", "Public N As Long"]


def test_a_vbe_export_header_is_replaced_and_other_attributes_kept():
    exported = textwrap.dedent("""\
        VERSION 1.0 CLASS
        BEGIN
          MultiUse = -1  'True
        END
        Attribute VB_Name = "OldName"
        Attribute VB_GlobalNameSpace = False
        Attribute VB_Description = "Counts things"
        Option Explicit
        Attribute Foo.VB_UserMemId = 0
        """)
    lines = module_source(VbaModule("Tally", exported, "class")).split("\r\n")
    assert lines[0] == 'Attribute VB_Name = "Tally"'
    assert lines[8:] == ['Attribute VB_Description = "Counts things"', "Option Explicit", "Attribute Foo.VB_UserMemId = 0", ""]
    assert sum("VB_Name" in line for line in lines) == 1


def evaluate_vba_string(expr: str) -> str:
    """Evaluates the expressions vba_string_expr makes: "literal" and ChrW(&Hxxxx) joined by &."""
    import re
    out = []
    for literal, code in re.findall(r'"((?:[^"]|"")*)"|ChrW\(&H([0-9A-F]+)\)', expr):
        out.append(chr(int(code, 16)) if code else literal.replace('""', '"'))
    units = "".join(out).encode("utf-16-le", "surrogatepass")
    return units.decode("utf-16-le")


@given(st.text(max_size=40))
def test_vba_string_expr_evaluates_back_to_the_text(text):
    expr = vba_string_expr(text)
    assert expr.isascii()
    assert evaluate_vba_string(expr) == text


def test_vba_string_expr_example():
    assert vba_string_expr('合计 "A"') == 'ChrW(&H5408) & ChrW(&H8BA1) & " ""A"""'


# ---------------------------------------------------------------------------------------------------
# the project, read back


def open_ole(data: bytes, strict: bool = False):
    olefile = pytest.importorskip("olefile")
    return olefile.OleFileIO(data, raise_defects=olefile.DEFECT_UNSURE if strict else olefile.DEFECT_FATAL)


def pseudo_code(name: str, size: int, seed: int) -> str:
    """VBA of exactly ``size`` bytes (CRLF ends, GBK): distinct hex constants keep it from compressing
    much, so a 12,000-byte module needs regular sectors, not the mini stream."""
    rng = random.Random(seed)
    lines = [f"Sub {name}()"]
    while sum(len(line.encode("gbk")) + 2 for line in lines) < size - 9 - 60:
        lines.append(rng.choice([f"    v = &H{rng.getrandbits(32):08X} Xor &H{rng.getrandbits(32):08X}"] * 4
                                + [f'    Range("C{rng.randint(1, 999)}").Value = "客户{rng.randint(1, 99)}"']))
    used = sum(len(line.encode("gbk")) + 2 for line in lines) + len("End Sub\r\n")
    lines.append("'" + "x" * (size - used - 3))
    text = "\r\n".join([*lines, "End Sub", ""])
    assert len(text.encode("gbk")) == size
    return text


MODULES = [
    *excel_document_modules(["Sheet1", "Sheet2"]),
    VbaModule("Small", pseudo_code("Small", 100, 1)),
    VbaModule("Medium", pseudo_code("Medium", 3_000, 2)),
    VbaModule("Large", pseudo_code("Large", 12_000, 3)),
    VbaModule("Tally", "Public N As Long\r\n", "class"),
]


@pytest.fixture(scope="module")
def project() -> bytes:
    return build_vba_project(MODULES)


def expected_sources() -> dict[str, str]:
    return {m.name: module_source(m) for m in MODULES}


def test_compound_file_streams_and_strict_parse(project):
    assert len(project) % 512 == 0
    ole = open_ole(project, strict=True)
    assert sorted(ole.listdir()) == sorted([["PROJECT"], ["PROJECTwm"], ["VBA", "_VBA_PROJECT"], ["VBA", "dir"]]
                                           + [["VBA", m.name] for m in MODULES])
    assert ole.openstream("VBA/_VBA_PROJECT").read() == VBA_PROJECT_STREAM == unhex("CC 61 FF FF 00 00 00")
    for module in MODULES:  # source at offset 0: the whole stream is the compressed source
        data = ole.openstream(f"VBA/{module.name}").read()
        assert decompress(data).decode("gbk") == module_source(module)
    assert ole.get_size("VBA/Large") >= 4096 > ole.get_size("VBA/Medium")  # both sector kinds in use
    for entry in ole.direntries:
        if entry is not None:
            assert entry.color == 1  # black


def dir_records(data: bytes) -> list[tuple[int, bytes]]:
    records, pos = [], 0
    while pos < len(data):
        record_id, size = struct.unpack_from("<HI", data, pos)
        if record_id == 0x0009:  # PROJECTVERSION: Reserved (4) is not a size; 4 + 2 bytes of version follow
            records.append((record_id, data[pos + 6:pos + 12]))
            pos += 12
            continue
        records.append((record_id, data[pos + 6:pos + 6 + size]))
        pos += 6 + size
    assert pos == len(data)
    return records


def test_dir_stream_records(project):
    ole = open_ole(project)
    records = dir_records(decompress(ole.openstream("VBA/dir").read()))
    ids = [record_id for record_id, _ in records]
    assert ids[:16] == [0x01, 0x02, 0x14, 0x03, 0x04, 0x05, 0x40, 0x06, 0x3D, 0x07, 0x08, 0x09, 0x0C, 0x3C, 0x16, 0x3E]
    by_id = dict(records)
    assert struct.unpack("<H", by_id[0x03])[0] == 936
    assert by_id[0x04] == b"VBAProject"
    assert struct.unpack("<I", by_id[0x02])[0] == struct.unpack("<I", by_id[0x14])[0] == 0x409
    assert [payload[4:].split(b"#")[0] for rid, payload in records if rid == 0x0D] == [
        b"*\\G{00020430-0000-0000-C000-000000000046}", b"*\\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}"]
    assert struct.unpack("<H", by_id[0x0F])[0] == len(MODULES)
    modules = ids[ids.index(0x13) + 1:]
    per_module = [0x19, 0x47, 0x1A, 0x32, 0x1C, 0x48, 0x31, 0x1E, 0x2C, None, 0x2B]
    assert len(modules) == len(MODULES) * len(per_module) + 1 and modules[-1] == 0x10
    names = [payload for rid, payload in records if rid == 0x19]
    assert names == [m.name.encode() for m in MODULES]
    types = [rid for rid in modules if rid in (0x21, 0x22)]
    assert types == [0x21 if m.kind == "standard" else 0x22 for m in MODULES]
    assert all(payload == bytes(4) for rid, payload in records if rid == 0x31)  # MODULEOFFSET 0


def test_project_and_projectwm_streams(project):
    ole = open_ole(project)
    lines = ole.openstream("PROJECT").read().decode("cp936").split("\r\n")
    assert lines[1:7] == ["Document=ThisWorkbook/&H00000000", "Document=Sheet1/&H00000000", "Document=Sheet2/&H00000000",
                          "Module=Small", "Module=Medium", "Module=Large"]
    assert "Class=Tally" in lines and 'Name="VBAProject"' in lines
    values = dict(line.split("=", 1) for line in lines if line.startswith(("CMG=", "DPB=", "GC=")))
    assert {k: decrypt_project_value(v.strip('"')) for k, v in values.items()} == {"CMG": bytes(4), "DPB": b"\0", "GC": b"\xff"}
    assert "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000" in lines
    wm = ole.openstream("PROJECTwm").read()
    expected = b"".join(m.name.encode() + b"\0" + m.name.encode("utf-16-le") + b"\0\0" for m in MODULES) + b"\0\0"
    assert wm == expected


def test_the_same_modules_give_the_same_bytes(project):
    assert build_vba_project(MODULES) == project


def olevba_sources(**kwargs) -> dict[str, str]:
    olevba = pytest.importorskip("oletools.olevba")
    parser = olevba.VBA_Parser(**kwargs)
    try:
        assert parser.detect_vba_macros()
        return {Path(stream).name: code for _, stream, _, code in parser.extract_macros()}
    finally:
        parser.close()


def test_olevba_reads_every_module_back_from_the_bin(project):
    assert olevba_sources(filename="vbaProject.bin", data=project) == expected_sources()


def test_olevba_reads_every_module_back_from_an_xlsm_made_by_xlsxwriter(project, tmp_path):
    xlsxwriter = pytest.importorskip("xlsxwriter")
    path = tmp_path / "book.xlsm"
    workbook = xlsxwriter.Workbook(path)
    workbook.set_vba_name("ThisWorkbook")
    for name in ("Sheet1", "Sheet2"):
        workbook.add_worksheet().set_vba_name(name)
    workbook.add_vba_project(io.BytesIO(project), is_stream=True)
    workbook.close()
    assert olevba_sources(filename=str(path)) == expected_sources()


def test_code_page_1252_and_unencodable_text():
    modules = [VbaModule("Module1", 'Sub A()\n    MsgBox "Größe"\nEnd Sub\n')]
    sources = olevba_sources(filename="p.bin", data=build_vba_project(modules, codepage=1252))
    assert sources["Module1"] == module_source(modules[0])
    with pytest.raises(ValueError, match=r"module Module2, line 3: '合计' is not in code page 1252"):
        build_vba_project([VbaModule("Module2", 'Sub A()\n    MsgBox "x"\n    MsgBox "合计"\nEnd Sub')], codepage=1252)


@pytest.mark.parametrize(("modules", "kwargs", "message"), [
    ([], {}, "at least one module"),
    ([VbaModule("Bad Name", "")], {}, "not a VBA name"),
    ([VbaModule("A" * 32, "")], {}, "not a VBA name"),
    ([VbaModule("客户", "")], {}, "not a VBA name"),
    ([VbaModule("A", ""), VbaModule("a", "")], {}, "two modules"),
    ([VbaModule("A", "", "form")], {}, "unknown kind"),  # type: ignore[arg-type]
    ([VbaModule("A", "")], {"project_name": "My Project"}, "not a VBA name"),
    ([VbaModule("A", "")], {"codepage": 65001}, "UTF-8"),
    ([VbaModule("A", "")], {"codepage": 12345}, "unknown code page"),
    ([VbaModule("A", "")], {"project_id": "not-a-guid"}, "GUID"),
])
def test_bad_projects_are_refused(modules, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_vba_project(modules, **kwargs)


def test_an_incompressible_module_is_padded_with_blank_lines_not_nuls():
    rng = random.Random(3)
    noise = "'" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(7_950))
    module = VbaModule("Noise", noise)
    assert len(module_source(module)) % 4096 > 3640  # its last chunk does not compress
    stored = olevba_sources(filename="p.bin", data=build_vba_project([module]))["Noise"]
    assert stored.startswith(module_source(module)) and set(stored[len(module_source(module)):]) <= {" ", "\r", "\n"}
    assert len(stored) == 8192


@SLOW
@given(st.lists(st.tuples(st.sampled_from(["PROJECT", "VBA/a", "VBA/bb", "VBA/Module1", "X/Y/deep", "VBA/dir", "_x"]),
                          st.integers(0, 70_000), st.integers(0, 255)), max_size=7, unique_by=lambda t: t[0].upper()))
def test_compound_files_of_any_stream_sizes_read_back(specs):
    streams = {path: bytes([fill]) * size if size % 3 else random.Random(size).randbytes(size) for path, size, fill in specs}
    data = write_compound_file(streams)
    ole = open_ole(data, strict=True)
    assert sorted("/".join(p) for p in ole.listdir()) == sorted(streams)
    for path, content in streams.items():
        assert ole.openstream(path).read() == content


def test_a_compound_file_with_several_fat_and_directory_sectors():
    streams = {f"VBA/M{i:02d}": random.Random(i).randbytes(100 + 997 * i) for i in range(60)}  # ~1.8 MB, 60+ entries
    data = write_compound_file(streams)
    ole = open_ole(data, strict=True)
    assert struct.unpack_from("<I", data, 0x2C)[0] > 1  # FAT sectors
    assert all(ole.openstream(path).read() == content for path, content in streams.items())


# ---------------------------------------------------------------------------------------------------
# LibreOffice: the project is listed, a button is bound, and a macro runs

LIBREOFFICE_SCRIPT = r'''
import json, subprocess, sys, time, uuid
import uno
from com.sun.star.beans import PropertyValue

def prop(name, value):
    p = PropertyValue(); p.Name = name; p.Value = value; return p

path, profile, macros, cells = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
pipe = "xlsales_vba_" + uuid.uuid4().hex
office = subprocess.Popen(["soffice", "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
                           "-env:UserInstallation=" + uno.systemPathToFileUrl(profile), "--accept=pipe,name=%s;urp;" % pipe],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
result, desktop = {}, None
try:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    for _ in range(240):
        try:
            ctx = resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
            break
        except Exception:
            time.sleep(0.25)
    else:
        raise SystemExit("soffice did not answer")
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(path), "_blank", 0,
                                       (prop("Hidden", True), prop("MacroExecutionMode", 4)))
    libraries = doc.BasicLibraries
    result["libraries"] = list(libraries.getElementNames())
    if libraries.hasByName("VBAProject"):
        libraries.loadLibrary("VBAProject")
        library = libraries.getByName("VBAProject")
        result["modules"] = {name: library.getByName(name) for name in library.getElementNames()}
    sheet = doc.Sheets.getByIndex(0)
    forms, buttons = sheet.DrawPage.Forms, []
    for i in range(forms.Count):
        form = forms.getByIndex(i)
        for j in range(form.Count):
            buttons.append([form.getByIndex(j).Label, [e.ScriptCode for e in form.getScriptEvents(j)]])
    result["buttons"] = buttons
    result["runs"] = {}
    for macro in macros:
        try:
            script = doc.getScriptProvider().getScript(
                "vnd.sun.star.script:%s?language=Basic&location=document" % macro)
            script.invoke((), (), ())
            result["runs"][macro] = "ok"
        except Exception as error:
            result["runs"][macro] = "error: %s" % error
    result["cells"] = {address: sheet.getCellRangeByName(address).getString() for address in cells}
    doc.close(True)
finally:
    if desktop is not None:
        try:
            desktop.terminate()
        except Exception:
            pass
    try:
        office.wait(timeout=30)
    except subprocess.TimeoutExpired:
        office.kill()
print(json.dumps(result, ensure_ascii=False))
'''

MACRO_MODULE = f"""Option Explicit

Sub WriteCells()
    Dim t As New Tally
    t.Add 40
    t.Add 2
    Worksheets(1).Range("B2").Value = "你好，提成"
    Worksheets(1).Range("B3").Value = t.N
    Worksheets(1).Range("B4").Value = {vba_string_expr("总计: 合计")}
    ThisWorkbook.Worksheets(1).Range("B5").Value = "{"x" * 20}" & Len(Worksheets(1).Range("B2").Value)
End Sub
"""
TALLY_CLASS = "Public N As Long\n\nPublic Sub Add(ByVal value As Long)\n    N = N + value\nEnd Sub\n"


def uno_python() -> str | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and subprocess.run([candidate, "-c", "import uno"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_lists_the_modules_binds_the_button_and_runs_the_macro(tmp_path):
    xlsxwriter = pytest.importorskip("xlsxwriter")
    python = uno_python()
    assert python, "soffice is installed but no python3 can import uno (apt-get install python3-uno)"
    modules = [*excel_document_modules(["Sheet1"]), VbaModule("Module1", MACRO_MODULE), VbaModule("Tally", TALLY_CLASS, "class"),
               VbaModule("Padding", pseudo_code("Padding", 12_000, 4))]
    path = tmp_path / "macro.xlsm"
    workbook = xlsxwriter.Workbook(path)
    workbook.set_vba_name("ThisWorkbook")
    sheet = workbook.add_worksheet()
    sheet.set_vba_name("Sheet1")
    sheet.write("A1", "xlsales")
    sheet.insert_button("D2", {"macro": "WriteCells", "caption": "Run"})
    workbook.add_vba_project(io.BytesIO(build_vba_project(modules)), is_stream=True)
    workbook.close()
    script = tmp_path / "lo_check.py"
    script.write_text(LIBREOFFICE_SCRIPT, encoding="utf-8")
    run = subprocess.run([python, str(script), str(path), str(tmp_path / "profile"), json.dumps(["VBAProject.Module1.WriteCells"]),
                          json.dumps(["B2", "B3", "B4", "B5"])], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert "VBAProject" in result["libraries"]
    assert set(result["modules"]) == {"ThisWorkbook", "Sheet1", "Module1", "Tally", "Padding"}
    assert "VBA_ModuleType=VBADocumentModule" in result["modules"]["Sheet1"]
    assert "VBA_ModuleType=VBAClassModule" in result["modules"]["Tally"]
    assert '"你好，提成"' in result["modules"]["Module1"]  # code page 936 source decoded as such
    padding = pseudo_code("Padding", 12_000, 4).replace("\r\n", "\n")  # a stream in regular sectors, read whole
    assert result["modules"]["Padding"].endswith(padding + "\n") or result["modules"]["Padding"].endswith(padding)
    assert result["buttons"] == [["Run", ["vnd.sun.star.script:VBAProject.Module1.WriteCells?language=Basic&location=document"]]]
    assert result["runs"] == {"VBAProject.Module1.WriteCells": "ok"}
    assert result["cells"] == {"B2": "你好，提成", "B3": "42", "B4": "总计: 合计", "B5": "x" * 20 + "5"}
