"""§1 Customer-relationship evaluation."""

from __future__ import annotations

from builders import D, book, customer, entry, log, rep
from xlsales.core.problems import Problems
from xlsales.core.relationship import entry_points, evaluate_log
from xlsales.core.rulebook import DEFAULT_ACTIONS

REPS = {"E1", "E2"}
CUSTOMERS = {"C1", "C2"}


def evaluate(*entries, rules=None):
    problems = Problems()
    facts = evaluate_log(log(*entries), rules or book(), REPS, CUSTOMERS, problems)
    return facts, problems


def test_points_are_points_times_coefficient_times_role_times_count():
    # A07 高层会见: 10 points × 1.2; 决策层 1.5; twice (cap is 1, so raise it for this check)
    catalog = [{**a, "每月上限": 5} if a["动作编码"] == "A07" else a for a in DEFAULT_ACTIONS]
    rules = book(tables={"动作库": catalog})
    facts, problems = evaluate(entry("2026-06-01", "A07", role="决策层", count=2), rules=rules)
    assert facts.evidence("C1").score == D("36")  # 10 × 1.2 × 1.5 × 2
    assert entry_points(D("12"), D("1.5"), 2) == D("36")
    assert not problems.items


def test_role_coefficients_weight_who_was_reached():
    facts, _ = evaluate(
        entry("2026-06-01", "A03", role="决策层", customer_code="C1"),    # 8 × 1.5 = 12
        entry("2026-06-01", "A03", role="秘书/助理", customer_code="C2"),  # 8 × 0.6 = 4.8
    )
    assert facts.evidence("C1").score == D("12")
    assert facts.evidence("C2").score == D("4.8")


def test_adverse_events_subtract():
    facts, _ = evaluate(entry("2026-06-01", "A03"), entry("2026-06-02", "A12"))  # 8 − 10
    assert facts.evidence("C1").score == D("-2")


def test_monthly_cap_ignores_the_excess_and_warns():
    # A05 邀请参观公司: 12 points, at most once a month per (rep, customer, action)
    facts, problems = evaluate(
        entry("2026-06-01", "A05", row=2),
        entry("2026-06-10", "A05", row=3),
        entry("2026-05-10", "A05", row=4),                    # another month: counts
        entry("2026-06-12", "A05", rep_id="E2", row=5),        # another rep: counts
    )
    assert facts.evidence("C1").score == D("36")
    [warning] = problems.items
    assert (warning.sheet, warning.row, warning.field) == ("客户关系记录", 3, "次数")
    assert "不计分" in warning.message and not warning.is_error


def test_cap_warnings_come_in_sheet_order():
    # over the cap: E2's C2 in June (rows 3, 5), E1's C1 in June (rows 4, 7), E1's C2 in May (rows 6, 8);
    # in (rep, customer, action, month) order that would be rows 7, 8, 5
    _, problems = evaluate(
        entry("2026-06-02", "A05", rep_id="E2", customer_code="C2", row=3),
        entry("2026-06-01", "A05", rep_id="E1", customer_code="C1", row=4),
        entry("2026-06-03", "A05", rep_id="E2", customer_code="C2", row=5),
        entry("2026-05-01", "A05", rep_id="E1", customer_code="C2", row=6),
        entry("2026-06-09", "A05", rep_id="E1", customer_code="C1", row=7),
        entry("2026-05-02", "A05", rep_id="E1", customer_code="C2", row=8),
    )
    assert [(p.row, p.field, p.value) for p in problems.items] == [(5, "次数", "1"), (7, "次数", "1"), (8, "次数", "1")]
    assert problems.items[0].message == "“邀请参观公司”每月每客户最多计 1 次，本月已满，这一行 1 次中只计 0 次，超出的 1 次不计分"


def test_cap_splits_an_entry_with_several_counts():
    # A02 上门拜访: 2 points, cap 4; 3 + 3 in one month -> 4 count
    facts, problems = evaluate(entry("2026-06-01", "A02", count=3), entry("2026-06-02", "A02", count=3))
    assert facts.evidence("C1").score == D("8")
    assert "只计 1 次" in problems.items[0].message


def test_cap_exactly_reached_is_not_a_warning():
    _, problems = evaluate(*(entry(f"2026-06-0{d}", "A02") for d in range(1, 5)))
    assert not problems.items


