"""§4.4–4.6 Payout stages and timing, must-win forfeiture, the payout ledger."""

from __future__ import annotations

import datetime as dt

import pytest

from builders import D, book, collection, customer, day, opportunity, order, progress, run, team
from xlsales.core.payouts import Item, LedgerEntry, PayStatus
from xlsales.core.pipeline import Inputs

ORDER = order("O1", "2026-03-05", 15_000_000, "0.25")  # commission 500,000 against floor = challenge = 10M


def inputs(**extra):
    reps, targets = team("E1", "E2")
    base = dict(reps=reps, targets=targets, customers=[customer("C1"), customer("C2", manager="E2")], orders=[ORDER])
    return Inputs(**{**base, **extra})


def lines_of(results, item=Item.COMMISSION):
    return [x for x in results.payouts if x.item is item]


def test_default_stages_pay_half_at_signing_and_half_pro_rata_to_collections():
    results, problems = run(inputs(collections=[collection("O1", "2026-04-01", 6_000_000),
                                                collection("O1", "2026-05-01", 3_000_000)]))
    assert not problems.items
    sign, c1, c2 = lines_of(results)
    assert (sign.stage, sign.amount, sign.event_date, sign.due_date) == ("签约", D("250000.00"), day("2026-03-05"),
                                                                          day("2026-03-06"))
    assert (c1.stage, c1.amount, c1.due_date) == ("回款", D("100000.00"), day("2026-04-02"))  # 250k × 6/15
    assert c2.amount == D("50000.00")                                                      # 250k × 3/15
    assert "回款进度 0%→40%" in str(c1.explanation)


def test_a_half_fen_carried_between_lines_is_spelled_out_so_a_calculator_checks_every_line():
    """1,000,000.50 at 2% = 20,000.01. Signing releases 10,000.005 -> 10,000.01; the collection's half
    is then 10,000.00, so the lines add up to the commission. That line's text gives both cumulative
    figures, since 20,000.01 × 50% alone would round to 10,000.01."""
    o = order("O1", "2026-03-05", "1000000.50", "0.22")  # below the margin band: commission only
    results, _ = run(inputs(orders=[o], collections=[collection("O1", "2026-04-01", "1000000.50")]))
    sign, paid_in = lines_of(results)
    assert (sign.amount, paid_in.amount) == (D("10000.01"), D("10000.00"))
    assert str(sign.explanation).endswith("= 10,000.01")
    assert str(paid_in.explanation).startswith("提成 20,000.01（")
    assert str(paid_in.explanation).endswith("= 10,000.00（按累计取整：累计应发 20,000.01 − 此前已发 10,000.01）")


def test_a_commission_that_is_not_whole_fen_is_shown_exactly_in_the_text():
    o = order("O1", "2026-03-05", "1000000.55", "0.22")  # 2% = 20,000.011
    results, _ = run(inputs(orders=[o]))
    [sign] = lines_of(results)
    assert str(sign.explanation).startswith("提成 20,000.011（") and sign.amount == D("10000.01")  # 10,000.0055
    assert "×2%×1 = 20,000.011）" in str(sign.explanation)  # the bands' sum too, as the head shows it


def test_due_date_follows_the_payout_delay_parameter():
    results, _ = run(inputs(), book(发放时限天数=3))
    assert lines_of(results)[0].due_date == day("2026-03-08")


def test_collections_on_one_day_make_one_line_and_over_collection_is_flagged():
    results, problems = run(inputs(collections=[collection("O1", "2026-04-01", 10_000_000),
                                                collection("O1", "2026-04-01", 4_000_000),
                                                collection("O1", "2026-05-01", 2_000_000, row=9)]))
    sign, c1, c2 = lines_of(results)
    assert c1.amount == D("233333.33") and c2.amount == D("16666.67")
    assert sign.amount + c1.amount + c2.amount == D("500000.00")  # nothing more beyond the contract
    assert [(p.sheet, p.row, p.field) for p in problems.items] == [("回款", 9, "回款金额")]


def test_every_collection_wholly_above_the_contract_is_flagged_too():
    """rules §4.4: "A collection above the contract amount releases nothing more and is flagged": the
    one that crosses the contract amount, and each one after it."""
    results, problems = run(inputs(collections=[collection("O1", "2026-04-01", 9_000_000, row=2),
                                                collection("O1", "2026-05-01", 9_000_000, row=3),
                                                collection("O1", "2026-06-01", 1_000_000, row=4),
                                                collection("O1", "2026-06-20", 1_000_000, row=5)]))
    assert [(p.sheet, p.row, p.field) for p in problems.items] == [("回款", 3, "回款金额"), ("回款", 4, "回款金额"),
                                                                   ("回款", 5, "回款金额")]
    assert "超过合同金额" in problems.items[0].message and "不再发放" in problems.items[2].message
    assert sum(x.amount for x in lines_of(results)) == D("500000.00")


