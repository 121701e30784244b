"""看板's figures (core.dashboard) and the 预计签约月 they group the pipeline by."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from builders import D, book, customer, order, rep, run, target
from xlsales.core.dashboard import UNDATED, dashboard
from xlsales.core.models import Opportunity, OpportunityStatus, Tier, is_month, parse_month
from xlsales.core.pipeline import Inputs
from xlsales.core.problems import Problems
from xlsales.core.tiers import forecast


def opp(code: str, status: str, amount: int, month: object = None, customer_code: str = "C1", row: int = 2) -> Opportunity:
    return Opportunity.model_validate({"商机编码": code, "客户编码": customer_code, "工号": "E1", "金额": amount,
                                       "状态": status, "预计签约月": month, "暂缓原因": "预算冻结" if status == "暂缓" else None,
                                       "row": row})


@pytest.mark.parametrize(("typed", "month"), [
    (dt.date(2026, 11, 1), "2026-11"),  # Excel turns a typed 2026-11 into this date
    (dt.datetime(2027, 1, 1, 0, 0), "2027-01"),
    ("2026-11", "2026-11"), ("2026/3", "2026-03"), ("2026.12", "2026-12"), ("2026年11月", "2026-11"),
    ("2026-11-05", "2026-11"), ("2026年3月5日", "2026-03"), (" 2026 - 07 ", "2026-07"),
    ("", None), (None, None),
])
def test_expected_month_is_read_as_year_month(typed, month):
    assert parse_month(typed) == month


@pytest.mark.parametrize("typed", ["2026-13", "2026-00", "下个月", "Q4", "11月"])
def test_an_unreadable_expected_month_is_kept_as_typed_and_is_not_a_month(typed):
    assert parse_month(typed) == typed.strip()
    assert not is_month(parse_month(typed))


def test_a_number_is_not_guessed_to_be_a_month():
    # 2026.1 in a number cell may have been typed as 2026.10: no guess either way
    assert parse_month(2026.1) == "2026.1"
    assert not is_month(parse_month(2026.1))


def test_a_date_typed_month_no_longer_drops_the_opportunity():
    assert opp("O1", "跟进中", 100, dt.date(2026, 11, 1)).expected_month == "2026-11"


def test_an_unreadable_month_is_a_warning_by_cell_and_the_opportunity_is_still_forecast():
    problems = Problems()
    rows = forecast([opp("O1", "跟进中", 1_000_000, "下个月", row=7)], {"C1": Tier.SUPPORT}, book(), problems)
    assert [r.code for r in rows] == ["O1"] and rows[0].weighted == D("800000.00")
    assert rows[0].expected_month is None
    (problem,) = problems.items
    assert (problem.is_error, problem.sheet, problem.row, problem.field, problem.value) == (False, "商机", 7, "预计签约月", "下个月")
    assert "2026-11" in problem.message


def _results(opportunities: list[Opportunity]):
    reps = [rep("E1", "甲"), rep("E2", "乙"), rep("E3", "丙")]
    targets = [target("E1", 10_000_000, 20_000_000), target("E2", 40_000_000, 50_000_000)]  # E3: none
    orders = [order("S1", "2026-03-01", 15_000_000, rep_id="E1"), order("S2", "2026-04-01", 10_000_000, rep_id="E2"),
              order("S3", "2026-05-01", 5_000_000, rep_id="E3")]
    customers = [customer("C1"), customer("C2"), customer("C3")]
    results, _ = run(Inputs(reps=reps, customers=customers, targets=targets, orders=orders, opportunities=opportunities))
    return results


def test_tiers_are_all_listed_best_first_with_their_counts_and_probabilities():
    results = _results([])
    board = dashboard(results)
    assert [t.tier for t in board.tiers] == list(Tier)
    assert sum(t.customers for t in board.tiers) == 3
    expected = {tier: sum(r.tier is tier for r in results.ratings) for tier in Tier}
    assert {t.tier: t.customers for t in board.tiers} == expected
    assert [t.probability for t in board.tiers] == [results.book.tiers[t].probability for t in Tier]


def test_attainment_against_floor_and_challenge_is_exact_and_best_first():
    board = dashboard(_results([]))
    assert [(a.rep_id, a.vs_floor, a.vs_challenge) for a in board.attainment] == [
        ("E1", D("1.5"), D("0.75")),
        ("E2", D("0.25"), D("0.2")),  # E3 has no target: nothing to attain, not on the chart
    ]
    assert (board.team_orders, board.team_floor, board.team_challenge) == (D(25_000_000), D(50_000_000), D(70_000_000))
    assert board.team_vs_floor == D("0.5")


def test_pipeline_groups_open_opportunities_by_expected_month_undated_last():
    board = dashboard(_results([
        opp("O1", "跟进中", 1_000_000, "2026-09"),
        opp("O2", "跟进中", 3_000_000, dt.date(2026, 7, 1), customer_code="C2"),
        opp("O3", "跟进中", 2_000_000, "2026-09", customer_code="C3"),
        opp("O4", "跟进中", 5_000_000, None),
        opp("O5", "暂缓", 9_000_000, "2026-09"),  # paused: no probability, not in the pipeline
        opp("O6", "赢单", 7_000_000, "2026-08"),  # won: already an order
        opp("O7", "丢单", 8_000_000, "2026-08"),
    ]))
    assert [(m.month, m.opportunities, m.amount) for m in board.pipeline] == [
        ("2026-07", 1, D(3_000_000)), ("2026-09", 2, D(3_000_000)), (UNDATED, 1, D(5_000_000))]
    results = _results([opp("O1", "跟进中", 1_000_000, "2026-09")])
    (row,) = results.forecast
    assert dashboard(results).pipeline[0].weighted == row.weighted
    assert row.status is OpportunityStatus.OPEN and row.expected_month == "2026-09"


def test_an_empty_workbook_gives_an_empty_board_not_an_error():
    results, _ = run(Inputs())
    board = dashboard(results)
    assert board.ranking == [] and board.attainment == [] and board.pipeline == [] and board.on_time == []
    assert [t.customers for t in board.tiers] == [0, 0, 0, 0]
    assert board.team_vs_floor is None and board.weighted_pipeline == Decimal(0)
    assert board.month == "2026-06"


def test_compute_reports_an_unreadable_month_and_keeps_the_opportunity():
    results, problems = run(Inputs(reps=[rep("E1")], customers=[customer("C1")], targets=[target("E1", 10_000_000)],
                                   opportunities=[opp("O1", "跟进中", 1_000_000, "明年初", row=5)]))
    assert [r.code for r in results.forecast] == ["O1"]
    assert [(p.sheet, p.row, p.field, p.value) for p in problems.items] == [("商机", 5, "预计签约月", "明年初")]
    assert dashboard(results).pipeline[0].month == UNDATED
