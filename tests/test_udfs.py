"""The worksheet functions: rules.md's worked examples, Excel's argument shapes, and what a call costs."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from xlsales.udfs import XS_COMMISSION, XS_DUE_DATE, XS_MARGIN_BONUS, XS_POINTS, XS_TIER, XS_WIN_PROB

IRON_INDICATORS = "参观公司、会见高层、样板点参观、战略合作协议、提供竞争情报"


def test_commission_examples_of_the_rules():
    # §4.1: floor = challenge = 10M, one order of 15M at 2%: 10M × 2% + 5M × 2% × 3
    assert XS_COMMISSION(15e6, 10e6, 10e6, 0.02) == 500_000
    assert XS_COMMISSION(15e6, 10e6, 10e6) == 500_000  # 2% is the default rate
    # bands 1×, 2×, 3×: floor 10M, challenge 20M, 25M signed: 10M×2% + 10M×4% + 5M×6%
    assert XS_COMMISSION(25e6, 10e6, 20e6) == 900_000
    # the same order after 8M already signed this year: 2M at 1×, 10M at 2×, 3M at 3×
    assert XS_COMMISSION(15e6, 10e6, 20e6, 0.02, 8e6) == 2e6 * 0.02 + 10e6 * 0.04 + 3e6 * 0.06
    assert XS_COMMISSION(5e6, 10e6, None, "2%") == 100_000  # challenge defaults to the floor; "2%" text
    with pytest.raises(ValueError, match="挑战目标不能低于保底目标"):
        XS_COMMISSION(1e6, 10e6, 5e6)


def test_margin_bonus_examples_of_the_rules():
    # §4.2: 10M at 28%: 300,000; at 35%: 500,000 (capped at 30%); at 24%: 0
    assert XS_MARGIN_BONUS(10e6, 0.28) == 300_000
    assert XS_MARGIN_BONUS(10e6, 0.35) == 500_000
    assert XS_MARGIN_BONUS(10e6, 0.24) == 0
    assert XS_MARGIN_BONUS(10e6, 0.28, share=0.5) == 150_000
    assert XS_MARGIN_BONUS(10e6, 0.28, 0.20, 0.40, 1, 0.30) == 0  # below a 30% red line
    assert XS_MARGIN_BONUS(10e6, 0.28, 0.20, 0.40) == 800_000


def test_points_of_an_entry():
    # 分值 × 系数 × 角色系数 × 次数: 高层会见 (10 × 1.2) with 决策层 (1.5), twice
    assert XS_POINTS(10, 1.2, 1.5, 2) == 36
    assert XS_POINTS(10, 1.2, "决策层", 2) == 36
    assert XS_POINTS(2, 1, "秘书/助理") == pytest.approx(1.2) and XS_POINTS(2) == 2
    assert XS_POINTS(-10, 1, "管理层") == -12  # a complaint costs points
    with pytest.raises(ValueError, match="次数"):
        XS_POINTS(2, 1, 1, 1.5)


def test_tier_and_win_probability():
    assert XS_TIER(85, IRON_INDICATORS) == "铁杆" and XS_WIN_PROB(85, IRON_INDICATORS) == 0.9
    assert XS_TIER(85, "参观公司、会见高层、需求签字确认") == "支持"  # 铁杆 needs all five
    assert XS_TIER(60, "参观公司,会见高层") == "中立" and XS_WIN_PROB(60, "参观公司,会见高层") == 0.3
    assert XS_TIER(-5, IRON_INDICATORS) == "反对" and XS_TIER(95, IRON_INDICATORS, None, "反对") == "反对"
    assert XS_TIER(85, [["参观公司"], ["会见高层"], ["需求签字确认"], [None]]) == "支持"  # a column of indicators
    rules = [["等级", "最低关系分", "必备指标", "赢单概率"], ["支持", 40, "参观公司", 0.7]]
    assert XS_TIER(45, "参观公司", rules) == "支持" and XS_WIN_PROB(45, "参观公司", rules) == 0.7
    assert XS_TIER(45, "参观公司", [["支持", 40, "参观公司"]]) == "支持"  # no header row; default probability kept
    assert XS_WIN_PROB(45, "参观公司", [["支持", 40, "参观公司"]]) == 0.8
    with pytest.raises(ValueError, match="等级“金牌”不认识"):
        XS_TIER(45, "", [["金牌", 40, "", 0.9]])


def test_due_date():
    assert XS_DUE_DATE(dt.datetime(2026, 3, 5)) == dt.date(2026, 3, 6)  # signed today, paid tomorrow
    assert XS_DUE_DATE(dt.date(2026, 12, 31), 3) == dt.date(2027, 1, 3)
    assert XS_DUE_DATE(46086.0, 0) == dt.date(2026, 3, 5)  # a date serial from an unformatted cell
    assert XS_DUE_DATE("2026-03-05", 1.0) == dt.date(2026, 3, 6)
    with pytest.raises(ValueError, match="事件日期应为日期"):
        XS_DUE_DATE("下周")


CALLS = {
    "XS_POINTS": lambda: XS_POINTS(10, 1.2, "决策层", 2),
    "XS_TIER": lambda: XS_TIER(85, IRON_INDICATORS),
    "XS_TIER(rules)": lambda: XS_TIER(45, "参观公司", [["等级", "最低关系分", "必备指标", "赢单概率"], ["支持", 40, "参观公司", 0.7]]),
    "XS_WIN_PROB": lambda: XS_WIN_PROB(60, "参观公司,会见高层"),
    "XS_COMMISSION": lambda: XS_COMMISSION(15e6, 10e6, 10e6, 0.02),
    "XS_COMMISSION(before)": lambda: XS_COMMISSION(15e6, 10e6, 20e6, 0.02, 8e6),
    "XS_MARGIN_BONUS": lambda: XS_MARGIN_BONUS(10e6, 0.28),
    "XS_MARGIN_BONUS(params)": lambda: XS_MARGIN_BONUS(10e6, 0.28, 0.2, 0.4, 0.5, 0.25),
    "XS_DUE_DATE": lambda: XS_DUE_DATE(dt.datetime(2026, 3, 5), 1),
}


def test_each_call_is_cheap(capsys):
    """Reported, not asserted: a UDF should cost well under 1 ms a call (the first call of a kind
    builds and caches the default rulebook)."""
    results = {}
    for name, call in CALLS.items():
        call()  # warm the caches
        n = 2_000
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(n):
                call()
            best = min(best, (time.perf_counter() - start) / n)
        results[name] = best * 1e6
    with capsys.disabled():
        print("\nUDF cost per call (µs, best of 3 × 2,000 calls):")
        for name, micros in results.items():
            print(f"  {name:<26}{micros:8.1f}")