def test_revenue_recognition_and_completion_stages():
    rules = book(tables={"发放阶段": [{"阶段": "签约", "比例": "0.2"}, {"阶段": "收入确认", "比例": "0.3"},
                                      {"阶段": "回款", "比例": "0.3"}, {"阶段": "完工", "比例": "0.2"}]})
    o = order("O1", "2026-03-05", 15_000_000, "0.25", completed="2026-06-01")
    results, _ = run(inputs(orders=[o], progress=[progress("O1", "2026-04-01", "0.5"), progress("O1", "2026-05-01", 1)],
                            collections=[collection("O1", "2026-06-20", 15_000_000)]), rules)
    got = [(x.stage, x.event_date.isoformat(), x.amount) for x in lines_of(results)]
    assert got == [("签约", "2026-03-05", D("100000.00")), ("收入确认", "2026-04-01", D("75000.00")),
                   ("收入确认", "2026-05-01", D("75000.00")), ("完工", "2026-06-01", D("100000.00")),
                   ("回款", "2026-06-20", D("150000.00"))]


def test_margin_bonus_is_released_in_the_same_stages():
    o = order("O1", "2026-03-05", 10_000_000, "0.28")
    results, _ = run(inputs(orders=[o], collections=[collection("O1", "2026-04-01", 5_000_000)]))
    assert [x.amount for x in lines_of(results, Item.MARGIN_BONUS)] == [D("150000.00"), D("75000.00")]


def test_status_overdue_and_due():
    results, _ = run(inputs(orders=[order("O1", "2026-06-29", 1_000_000), order("O2", "2026-06-30", 1_000_000)]))
    status = {x.order_id: x.status for x in lines_of(results)}
    assert status == {"O1": PayStatus.DUE, "O2": PayStatus.DUE}  # due 06-30 and 07-01: not past
    results, _ = run(inputs(orders=[order("O1", "2026-06-28", 1_000_000)]))
    assert lines_of(results)[0].status is PayStatus.OVERDUE  # due 06-29 < evaluation 06-30


def ledger_from(results, paid_on=None, only=None):
    rows = []
    for x in results.payouts:
        paid = paid_on if (only is None or only(x)) else None
        rows.append(LedgerEntry.model_validate({
            "行ID": x.line_id, "工号": x.rep_id, "姓名": x.name, "订单号": x.order_id, "项目": x.item.value,
            "阶段": x.stage, "事件日期": x.event_date, "应发日期": x.due_date, "金额": x.amount,
            "计算说明": str(x.explanation), "状态": x.status.value, "实发日期": paid}))
    return rows


def test_rerun_keeps_paid_lines_and_adds_an_adjustment_for_a_difference():
    first, _ = run(inputs())
    ledger = ledger_from(first, paid_on=day("2026-03-06"))
    # the contract amount is corrected: 15M -> 12M; the paid signing line stays, an 调整 carries the difference
    corrected = order("O1", "2026-03-05", 12_000_000, "0.25")
    second, _ = run(inputs(orders=[corrected], ledger=ledger))
    sign = next(x for x in second.payouts if x.line_id == first.payouts[0].line_id)
    assert sign.amount == D("250000.00") and sign.paid_date == day("2026-03-06") and sign.status is PayStatus.PAID
    [adjust] = [x for x in second.payouts if x.item is Item.ADJUSTMENT]
    assert adjust.amount == D("-90000.00")  # 12M: 10M×2% + 2M×2%×3 = 320k, half at signing = 160k; 160k − 250k
    assert adjust.line_id.startswith(sign.line_id + "#调整")
    # a third run with the 调整 line unpaid recomputes it to the same value (stable ID, no duplicate)
    third, _ = run(inputs(orders=[corrected], ledger=ledger + ledger_from(second, only=lambda x: False)))
    assert [x.line_id for x in third.payouts] == [x.line_id for x in second.payouts]


