"""The founder's watchlist (core.watchlist, sheet 创始人关注): the customers flagged 重点."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import openpyxl

from builders import customer, entry, log, opportunity, rep, run
from test_cli import golden_tables, records, sheet_rows
from xlsales.adapters.sheets import EXTRA_OUTPUT_COLUMNS, INPUT_HEADERS, write_tables
from xlsales.cli import main
from xlsales.core.models import Tier
from xlsales.core.pipeline import Inputs
from xlsales.core.watchlist import WATCH_SHEET, previous_month_end

REPS = [rep(r) for r in ("E1", "E2", "E3")]
TOP = "决策层"


def watched(code: str, **extra):
    return customer(code, "E1", 技术经理="E2", 服务经理="E3", 重点="是", **extra)


def rows_by_code(results):
    return {w.code: w for w in results.watchlist}


def test_only_customers_flagged_重点_are_listed():
    customers = [watched("C1"), customer("C2", 重点="否"), customer("C3"), customer("C4", 必保="是", 重点="")]
    results, _ = run(Inputs(reps=REPS, customers=customers, log=log()))
    assert [w.code for w in results.watchlist] == ["C1"]
    assert {c.code: c.key_watch for c in customers} == {"C1": True, "C2": False, "C3": False, "C4": False}


def test_last_month_tier_and_the_change_on_a_constructed_log():
    results, _ = run(Inputs(reps=REPS, customers=[watched("C1"), watched("C2"), watched("C3"), watched("C4")], log=log(
        # C1: 中立 at the end of May (参观公司 + 会见高层, 36 points), 支持 in June (需求签字确认: 58.5) -> 升
        entry("2026-05-10", "A05", customer_code="C1", role=TOP), entry("2026-05-12", "A07", customer_code="C1", role=TOP),
        entry("2026-06-05", "A08", customer_code="C1", role=TOP),
        # C2: 中立 in May, a public turn to a competitor in June: negative -> 反对 -> 降
        entry("2026-05-10", "A02", customer_code="C2"), entry("2026-06-20", "A13", customer_code="C2", role=TOP),
        # C3: first entries in June -> 新
        entry("2026-06-02", "A02", customer_code="C3"),
        # C4: 中立 both months -> 持平
        entry("2026-04-02", "A02", customer_code="C4"), entry("2026-06-02", "A02", customer_code="C4"),
    )))
    rows = rows_by_code(results)
    assert (rows["C1"].last_month_tier, rows["C1"].tier, rows["C1"].change) == (Tier.NEUTRAL, Tier.SUPPORT, "升")
    assert rows["C1"].score == Decimal("58.5")
    assert (rows["C2"].last_month_tier, rows["C2"].tier, rows["C2"].change) == (Tier.NEUTRAL, Tier.AGAINST, "降")
    assert rows["C3"].change == "新"
    assert (rows["C4"].last_month_tier, rows["C4"].tier, rows["C4"].change) == (Tier.NEUTRAL, Tier.NEUTRAL, "持平")
    assert rows["C1"].last_contact == dt.date(2026, 6, 5) and rows["C2"].last_contact == dt.date(2026, 6, 20)
    assert "降" in rows["C2"].hint
    # the current tier is the one of 关系评分
    tiers = {r.code: r.tier for r in results.ratings}
    assert all(w.tier is tiers[w.code] for w in results.watchlist)


def test_previous_month_end():
    assert previous_month_end(dt.date(2026, 6, 30)) == dt.date(2026, 5, 31)
    assert previous_month_end(dt.date(2026, 3, 15)) == dt.date(2026, 2, 28)
    assert previous_month_end(dt.date(2026, 1, 31)) == dt.date(2025, 12, 31)


def test_open_and_paused_opportunities_are_counted_won_and_lost_are_not():
    opps = [opportunity("O1", "C1", "跟进中", 1_000_000), opportunity("O2", "C1", "暂缓", 500_000, reason="预算"),
            opportunity("O3", "C1", "赢单", 9_000_000, when="2026-05-01"),
            opportunity("O4", "C1", "丢单", 7_000_000, when="2026-05-02"),
            opportunity("O5", "C2", "跟进中", 3_000_000)]
    results, _ = run(Inputs(reps=REPS, customers=[watched("C1"), customer("C2")], log=log(), opportunities=opps))
    (row,) = results.watchlist
    assert (row.open_count, row.open_amount) == (2, Decimal(1_500_000))
    assert row.open_text == "2 个，共 1,500,000.00 元"


def test_triangle_and_coverage_gaps_are_shown_also_for_customers_that_are_not_key_accounts():
    c = customer("C1", "E1", 技术经理="E2", 重点="是")  # neither 必保 nor 战略突破奖
    results, problems = run(Inputs(reps=REPS, customers=[c], log=log(
        entry("2026-06-01", "A02", role=TOP), entry("2026-03-01", "A02", role="管理层"),  # 管理层 outside 90 days
    )))
    (row,) = results.watchlist
    assert row.missing_roles == ("服务经理",)
    assert row.uncovered == ("管理层", "技术/采购层", "秘书/助理")
    assert "服务经理" in row.hint
    assert results.accounts == []  # not a key account: no row there and no triangle warning
    assert [p for p in problems.items if p.sheet == "客户"] == []


def test_the_sheet_is_written_by_compute(tmp_path):
    path = tmp_path / "book.xlsx"
    tables = golden_tables(
        客户=[{"客户编码": "C1", "客户名称": "甲", "客户经理": "E1", "技术经理": "E2", "重点": "是"},
              {"客户编码": "C2", "客户名称": "乙", "客户经理": "E1"}],
        客户关系记录=[{"日期": dt.date(2026, 6, 1), "工号": "E1", "客户编码": "C1", "角色": "决策层", "动作编码": "A07"}],
    )
    write_tables(path, tables)
    assert main(["compute", str(path)]) == 0
    header = sheet_rows(path, WATCH_SHEET)[0]
    assert tuple(header) == tuple(h for h, _ in EXTRA_OUTPUT_COLUMNS[WATCH_SHEET])
    (row,) = records(path, WATCH_SHEET)
    assert row["客户编码"] == "C1" and row["等级变化"] == "新" and row["铁三角缺口"] == "服务经理"
    assert row["最近联系"] == dt.datetime(2026, 6, 1) and row["未覆盖层级"] == "管理层、技术/采购层、秘书/助理"
    book = openpyxl.load_workbook(path)
    assert book[WATCH_SHEET].protection.sheet
    assert book.sheetnames[-2:] == [WATCH_SHEET, "看板"]  # after the other result sheets, before the board


def test_a_workbook_without_the_重点_column_still_computes(tmp_path):
    path = tmp_path / "book.xlsx"
    write_tables(path, golden_tables())
    book = openpyxl.load_workbook(path)
    sheet = book["客户"]
    column = list(INPUT_HEADERS["客户"]).index("重点") + 1
    assert sheet.cell(1, column).value == "重点"
    sheet.delete_cols(column)
    book.save(path)
    assert "重点" not in sheet_rows(path, "客户")[0]
    assert main(["compute", str(path)]) == 0
    assert records(path, WATCH_SHEET) == []
    assert not [p for p in records(path, "校验结果") if p["工作表"] == "客户" and p["级别"] == "错误"]