def test_approval_gate_lists_pending_and_counts_approved():
    facts, problems = evaluate(
        entry("2026-06-01", "A11", approval="已批准"),  # 3 points
        entry("2026-06-02", "A11", approval="待审批", row=9),
        entry("2026-06-03", "A11"),
    )
    assert facts.evidence("C1").score == D("3")
    pending = [p for p in problems.items if p.field == "审批状态"]
    assert [p.row for p in pending] == [9, 4]
    # what the rep reads: the state found (or that it is blank) and what to fill in, never "None"
    assert "审批状态为“待审批”" in pending[0].message and "审批状态为空" in pending[1].message
    assert all("已批准" in p.message and "None" not in p.message for p in pending)


def test_window_counts_twelve_months_ending_at_the_evaluation_date():
    # evaluation 2026-06-30: the window is 2025-07-01 … 2026-06-30
    facts, _ = evaluate(entry("2025-07-01", "A03"), entry("2025-06-30", "A03", customer_code="C2"))
    assert facts.evidence("C1").score == D("8")
    assert facts.evidence("C2").score == D("0")


def test_window_is_a_parameter():
    facts, _ = evaluate(entry("2026-03-31", "A03"), entry("2026-04-01", "A03", customer_code="C2"),
                        rules=book(评估窗口月数=3))
    assert facts.evidence("C1").score == D("0")
    assert facts.evidence("C2").score == D("8")


def test_customer_score_is_the_companys_and_clamped():
    many = [entry(f"2026-0{m}-0{d}", a, rep_id=r, role="决策层")
            for m in (3, 4, 5, 6) for d in (1, 2) for a in ("A10", "A08", "A05") for r in ("E1", "E2")]
    facts, _ = evaluate(*many)
    evidence = facts.evidence("C1")
    assert evidence.raw_score > 100 and evidence.score == D("100")
    adverse = [entry(f"2026-06-{d:02d}", "A13") for d in range(1, 5)]  # 4 × −30
    facts, _ = evaluate(*adverse)
    assert facts.evidence("C1").score == D("-100")


def test_rep_monthly_score_is_own_entries_of_the_month_clamped_to_0_100():
    facts, _ = evaluate(
        entry("2026-06-01", "A03", rep_id="E1"),
        entry("2026-05-31", "A03", rep_id="E1"),     # last month: not in June's score
        entry("2026-06-02", "A12", rep_id="E2"),     # −10 -> clamped to 0
    )
    assert facts.rep_month_scores["E1"] == D("8")
    assert facts.rep_month_scores["E2"] == D("0")


def test_a_rep_who_only_drops_by_scores_below_ten():
    visits = [entry(f"2026-06-{d:02d}", "A02") for d in range(1, 29)]
    facts, _ = evaluate(*visits)
    assert facts.rep_month_scores["E1"] < 10


def test_unknown_codes_are_errors_and_the_rest_still_counts():
    facts, problems = evaluate(
        entry("2026-06-01", "A03", row=2),
        entry("2026-06-01", "A99", row=3),
        entry("2026-06-01", "A03", customer_code="C9", row=4),
        entry("2026-06-01", "A03", rep_id="E9", row=5),
        entry("2026-06-01", "A03", role="门卫", row=6),
    )
    assert facts.evidence("C1").score == D("8")
    assert sorted((p.row, p.field) for p in problems.items) == [
        (3, "动作编码"), (4, "客户编码"), (5, "工号"), (6, "角色")]
    assert all(p.is_error for p in problems.items)


def test_entries_after_the_evaluation_date_are_left_out_with_one_warning():
    facts, problems = evaluate(entry("2026-07-01", "A03"), entry("2026-07-02", "A03"))
    assert facts.evidence("C1").score == 0
    [warning] = problems.items
    assert "2 条记录" in warning.message


def test_indicators_come_from_counted_entries_in_the_window():
    facts, _ = evaluate(
        entry("2026-06-01", "A05"),                        # 参观公司
        entry("2026-06-02", "A11", approval="待审批"),      # pending: no indicator (A11 has none anyway)
        entry("2025-01-01", "A06"),                        # outside the window
    )
    assert facts.evidence("C1").indicators == {"参观公司"}


def test_customer_records_are_plain_pydantic():
    c = customer("C1", 必保="是", 战略突破奖="1,000,000")
    assert c.must_win and c.breakthrough_award == D(1_000_000)
    assert rep("E1").status.value == "在职"