def test_a_paid_line_that_no_longer_arises_is_reversed():
    first, _ = run(inputs())
    ledger = ledger_from(first, paid_on=day("2026-03-06"))
    second, _ = run(inputs(orders=[], ledger=ledger))
    [reversal] = [x for x in second.payouts if x.item is Item.REVERSAL]
    assert reversal.amount == D("-250000.00")
    assert sum(x.amount for x in second.payouts) == 0


def test_each_paid_line_that_no_longer_arises_gets_its_own_reversal():
    """rules §4.6: "if the paid line no longer arises at all, a 冲回 line reverses it": a paid line and
    its paid 调整 are two paid lines, so two 冲回 lines, each named after the line it reverses."""
    first, _ = run(inputs())
    raised, _ = run(inputs(orders=[order("O1", "2026-03-05", 16_000_000, "0.25")],
                           ledger=ledger_from(first, paid_on=day("2026-03-06"))))
    paid = ledger_from(raised, paid_on=day("2026-04-02"))
    gone, _ = run(inputs(orders=[], ledger=paid))
    reversals = sorted((x.line_id, x.amount, x.event_date) for x in gone.payouts if x.item is Item.REVERSAL)
    sign = lines_of(first)[0]
    [adjustment] = [x for x in raised.payouts if x.item is Item.ADJUSTMENT]
    assert reversals == sorted([(f"{sign.line_id}#冲回", D("-250000.00"), sign.event_date),
                                (f"{adjustment.line_id}#冲回", D("-30000.00"), adjustment.event_date)])
    assert sum(x.amount for x in gone.payouts) == 0
    again, _ = run(inputs(orders=[], ledger=paid))
    assert sorted((x.line_id, x.amount, x.event_date) for x in again.payouts if x.item is Item.REVERSAL) == reversals


def test_unpaid_lines_are_recomputed_freely():
    first, _ = run(inputs())
    second, _ = run(inputs(orders=[order("O1", "2026-03-05", 12_000_000, "0.25")], ledger=ledger_from(first)))
    assert not [x for x in second.payouts if x.item in (Item.ADJUSTMENT, Item.REVERSAL)]
    assert lines_of(second)[0].amount == D("160000.00")  # (10M×2% + 2M×2%×3) × 50%


def test_lost_must_win_account_forfeits_the_year_and_claws_back_paid_lines():
    must_win = customer("C1", 必保="是")
    paid_first, _ = run(inputs(customers=[must_win], collections=[collection("O1", "2026-04-01", 6_000_000)]))
    ledger = ledger_from(paid_first, paid_on=day("2026-03-06"), only=lambda x: x.stage == "签约")
    lost = opportunity("P1", "C1", "丢单", when="2026-06-10")
    results, _ = run(inputs(customers=[must_win], collections=[collection("O1", "2026-04-01", 6_000_000)],
                            opportunities=[lost], ledger=ledger))
    by_status = {(x.item, x.status) for x in results.payouts}
    assert (Item.COMMISSION, PayStatus.PAID) in by_status
    assert (Item.COMMISSION, PayStatus.CANCELLED) in by_status
    clawbacks = [x for x in results.payouts if x.item is Item.CLAWBACK]
    assert {c.event_date for c in clawbacks} == {day("2026-06-10")}
    assert len(clawbacks) == len([x for x in ledger if x.paid_date])
    live = [x for x in results.payouts if x.status is not PayStatus.CANCELLED]
    assert sum(x.amount for x in live) == 0
    assert [f.rep_id for f in results.forfeitures] == ["E1"]
    cancelled = next(x for x in results.payouts if x.status is PayStatus.CANCELLED)
    assert "必保客户" in str(cancelled.explanation)


