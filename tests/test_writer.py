"""xlsx_writer and sheets: values, formats, in-place replacement, data safety (atomic save, locks)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import stat
import threading
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter

from xlsales.adapters import xlsx_writer
from xlsales.adapters.board import BOARD_SHEET
from xlsales.adapters.sheets import (
    CONTRACT_HEADERS,
    EXTRA_OUTPUT_COLUMNS,
    INPUT_HEADERS,
    OUTPUT_SHEETS,
    cell_lookup,
    forecast_sheet,
    init_workbook,
    parameter_rows,
    problems_sheet,
    result_sheets,
    summary_sheet,
    write_tables,
)
from xlsales.adapters.xlsx_writer import (
    Column,
    NotAWorkbook,
    SheetOut,
    WorkbookLocked,
    display_width,
    write_sheets,
)
from xlsales.core.intake import read_workbook_tables
from xlsales.core.money import ZERO
from xlsales.core.pipeline import compute
from xlsales.core.problems import Level, Problem, Problems
from xlsales.core.rulebook import PARAM_SHEET, Parameters, build_rulebook
from xlsales.demo import DEMO_DATE, demo_tables

# the output headers of shared/spec/workbook.md, copied here on purpose: a change must be deliberate
SPEC_OUTPUT_HEADERS = {
    "关系评分": "客户编码, 客户名称, 客户经理, 关系分, 已达指标, 缺少指标, 等级, 赢单概率, 自评等级, 提示",
    "月度排名": "月份, 排名, 工号, 姓名, 业绩完成率, 月度关系得分, 综合得分, 分组, 连续垫底月数",
    "排名历史": "月份, 排名, 工号, 姓名, 业绩完成率, 月度关系得分, 综合得分, 分组, 连续垫底月数",
    "提成发放表": "行ID, 工号, 姓名, 订单号, 项目, 阶段, 事件日期, 应发日期, 金额, 计算说明, 状态, 实发日期",
    "提成汇总": "工号, 姓名, 年度订单额, 保底目标, 挑战目标, 完成率, 应发合计, 已发合计, 未发合计, 追回合计",
    "商机预测": "商机编码, 客户编码, 工号, 金额, 状态, 等级, 赢单概率, 加权金额",
    "校验结果": "级别, 工作表, 单元格, 值, 说明",
}


def base_workbook(path: Path, extra: bool = True) -> Path:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("输入")
    ws.write_row(0, 0, ["工号", "金额"])
    ws.write_row(1, 0, ["E001", 10])
    ws.write_formula(2, 0, "='提成汇总'!A1")
    if extra:
        old = wb.add_worksheet("提成汇总")
        old.write(0, 0, "旧的内容")
        old.write(5, 5, "旧的内容")
        wb.add_worksheet("备注").write(0, 0, "用户自己的表")
    wb.close()
    return path


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def sheet_xml(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
        rid = re.search(rf'<sheet name="{name}" sheetId="\d+" r:id="(rId\d+)"', wb).group(1)
        target = re.search(rf'Id="{rid}" Type="[^"]+" Target="([^"]+)"', rels).group(1)
        return z.read("xl/" + target.lstrip("/").removeprefix("xl/")).decode()


def simple_sheet(name: str = "提成汇总", rows: list[list[object]] | None = None) -> SheetOut:
    return SheetOut(name, [Column("工号"), Column("金额", "money"), Column("日期", "date"), Column("比例", "percent")],
                    rows if rows is not None else [["E001", Decimal("1234.56"), dt.date(2026, 3, 5), Decimal("0.125")]])


# --- values ----------------------------------------------------------------------------------

def test_values_round_trip_with_formats(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    write_sheets(path, [simple_sheet()])
    ws = openpyxl.load_workbook(path)["提成汇总"]
    assert [c.value for c in ws[1]] == ["工号", "金额", "日期", "比例"]
    assert [c.value for c in ws[2]] == ["E001", 1234.56, dt.datetime(2026, 3, 5), 0.125]
    assert ws["B2"].number_format == "#,##0.00"
    assert ws["C2"].number_format == "yyyy-mm-dd"
    assert ws["D2"].number_format == "0.00%"
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:D2"
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb == "FFDDEBF7"
    assert ws.max_row == 2 and ws["F6"].value is None  # the old content is gone


def test_formula_looking_text_stays_text(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    texts = ["=1+1", "+A1", "-1", "@SUM(A1:A2)", "=HYPERLINK(\"http://x\")", "0012"]
    write_sheets(path, [SheetOut("提成汇总", [Column("客户名称")], [[t] for t in texts])])
    xml = sheet_xml(path, "提成汇总")
    assert "<f>" not in xml
    ws = openpyxl.load_workbook(path)["提成汇总"]
    for i, text in enumerate(texts, start=2):
        assert ws.cell(i, 1).value == text
        assert ws.cell(i, 1).data_type == "s"


def test_xml_escaping_and_illegal_characters(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    nasty = ["a & b <c> \"d\" 'e'", "x\x00y\x07z\ufffe", "  leading and trailing  ", "line1\nline2", "]]>", "客户\u200b名"]
    write_sheets(path, [SheetOut("提成汇总", [Column("说明")], [[t] for t in nasty])])
    ws = openpyxl.load_workbook(path)["提成汇总"]
    got = [ws.cell(i, 1).value for i in range(2, 2 + len(nasty))]
    assert got == ["a & b <c> \"d\" 'e'", "xyz", "  leading and trailing  ", "line1\nline2", "]]>", "客户\u200b名"]


def test_excel_escape_sequences_are_escaped(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    write_sheets(path, [SheetOut("提成汇总", [Column("说明")], [["_x0041_ and \r"]])])
    xml = sheet_xml(path, "提成汇总")
    # Excel reads _xHHHH_ in a string as an escaped character: the literal underscore is escaped itself
    assert "<t>_x005F_x0041_ and _x000D_</t>" in xml


def test_numbers_and_dates_exact(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    rows = [[Decimal("1234567.891234"), 7, 2.5, dt.date(2026, 3, 5), True, Decimal("-0.00"), Decimal("NaN")]]
    columns = [Column("a", "money"), Column("b", "int"), Column("c", "number"), Column("d", "date"), Column("e"),
               Column("f", "money"), Column("g", "money")]
    write_sheets(path, [SheetOut("提成汇总", columns, rows)])
    xml = sheet_xml(path, "提成汇总")
    assert re.search(r'<c r="A2" s="\d+"><v>1234567.891234</v></c>', xml)
    assert re.search(r'<c r="B2" s="\d+"><v>7</v></c>', xml)
    assert re.search(r'<c r="C2" s="\d+"><v>2.5</v></c>', xml)
    assert re.search(r'<c r="D2" s="\d+"><v>46086</v></c>', xml)  # 2026-03-05 in the 1900 date system
    assert re.search(r'<c r="E2" s="\d+" t="b"><v>1</v></c>', xml)
    assert re.search(r'<c r="F2" s="\d+"><v>0</v></c>', xml)
    assert re.search(r'<c r="G2" s="\d+" t="inlineStr"><is><t>NaN</t></is></c>', xml)


def test_date1904_workbooks_get_1904_serials(tmp_path):
    path = tmp_path / "mac.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"date_1904": True})
    wb.add_worksheet("输入")
    wb.close()
    write_sheets(path, [simple_sheet()])
    assert re.search(r'<c r="C2" s="\d+"><v>44624</v></c>', sheet_xml(path, "提成汇总"))
    assert openpyxl.load_workbook(path)["提成汇总"]["C2"].value == dt.datetime(2026, 3, 5)


def test_row_fills_protection_and_widths(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    sheet = SheetOut("提成汇总", [Column("客户名称"), Column("实发日期", "date")],
                     [["北京电力股份公司", None], ["b", dt.date(2026, 1, 2)], ["c", None]],
                     row_fills=["green", None, "red"], editable={"实发日期"})
    write_sheets(path, [sheet])
    ws = openpyxl.load_workbook(path)["提成汇总"]
    assert ws["A2"].fill.fgColor.rgb == "FFC6EFCE" and ws["B2"].fill.fgColor.rgb == "FFC6EFCE"
    assert ws["A3"].fill.fill_type is None
    assert ws["A4"].fill.fgColor.rgb == "FFFFC7CE"
    assert ws.protection.sheet and ws.protection.password is None
    assert ws.protection.autoFilter is False  # filtering stays allowed
    assert ws["A2"].protection.locked and not ws["B2"].protection.locked and not ws["B4"].protection.locked
    assert ws.column_dimensions["A"].width == display_width("北京电力股份公司") + 2 == 18


def test_display_width_counts_cjk_double():
    assert display_width("abc") == 3
    assert display_width("提成") == 4
    assert display_width("E001王建国") == 10


# --- structure: replace in place, add at the end, shared parts -------------------------------------

def test_replace_in_place_and_add_at_end(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    before = parts(path)
    write_sheets(path, [simple_sheet("新表"), simple_sheet("提成汇总")])
    after = parts(path)
    wb = after["xl/workbook.xml"].decode()
    sheets = re.findall(r'<sheet name="([^"]+)" sheetId="(\d+)" r:id="(rId\d+)"', wb)
    assert sheets[:3] == re.findall(r'<sheet name="([^"]+)" sheetId="(\d+)" r:id="(rId\d+)"',
                                    before["xl/workbook.xml"].decode())
    assert sheets[1][0] == "提成汇总" and sheets[3][0] == "新表"
    assert after["xl/worksheets/sheet2.xml"] != before["xl/worksheets/sheet2.xml"]
    assert "E001" in after["xl/worksheets/sheet2.xml"].decode()
    for name in ("xl/worksheets/sheet1.xml", "xl/worksheets/sheet3.xml", "xl/sharedStrings.xml", "xl/theme/theme1.xml",
                 "docProps/core.xml", "docProps/app.xml", "_rels/.rels"):
        assert after[name] == before[name], name
    assert 'localSheetId="1" hidden="1">\'提成汇总\'!$A$1:$D$2<' in wb
    assert 'fullCalcOnLoad="1"' in wb
    assert openpyxl.load_workbook(path).sheetnames == ["输入", "提成汇总", "备注", "新表"]


def test_existing_styles_keep_their_indexes_and_are_reused(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    old = parts(path)["xl/styles.xml"].decode()
    write_sheets(path, [simple_sheet()])
    first = parts(path)["xl/styles.xml"].decode()

    def xfs(xml: str) -> list[str]:
        body = re.search(r"<cellXfs[^>]*>(.*)</cellXfs>", xml, re.S).group(1)
        return re.findall(r"<xf\b.*?(?:/>|</xf>)", body, re.S)

    assert xfs(first)[:len(xfs(old))] == xfs(old)
    assert len(xfs(first)) > len(xfs(old))
    write_sheets(path, [simple_sheet()])
    assert parts(path)["xl/styles.xml"].decode() == first  # a second run adds nothing


def test_same_input_same_bytes(tmp_path):
    a = base_workbook(tmp_path / "a.xlsx")
    b = tmp_path / "b.xlsx"
    shutil.copyfile(a, b)
    write_sheets(a, [simple_sheet(), simple_sheet("新表")])
    write_sheets(b, [simple_sheet(), simple_sheet("新表")])
    assert a.read_bytes() == b.read_bytes()


def test_copied_entries_keep_their_compression(tmp_path):
    src = base_workbook(tmp_path / "src.xlsx")
    path = tmp_path / "a.xlsx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            stored = info.filename in ("xl/theme/theme1.xml", "xl/worksheets/sheet1.xml")
            zout.writestr(info.filename, zin.read(info), zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    write_sheets(path, [simple_sheet()])
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        kinds = {i.filename: i.compress_type for i in z.infolist()}
    assert kinds["xl/theme/theme1.xml"] == zipfile.ZIP_STORED
    assert kinds["xl/worksheets/sheet1.xml"] == zipfile.ZIP_STORED
    assert kinds["xl/sharedStrings.xml"] == zipfile.ZIP_DEFLATED


def _with_calc_chain(path: Path, sheet_ids: list[int]) -> None:
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/calcChain.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml"/></Types>')
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/'
                                    b'officeDocument/2006/relationships/calcChain" Target="calcChain.xml"/></Relationships>')
            zout.writestr(info, data)
        cells = "".join(f'<c r="A{n}" i="{i}"/>' for n, i in enumerate(sheet_ids, 1))
        zout.writestr("xl/calcChain.xml", f'<?xml version="1.0"?><calcChain xmlns="http://schemas.openxmlformats.org/'
                                          f'spreadsheetml/2006/main">{cells}</calcChain>')
    os.replace(tmp, path)


def test_calc_chain_kept_unless_it_points_into_a_replaced_sheet(tmp_path):
    keep = base_workbook(tmp_path / "keep.xlsx")
    _with_calc_chain(keep, [1])  # 输入 only
    write_sheets(keep, [simple_sheet()])
    assert "xl/calcChain.xml" in parts(keep)
    drop = base_workbook(tmp_path / "drop.xlsx")
    _with_calc_chain(drop, [1, 2])  # 提成汇总 (sheetId 2) is replaced
    write_sheets(drop, [simple_sheet()])
    after = parts(drop)
    assert "xl/calcChain.xml" not in after
    assert b"calcChain" not in after["[Content_Types].xml"]
    assert b"calcChain" not in after["xl/_rels/workbook.xml.rels"]
    openpyxl.load_workbook(drop)


def test_table_on_an_owned_sheet_is_dropped(tmp_path):
    path = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet("输入")
    ws = wb.add_worksheet("提成汇总")
    ws.add_table("A1:B3", {"columns": [{"header": "x"}, {"header": "y"}]})
    ws.write_comment("A1", "用户的批注")
    wb.close()
    assert "xl/tables/table1.xml" in parts(path)
    write_sheets(path, [simple_sheet()])
    after = parts(path)
    assert "xl/tables/table1.xml" not in after
    assert b"table1" not in after["[Content_Types].xml"]
    rels = after["xl/worksheets/_rels/sheet2.xml.rels"].decode()
    assert "table" not in rels and "comments" in rels and "vmlDrawing" in rels
    xml = sheet_xml(path, "提成汇总")
    assert "<tableParts" not in xml and "<legacyDrawing" in xml
    ws = openpyxl.load_workbook(path)["提成汇总"]
    assert ws["A1"].value == "工号" and ws["A1"].comment.text == "用户的批注"


def test_new_workbook_without_styles_part(tmp_path):
    path = tmp_path / "bare.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
                   '2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
                   'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
                   'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                   "</Types>")
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
                   '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
                   'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
                   "<sheets/></workbook>")
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/relationships"/>')
    write_sheets(path, [simple_sheet()])
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["提成汇总"]
    assert wb["提成汇总"]["B2"].number_format == "#,##0.00"


# --- data safety -----------------------------------------------------------------------------------

def test_failure_midway_leaves_the_original_untouched(tmp_path, monkeypatch):
    path = base_workbook(tmp_path / "a.xlsx")
    original = path.read_bytes()
    calls = {"n": 0}
    real = xlsx_writer._ZipOut.copy_raw

    def failing(self, src, entry):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, src, entry)

    monkeypatch.setattr(xlsx_writer._ZipOut, "copy_raw", failing)
    with pytest.raises(WorkbookLocked, match="原文件没有改动"):
        write_sheets(path, [simple_sheet(), simple_sheet("新表")])
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xlsx"]  # no temporary file left behind


def test_failure_while_generating_a_sheet_leaves_the_original_untouched(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    original = path.read_bytes()
    rows = [["E001", Decimal(1), dt.date(2026, 1, 1), None]] * 5000 + [["too", "many", "values", "in", "row"]]
    with pytest.raises(ValueError, match="多于 4 列"):
        write_sheets(path, [simple_sheet(rows=rows)])
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xlsx"]


def test_file_changed_during_the_run_is_not_overwritten(tmp_path, monkeypatch):
    path = base_workbook(tmp_path / "a.xlsx")
    real = xlsx_writer._write_package

    def meanwhile(package, plan, out):
        real(package, plan, out)
        path.write_bytes(path.read_bytes() + b"")  # someone saves the workbook
        os.utime(path, ns=(1, 1))

    monkeypatch.setattr(xlsx_writer, "_write_package", meanwhile)
    with pytest.raises(WorkbookLocked, match="被其他程序修改"):
        write_sheets(path, [simple_sheet()])


def test_read_only_file_is_refused(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    original = path.read_bytes()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(WorkbookLocked, match="只读"):
            write_sheets(path, [simple_sheet()])
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert path.read_bytes() == original


@pytest.mark.parametrize("lock", ["~$a.xlsx", ".~lock.a.xlsx#"])
def test_workbook_open_elsewhere_is_refused(tmp_path, lock):
    path = base_workbook(tmp_path / "a.xlsx")
    original = path.read_bytes()
    (tmp_path / lock).write_bytes(b"someone")
    with pytest.raises(WorkbookLocked, match="正在被其他程序"):
        write_sheets(path, [simple_sheet()])
    assert path.read_bytes() == original


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(NotAWorkbook, match="找不到工作簿"):
        write_sheets(tmp_path / "nope.xlsx", [simple_sheet()])
    text = tmp_path / "text.xlsx"
    text.write_text("工号,金额\n")
    with pytest.raises(NotAWorkbook, match="不是 Excel 工作簿"):
        write_sheets(text, [simple_sheet()])
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
    with pytest.raises(NotAWorkbook, match=r"旧版 \.xls"):
        write_sheets(xls, [simple_sheet()])
    other = tmp_path / "other.xlsx"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(NotAWorkbook):
        write_sheets(other, [simple_sheet()])
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(base_workbook(tmp_path / "x.xlsx").read_bytes()[:300])
    with pytest.raises(NotAWorkbook):
        write_sheets(broken, [simple_sheet()])
    assert isinstance(NotAWorkbook("x"), ValueError)
    for f in (text, other):
        assert f.exists()


def test_bad_sheet_definitions(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    with pytest.raises(ValueError, match="不合法"):
        write_sheets(path, [simple_sheet("a/b")])
    with pytest.raises(ValueError, match="重复"):
        write_sheets(path, [simple_sheet(), simple_sheet()])
    with pytest.raises(ValueError, match="行颜色"):
        write_sheets(path, [SheetOut("x", [Column("a")], [["v"]], row_fills=["purple"])])


# --- sheets.py: the contract ------------------------------------------------------------------------

def _demo_run():
    tables = demo_tables()
    problems = Problems()
    book, inputs = read_workbook_tables(tables, DEMO_DATE, problems)
    return tables, compute(inputs, book, problems), problems


def test_output_sheets_follow_the_contract():
    _, results, problems = _demo_run()
    sheets = result_sheets(results, problems.items)
    assert [s.name for s in sheets][:len(OUTPUT_SHEETS)] == list(OUTPUT_SHEETS) == list(SPEC_OUTPUT_HEADERS)
    # extra sheets after the contract, the board last
    assert [s.name for s in sheets][len(OUTPUT_SHEETS):] == [*EXTRA_OUTPUT_COLUMNS, BOARD_SHEET]
    for sheet in sheets[:len(OUTPUT_SHEETS)]:
        headers = [c.header for c in sheet.columns]
        spec = SPEC_OUTPUT_HEADERS[sheet.name].split(", ")
        assert headers[:len(spec)] == spec == list(CONTRACT_HEADERS[sheet.name])
        assert all(len(row) == len(headers) for row in sheet.rows)
    by_name = {s.name: s for s in sheets}
    assert [c.header for c in by_name["商机预测"].columns][-2:] == ["暂缓原因", "预计签约月"]
    ratings = by_name["关系评分"]
    held = [r[4] for r in ratings.rows if r[4]]
    assert any("、" in h for h in held) and not any("," in h for h in held)
    payouts = by_name["提成发放表"]
    assert payouts.editable == {"实发日期"}
    status = [r[10] for r in payouts.rows]
    assert {f for f, s in zip(payouts.row_fills, status, strict=True) if s == "已发"} == {"green"}
    ranking = by_name["月度排名"]
    assert {f for f, r in zip(ranking.row_fills, ranking.rows, strict=True) if r[7] == "前30%"} == {"green"}
    assert {f for f, r in zip(ranking.row_fills, ranking.rows, strict=True) if r[7] == "后15%"} <= {"red"}


def test_problem_cells():
    problems = [Problem(Level.ERROR, "订单", 14, "合同金额", "abc", "合同金额应为数字"),
                Problem(Level.WARNING, "订单", None, None, "", "整张表"),
                Problem(Level.ERROR, "回款", 3, "回款金额", "", "空")]
    cell_of = cell_lookup({"订单": {"订单号": 0, "合同金额": 4}, "回款": {"回款金额": "C"}})
    sheet = problems_sheet(problems, cell_of)
    assert [r[:3] for r in sheet.rows] == [["错误", "订单", "E14"], ["警告", "订单", "A1"], ["错误", "回款", "C3"]]
    assert sheet.row_fills == ["red", "amber", "red"]
    # a whole column: its header cell; a missing column: where it is to be added; a missing sheet: no cell
    more = [Problem(Level.WARNING, "订单", None, "合同金额", "", "合计"),
            Problem(Level.ERROR, "订单", 1, "毛利率", "", "缺少列“毛利率”"),
            Problem(Level.ERROR, "进度", None, None, "", "缺少工作表“进度”"),
            Problem(Level.ERROR, "订单", 7, "不存在的列", "", "算出来的")]
    assert [cell_of(p) for p in more] == ["E1", "F1", "", ""]
    assert problems_sheet(problems).rows[0][2] is None  # the default knows no columns


def test_demo_results_written_and_read_back(tmp_path):
    tables, results, problems = _demo_run()
    path = tmp_path / "demo.xlsx"
    write_tables(path, tables)
    write_sheets(path, result_sheets(results, problems.items))
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[:len(tables)] == list(tables)
    payouts = wb["提成发放表"]
    assert payouts.max_row == len(results.payouts) + 1
    first = results.payouts[0]
    row = [c.value for c in payouts[2]]
    assert row[0] == first.line_id and row[4] == first.item.value
    assert row[6] == dt.datetime.combine(first.event_date, dt.time())
    assert Decimal(str(row[8])) == first.amount
    total = sum(Decimal(str(c.value)) for (c,) in payouts.iter_rows(min_row=2, min_col=9, max_col=9))
    assert total == sum(line.amount for line in results.payouts)
    assert wb["校验结果"].max_row == len(problems.items) + 1


def test_write_tables_refuses_to_overwrite(tmp_path):
    path = tmp_path / "demo.xlsx"
    write_tables(path, {"销售人员": []})
    with pytest.raises(ValueError, match="已存在"):
        write_tables(path, {"销售人员": []})
    write_tables(path, {"销售人员": [{"row": 2, "工号": "E001", "姓名": "王", "状态": "在职"}]}, overwrite=True)
    ws = openpyxl.load_workbook(path)["销售人员"]
    assert [c.value for c in ws[1]] == list(INPUT_HEADERS["销售人员"])
    assert [c.value for c in ws[2]] == ["E001", "王", None, "在职"]
    with pytest.raises(ValueError, match=r"\.xlsm"):
        write_tables(tmp_path / "m.xlsm", {})


def _raw_tables(path: Path) -> dict[str, list[dict[str, object]]]:
    wb = openpyxl.load_workbook(path)
    tables = {}
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        headers = rows[0]
        tables[ws.title] = [
            {"row": i, **{h: (v.date() if isinstance(v, dt.datetime) else v) for h, v in zip(headers, r, strict=False) if h}}
            for i, r in enumerate(rows[1:], start=2) if any(v is not None for v in r)]
    return tables


def test_init_workbook_is_a_valid_empty_contract_workbook(tmp_path):
    path = tmp_path / "new.xlsx"
    init_workbook(path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [*INPUT_HEADERS, *OUTPUT_SHEETS, *EXTRA_OUTPUT_COLUMNS, BOARD_SHEET]
    for name, headers in INPUT_HEADERS.items():
        assert [c.value for c in wb[name][1]][:len(headers)] == list(headers)
    for name in OUTPUT_SHEETS:
        assert [c.value for c in wb[name][1]][:len(CONTRACT_HEADERS[name])] == list(CONTRACT_HEADERS[name])
    params = [r[0] for r in wb[PARAM_SHEET].iter_rows(min_row=2, values_only=True)]
    assert params == [f.alias for f in Parameters.model_fields.values()]
    assert [r["参数"] for r in parameter_rows()] == params
    # the rule sheets as written make a valid rulebook, with every default
    problems = Problems()
    book = build_rulebook(_raw_tables(path), dt.date(2026, 5, 1), problems)
    assert book is not None, problems.items
    assert problems.items == []
    assert book.params == Parameters()
    with pytest.raises(ValueError, match="已存在"):
        init_workbook(path)


def test_init_workbook_xlsm_needs_a_vba_project(tmp_path):
    with pytest.raises(ValueError, match="vbaProject"):
        init_workbook(tmp_path / "new.xlsm")
    path = tmp_path / "new.xlsm"
    init_workbook(path, vba_project=Path(__file__).parent / "fixtures" / "vbaProject.bin")
    assert "xl/vbaProject.bin" in parts(path)
    assert b"macroEnabled" in parts(path)["[Content_Types].xml"]


# --- big sheets: formatted column by column (xlsx_rows), byte for byte what the cell loop writes ---

def _cell_values():
    from enum import StrEnum

    from hypothesis import strategies as st

    class Shade(StrEnum):
        RED = "红"

    tricky_text = st.sampled_from(["", " x", "x ", "\tx", "a&b", "<t>", "_x0041_", "a_xb", "line\nbreak", "\r",
                                   "x\x00y", "\ufffe", "lone \ud800 surrogate", "=1+1", "客户名称", "x" * 40_000])
    texts = st.one_of(st.text(max_size=12), tricky_text)
    decimals = st.one_of(st.decimals(allow_nan=True, allow_infinity=True, places=None),
                         st.sampled_from([Decimal("0"), Decimal("0.00"), Decimal("-0"), Decimal("0E-7"),
                                          Decimal("1E+3"), Decimal("12345.67"), Decimal("-5.10")]))
    dates = st.dates(min_value=dt.date(1899, 12, 1), max_value=dt.date(2100, 1, 1))
    ints = st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([2**63, -(2**70)]))
    other = st.one_of(st.booleans(), st.floats(), st.datetimes(min_value=dt.datetime(1899, 12, 1)),
                      st.just(Shade.RED))
    return {"text": texts, "decimal": decimals, "date": dates, "int": ints,
            "mixed": st.one_of(texts, decimals, dates, ints, other)}


def _random_sheets(values=None):
    from hypothesis import strategies as st

    values = values or _cell_values()

    @st.composite
    def sheet(draw):
        ncols = draw(st.integers(1, 5))
        kinds = [draw(st.sampled_from(list(values))) for _ in range(ncols)]
        nrows = draw(st.integers(0, 12))
        rows = []
        for _ in range(nrows):
            width = draw(st.integers(0, ncols))  # rows may be shorter than the header
            rows.append([draw(st.one_of(st.none(), values[kinds[j]])) for j in range(width)])
        fills = draw(st.one_of(st.none(), st.lists(st.sampled_from([None, "red", "green", "amber", "grey"]),
                                                   max_size=nrows)))
        columns = [Column(f"列{j}", draw(st.sampled_from(["text", "money", "date", "int", "percent"])))
                   for j in range(ncols)]
        editable = {c.header for c in columns if draw(st.booleans())}
        return SheetOut("提成发放表", columns, rows, fills, editable=editable)

    return sheet()


def _written_both_ways(tmp_path: Path, sheet: SheetOut, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    out = []
    base = base_workbook(tmp_path / "base.xlsx")  # once: its docProps carry the time it was made
    for vector in (False, True):
        path = tmp_path / f"{'v' if vector else 'l'}.xlsx"
        shutil.copyfile(base, path)
        monkeypatch.setattr(xlsx_writer, "VECTOR_MIN_ROWS", 0 if vector else 1 << 60)
        monkeypatch.setattr(xlsx_writer, "VECTOR_BLOCK_ROWS", 3)  # blocks end mid-sheet, styles first used late
        write_sheets(path, [sheet])
        out.append(parts(path))
    return out[0], out[1]


def test_big_sheets_column_by_column_are_the_cell_loops_bytes(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_random_sheets())
    def check(sheet):
        folder = tmp_path_factory.mktemp("rows")
        with pytest.MonkeyPatch.context() as mp:
            loop, vector = _written_both_ways(folder, sheet, mp)
        assert loop.keys() == vector.keys()
        assert [n for n in loop if loop[n] != vector[n]] == []

    check()


def test_a_big_real_sheet_column_by_column(tmp_path, monkeypatch):
    """The demo's results (every output sheet, fills and the unlocked 实发日期) both ways."""
    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), DEMO_DATE, problems)
    assert book is not None
    results = compute(inputs, book, problems)
    sheets = [s for s in result_sheets(results, problems.items) if isinstance(s, SheetOut)]
    assert len(next(s for s in sheets if s.name == "提成发放表").rows) > 100
    base = base_workbook(tmp_path / "base.xlsx")
    for vector in (False, True):
        path = tmp_path / f"{vector}.xlsx"
        shutil.copyfile(base, path)
        monkeypatch.setattr(xlsx_writer, "VECTOR_MIN_ROWS", 0 if vector else 1 << 60)
        monkeypatch.setattr(xlsx_writer, "VECTOR_BLOCK_ROWS", 50)
        write_sheets(path, sheets)
    assert parts(tmp_path / "False.xlsx") == parts(tmp_path / "True.xlsx")


