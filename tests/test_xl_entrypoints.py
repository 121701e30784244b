"""The buttons' logic, driven through FakePort (and once end to end through XlwingsPort on a stand-in book)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from xlsales import xl
from xlsales.adapters import filerun
from xlsales.adapters.filerun import HAS_ERRORS, OK, UNUSABLE, run_workbook
from xlsales.adapters.port import FakePort
from xlsales.adapters.sheets import EXTRA_OUTPUT_COLUMNS, OUTPUT_SHEETS, PAYOUT_SHEET, PROBLEM_SHEET, SUMMARY_SHEET, write_tables
from xlsales.adapters.xlsx_reader import read_workbook
from xlsales.core.activity import LOG_SHEET
from xlsales.demo import DEMO_DATE, demo_tables
from xlwings_stub import StubBook


def demo_port(with_errors: bool = True) -> FakePort:
    return FakePort.from_tables(demo_tables(with_errors=with_errors))


def written(port: FakePort) -> list[str]:
    return [s.name for s in port.written]


def test_compute_writes_every_output_sheet_and_sums_up_in_an_alert():
    port = demo_port()
    report = xl.run_on_port(port, "compute", DEMO_DATE)
    assert written(port) == [*OUTPUT_SHEETS, *EXTRA_OUTPUT_COLUMNS]  # the contract sheets, then the extra ones
    assert report.exit_code == HAS_ERRORS and report.errors == 4 and report.reps_ranked == 11
    assert port.protected[PAYOUT_SHEET] == {"实发日期"}  # finance types only the paid date
    (alert,) = port.alerts
    assert alert.startswith("计算完成：2026 年，评估日期 2026-11-30")
    assert "4 个错误" in alert and "“两次”" in alert and "校验结果" in alert
    assert port.statuses[0] == "读取工作簿…" and "计算…" in port.statuses and port.statuses[-1] is None
    assert [s for s in port.statuses if s and s.startswith("写入")][-1] == "写入“看板”（11/11）…"
    assert [c.name for c in port.boards["看板"].charts] == ["月度排名", "客户等级分布", "目标达成", "发放及时率", "加权商机"]
    assert port.sheets["看板"][0][0] == "看板 · 2026-11" and "看板" in port.protected
    problems = port.records(PROBLEM_SHEET)
    assert len(problems) == report.errors + report.warnings
    assert any(p["级别"] == "错误" and p["工作表"] == LOG_SHEET and p["单元格"] == "G22" and p["值"] == "两次" for p in problems)


def test_compute_gives_the_same_results_as_the_file_workflow(tmp_path):
    path = tmp_path / "demo.xlsx"
    write_tables(path, demo_tables())
    port = FakePort({name: [list(r) for r in grid] for name, grid in FakePort.from_tables(demo_tables()).sheets.items()})
    file_report, _, _ = run_workbook(path, "compute", DEMO_DATE)
    port_report = xl.run_on_port(port, "compute", DEMO_DATE)
    assert (port_report.exit_code, port_report.errors, port_report.warnings, port_report.payout_lines, port_report.reps_ranked) == (
        file_report.exit_code, file_report.errors, file_report.warnings, file_report.payout_lines, file_report.reps_ranked)
    assert port_report.rows_read == file_report.rows_read and port_report.sheets_written == file_report.sheets_written
    from_file = read_workbook(path)
    for sheet in (PAYOUT_SHEET, SUMMARY_SHEET, "月度排名"):
        file_rows = [{k: v for k, v in r.items() if k != "row"} for r in from_file.tables.get(sheet, [])] or None
        if file_rows is None:
            continue
        port_rows = port.records(sheet)
        assert len(port_rows) == len(file_rows)
        assert [r["行ID"] if "行ID" in r else r["工号"] for r in port_rows] == [
            r.get("行ID", r.get("工号")) for r in file_rows]


def test_validate_writes_only_the_problems_sheet():
    port = demo_port()
    before = {k: [list(r) for r in v] for k, v in port.sheets.items()}
    report = xl.run_on_port(port, "validate", DEMO_DATE)
    assert written(port) == [PROBLEM_SHEET] and report.message == "校验完成"
    assert {k: v for k, v in port.sheets.items() if k != PROBLEM_SHEET} == before
    assert port.alerts[0].startswith("校验完成")


def test_generate_payouts_writes_the_payout_sheets_only():
    port = demo_port(with_errors=False)
    report = xl.run_on_port(port, "payouts", DEMO_DATE)
    assert written(port) == [PAYOUT_SHEET, SUMMARY_SHEET, PROBLEM_SHEET] == list(filerun.PAYOUT_SHEETS)
    assert report.exit_code == OK and report.message.startswith("发放表已生成")
    assert "月度排名" not in port.sheets and len(port.records(PAYOUT_SHEET)) == report.payout_lines


def test_a_bad_rulebook_writes_only_the_problems_sheet_and_keeps_the_others():
    tables = demo_tables(with_errors=False)
    tables["发放阶段"] = [{"row": 2, "阶段": "签约", "比例": 0.5}, {"row": 3, "阶段": "回款", "比例": 0.4}]
    port = FakePort.from_tables(tables)
    port.sheets[SUMMARY_SHEET] = [["工号"], ["上次的结果"]]
    report = xl.run_on_port(port, "compute", DEMO_DATE)
    assert written(port) == [PROBLEM_SHEET] and report.exit_code == HAS_ERRORS
    assert port.sheets[SUMMARY_SHEET] == [["工号"], ["上次的结果"]]
    assert any("发放阶段比例合计为 0.9" in (r["说明"] or "") for r in port.records(PROBLEM_SHEET))
    (alert,) = port.alerts
    assert alert.startswith("规则表或参数有错误：只写入了“校验结果”") and "发放阶段比例合计" in alert


def test_a_missing_sheet_stops_the_run_with_its_error():
    port = demo_port(with_errors=False)
    del port.sheets["订单"]
    report = xl.run_on_port(port, "compute", DEMO_DATE)
    assert written(port) == [PROBLEM_SHEET] and "订单 无法完整读取" in report.message
    assert any(r["说明"].startswith("缺少工作表“订单”") for r in port.records(PROBLEM_SHEET))


def test_finance_paid_dates_survive_a_rerun():
    port = demo_port(with_errors=False)
    xl.run_on_port(port, "compute", DEMO_DATE)
    grid = port.sheets[PAYOUT_SHEET]
    heads = grid[0]
    due = next(i for i, r in enumerate(grid[1:], 1) if r[heads.index("状态")] in ("待发", "逾期"))
    line_id = grid[due][heads.index("行ID")]
    grid[due][heads.index("实发日期")] = dt.datetime(2026, 11, 29)
    port.written.clear()
    xl.run_on_port(port, "compute", DEMO_DATE)
    line = next(r for r in port.records(PAYOUT_SHEET) if r["行ID"] == line_id)
    assert line["状态"] == "已发" and line["实发日期"] == dt.datetime(2026, 11, 29)


def test_a_write_failure_is_reported_not_raised():
    class Failing(FakePort):
        def write_sheet(self, sheet: Any) -> None:
            if sheet.name == PAYOUT_SHEET:
                raise RuntimeError("工作表被锁定")
            super().write_sheet(sheet)

    port = Failing.from_tables(demo_tables(with_errors=False))
    report = xl.run_on_port(port, "compute", DEMO_DATE)
    assert report.exit_code == UNUSABLE and report.message == "写入工作表“提成发放表”失败：工作表被锁定"
    assert port.alerts == [report.message] and port.statuses[-1] is None


def test_unknown_command():
    with pytest.raises(ValueError):
        xl.run_on_port(FakePort(), "everything")


# --- the entry points, end to end on a stand-in xlwings book ---------------------------------------

def stub_book(with_errors: bool = False, **kw: Any) -> StubBook:
    return StubBook(FakePort.from_tables(demo_tables(with_errors=with_errors)).sheets, **kw)


def test_compute_all_through_xlwings_port():
    book = stub_book()
    report = xl.compute_all(book)
    assert report is not None and report.exit_code == OK
    assert set(OUTPUT_SHEETS) <= {s.name for s in book.sheets}
    assert all(len(book.sheets[name].writes) == 1 for name in OUTPUT_SHEETS)  # one bulk write each
    payouts = book.sheets[PAYOUT_SHEET]
    assert len(payouts.writes) == 1 and payouts.api.ProtectContents
    assert book.app.alerts[-1][0].startswith("计算完成") and book.app.status_history[-1] is False
    # a second run reads back what the first wrote and gives the same lines
    first = payouts.grid()
    assert xl.compute_all(book) is not None and payouts.grid() == first


def test_validate_and_generate_payouts_through_xlwings_port():
    book = stub_book(with_errors=True)
    assert xl.validate(book).exit_code == HAS_ERRORS  # type: ignore[union-attr]
    assert PROBLEM_SHEET in [s.name for s in book.sheets] and PAYOUT_SHEET in [s.name for s in book.sheets]
    assert book.sheets[PAYOUT_SHEET].writes == []  # the demo's own ledger, untouched
    assert xl.generate_payouts(book).command == "payouts"  # type: ignore[union-attr]
    assert len(book.sheets[PAYOUT_SHEET].writes) == 1 and "月度排名" not in [s.name for s in book.sheets]


def test_an_unexpected_failure_becomes_an_alert(monkeypatch):
    book = stub_book()
    monkeypatch.setattr(xl, "read_port", lambda port: (_ for _ in ()).throw(KeyError("坏了")))
    assert xl.compute_all(book) is None
    assert book.app.alerts[-1][0].startswith("运行失败：'坏了'（KeyError）") and book.app.status_history[-1] is False


def test_import_button_asks_for_files_and_appends_through_the_port(tmp_path):
    from test_scorecard_import import LOG_HEADERS, scorecard

    card = scorecard(tmp_path / "张三.xlsx", "E001", [[dt.date(2026, 11, 3), "E001", "C001", "总经理", "决策层", "A02", 1, None, "拜访"]])
    book = stub_book(fullname=str(tmp_path / "销售.xlsm"))
    book.app.api.open_result = (str(card),)
    report = xl.import_scorecards(book)
    assert report is not None and report.added == 1
    log = book.sheets[LOG_SHEET].grid()
    assert log[0][: len(LOG_HEADERS)] == list(LOG_HEADERS)
    assert log[-1][:6] == [dt.datetime(2026, 11, 3), "E001", "C001", "总经理", "决策层", "A02"]
    assert book.app.alerts[-1][0].startswith("导入完成：新增 1 条记录")
    assert book.app.api.dialogs[0]["MultiSelect"] is True
    # the same scorecard again: nothing new
    assert xl.import_scorecards(book).added == 0 and book.sheets[LOG_SHEET].grid() == log
    # cancelled dialog: nothing happens
    book.app.api.open_result = False
    alerts = len(book.app.alerts)
    assert xl.import_scorecards(book) is None and len(book.app.alerts) == alerts


def test_import_without_a_dialog_uses_the_list_sheet_or_the_folder(tmp_path):
    from test_scorecard_import import scorecard

    folder = tmp_path / xl.IMPORT_FOLDER
    folder.mkdir()
    scorecard(folder / "a.xlsx", "E001", [[dt.date(2026, 11, 3), None, "C001", "总经理", "决策层", "A02", 1, None, None]])
    scorecard(tmp_path / "b.xlsx", "E002", [[dt.date(2026, 11, 4), None, "C002", "总经理", "决策层", "A02", 1, None, None]])
    port = FakePort({"导入文件": [["文件"], ["b.xlsx"]]})
    assert xl.listed_files(port, tmp_path) == [tmp_path / "b.xlsx"]
    assert xl.listed_files(FakePort(), tmp_path) == [folder / "a.xlsx"]
    assert xl.listed_files(FakePort(), None) == []

    book = StubBook({"客户关系记录": [list(LOG_HEADERS_ROW)]}, fullname=str(tmp_path / "销售.xlsm"))
    book.app.api = object()  # no file dialog on this platform
    report = xl.import_scorecards(book)
    assert report is not None and report.added == 1 and book.sheets[LOG_SHEET].grid()[1][2] == "C001"


LOG_HEADERS_ROW = ("日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态", "备注")


def test_import_with_no_files_says_so():
    port = FakePort({LOG_SHEET: [list(LOG_HEADERS_ROW)]})
    assert xl.import_on_port(port, []) is None
    assert port.alerts == ["没有选择评分表：请选择销售填好的“客户关系评价表”文件后再导入"]


def test_ask_files_shapes():
    book = StubBook({})
    book.app.api.open_result = ("a.xlsx", "b.xlsm")
    assert xl.ask_files(book) == ["a.xlsx", "b.xlsm"]
    book.app.api.open_result = "c.xlsx"
    assert xl.ask_files(book) == ["c.xlsx"]
    book.app.api.open_result = False
    assert xl.ask_files(book) is None


def test_module_imports_without_excel():
    assert callable(xl.compute_all) and Path(xl.__file__).name == "xl.py"
