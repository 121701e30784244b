"""§3 Targets: validation, the monthly split, the bottom-up vs top-down gap."""

from __future__ import annotations

from builders import D, book, customer, order, run, target, team
from xlsales.core.pipeline import Inputs
from xlsales.core.problems import Problems
from xlsales.core.targets import check_targets, floor_to_date, target_gap


def check(*targets):
    problems = Problems()
    good = check_targets(targets, {"E1", "E2"}, problems)
    return good, problems


def test_bad_targets_are_errors_and_left_out():
    good, problems = check(
        target("E1", 0, row=2),
        target("E2", 100, 90, row=3),
        target("E1", 1200, year=2027, row=4, **{"1月": 100}),  # split adds to 100, not 1200
        target("E9", 100, row=5),
    )
    assert good == {}
    assert sorted((p.row, p.field) for p in problems.items) == [(2, "保底目标"), (3, "挑战目标"), (4, "1月"), (5, "工号")]


def test_split_tolerance_is_one_fen():
    months = {f"{m}月": D("100.00") for m in range(1, 13)}
    ok, problems = check(target("E1", D("1200.01"), **months))
    assert ok and not problems.items
    _, problems = check(target("E1", D("1200.02"), **months))
    assert len(problems.items) == 1


def test_floor_to_date_even_and_seasonal():
    even = target("E1", 12_000_000)
    assert floor_to_date(even, 3) == D(3_000_000)
    shares = (4, 4, 6, 8, 8, 9, 9, 9, 10, 10, 11, 12)
    seasonal = target("E1", 1000, **{f"{m}月": s * 10 for m, s in enumerate(shares, 1)})
    assert floor_to_date(seasonal, 3) == D(140)
    assert floor_to_date(seasonal, 12) == D(1000)
    odd = target("E1", 10_000_000)
    assert floor_to_date(odd, 12) == D(10_000_000)  # even split stays exact over the year


def test_bottom_up_gap_against_company_target():
    good, problems = check(target("E1", 100, 150, 自报目标=120), target("E2", 200, 250))
    gap = target_gap(good, 2026, D(500), problems)
    assert gap.floors == D(300) and gap.self_reported == D(120)
    assert gap.floor_gap == D(-200) and gap.self_reported_gap == D(-380)
    assert gap.reps_without_self_report == 1
    assert [p.field for p in problems.items] == ["保底目标", "自报目标"]


def test_the_gap_is_reported_both_ways():
    """rules §3: "the gap is reported", not only when the team falls short (no warning then: a team
    above the company's target is no problem)."""
    good, problems = check(target("E1", 15_000_000, 20_000_000, 自报目标=12_000_000),
                           target("E2", 9_000_000, 9_000_000, 自报目标=8_000_000))
    gap = target_gap(good, 2026, D(20_000_000), problems)
    assert not problems.items
    assert gap.summary() == ("2026 年公司年度目标 20,000,000.00：保底目标合计 24,000,000.00，比公司目标多 4,000,000.00；"
                             "自报目标合计 20,000,000.00，与公司目标持平")
    short = target_gap(check(target("E1", 100))[0], 2026, D(500), problems).summary()
    assert short is not None and "比公司目标少 400.00" in short and "1 人未填自报目标" in short
    assert target_gap(good, 2026, None, problems).summary() is None


def test_no_company_target_no_gap():
    good, problems = check(target("E1", 100))
    assert target_gap(good, 2026, None, problems).floor_gap is None
    assert not problems.items


def test_company_target_is_a_parameter_and_flows_through_compute():
    reps, targets = team("E1", "E2", floor=10_000_000)
    results, _problems = run(Inputs(reps=reps, targets=targets, customers=[customer("C1")],
                                   orders=[order("O1", "2026-03-01", 1)]), book(公司年度目标=30_000_000))
    assert results.target_gap.floor_gap == D(-10_000_000)