def test_sheets_given_as_polars_columns_are_the_cell_loops_bytes(tmp_path_factory):
    """FrameRows (columns as polars holds them: str, Decimal as text, dates as day numbers, ints)
    write the bytes the loop writes for the same rows as Python values, and give them back exactly."""
    from hypothesis import HealthCheck, assume, given, settings

    from xlsales.adapters.xlsx_rows import FrameRows

    values = _cell_values()
    del values["mixed"]  # one type per column (with None), as polars holds it
    values["text"] = values["text"].filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t))
    values["int"] = values["int"].filter(lambda i: -(2**63) <= i < 2**63)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_random_sheets(values))
    def check(sheet):
        width = len(sheet.columns)
        padded = [list(row) + [None] * (width - len(row)) for row in sheet.rows]
        framed = FrameRows.of([[row[j] for row in padded] for j in range(width)])
        assume(framed is not None)  # a column of None only has no kind
        assert [repr(row) for row in framed] == [repr(row) for row in padded]
        folder = tmp_path_factory.mktemp("frame")
        base = base_workbook(folder / "base.xlsx")
        written = []
        for rows, vector in ((padded, False), (framed, True), (framed, False)):
            path = folder / f"{len(written)}.xlsx"
            shutil.copyfile(base, path)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(xlsx_writer, "VECTOR_MIN_ROWS", 0 if vector else 1 << 60)
                mp.setattr(xlsx_writer, "VECTOR_BLOCK_ROWS", 3)
                write_sheets(path, [SheetOut(sheet.name, sheet.columns, rows, sheet.row_fills,
                                             editable=sheet.editable)])
            written.append(parts(path))
        assert written[1] == written[0] and written[2] == written[0]

    check()