def test_each_paid_line_gets_its_own_clawback_and_a_rerun_makes_the_same_ones():
    """rules §4.5: "one 追回 (clawback) line per paid line reverses them": a paid line and its paid
    调整 are two paid lines, so two 追回 lines; once finance has booked them, nothing more."""
    must_win = customer("C1", 必保="是")
    first, _ = run(inputs(customers=[must_win]))
    ledger = ledger_from(first, paid_on=day("2026-03-06"))
    raised, _ = run(inputs(customers=[must_win], orders=[order("O1", "2026-03-05", 16_000_000, "0.25")], ledger=ledger))
    [adjustment] = [x for x in raised.payouts if x.item is Item.ADJUSTMENT]
    assert adjustment.amount == D("30000.00")  # (10M×2% + 6M×2%×3) × 50% = 280,000 against 250,000 paid
    ledger = ledger_from(raised, paid_on=day("2026-04-02"))
    lost = opportunity("P1", "C1", "丢单", when="2026-06-10")
    again = inputs(customers=[must_win], orders=[order("O1", "2026-03-05", 16_000_000, "0.25")], ledger=ledger,
                   opportunities=[lost])
    results, _ = run(again)
    clawbacks = sorted((x.line_id, x.amount) for x in results.payouts if x.item is Item.CLAWBACK)
    sign = lines_of(first)[0].line_id
    assert clawbacks == sorted([(f"{sign}#追回", D("-250000.00")), (f"{adjustment.line_id}#追回", D("-30000.00"))])
    assert all("追回" in str(x.explanation) and x.event_date == day("2026-06-10")
               for x in results.payouts if x.item is Item.CLAWBACK)
    assert sorted((x.line_id, x.amount) for x in run(again)[0].payouts if x.item is Item.CLAWBACK) == clawbacks
    booked, _ = run(inputs(customers=[must_win], orders=[order("O1", "2026-03-05", 16_000_000, "0.25")],
                           ledger=ledger_from(results, paid_on=day("2026-06-12")), opportunities=[lost]))
    assert sorted((x.line_id, x.amount) for x in booked.payouts if x.item is Item.CLAWBACK) == clawbacks
    assert sum(x.amount for x in booked.payouts if x.status is PayStatus.PAID) == 0


def test_a_loss_of_a_non_must_win_account_or_another_year_forfeits_nothing():
    for cust, when in ((customer("C1"), "2026-06-10"), (customer("C1", 必保="是"), "2025-12-31")):
        results, _ = run(inputs(customers=[cust], opportunities=[opportunity("P1", "C1", "丢单", when=when)]))
        assert not [f for f in results.forfeitures if f.year == 2026]
        assert all(x.status is not PayStatus.CANCELLED for x in results.payouts)


def test_loss_forfeits_the_owners_lines_only():
    reps, targets = team("E1", "E2")
    results, _ = run(Inputs(
        reps=reps, targets=targets, customers=[customer("C1", 必保="是"), customer("C2", manager="E2")],
        orders=[order("O1", "2026-03-01", 1_000_000), order("O2", "2026-03-01", 1_000_000, rep_id="E2", customer_code="C2")],
        opportunities=[opportunity("P1", "C1", "丢单", when="2026-04-01")]))
    status = {x.order_id: x.status for x in results.payouts}
    assert status["O1"] is PayStatus.CANCELLED and status["O2"] is not PayStatus.CANCELLED


def test_on_time_rate_per_month():
    first, _ = run(inputs(orders=[order("O1", "2026-03-05", 1_000_000), order("O2", "2026-04-05", 1_000_000)]))
    ledger = ledger_from(first, paid_on=day("2026-03-06"), only=lambda x: x.order_id == "O1")
    second, _ = run(inputs(orders=[order("O1", "2026-03-05", 1_000_000), order("O2", "2026-04-05", 1_000_000)],
                           ledger=ledger))
    rates = {r.month: (r.due, r.on_time, r.rate) for r in second.on_time}
    assert rates == {"2026-03": (1, 1, D(1)), "2026-04": (1, 0, D(0))}


@pytest.mark.parametrize("paid", ["all", "the first only"])
def test_lines_of_a_rep_year_without_target_are_kept_as_they_were(paid):
    """Paid or not: a rep-year that cannot be computed keeps its ledger lines, unpaid ones too."""
    collected = [collection("O1", "2026-04-01", 6_000_000)]
    first, _ = run(inputs(collections=collected))
    assert len(first.payouts) > 1
    ledger = ledger_from(first, paid_on=day("2026-03-06"),
                         only=None if paid == "all" else lambda x: x.line_id == first.payouts[0].line_id)
    reps, _ = team("E1", "E2")
    results, problems = run(Inputs(reps=reps, targets=[], customers=[customer("C1")], orders=[ORDER],
                                   collections=collected, ledger=ledger))
    assert [x.line_id for x in results.payouts] == [x.line_id for x in first.payouts]
    assert not [x for x in results.payouts if x.item is Item.REVERSAL]
    assert any(p.is_error and "没有有效的业绩目标" in p.message for p in problems.items)


