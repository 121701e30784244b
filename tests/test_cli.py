"""`xlsales compute | validate | init | demo` on real files: the contract's exit codes, summaries,
what is written and what is left alone, and a golden workbook with expected values."""

from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
from decimal import Decimal

import openpyxl
import pytest

from xlsales.adapters.board import BOARD_SHEET
from xlsales.adapters.sheets import EXTRA_OUTPUT_COLUMNS, write_tables
from xlsales.cli import main
from xlsales.core.rulebook import default_tables

OUTPUTS = ("关系评分", "月度排名", "排名历史", "提成发放表", "提成汇总", "商机预测", "校验结果")


def golden_tables(**changes):
    """The worked example of rules.md §4.1 as a workbook: floor = challenge = 10M, one order of 15M."""
    tables = {k: list(v) for k, v in default_tables().items()}
    rows = {
        "参数": [{"参数": "评估日期", "值": dt.date(2026, 6, 30)}],
        "销售人员": [{"工号": "E1", "姓名": "张三", "区域": "华东", "状态": "在职"},
                  {"工号": "E2", "姓名": "李四", "区域": "华东", "状态": "在职"},
                  {"工号": "E3", "姓名": "王五", "区域": "华北", "状态": "在职"}],
        "客户": [{"客户编码": "C1", "客户名称": "=1+1", "客户经理": "E1", "必保": "否", "自评等级": "支持"}],
        "客户关系记录": [{"日期": dt.date(2026, 6, 1), "工号": "E1", "客户编码": "C1", "联系人": "刘总", "角色": "决策层",
                     "动作编码": "A07", "次数": 1}],
        "业绩目标": [{"年度": 2026, "工号": e, "保底目标": 10_000_000, "挑战目标": 10_000_000} for e in ("E1", "E2", "E3")],
        "订单": [{"订单号": "SO1", "签约日期": dt.date(2026, 3, 5), "工号": "E1", "客户编码": "C1", "合同金额": 15_000_000,
                "毛利率": Decimal("0.28")}],
        "回款": [{"订单号": "SO1", "回款日期": dt.date(2026, 4, 1), "回款金额": 6_000_000}],
        "商机": [{"商机编码": "P1", "客户编码": "C1", "工号": "E1", "金额": 10_000_000, "状态": "跟进中"}],
    }
    rows.update(changes)
    for sheet, data in rows.items():
        tables[sheet] = [{"row": i, **r} for i, r in enumerate(data, 2)]
    return tables


@pytest.fixture
def golden(tmp_path):
    path = tmp_path / "golden.xlsx"
    write_tables(path, golden_tables())
    return path


def sheet_rows(path, sheet):
    book = openpyxl.load_workbook(path, read_only=True)
    rows = [list(r) for r in book[sheet].iter_rows(values_only=True)]
    book.close()
    return rows


def records(path, sheet):
    header, *rows = sheet_rows(path, sheet)
    return [dict(zip(header, r, strict=False)) for r in rows]