def test_payout_cells_made_while_the_log_loads_write_the_same_sheet(tmp_path, monkeypatch):
    """The order side's 提成发放表 cells made ahead (PreparedPayouts) and gathered for the final
    ledger: the same bytes as making them after the log, ranking awards and cancelled lines included."""
    from xlsales.adapters.sheets import PreparedPayouts, payouts_sheet
    from xlsales.adapters.xlsx_rows import FrameRows
    from xlsales.core.payouts import Item, PayStatus, format_texts
    from xlsales.core.pipeline import prepare

    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), DEMO_DATE, problems)
    assert book is not None
    side = prepare(inputs, book)
    format_texts(side.fresh)
    prepared = PreparedPayouts(side.fresh)
    results = compute(inputs, book, problems, prepared=side)
    lines = results.payouts
    ahead = sum(id(x) in prepared.position for x in lines)
    assert 0 < ahead < len(lines)  # most from the side; ranking awards and cancelled lines made after
    assert any(x.item is Item.RANKING_AWARD for x in lines) and any(x.status is PayStatus.CANCELLED for x in lines)
    plain, fast = payouts_sheet(lines), payouts_sheet(lines, prepared=prepared)
    assert isinstance(fast.rows, FrameRows) and list(fast.rows) == list(plain.rows)
    base = base_workbook(tmp_path / "base.xlsx")
    written = []
    for sheet in (plain, fast):
        path = tmp_path / f"{len(written)}.xlsx"
        shutil.copyfile(base, path)
        monkeypatch.setattr(xlsx_writer, "VECTOR_MIN_ROWS", 0)
        monkeypatch.setattr(xlsx_writer, "VECTOR_BLOCK_ROWS", 64)
        write_sheets(path, [sheet])
        written.append(parts(path))
    assert written[0] == written[1]


