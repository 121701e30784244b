"""§2 Relationship tiers, missing indicators, the over-claim hint and the weighted pipeline."""

from __future__ import annotations

from builders import D, book, customer, entry, log, opportunity, rep, run, team
from xlsales.core.models import Tier
from xlsales.core.pipeline import Inputs
from xlsales.core.tiers import OVER_CLAIM, tier_for, weighted_total

IRON = frozenset({"参观公司", "会见高层", "样板点参观", "战略合作协议", "提供竞争情报"})
SUPPORT = frozenset({"参观公司", "会见高层", "需求签字确认"})


def test_tier_table_defaults():
    rules = book()
    assert tier_for(D(80), IRON, False, rules) is Tier.IRON
    assert tier_for(D("79.9"), IRON | SUPPORT, False, rules) is Tier.SUPPORT
    assert tier_for(D(50), SUPPORT, False, rules) is Tier.SUPPORT
    assert tier_for(D(95), SUPPORT - {"会见高层"}, False, rules) is Tier.NEUTRAL  # one missing: not 支持
    assert tier_for(D(49), SUPPORT, False, rules) is Tier.NEUTRAL
    assert tier_for(D(0), frozenset(), False, rules) is Tier.NEUTRAL


def test_against_comes_first():
    rules = book()
    assert tier_for(D(100), IRON | SUPPORT, True, rules) is Tier.AGAINST       # the manager's stance
    assert tier_for(D("-0.1"), IRON | SUPPORT, False, rules) is Tier.AGAINST    # a negative score


def test_win_probabilities_and_thresholds_are_rule_data():
    rules = book(tables={"分级规则": [
        {"等级": "铁杆", "最低关系分": 60, "必备指标": "参观公司", "赢单概率": 0.95},
        {"等级": "支持", "最低关系分": 40, "必备指标": "", "赢单概率": "70%"},
        {"等级": "中立", "赢单概率": 0.3},
        {"等级": "反对", "赢单概率": 0},
    ]})
    assert tier_for(D(60), frozenset({"参观公司"}), False, rules) is Tier.IRON
    assert tier_for(D(40), frozenset(), False, rules) is Tier.SUPPORT
    assert rules.tiers[Tier.SUPPORT].probability == D("0.7")


def rate(*entries, **customer_fields):
    reps, targets = team("E1")
    results, _problems = run(Inputs(reps=reps, targets=targets, customers=[customer("C1", **customer_fields)],
                                   log=log(*entries)))
    [rating] = results.ratings
    return rating


def test_rating_row_names_what_is_missing_for_the_next_tier():
    # 参观公司 12 + 会见高层 10×1.2×1.5 = 18 + 需求签字确认 15 ... a 中立 customer short of 支持
    rating = rate(entry("2026-06-01", "A05"), entry("2026-06-02", "A07", role="决策层"))
    assert rating.tier is Tier.NEUTRAL and rating.probability == D("0.3")
    assert rating.held == {"参观公司", "会见高层"}
    assert rating.missing == {"需求签字确认"}
    assert any("还差 20 分" in h for h in rating.hints)  # 50 − 30


def test_over_claim_is_flagged():
    rating = rate(entry("2026-06-01", "A05"), 自评等级="支持")
    assert rating.over_claimed and rating.hints[0].startswith(OVER_CLAIM)
    honest = rate(entry("2026-06-01", "A05"), 自评等级="中立")
    assert not honest.over_claimed and not any(OVER_CLAIM in h for h in honest.hints)


def test_stance_against_is_shown():
    rating = rate(entry("2026-06-01", "A05"), 立场="反对")
    assert rating.tier is Tier.AGAINST and rating.probability == D("0.05")
    assert rating.missing == frozenset()


def test_pipeline_weights_by_tier_and_keeps_paused_apart():
    reps, targets = team("E1")
    inputs = Inputs(
        reps=reps, targets=targets, customers=[customer("C1"), customer("C2", 立场="反对")],
        opportunities=[
            opportunity("P1", "C1", "跟进中", 10_000_000),
            opportunity("P2", "C2", "跟进中", 10_000_000),
            opportunity("P3", "C1", "暂缓", 50_000_000, reason="领导更换"),
            opportunity("P4", "C1", "赢单", 3_000_000, when="2026-05-01"),
            opportunity("P5", "C1", "丢单", 4_000_000, when="2026-05-01"),
        ],
    )
    results, _problems = run(inputs)
    rows = {r.code: r for r in results.forecast}
    assert rows["P1"].weighted == D("3000000.0")   # 中立 30%
    assert rows["P2"].weighted == D("500000.00")   # 反对 5%
    assert rows["P4"].weighted == D(3_000_000) and rows["P5"].weighted == 0
    assert rows["P3"].weighted is None and rows["P3"].pause_reason == "领导更换"
    assert results.forecast[-1].code == "P3"  # listed apart, at the end
    assert weighted_total(results.forecast) == D(6_500_000)


def test_paused_without_reason_is_a_warning():
    reps, targets = team("E1")
    _results, problems = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")],
                                   opportunities=[opportunity("P1", "C1", "暂缓")]))
    assert [p.field for p in problems.items] == ["暂缓原因"]


def test_rep_builder():
    assert rep("E7", "张三").name == "张三"