def parts(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_compute_writes_the_expected_values(golden, capsys):
    assert main(["compute", str(golden)]) == 0
    out = capsys.readouterr().out
    assert "排名 3 人" in out and "提成发放表 4 行" in out
    payouts = {r["行ID"]: r for r in records(golden, "提成发放表")}
    assert {k: v["金额"] for k, v in payouts.items()} == {
        "E1/SO1/提成/签约/20260305": 250000, "E1/SO1/毛利奖/签约/20260305": 225000,
        "E1/SO1/提成/回款/20260401": 100000, "E1/SO1/毛利奖/回款/20260401": 90000,
    }
    sign = payouts["E1/SO1/提成/签约/20260305"]
    assert sign["金额"] == 250000 and sign["应发日期"] == dt.datetime(2026, 3, 6) and sign["状态"] == "逾期"
    assert "10,000,000.00×2%×1 + 5,000,000.00×2%×3" in sign["计算说明"]
    assert payouts["E1/SO1/毛利奖/回款/20260401"]["金额"] == 90000  # 15M × 3% = 450,000 × 50% × 40%
    [rating] = records(golden, "关系评分")
    assert rating["客户名称"] == "=1+1"  # text stays text, never a formula
    assert (rating["关系分"], rating["等级"], rating["赢单概率"]) == (18, "中立", 0.3)
    assert rating["提示"].startswith("自评高于佐证")
    ranking = records(golden, "月度排名")
    assert [(r["工号"], r["排名"], r["分组"]) for r in ranking] == [("E1", 1, "前30%"), ("E2", 2, "中间"), ("E3", 2, "中间")]
    assert records(golden, "商机预测")[0]["加权金额"] == 3_000_000
    summary = {r["工号"]: r for r in records(golden, "提成汇总")}
    assert summary["E1"]["年度订单额"] == 15_000_000 and summary["E1"]["应发合计"] == 665000
    assert records(golden, "校验结果") == []


def test_json_summary(golden, capsys):
    assert main(["compute", str(golden), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 0 and report["reps_ranked"] == 3 and report["payout_lines"] == 4
    assert report["rows_read"]["订单"] == 1
    assert report["problems"] == report["errors"] + report["warnings"] == len(records(golden, "校验结果"))
    assert report["sheets_written"] == [*OUTPUTS, *EXTRA_OUTPUT_COLUMNS, BOARD_SHEET]  # the contract sheets first
    assert report["target_gap"] is None  # no 公司年度目标 in this workbook


def test_the_target_gap_is_in_the_summary_the_json_and_the_board(tmp_path, capsys):
    path = tmp_path / "demo.xlsx"
    main(["demo", str(path)])  # 公司年度目标 600,000,000
    capsys.readouterr()
    main(["compute", str(path)])
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("目标对比：")]
    assert len(said) == 1 and "公司年度目标 600,000,000.00" in said[0] and "保底目标合计" in said[0]
    main(["compute", str(path), "--json"])
    assert json.loads(capsys.readouterr().out)["target_gap"] == said[0].removeprefix("目标对比：")
    board = openpyxl.load_workbook(path)["看板"]
    assert board["A6"].value == said[0]


def test_finance_paid_dates_survive_a_rerun(golden):
    assert main(["compute", str(golden)]) == 0
    book = openpyxl.load_workbook(golden)
    ws = book["提成发放表"]
    header = [c.value for c in ws[1]]
    paid_col = header.index("实发日期") + 1
    ws.cell(row=2, column=paid_col, value=dt.datetime(2026, 3, 6))
    paid_id = ws.cell(row=2, column=1).value
    book.save(golden)
    assert main(["compute", str(golden)]) == 0
    line = next(r for r in records(golden, "提成发放表") if r["行ID"] == paid_id)
    assert line["实发日期"] == dt.datetime(2026, 3, 6) and line["状态"] == "已发"


def test_errors_give_exit_1_and_cells_in_the_result_sheet(tmp_path, capsys):
    path = tmp_path / "bad.xlsx"
    bad_log = [{"日期": dt.date(2026, 6, 1), "工号": "E1", "客户编码": "C1", "角色": "决策层", "动作编码": "A99", "次数": "两次"}]
    write_tables(path, golden_tables(客户关系记录=bad_log))
    assert main(["compute", str(path)]) == 1
    problems = records(path, "校验结果")
    assert {(p["级别"], p["工作表"], p["单元格"]) for p in problems} >= {("错误", "客户关系记录", "G2")}
    assert all(p["说明"] for p in problems)
    assert records(path, "提成发放表")  # the rest is still computed


def test_validate_writes_only_the_result_sheet(golden):
    before = parts(golden)
    assert main(["validate", str(golden)]) == 0
    after = parts(golden)
    changed = {n for n in after if before.get(n) != after[n]}
    assert all(n.startswith(("xl/worksheets/", "xl/workbook.xml", "xl/_rels/", "[Content_Types]", "xl/styles"))
               for n in changed)
    names = openpyxl.load_workbook(golden, read_only=True).sheetnames
    assert "校验结果" in names and "月度排名" not in names


def test_a_bad_rulebook_writes_only_the_result_sheet(tmp_path):
    path = tmp_path / "rules.xlsx"
    tables = golden_tables()
    tables["发放阶段"] = [{"row": 2, "阶段": "签约", "比例": 0.5}]
    write_tables(path, tables)
    assert main(["compute", str(path)]) == 1
    names = openpyxl.load_workbook(path, read_only=True).sheetnames
    assert "校验结果" in names and "提成发放表" not in names
    [problem] = records(path, "校验结果")
    assert problem["工作表"] == "发放阶段" and "应为 1" in problem["说明"]


def test_a_bad_rulebook_still_reports_the_other_sheets_problems_at_once(tmp_path):
    """rules §6: all problems at once. The references that need no rule table are checked too, so
    that fixing 发放阶段 does not bring a second list of problems only then."""
    path = tmp_path / "rules.xlsx"
    tables = golden_tables(
        订单=[{"订单号": "SO1", "签约日期": dt.date(2026, 3, 5), "工号": "E9", "客户编码": "C1", "合同金额": 15_000_000,
              "毛利率": Decimal("0.28")}],
        客户关系记录=[{"日期": dt.date(2026, 6, 1), "工号": "E1", "客户编码": "C7", "联系人": "刘总", "角色": "决策层",
                   "动作编码": "A07", "次数": 1}],
        回款=[{"订单号": "SO2", "回款日期": dt.date(2026, 4, 1), "回款金额": 6_000_000}],
    )
    tables["发放阶段"] = [{"row": 2, "阶段": "签约", "比例": 0.5}]
    write_tables(path, tables)
    assert main(["validate", str(path)]) == 1
    found = {(p["工作表"], p["单元格"], p["值"]) for p in records(path, "校验结果")}
    assert {("订单", "C2", "E9"), ("客户关系记录", "C2", "C7"), ("回款", "A2", "SO2")} <= found
    assert any(sheet == "发放阶段" for sheet, _, _ in found)


def test_unusable_files_give_exit_2_and_are_not_changed(tmp_path, golden, capsys):
    assert main(["compute", str(tmp_path / "missing.xlsx")]) == 2
    text = tmp_path / "notes.xlsx"
    text.write_text("not a workbook")
    assert main(["compute", str(text)]) == 2
    assert text.read_text() == "not a workbook"
    lock = golden.with_name("~$" + golden.name)
    lock.write_text("x")
    before = golden.read_bytes()
    assert main(["compute", str(golden)]) == 2
    assert "打开" in capsys.readouterr().err and golden.read_bytes() == before
    lock.unlink()
    os.chmod(golden, 0o444)
    try:
        assert main(["validate", str(golden)]) == 2
        assert golden.read_bytes() == before
    finally:
        os.chmod(golden, 0o644)


def test_init_and_demo(tmp_path, capsys):
    empty = tmp_path / "empty.xlsx"
    assert main(["init", str(empty)]) == 0
    assert main(["init", str(empty)]) == 2  # never overwrites without --force
    assert main(["compute", str(empty)]) == 0
    demo = tmp_path / "demo.xlsx"
    assert main(["demo", str(demo)]) == 0
    out = capsys.readouterr().out
    assert "月度排名" in out and "演示工作簿" in out
    assert main(["compute", str(demo)]) == 1  # the demo's planted mistakes are errors
    assert len(records(demo, "月度排名")) == 11


def test_the_summary_says_what_the_problems_mostly_are(tmp_path, capsys):
    demo = tmp_path / "demo.xlsx"
    assert main(["demo", str(demo)]) == 0
    capsys.readouterr()
    assert main(["compute", str(demo), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    kinds = report["problem_kinds"]
    assert sum(kinds.values()) == report["errors"] + report["warnings"]
    levels = [kind.split(" ")[0] for kind in kinds]
    assert levels == sorted(levels, key=lambda level: level != "错误")  # errors first
    warnings = [n for kind, n in kinds.items() if kind.startswith("警告")]
    assert warnings == sorted(warnings, reverse=True) and kinds["警告 客户关系记录·次数"] == max(warnings)
    assert main(["compute", str(demo)]) == 1
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("主要问题")]
    assert line.startswith("主要问题（错误在前）：错误 ") and line.count("条") == 3


def test_a_run_pauses_the_cycle_collector_and_gives_it_back(golden, monkeypatch):
    import gc

    from xlsales.adapters import filerun

    seen: list[bool] = []
    real = filerun.read_workbook
    monkeypatch.setattr(filerun, "read_workbook", lambda path, **kw: seen.append(gc.isenabled()) or real(path, **kw))
    assert gc.isenabled()
    report, _, _ = filerun.run_workbook(golden, "compute")
    assert report.exit_code == 0 and seen == [False] and gc.isenabled()


def test_a_run_switches_threads_often_and_gives_the_interval_back(golden, monkeypatch):
    import sys

    from xlsales.adapters import filerun

    seen: list[float] = []
    real = filerun.read_workbook
    monkeypatch.setattr(filerun, "read_workbook",
                        lambda path, **kw: seen.append(sys.getswitchinterval()) or real(path, **kw))
    before = sys.getswitchinterval()
    report, _, _ = filerun.run_workbook(golden, "compute")
    assert report.exit_code == 0 and seen == [pytest.approx(filerun.GIL_SWITCH_SECONDS)]
    assert sys.getswitchinterval() == before != filerun.GIL_SWITCH_SECONDS


def test_compute_starts_writing_the_payout_sheet_while_it_makes_the_others(golden, monkeypatch):
    """compute begins the write with 提成发放表 (SheetsWrite.start), validate writes as before; a
    workbook opened elsewhere meanwhile is still refused, and left as it was."""
    from xlsales.adapters import filerun, xlsx_writer

    started: list[str] = []
    real = xlsx_writer.SheetsWrite.start
    monkeypatch.setattr(xlsx_writer.SheetsWrite, "start", lambda self, sheet: started.append(sheet.name) or real(self, sheet))
    report, _, _ = filerun.run_workbook(golden, "compute")
    assert report.exit_code == 0 and started == ["提成发放表"]
    report, _, _ = filerun.run_workbook(golden, "validate")
    assert report.exit_code == 0 and started == ["提成发放表"]

    lock = golden.with_name("~$" + golden.name)

    def opened_meanwhile(self, sheet):
        real(self, sheet)
        lock.write_text("x")  # Excel opens the workbook while the run goes on

    monkeypatch.setattr(xlsx_writer.SheetsWrite, "start", opened_meanwhile)
    before = golden.read_bytes()
    report, _, _ = filerun.run_workbook(golden, "compute")
    assert report.exit_code == 2 and "打开" in report.message and golden.read_bytes() == before
    assert sorted(p.name for p in golden.parent.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_the_payout_cells_made_in_a_thread_leave_nothing_running_and_fail_loudly(golden, monkeypatch):
    """提成发放表's prepared cells are made in a thread while the log loads (filerun._prepared_payouts):
    the run waits for it (no thread outlives the run, validate starts none) and an error there
    stops the run as it would in this thread, with the workbook untouched."""
    import threading

    from xlsales.adapters import filerun

    made_in: list[str] = []
    real = filerun.PreparedPayouts

    def prepared(lines):
        made_in.append(threading.current_thread().name)
        return real(lines)

    monkeypatch.setattr(filerun, "PreparedPayouts", prepared)
    before = set(threading.enumerate())
    report, _, _ = filerun.run_workbook(golden, "compute")
    assert report.exit_code == 0 and len(made_in) == 1 and made_in[0] != threading.main_thread().name
    report, _, _ = filerun.run_workbook(golden, "validate")
    assert report.exit_code == 0 and len(made_in) == 1
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("xlsales-payouts")]

    def broken(lines):
        raise RuntimeError("payout cells failed")

    monkeypatch.setattr(filerun, "PreparedPayouts", broken)
    content = golden.read_bytes()
    with pytest.raises(RuntimeError, match="payout cells failed"):
        filerun.run_workbook(golden, "compute")
    assert golden.read_bytes() == content
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("xlsales-payouts")]


def test_a_run_leaves_what_it_made_to_a_process_that_ends_right_after(golden):
    """`keep` (what cli.entry passes): the rows read, the records and the sheets stay referenced
    there instead of being freed one by one; the run itself is the same."""
    from xlsales.adapters import filerun
    from xlsales.adapters.xlsx_reader import WorkbookData

    kept: list[object] = []
    report, results, _ = filerun.run_workbook(golden, "compute", keep=kept)
    assert report.exit_code == 0 and results is not None
    assert any(isinstance(x, WorkbookData) for x in kept) and results in kept
    assert any(isinstance(x, list) and any(getattr(s, "name", None) == "提成发放表" for s in x) for x in kept)


def test_the_small_sheets_validated_while_the_log_loads_give_the_same_run(tmp_path):
    from xlsales.adapters.filerun import RunReport, early_intake, sheets_to_write
    from xlsales.adapters.xlsx_reader import read_workbook
    from xlsales.adapters.xlsx_writer import SheetOut
    from xlsales.demo import DEMO_DATE

    demo = tmp_path / "demo.xlsx"
    assert main(["demo", str(demo)]) == 0  # planted errors in the log and in small sheets
    runs = []
    for early in (False, True):
        hook, done = early_intake(DEMO_DATE)
        data = read_workbook(demo, while_log_loads=hook if early else None)
        assert len(done) == early  # the hook ran once, after the small sheets
        report = RunReport(workbook=str(demo), command="compute", exit_code=0, message="")
        sheets, _, problems = sheets_to_write(data, "compute", DEMO_DATE, lambda _: None, report,
                                              done[0] if early else None)
        runs.append((problems.items, [(s.name, s.rows) for s in sheets if isinstance(s, SheetOut)]))
    assert runs[0] == runs[1] and any(p.is_error for p in runs[0][0])


def test_the_command_line_starts_a_big_logs_read_before_importing_the_engine(tmp_path, monkeypatch, capsys):
    """`compute` starts the log's second process first (log_prefetch), so importing the command line
    must not pull in polars, pydantic or the engine; the run then adopts that process and gives the
    same sheets as a run without it."""
    import subprocess
    import sys

    from xlsales.adapters import log_prefetch

    probe = "import sys, xlsales.cli; print(sorted(m for m in ('polars', 'pydantic', 'xlsales.core') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"

    pytest.importorskip("fastexcel")
    pytest.importorskip("pyarrow")
    demo = tmp_path / "demo.xlsx"
    assert main(["demo", str(demo)]) == 0
    plain, early = tmp_path / "plain.xlsx", tmp_path / "early.xlsx"
    plain.write_bytes(demo.read_bytes())
    early.write_bytes(demo.read_bytes())
    assert main(["compute", str(plain)]) == 1
    monkeypatch.setattr(log_prefetch, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(log_prefetch, "spare_core", lambda: True)
    children: list[log_prefetch.LogChild] = []
    start = log_prefetch.LogChild.__init__
    monkeypatch.setattr(log_prefetch.LogChild, "__init__", lambda self, *a: (children.append(self), start(self, *a))[1])
    assert main(["compute", str(early)]) == 1
    assert len(children) == 1 and children[0].proc is None  # the reader adopted it (no second one), cleaned up
    for sheet in (*OUTPUTS, *EXTRA_OUTPUT_COLUMNS):
        assert sheet_rows(early, sheet) == sheet_rows(plain, sheet), sheet


def test_the_installed_command_ends_its_process_at_once_with_the_right_code_and_output(golden, tmp_path):
    """`xlsales` (cli.entry) ends with os._exit once the run is done: the exit code and everything
    printed must still come out whole."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "xlsales.cli", *args], capture_output=True, text=True, timeout=300)

    done = run("compute", str(golden), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the whole JSON, flushed before the process ended
    assert report["exit_code"] == 0 and "提成发放表" in report["sheets_written"]
    assert records(golden, "提成发放表")  # and the workbook was written
    assert run("validate", str(tmp_path / "missing.xlsx")).returncode == 2
    assert run("--help").returncode == 0 and run("bogus").returncode == 2
    demo = run("demo")
    assert demo.returncode == 0 and "月度排名" in demo.stdout


def test_the_early_log_read_finds_the_workbook_among_the_arguments(monkeypatch, tmp_path):
    from xlsales import cli

    seen: list[str] = []
    monkeypatch.setattr(cli, "prefetch_log", lambda path: seen.append(path))
    for argv in (["compute", "a.xlsx"], ["validate", "--today", "2026-01-01", "a.xlsx"], ["compute", "--json", "a.xlsx"],
                 ["demo", "a.xlsx"], ["compute"], ["init", "a.xlsx"]):
        cli._early_log_read(argv)
    assert seen == ["a.xlsx", "a.xlsx", "a.xlsx"]


def test_a_cell_reported_as_unusable_is_not_also_called_blank(tmp_path):
    """20260305 typed as a number into a date column: one error on that cell (the date is out of
    range), not a second one saying 签约日期 is required and blank."""
    path = tmp_path / "b.xlsx"
    write_tables(path, golden_tables(订单=[{"订单号": "SO1", "签约日期": 20260305, "工号": "E1", "客户编码": "C1",
                                           "合同金额": 15_000_000, "毛利率": Decimal("0.28")}]))
    assert main(["validate", str(path)]) == 1
    on_the_order = [p for p in records(path, "校验结果") if p["工作表"] == "订单"]
    assert [(p["单元格"], p["级别"]) for p in on_the_order] == [("B2", "错误")]
    assert "必填" not in on_the_order[0]["说明"]