def test_a_sheet_started_early_is_written_as_write_sheets_writes_it(tmp_path, monkeypatch):
    """SheetsWrite: 提成发放表 started (made in a thread while the caller goes on), then every sheet
    finished: the bytes write_sheets gives when it writes that sheet first, on a new workbook and
    again when every sheet is replaced (the old sheet's parts then read in that thread too)."""
    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), DEMO_DATE, problems)
    assert book is not None
    sheets = result_sheets(compute(inputs, book, problems), problems.items)
    payouts = next(s for s in sheets if s.name == "提成发放表")
    sheets = [payouts] + [s for s in sheets if s is not payouts]  # its cell formats first either way
    base = base_workbook(tmp_path / "base.xlsx", extra=False)  # no output sheet yet: each written in order
    plain, early, ahead = tmp_path / "plain.xlsx", tmp_path / "early.xlsx", tmp_path / "ahead.xlsx"
    for path in (plain, early, ahead):
        shutil.copyfile(base, path)
    made_apart: list[str] = []
    real = xlsx_writer._deflate_apart
    monkeypatch.setattr(xlsx_writer, "_deflate_apart", lambda part, *a: made_apart.append(part.sheet.name) or real(part, *a))
    read_here: list[str] = []  # _previous read by finish itself, not looked ahead
    previous = xlsx_writer._previous
    monkeypatch.setattr(xlsx_writer, "_previous", lambda stream: read_here.append(threading.current_thread().name)
                        or previous(stream))
    for round_ in range(2):
        write_sheets(plain, sheets)
        made_apart.clear()
        with xlsx_writer.SheetsWrite(early) as write:
            write.start(payouts)
            names = write.finish(sheets)
        assert made_apart[0] == "提成发放表" and made_apart.count("提成发放表") == 1  # the started one, used
        assert names == [s.name for s in sheets]
        assert early.read_bytes() == plain.read_bytes()
        # the same, with what the replaced sheets keep read ahead, in a thread (the second round)
        read_here.clear()
        with xlsx_writer.SheetsWrite(ahead) as write:
            write.look_ahead(s.name for s in sheets)
            write.start(payouts)
            write.finish(sheets)
        assert ahead.read_bytes() == plain.read_bytes()
        assert all(name.startswith("xlsales-previous") for name in read_here)
        assert len(read_here) == (len(sheets) if round_ else 0)


