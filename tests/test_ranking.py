"""§5 The monthly ranking."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from builders import D, book, customer, entry, log, order, rep, run, target, team
from xlsales.core.payouts import Item
from xlsales.core.pipeline import Inputs
from xlsales.core.ranking import Group, HistoryEntry, RankingRow, assign_groups, composite_score, group_sizes, rank_month

T, M, B = Group.TOP, Group.MIDDLE, Group.BOTTOM


def groups(*scores):
    return assign_groups([D(s) for s in scores], D("0.3"), D("0.15"))


def test_worked_examples():
    assert groups(90, 80, 70) == [T, M, B]
    assert groups(90, 80, 80) == [T, M, M]
    assert groups(*range(100, 0, -10)) == [T, T, T, M, M, M, M, M, B, B]


def test_group_sizes():
    assert group_sizes(3, D("0.3"), D("0.15")) == (1, 1)
    assert group_sizes(10, D("0.3"), D("0.15")) == (3, 2)
    assert group_sizes(1, D("0.3"), D("0.15")) == (1, 0)
    assert group_sizes(2, D("0.3"), D("0.15")) == (1, 1)
    assert group_sizes(7, D("0.3"), D("0.15")) == (3, 2)


def test_ties_go_the_reps_way():
    assert groups(90, 90, 90) == [T, T, T]           # nobody scores higher
    assert groups(90, 80, 70, 70) == [T, T, M, M]    # top = 2; two 70s: count 2 > bottom 1
    assert groups(50, 50, 40) == [T, T, B]


def test_composite_score_and_cap():
    # 0.6 × min(完成率, 2) × 100 + 0.4 × 关系分
    assert composite_score(D("0.8"), D(50), D("0.6"), D("0.4"), D(2)) == D("68.00")
    assert composite_score(D(3), D(0), D("0.6"), D("0.4"), D(2)) == D("120.00")
    assert composite_score(None, D(10), D("0.6"), D("0.4"), D(2)) == D("4.00")


def test_attainment_is_year_to_date_orders_over_floor_split_to_date():
    reps = [rep("E1"), rep("E2"), rep("E3"), rep("E4", status="离职")]
    targets = [target("E1", 12_000_000), target("E2", 12_000_000, **{f"{m}月": 1_000_000 for m in range(1, 13)}),
               target("E3", 12_000_000, **{f"{m}月": (0 if m <= 6 else 2_000_000) for m in range(1, 13)}),
               target("E4", 12_000_000)]
    orders = [order("O1", "2026-02-01", 3_000_000), order("O2", "2026-05-01", 9_000_000, rep_id="E2"),
              order("O3", "2025-12-01", 9_000_000, rep_id="E2"), order("O4", "2026-06-30", 1, rep_id="E3")]
    results, _ = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")], orders=orders))
    by_rep = {r.rep_id: r for r in results.ranking}
    assert set(by_rep) == {"E1", "E2", "E3"}  # 离职 is not ranked
    assert by_rep["E1"].attainment == D("0.5")                   # 3M / (12M × 6/12)
    assert by_rep["E2"].attainment == D("1.5")                   # 9M / 6M; last year's order not counted
    assert by_rep["E3"].attainment == D(2)                       # nothing due yet, ahead: at the cap
    assert by_rep["E2"].score == D("90.00")
    assert results.ranking[0].month == "2026-06"


def test_relationship_part_uses_the_months_own_entries():
    reps, targets = team("E1", "E2", "E3")
    results, _ = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")],
                            log=log(entry("2026-06-01", "A03", rep_id="E2"), entry("2026-05-01", "A03", rep_id="E3"))))
    by_rep = {r.rep_id: r for r in results.ranking}
    assert by_rep["E2"].relationship == D(8) and by_rep["E3"].relationship == 0
    assert by_rep["E2"].rank == 1 and by_rep["E1"].rank == by_rep["E3"].rank == 2  # competition rank 1, 2, 2
    assert by_rep["E2"].group is T


def history_row(month, rep_id, group, score="10"):
    return HistoryEntry.model_validate({"月份": month, "排名": 1, "工号": rep_id, "姓名": rep_id, "综合得分": score,
                                        "分组": group, "连续垫底月数": 0})


def test_history_replaces_the_month_and_counts_consecutive_bottom_months():
    from xlsales.core.ranking import Contender

    people = [Contender("E1", "E1", D(1), D(0)), Contender("E2", "E2", D(0), D(0)), Contender("E3", "E3", D("0.5"), D(0))]
    earlier = [history_row("2026-04", "E2", "后15%").to_row(), history_row("2026-05", "E2", "后15%").to_row(),
               history_row("2026-06", "E1", "后15%").to_row(),  # a stale run of June: replaced
               history_row("2026-03", "E2", "后15%").to_row(), history_row("2026-02", "E2", "中间").to_row()]
    rows, merged = rank_month("2026-06", people, earlier, D("0.6"), D("0.4"), D(2), D("0.3"), D("0.15"))
    by_rep = {r.rep_id: r for r in rows}
    assert by_rep["E2"].group is B and by_rep["E2"].bottom_streak == 4 and by_rep["E2"].needs_help
    assert by_rep["E1"].bottom_streak == 0
    assert [r.month for r in merged].count("2026-06") == 3
    assert {r.month for r in merged} == {"2026-02", "2026-03", "2026-04", "2026-05", "2026-06"}


def test_recomputing_an_earlier_month_recounts_the_later_months_bottom_streaks():
    """E2 was in 后15% in March, April and May (1, 2, 3, 需帮扶). A forgotten April order moves E2 out
    of it when April is recomputed: April alone is ranked again, and May now counts 1, not 3."""
    from xlsales.core.ranking import Contender

    def bottom(month: str, streak: int) -> RankingRow:
        return replace(history_row(month, "E2", "后15%").to_row(), bottom_streak=streak)

    earlier = [bottom("2026-03", 1), bottom("2026-04", 2), bottom("2026-05", 3), history_row("2026-05", "E1", "前30%").to_row()]
    people = [Contender("E1", "E1", D(0), D(0)), Contender("E2", "E2", D(1), D(0)), Contender("E3", "E3", D("0.5"), D(0))]
    rows, merged = rank_month("2026-04", people, earlier, D("0.6"), D("0.4"), D(2), D("0.3"), D("0.15"))
    assert next(r for r in rows if r.rep_id == "E2").group is not B
    streaks = {(r.month, r.rep_id): (r.group, r.bottom_streak, r.needs_help) for r in merged if r.rep_id in ("E1", "E2")}
    assert streaks[("2026-05", "E2")] == (B, 1, False)  # the group of May is kept; its count follows the history
    assert streaks[("2026-03", "E2")] == (B, 1, False)
    assert streaks[("2026-04", "E1")] == (B, 1, False) and streaks[("2026-05", "E1")][1] == 0


def test_a_gap_month_breaks_the_streak():
    from xlsales.core.ranking import Contender

    people = [Contender("E1", "E1", D(1), D(0)), Contender("E2", "E2", D(0), D(0)), Contender("E3", "E3", D("0.5"), D(0))]
    rows, _ = rank_month("2026-06", people, [history_row("2026-04", "E2", "后15%").to_row()],
                         D("0.6"), D("0.4"), D(2), D("0.3"), D("0.15"))
    assert next(r for r in rows if r.rep_id == "E2").bottom_streak == 1


def test_ranking_award_becomes_a_payout_line_for_each_top_month():
    reps, targets = team("E1", "E2", "E3")
    history = [history_row("2026-05", "E3", "前30%")]
    results, _ = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")], history=history,
                            orders=[order("O1", "2026-06-01", 1_000_000, "0.1")]), book(排名奖=2000))
    awards = sorted((x.rep_id, x.stage, x.event_date.isoformat(), x.amount)
                    for x in results.payouts if x.item is Item.RANKING_AWARD)
    assert awards == [("E1", "月度排名", "2026-06-30", D("2000.00")), ("E3", "月度排名", "2026-05-31", D("2000.00"))]


def test_an_award_is_dated_at_its_months_close_even_when_an_earlier_month_is_recomputed():
    """June recomputed (as of mid-June) after July was ranked: July's award keeps its own date and
    line; June's, the month being ranked, closes at the evaluation date."""
    reps, targets = team("E1", "E2", "E3")
    history = [history_row("2026-07", "E3", "前30%")]
    results, _ = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")], history=history,
                            orders=[order("O1", "2026-06-01", 1_000_000, "0.1")]),
                     book(dt.date(2026, 6, 15), 排名奖=2000))
    awards = sorted((x.line_id, x.event_date.isoformat(), x.due_date.isoformat())
                    for x in results.payouts if x.item is Item.RANKING_AWARD)
    assert awards == [("E1/-/排名奖/月度排名/2026-06", "2026-06-15", "2026-06-16"),
                      ("E3/-/排名奖/月度排名/2026-07", "2026-07-31", "2026-08-01")]


def test_no_ranking_award_by_default():
    reps, targets = team("E1", "E2", "E3")
    results, _ = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")]))
    assert not results.payouts


def test_a_duplicate_history_row_is_an_error_and_pays_no_second_award():
    reps, targets = team("E1", "E2", "E3")
    history = [history_row("2026-05", "E3", "前30%"), history_row("2026-05", "E3", "前30%")]
    results, problems = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")], history=history), book(排名奖=2000))
    assert [(p.sheet, p.field) for p in problems.items if p.is_error] == [("排名历史", "工号")]
    assert len([x for x in results.payouts if x.line_id == "E3/-/排名奖/月度排名/2026-05"]) == 1
