"""The workbook port: the port reader applies the file reader's contract, FakePort and XlwingsPort behave."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from xlsales.adapters.port import FakePort, WorkbookPort, log_frame, native, read_port, sheet_title, to_excel
from xlsales.adapters.xlsx_reader import WorkbookData, _CellIssue, read_workbook
from xlsales.adapters.xlsx_writer import Column, SheetOut
from xlsales.adapters.xlwings_port import (
    MSGBOX_MACRO,
    SheetLocked,
    XlwingsPort,
    cell_value,
    column_format,
    row_runs,
    run_addresses,
)
from xlsales.core.activity import LOG_SHEET
from xlsales.core.intake import read_workbook_tables
from xlsales.core.pipeline import compute
from xlsales.core.problems import Level, Problems
from xlsales.demo import DEMO_DATE, demo_tables
from xlwings_stub import StubBook, StubTable

Grid = list[list[Any]]


def stored(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Values as a cell keeps them (a double; 15 significant digits survive every writer)."""
    return {sheet: [{k: Decimal(f"{v:.15g}") if isinstance(v, Decimal) else v for k, v in row.items()} for row in rows]
            for sheet, rows in tables.items()}


def digits15(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Numbers to the 15 significant digits a double keeps (XlsxWriter writes 16: 82.59999999999999 for 82.6)."""
    return {sheet: [{k: Decimal(f"{v:.15g}") if isinstance(v, Decimal) else v for k, v in row.items()} for row in rows]
            for sheet, rows in tables.items()}


def grid_book(path: Path, sheets: dict[str, Grid]) -> Path:
    """The same grids as a workbook file (dates date-formatted, text as text, numbers as numbers)."""
    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False})
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    for name, grid in sheets.items():
        ws = book.add_worksheet(name)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if v is None:
                    continue
                if isinstance(v, dt.datetime):
                    ws.write_datetime(i, j, v, date)
                elif isinstance(v, str):
                    ws.write_string(i, j, v)
                elif isinstance(v, bool):
                    ws.write_boolean(i, j, v)
                else:
                    ws.write_number(i, j, v)
    book.close()
    return path


def same_reading(tmp_path: Path, sheets: dict[str, Grid]) -> tuple[WorkbookData, WorkbookData]:
    from_file = read_workbook(grid_book(tmp_path / "same.xlsx", sheets))
    from_port = read_port(FakePort(sheets))
    return from_file, from_port


# --- values --------------------------------------------------------------------------------------

def test_native_values_are_what_the_file_reader_gives():
    assert native(1001.0) == 1001 and type(native(1001.0)) is int
    assert native(0.28) == Decimal("0.28") and native(12345678.9) == Decimal("12345678.9")
    assert native(dt.datetime(2026, 3, 5, 14, 30)) == dt.date(2026, 3, 5)
    assert native("文字") == "文字" and native(True) is True and native(None) is None
    issue = native("#N/A")
    assert isinstance(issue, _CellIssue) and issue.level == Level.ERROR and "#N/A" in issue.message


def test_to_excel_is_what_excel_hands_back():
    assert to_excel(Decimal("0.28")) == 0.28 and to_excel(5) == 5.0
    assert to_excel(dt.date(2026, 3, 5)) == dt.datetime(2026, 3, 5)
    assert to_excel(Level.ERROR) == "错误" and type(to_excel(Level.ERROR)) is str


def test_sheet_title_matches_exactly_then_ignoring_spaces():
    assert sheet_title(["订单 ", "订单"], "订单") == "订单"
    assert sheet_title(["订单 "], "订单") == "订单 "
    assert sheet_title(["回款"], "订单") is None


# --- the reader: the file reader's contract --------------------------------------------------------

def test_port_reads_the_demo_exactly_as_the_file_reader(tmp_path):
    tables = stored(demo_tables())
    port = FakePort.from_tables(tables)
    assert isinstance(port, WorkbookPort)
    file_data = read_workbook(grid_book(tmp_path / "demo.xlsx", port.sheets))
    port_data = read_port(port)

    assert port_data.sheet_names == file_data.sheet_names
    assert port_data.columns == file_data.columns
    assert sorted(port_data.problems) == sorted(file_data.problems)
    assert digits15(port_data.tables) == digits15(file_data.tables)
    assert port_data.log is not None and file_data.log is not None
    assert port_data.log.frame.equals(file_data.log.frame)

    def run(data: WorkbookData):
        problems = Problems()
        problems.extend(data.problems)
        book, inputs = read_workbook_tables(data.tables, DEMO_DATE, problems, log=data.log)
        assert book is not None
        return compute(inputs, book, problems), problems

    file_data.tables = digits15(file_data.tables)
    port_data.tables = digits15(port_data.tables)
    (a, pa), (b, pb) = run(port_data), run(file_data)
    assert a.payouts == b.payouts and a.ranking == b.ranking and a.ratings == b.ratings and a.summary == b.summary
    assert sorted(pa.items) == sorted(pb.items)


def test_missing_sheets_columns_and_duplicate_headers_are_the_file_readers_problems(tmp_path):
    port = FakePort.from_tables(stored(demo_tables(with_errors=False)))
    sheets = port.sheets
    del sheets["回款"], sheets["进度"]
    sheets["订单"] = [[("毛利" if h == "毛利率" else h) for h in sheets["订单"][0]], *sheets["订单"][1:]]
    sheets["商机"][0] = [*sheets["商机"][0], "金额"]  # a second 金额 column
    sheets[LOG_SHEET] = [[h for h in sheets[LOG_SHEET][0] if h != "次数"]] + [r[:6] + r[7:] for r in sheets[LOG_SHEET][1:]]
    file_data, port_data = same_reading(tmp_path, sheets)

    assert sorted(port_data.problems) == sorted(file_data.problems)
    messages = {(p.sheet, p.field): p.message for p in port_data.problems if p.is_error}
    assert "缺少工作表“回款”" in messages[("回款", None)]
    assert "缺少列“毛利率”" in messages[("订单", "毛利率")]
    assert "缺少列“次数”" in messages[(LOG_SHEET, "次数")]
    assert "出现了两次" in messages[("商机", "金额")]
    assert port_data.broken_sheets == file_data.broken_sheets == {"回款", "订单", LOG_SHEET}
    assert "进度" not in port_data.tables and port_data.log is None
    assert digits15(port_data.tables) == digits15(file_data.tables)


def test_codes_text_dates_and_bad_cells_are_read_as_the_file_reader_reads_them(tmp_path):
    port = FakePort.from_tables(stored(demo_tables(with_errors=False)))
    sheets = port.sheets
    orders = sheets["订单"]
    heads = orders[0]
    orders[1][heads.index("工号")] = 1001.0  # a code typed as a number
    orders[2][heads.index("签约日期")] = "2026/3/5"  # a text date
    orders[3][heads.index("合同金额")] = "待定"
    log = sheets[LOG_SHEET]
    log[1][log[0].index("日期")] = "2026-03-05"
    log[2][log[0].index("次数")] = "两次"
    file_data, port_data = same_reading(tmp_path, sheets)

    assert port_data.tables["订单"][0]["工号"] == "1001"
    assert port_data.tables["订单"] == file_data.tables["订单"]
    assert sorted(port_data.problems) == sorted(file_data.problems)
    kinds = {(p.sheet, p.row, p.field, p.level) for p in port_data.problems}
    assert ("订单", 3, "签约日期", Level.WARNING) in kinds
    assert (LOG_SHEET, 2, "日期", Level.WARNING) in kinds and (LOG_SHEET, 3, "次数", Level.ERROR) in kinds
    assert port_data.log is not None and file_data.log is not None and port_data.log.frame.equals(file_data.log.frame)


def test_error_cells_are_reported_with_their_cell():
    port = FakePort.from_tables(stored(demo_tables(with_errors=False)))
    orders = port.sheets["订单"]
    orders[1][orders[0].index("毛利率")] = "#DIV/0!"
    log = port.sheets[LOG_SHEET]
    log[1][log[0].index("客户编码")] = "#N/A"
    data = read_port(port)
    found = {(p.sheet, p.row, p.field): p for p in data.problems if p.is_error}
    assert "错误值 #DIV/0!" in found[("订单", 2, "毛利率")].message
    assert "错误值 #N/A" in found[(LOG_SHEET, 2, "客户编码")].message
    assert data.log is not None and 2 not in data.log.frame["row"].to_list()


def test_log_frame_skips_blank_rows_and_keeps_row_numbers():
    grid: Grid = [["日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态", "备注"],
                  [dt.datetime(2026, 1, 2), 1001.0, "C1", None, "决策层", "A01", 2.0, None, None],
                  [None] * 9,
                  [dt.datetime(2026, 1, 3, 9, 15), "E2", "C1", None, "决策层", "A01", None, None, "x"]]
    problems: list = []
    frame = log_frame(grid, {h: j for j, h in enumerate(grid[0])}, problems)
    assert frame["row"].to_list() == [2, 4]
    assert frame["工号"].to_list() == ["1001", "E2"] and frame["次数"].to_list() == ["2", None]
    assert frame["日期"].to_list() == ["2026-01-02 00:00:00", "2026-01-03 00:00:00"]
    assert problems == []


# --- FakePort --------------------------------------------------------------------------------------

def test_fake_port_records_and_round_trips():
    port = FakePort({"客户关系记录": [["日期", "工号"], ["x", "E1"], [None, None]]})
    sheet = SheetOut("提成发放表", [Column("行ID"), Column("金额", "money"), Column("实发日期", "date")],
                     [["L1", Decimal("12.50"), dt.date(2026, 3, 5)], ["L2"]], editable={"实发日期"})
    port.write_sheet(sheet)
    assert port.sheets["提成发放表"] == [["行ID", "金额", "实发日期"], ["L1", 12.5, dt.datetime(2026, 3, 5)], ["L2", None, None]]
    assert port.protected == {"提成发放表": {"实发日期"}} and port.written == [sheet]
    port.append_rows("客户关系记录", [["y", "E2"]])
    assert port.sheets["客户关系记录"] == [["日期", "工号"], ["x", "E1"], ["y", "E2"]]
    port.alert("好")
    port.status("进度")
    port.status(None)
    assert port.alerts == ["好"] and port.statuses == ["进度", None]
    assert port.records("客户关系记录")[1] == {"日期": "y", "工号": "E2"}


# --- XlwingsPort over a stand-in for xlwings --------------------------------------------------------

def test_xlwings_port_reads_the_used_range_from_a1():
    book = StubBook({"订单": [[None, None], [None, "x"], [None, None, 3.0]]})
    port = XlwingsPort(book)
    assert port.sheet_names() == ["订单"]
    assert port.read_table("订单") == [[None, None, None], [None, "x", None], [None, None, 3.0]]
    area, options = book.sheets["订单"].reads[-1]  # one read of the block (after a look at the bottom cells)
    assert area == (1, 1, 3, 3) and options == {"ndim": 2, "err_to_str": True}
    # formatted empty rows below the values are not read
    book.sheets["订单"].formats[(5000, 1)] = "@"
    assert book.sheets["订单"].used_range.last_cell.row == 5000
    assert len(port.read_table("订单")) == 3


def test_xlwings_port_writes_a_sheet_in_one_bulk_assignment():
    book = StubBook({"参数": [["参数", "值"]], "提成发放表": [["旧"], ["旧行"], ["旧行"], ["旧行"], ["旧行"]]})
    port = XlwingsPort(book)
    sheet = SheetOut("提成发放表", [Column("行ID"), Column("工号"), Column("金额", "money"), Column("说明"),
                                    Column("实发日期", "date")],
                     [["L1", "1001", Decimal("12.5"), "=不是公式", None], ["L2", "E2", Decimal(3), "-", dt.date(2026, 3, 5)],
                      ["L3", "E3", Decimal(1), None, None]],
                     row_fills=["green", None, "green"], editable={"实发日期"})
    port.write_sheet(sheet)
    sht = book.sheets["提成发放表"]
    assert sht.writes == [(1, 1, 4, 5)]  # one bulk write, header included
    assert sht.grid() == [["行ID", "工号", "金额", "说明", "实发日期"], ["L1", "1001", 12.5, "=不是公式", None],
                          ["L2", "E2", 3.0, "-", dt.datetime(2026, 3, 5)], ["L3", "E3", 1.0, None, None]]
    assert sht.formats[(2, 2)] == "@" and sht.formats[(2, 3)] == "#,##0.00" and sht.formats[(3, 5)] == "yyyy-mm-dd"
    assert sht.bold[(1, 1)] and sht.colors[(2, 1)] == (0xC6, 0xEF, 0xCE) and (3, 1) not in sht.colors
    assert sht.color_calls[-1][0] == ((2, 1, 2, 5), (4, 1, 4, 5))  # one multi-area call per colour
    assert sht.api.ProtectContents and sht.api.calls[-1][1]["AllowFiltering"] is True
    assert sht.locked_areas == [((2, 5, 4, 5), False)]  # only 实发日期 stays editable
    assert book.app.screen_updating is True and book.app.calculation == "automatic"  # restored
    # a missing output sheet is added at the end
    port.write_sheet(SheetOut("校验结果", [Column("级别")], []))
    assert port.sheet_names() == ["参数", "提成发放表", "校验结果"]


def test_xlwings_port_refuses_a_password_protected_sheet():
    book = StubBook({"提成发放表": [["行ID"]]})
    sht = book.sheets["提成发放表"]
    sht.api.ProtectContents = sht.api.password = True
    with pytest.raises(SheetLocked, match="保护密码"):
        XlwingsPort(book).write_sheet(SheetOut("提成发放表", [Column("行ID")], []))
    assert sht.grid() == [["行ID"]]


def test_xlwings_port_appends_below_the_last_value_and_grows_the_table():
    book = StubBook({LOG_SHEET: [["日期", "工号", "客户编码"], [dt.datetime(2026, 1, 2), "E1", "C1"], [None, "E1", None]]})
    sht = book.sheets[LOG_SHEET]
    sht.formats[(10, 1)] = "yyyy-mm-dd"  # formatted empty rows do not count
    sht.tables.append(StubTable(sht, 1, 1, 3, 3))
    XlwingsPort(book).append_rows(LOG_SHEET, [[dt.date(2026, 2, 1), "1001", "C2"], [dt.date(2026, 2, 2), "E3", None]])
    assert sht.grid()[3:] == [[dt.datetime(2026, 2, 1), "1001", "C2"], [dt.datetime(2026, 2, 2), "E3", None]]
    assert sht.formats[(4, 1)] == "yyyy-mm-dd" and sht.formats[(4, 2)] == "@"
    assert sht.tables[0].area == (1, 1, 5, 3)


def test_xlwings_port_alert_falls_back_to_the_vba_msgbox_then_the_status_bar():
    book = StubBook({})
    port = XlwingsPort(book)
    port.alert("完成")
    assert book.app.alerts == [("完成", "xlsales")]
    book.app.fail_alert = True
    port.alert("第二条")
    assert book.macros == [(MSGBOX_MACRO, ("第二条",))]
    book.fail_macro = True
    port.alert("第三条\n第二行")
    assert book.app.status_history[-1] == "第三条 第二行"
    port.status("计算…")
    port.status(None)
    assert book.app.status_history[-2:] == ["计算…", False]


def test_cell_values_and_helpers():
    assert cell_value("=SUM(A1)") == "'=SUM(A1)" and cell_value("1001") == "1001"
    assert cell_value("1001", "money") == "'1001" and cell_value("-", "money") == "'-" and cell_value("说明", "money") == "说明"
    assert cell_value(Decimal("0.1")) == 0.1 and cell_value(dt.date(2026, 1, 2)) == dt.datetime(2026, 1, 2)
    assert row_runs([2, 3, 4, 7, 9, 10]) == [(2, 4), (7, 7), (9, 10)]
    addresses = run_addresses([(r, r) for r in range(2, 200, 2)], "L")
    assert all(len(a) <= 250 for a in addresses) and ",".join(addresses).count(":") == 99
    assert column_format([dt.date(2026, 1, 1), None]) == "yyyy-mm-dd" and column_format(["a", None]) == "@"
    assert column_format([1, "a"]) is None and column_format([None]) is None