def test_no_look_ahead_read_is_open_when_the_workbook_is_replaced(tmp_path, monkeypatch):
    """A sheet looked ahead but not written (a run that writes only 校验结果) may still be being read
    when the rest is done: the write waits for it before the replace (Windows cannot replace an
    open file)."""
    path = base_workbook(tmp_path / "a.xlsx")
    write_sheets(path, [simple_sheet("校验结果"), simple_sheet("关系评分")])  # the last two: read ahead in this order
    reading: list[bool] = []
    real_previous, real_replace = xlsx_writer._previous_of, os.replace

    def slow_previous(path_: Path, member: str) -> Any:
        reading.append(True)
        time.sleep(0.3)
        try:
            return real_previous(path_, member)
        finally:
            reading.remove(True)

    def replace(src: Any, dst: Any) -> None:
        assert not reading, "a look-ahead read was still open"
        real_replace(src, dst)

    monkeypatch.setattr(xlsx_writer, "_previous_of", slow_previous)
    monkeypatch.setattr(xlsx_writer.os, "replace", replace)
    with xlsx_writer.SheetsWrite(path) as write:
        write.look_ahead(["关系评分", "校验结果"])
        assert write.finish([simple_sheet("校验结果")]) == ["校验结果"]  # 关系评分's read begins meanwhile