def test_an_earlier_years_orders_without_its_target_are_a_warning_and_still_count_as_first_orders():
    """A new year's workbook need not carry last year's targets: last year's orders then get no
    commission (a warning, not an error), and still make a customer's first order."""
    from builders import target

    reps, _ = team("E1")
    results, problems = run(Inputs(reps=reps, targets=[target("E1", 10_000_000)], orders=[
        order("O0", "2025-06-01", 1_000_000), order("O1", "2026-03-05", 15_000_000, "0.25")],
        customers=[customer("C1", 战略突破奖=1_000_000)]))
    [found] = [p for p in problems.items if "没有有效的业绩目标" in p.message]
    assert not found.is_error and "2025" in found.message
    assert not [x for x in results.payouts if x.item is Item.BREAKTHROUGH]  # 2025's order was the first
    assert {x.order_id for x in results.payouts} == {"O1"}


def test_line_ids_are_made_from_what_the_line_is():
    results, _ = run(inputs())
    assert lines_of(results)[0].line_id == "E1/O1/提成/签约/20260305"
    assert isinstance(dt.date.today(), dt.date)


def test_the_ledger_is_handed_over_as_soon_as_it_is_known(monkeypatch):
    """compute's on_ledger: called once, with the very list the results hold, before the summaries
    (which a file run overlaps with writing 提成发放表)."""
    from xlsales.core import pipeline
    from xlsales.core.intake import read_workbook_tables
    from xlsales.core.problems import Problems
    from xlsales.demo import DEMO_DATE, demo_tables

    problems = Problems()
    rules, inputs = read_workbook_tables(demo_tables(), DEMO_DATE, problems)
    assert rules is not None
    summaries: list[object] = []
    real = pipeline._summary
    monkeypatch.setattr(pipeline, "_summary", lambda *a: summaries.append(a) or real(*a))
    seen: list[tuple[object, int]] = []
    results = pipeline.compute(inputs, rules, problems, on_ledger=lambda lines: seen.append((lines, len(summaries))))
    assert len(seen) == 1 and len(summaries) == 1
    lines, summaries_before = seen[0]
    assert lines is results.payouts and len(results.payouts) > 100 and summaries_before == 0


def test_collections_and_progress_after_the_evaluation_date_are_left_out_with_one_warning_a_sheet():
    """Recomputing a past month on a complete workbook: an order signed after 评估日期 (2026-06-30)
    is left out with its collections and progress, which are not 'unknown orders' (an error, exit
    1); a later collection of a counted order is left out too; one warning a sheet says how many."""
    later = order("O2", "2026-07-10", 1_000_000, "0.25", row=3)
    results, problems = run(inputs(
        orders=[ORDER, later],
        collections=[collection("O1", "2026-04-01", 6_000_000, row=2), collection("O2", "2026-07-20", 500_000, row=3),
                     collection("O1", "2026-08-01", 3_000_000, row=4)],
        progress=[progress("O2", "2026-07-15", "0.5")],
    ))
    assert not [p for p in problems.items if p.is_error]
    warned = sorted((p.sheet, p.row, p.message[:7]) for p in problems.items)
    assert warned == [("回款", 3, "有 2 笔回款"), ("订单", 3, "有 1 张订单"), ("进度", None, "有 1 条进度")]
    assert {x.order_id for x in results.payouts} == {"O1"}
    assert [x.event_date for x in lines_of(results) if x.stage == "回款"] == [day("2026-04-01")]


def test_a_collection_of_an_order_that_is_nowhere_is_still_an_error():
    _, problems = run(inputs(collections=[collection("O9", "2026-04-01", 1, row=5)]))
    assert [(p.sheet, p.row, p.field, p.is_error) for p in problems.items] == [("回款", 5, "订单号", True)]


def test_a_collection_or_progress_dated_before_the_signing_is_an_error_and_releases_nothing():
    """A release dated before its order existed is a typo to fix, not a payout line."""
    results, problems = run(inputs(collections=[collection("O1", "2026-02-01", 6_000_000, row=2)],
                                   progress=[progress("O1", "2026-03-01", "0.5")]))
    assert [(p.sheet, p.row, p.field, p.is_error) for p in problems.items] == [("回款", 2, "回款日期", True),
                                                                                ("进度", None, "日期", True)]
    assert "早于订单“O1”的签约日期 2026-03-05" in problems.items[0].message
    assert [x.stage for x in lines_of(results)] == ["签约"]


def test_an_order_of_zero_is_warned_about_on_its_own_cell():
    results, problems = run(inputs(orders=[order("O1", "2026-03-05", 0, "0.25", row=2)]))
    assert [(p.sheet, p.row, p.field, p.is_error) for p in problems.items] == [("订单", 2, "合同金额", False)]
    assert not lines_of(results)
