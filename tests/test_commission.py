"""§4.1–4.3 Order commission with acceleration, the red line, the margin band, the strategic award."""

from __future__ import annotations

from builders import D, book, customer, order, run, team
from xlsales.core.commission import band_commission, band_edges, margin_bonus, year_earnings
from xlsales.core.money import to_fen
from xlsales.core.payouts import Item
from xlsales.core.pipeline import Inputs


def earn(orders, floor, challenge=None, rules=None):
    return year_earnings(orders, D(floor), D(challenge if challenge is not None else floor), rules or book())


def test_worked_example_floor_equals_challenge():
    # rules.md §4.1: floor = challenge = 10M, one order of 15M at 2%: 10M × 2% + 5M × 2% × 3 = 500,000
    [e] = earn([order("O1", "2026-03-05", 15_000_000)], 10_000_000)
    assert e.commission == D(500_000)
    assert "10,000,000.00×2%×1 + 5,000,000.00×2%×3" in e.commission_text


def test_an_order_straddling_both_edges_is_split_at_each():
    # floor 10M, challenge 12M; 5M already, then 10M: 5M×1 + 2M×2 + 3M×3 at 2%
    first, second = earn([order("O1", "2026-01-10", 5_000_000), order("O2", "2026-02-10", 10_000_000)],
                         10_000_000, 12_000_000)
    assert first.commission == D(100_000)
    assert second.commission == (D(5_000_000) + D(4_000_000) + D(9_000_000)) * D("0.02")
    assert second.ytd_before == D(5_000_000)


def test_order_ending_exactly_at_the_floor_stays_in_the_base_band():
    first, second = earn([order("O1", "2026-01-10", 10_000_000), order("O2", "2026-01-11", 1)], 10_000_000, 20_000_000)
    assert first.commission == D(200_000)
    assert second.commission == D("0.04")  # the next yuan is at 2×


def test_orders_are_taken_by_signing_date_then_order_number():
    # the same-day pair is ordered by 订单号: B1 fills the base band before B2
    later, b2, b1 = earn([order("Z9", "2026-05-01", 1_000_000), order("B2", "2026-03-01", 6_000_000),
                          order("B1", "2026-03-01", 6_000_000)], 10_000_000, 20_000_000)
    assert [e.order.order_id for e in (later, b2, b1)] == ["B1", "B2", "Z9"]
    assert later.commission == D(120_000)               # 6M × 2% in the base band (B1)
    assert b2.commission == D(80_000) + D(80_000)       # 4M × 2% + 2M × 2% × 2
    assert b1.commission == D(40_000)                   # 1M × 2% × 2


def test_base_rate_and_multipliers_are_rule_data():
    rules = book(基础提成率="3%", tables={"提成档位": [{"起点": 0, "倍数": 1}, {"起点": "保底", "倍数": "1.5"},
                                                    {"起点": "挑战", "倍数": 2}]})
    [e] = earn([order("O1", "2026-03-05", 30)], 10, 20, rules)
    assert e.commission == D("0.3") + D("0.45") + D("0.6")
    assert band_edges(rules, D(10), D(20)) == [(D(0), D(1)), (D(10), D("1.5")), (D(20), D(2))]
    assert band_commission(D(0), D(30), band_edges(rules, D(10), D(20)), D("0.03")) == e.commission


def test_red_line_earns_nothing_but_counts_toward_attainment():
    low, normal = earn([order("O1", "2026-01-01", 10_000_000, "0.1999"), order("O2", "2026-02-01", 5_000_000, "0.20")],
                       10_000_000, 12_000_000)
    assert low.below_red_line and low.commission == 0 and low.bonus == 0
    assert "低于红线" in low.commission_text
    # O2 starts at 10M: it earns 2M × 2% × 2 + 3M × 2% × 3
    assert not normal.below_red_line and normal.commission == D(80_000) + D(180_000)


def test_red_line_is_flagged_in_the_problems():
    reps, targets = team("E1")
    results, problems = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")],
                                   orders=[order("O1", "2026-01-01", 1_000_000, "0.1", row=7)]))
    assert [(p.sheet, p.row, p.field) for p in problems.items] == [("订单", 7, "毛利率")]
    assert not [x for x in results.payouts if x.order_id == "O1"]


def test_margin_bonus_band_examples():
    rules = book()
    assert margin_bonus(D(10_000_000), D("0.28"), rules) == D(300_000)
    assert margin_bonus(D(10_000_000), D("0.35"), rules) == D(500_000)
    assert margin_bonus(D(10_000_000), D("0.24"), rules) == 0
    assert margin_bonus(D(10_000_000), D("0.25"), rules) == 0
    assert margin_bonus(D(10_000_000), D("0.30"), rules) == D(500_000)
    half = book(毛利奖励分成="50%", 毛利奖励下限="0.2", 毛利奖励上限="0.4")
    assert margin_bonus(D(10_000_000), D("0.28"), half) == D(400_000)


def test_strategic_award_once_per_customer_to_the_first_order_ever():
    reps, targets = team("E1", "E2")
    inputs = Inputs(
        reps=reps, targets=targets, customers=[customer("C1", 战略突破奖=1_000_000), customer("C2")],
        orders=[order("O2", "2026-04-01", 1_000_000, rep_id="E2"), order("O1", "2026-03-01", 2_000_000, rep_id="E1"),
                order("O3", "2026-05-01", 1_000_000, rep_id="E2", customer_code="C2")],
    )
    results, _ = run(inputs)
    awards = [x for x in results.payouts if x.item is Item.BREAKTHROUGH]
    assert [(a.rep_id, a.order_id, a.amount, a.stage) for a in awards] == [("E1", "O1", D("1000000.00"), "签约")]
    assert awards[0].event_date.isoformat() == "2026-03-01"


def test_strategic_award_went_to_an_earlier_year():
    reps, targets = team("E1", "E2")
    targets.append(targets[0].model_copy(update={"year": 2025}))
    inputs = Inputs(reps=reps, targets=targets, customers=[customer("C1", 战略突破奖=1_000_000)],
                    orders=[order("O0", "2025-11-01", 1_000_000), order("O1", "2026-03-01", 1_000_000, rep_id="E2")])
    results, _ = run(inputs)
    [award] = [x for x in results.payouts if x.item is Item.BREAKTHROUGH]
    assert (award.rep_id, award.year) == ("E1", 2025)


def test_commission_rounds_once_per_line():
    [e] = earn([order("O1", "2026-01-01", D("333.33"))], 1_000_000)
    assert e.commission == D("6.6666")
    assert to_fen(e.commission) == D("6.67")


def test_percent_texts_are_exact_and_remembered_by_value(monkeypatch):
    """pct() keeps what it made by (rate, places): equal Decimals (0.5, 0.50) give one text, other
    places another, and the memory is emptied when it is full rather than growing."""
    from xlsales.core import money

    monkeypatch.setattr(money, "_PCT", {})
    monkeypatch.setattr(money, "_PCT_MAX", 3)
    assert [money.pct(D("0.5")), money.pct(D("0.50")), money.pct(D("0.025")), money.pct(D(1) / 3)] == \
        ["50%", "50%", "2.5%", "33.33%"]
    assert money.pct(D(1) / 3, 0) == "33%" and money.pct(D("-0.2"), 1) == "-20%"
    assert len(money._PCT) <= 3