def test_a_started_sheet_that_fails_leaves_the_workbook_untouched(tmp_path):
    path = base_workbook(tmp_path / "a.xlsx")
    original = path.read_bytes()
    rows = [["E001", Decimal(1), dt.date(2026, 1, 1), None]] * 5000 + [["too", "many", "values", "in", "row"]]
    bad = simple_sheet("新表", rows=rows)
    with xlsx_writer.SheetsWrite(path) as write:
        write.start(bad)
        with pytest.raises(ValueError, match="多于 4 列"):
            write.finish([simple_sheet(), bad])
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xlsx"]


def test_a_started_sheet_named_like_a_chart_sheet_is_refused_by_finish(tmp_path):
    path = tmp_path / "c.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet("输入").write(0, 0, 1)
    chart = wb.add_chart({"type": "column"})
    chart.add_series({"values": "=输入!$A$1:$A$1"})
    wb.add_chartsheet("提成汇总").set_chart(chart)
    wb.close()
    original = path.read_bytes()
    with xlsx_writer.SheetsWrite(path) as write:
        sheet = simple_sheet()
        write.start(sheet)
        assert not write.started
        with pytest.raises(NotAWorkbook, match="图表页"):
            write.finish([sheet])
    assert path.read_bytes() == original


def test_parts_deflated_by_isal_or_by_zlib_hold_the_same_bytes(tmp_path, monkeypatch):
    """ISA-L deflates the written parts where it is installed; without it zlib does. Either way
    each part inflates (zipfile, CRC checked) to the same bytes."""
    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), DEMO_DATE, problems)
    assert book is not None
    sheets = result_sheets(compute(inputs, book, problems), problems.items)
    base = base_workbook(tmp_path / "base.xlsx")
    written = {}
    for name, fast in (("isal", xlsx_writer._fast_zlib), ("zlib", None)):
        if name == "isal" and fast is None:
            pytest.skip("isal is not installed here")
        path = tmp_path / f"{name}.xlsx"
        shutil.copyfile(base, path)
        monkeypatch.setattr(xlsx_writer, "_fast_zlib", fast)
        write_sheets(path, sheets)
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
        written[name] = parts(path)
    assert written["isal"] == written["zlib"]


def test_money_cells_hold_what_they_show_rounded_half_up_to_the_fen():
    """rules: money is "rounded half-up to 0.01 only when a line is written out": a cell holding
    370370.367 that only shows 370,370.37 would sum differently in the user's own formulas."""
    from xlsales.core.models import OpportunityStatus, Tier
    from xlsales.core.pipeline import SummaryRow
    from xlsales.core.tiers import ForecastRow

    forecast = forecast_sheet([
        ForecastRow("P1", "C1", "E1", Decimal("1234567.89"), OpportunityStatus.OPEN, Tier.NEUTRAL, Decimal("0.3"),
                    Decimal("370370.367"), None),
        ForecastRow("P2", "C1", "E1", Decimal("1000000.05"), OpportunityStatus.OPEN, Tier.NEUTRAL, Decimal("0.3"),
                    Decimal("300000.015"), None),
        ForecastRow("P3", "C1", "E1", Decimal(5), OpportunityStatus.PAUSED, None, None, None, "换届")])
    assert [row[7] for row in forecast.rows] == [Decimal("370370.37"), Decimal("300000.02"), None]
    summary = summary_sheet([SummaryRow("E1", "甲", Decimal("1234567.891"), Decimal("1000000.005"), None, None,
                                        Decimal("0.125"), ZERO, Decimal("0.125"), ZERO)])
    assert summary.rows[0][2:5] == [Decimal("1234567.89"), Decimal("1000000.01"), None]
    assert summary.rows[0][6] == Decimal("0.13") and summary.rows[0][8] == Decimal("0.13")


def test_two_months_in_a_row_at_the_bottom_is_flagged_needs_help():
    """rules §5: "连续垫底月数 ... 2 or more is flagged 需帮扶": in 提示, after the contract's columns."""
    from xlsales.adapters.sheets import HISTORY_SHEET, ranking_sheet
    from xlsales.core.ranking import Group, RankingRow

    rows = [RankingRow("2026-11", 1, "E1", "甲", Decimal(1), Decimal(50), Decimal(80), Group.TOP, 0),
            RankingRow("2026-11", 2, "E2", "乙", Decimal("0.5"), Decimal(10), Decimal(34), Group.BOTTOM, 1),
            RankingRow("2026-11", 3, "E3", "丙", Decimal("0.2"), Decimal(5), Decimal(14), Group.BOTTOM, 2),
            RankingRow("2026-11", 4, "E4", "丁", Decimal("0.1"), Decimal(0), Decimal(6), Group.BOTTOM, 5)]
    for sheet in (ranking_sheet(rows), ranking_sheet(rows, HISTORY_SHEET)):
        assert [c.header for c in sheet.columns][-2:] == ["连续垫底月数", "提示"]
        assert [row[-1] for row in sheet.rows] == [None, None, "需帮扶", "需帮扶"]
