"""Key accounts: the iron triangle (铁三角) and contact coverage (core.accounts, sheet 铁三角与覆盖)."""

from __future__ import annotations

import datetime as dt

from builders import book, customer, day, entry, log, rep, run
from test_cli import golden_tables, records, sheet_rows
from xlsales.adapters.sheets import ACCOUNTS_SHEET, EXTRA_OUTPUT_COLUMNS, write_tables
from xlsales.cli import main
from xlsales.core.accounts import THREE_C_SHEET, coverage_start
from xlsales.core.models import ThreeCCheck
from xlsales.core.pipeline import Inputs
from xlsales.core.problems import Problems
from xlsales.core.validation import validate_rows

REPS = [rep(r) for r in ("E1", "E2", "E3", "E4")]


def must_win(code: str = "C1", **extra):
    return customer(code, "E1", 技术经理="E2", 服务经理="E3", 必保="是", **extra)


def inputs(customers, *entries):
    return Inputs(reps=REPS, customers=customers, log=log(*entries))


def only(results, code="C1"):
    (row,) = [a for a in results.accounts if a.code == code]
    return row


def test_a_missing_service_manager_on_a_must_win_customer_is_a_warning_on_its_cell():
    c = customer("C1", "E1", 技术经理="E2", 必保="是", row=5)
    results, problems = run(inputs([c]))
    (warning,) = [p for p in problems.items if p.sheet == "客户"]
    assert not warning.is_error
    assert (warning.row, warning.field) == (5, "服务经理")
    assert "服务经理" in warning.message and "铁三角" in warning.message
    assert only(results).missing_roles == ("服务经理",)


def test_a_complete_triangle_has_no_warning():
    results, problems = run(inputs([must_win()]))
    assert [p for p in problems.items if p.sheet == "客户"] == []
    assert only(results).missing_roles == ()


def test_joint_days_count_days_with_two_different_triangle_members_on_the_customer():
    results, _ = run(inputs(
        [must_win(), must_win("C2")],
        entry("2026-06-01", "A02", "E1"), entry("2026-06-01", "A02", "E2"),   # two members: 1 day
        entry("2026-06-01", "A01", "E3"),                                     # a third the same day: still 1 day
        entry("2026-06-02", "A02", "E1"), entry("2026-06-02", "A02", "E4"),   # E4 is not in the triangle
        entry("2026-06-03", "A02", "E1"), entry("2026-06-03", "A11", "E2", approval="待审批"),  # pending: not counted
        entry("2026-06-04", "A02", "E1"), entry("2026-06-04", "A01", "E1"),   # one member twice
        entry("2026-06-05", "A02", "E1"), entry("2026-06-05", "A02", "E2", customer_code="C2"),  # different customers
        entry("2025-06-30", "A02", "E1"), entry("2025-06-30", "A02", "E2"),   # outside the 12-month window
        entry("2025-07-01", "A02", "E1"), entry("2025-07-01", "A02", "E3"),   # first day of the window: counts
    ))
    assert only(results).joint_days == 2
    assert only(results, "C2").joint_days == 0


def test_coverage_gives_the_last_date_per_level_within_the_coverage_days():
    # 覆盖天数 90 as of 2026-06-30: from 2026-04-01 (90 days back, included); 2026-03-31 (91 days back) is out
    rules = book()
    assert rules.params.coverage_days == 90 and coverage_start(rules) == day("2026-04-01")
    results, _ = run(inputs(
        [must_win()],
        entry("2026-04-01", "A02", role="决策层"),
        entry("2026-03-31", "A02", role="管理层"),
        entry("2026-05-01", "A02", role="技术/采购层"), entry("2026-06-10", "A02", role="技术/采购层"),
        entry("2026-06-20", "A11", role="秘书/助理", approval="待审批"),  # pending: not a contact
    ), rules)
    row = only(results)
    assert row.last_contact == (("决策层", day("2026-04-01")), ("管理层", None), ("技术/采购层", day("2026-06-10")),
                                ("秘书/助理", None))
    assert row.uncovered == ("管理层", "秘书/助理")
    assert any("管理层、秘书/助理" in h for h in row.hints)

    wider, _ = run(inputs([must_win()], entry("2026-03-31", "A02", role="管理层")), book(覆盖天数=91))
    assert dict(only(wider).last_contact)["管理层"] == day("2026-03-31")


def test_levels_come_from_the_rulebook():
    roles = [{"角色": "董事会", "系数": 2}, {"角色": "技术/采购层", "系数": 1}]
    rules = book(tables={"角色系数": roles})
    results, _ = run(inputs([must_win()], entry("2026-06-01", "A02", role="董事会")), rules)
    row = only(results)
    assert row.last_contact == (("董事会", day("2026-06-01")), ("技术/采购层", None))
    assert row.uncovered == ("技术/采购层",)


def test_only_key_accounts_are_listed():
    award = customer("C2", "E1", 技术经理="E2", 服务经理="E3", 战略突破奖=1_000_000)
    plain = customer("C3", "E1", 必保="否")
    results, problems = run(inputs([must_win(), award, plain]))
    assert [a.code for a in results.accounts] == ["C1", "C2"]
    assert not only(results, "C2").must_win
    assert [p for p in problems.items if p.sheet == "客户"] == []  # C3 needs no triangle


def test_the_sheet_is_written_by_compute_with_its_headers(tmp_path):
    path = tmp_path / "book.xlsx"
    tables = golden_tables(
        客户=[{"客户编码": "C1", "客户名称": "甲", "客户经理": "E1", "技术经理": "E2", "必保": "是"}],
        客户关系记录=[{"日期": dt.date(2026, 6, 1), "工号": "E1", "客户编码": "C1", "角色": "决策层", "动作编码": "A07"},
                  {"日期": dt.date(2026, 6, 1), "工号": "E2", "客户编码": "C1", "角色": "技术/采购层", "动作编码": "A03"}],
    )
    write_tables(path, tables)
    assert main(["compute", str(path)]) == 0
    header = sheet_rows(path, ACCOUNTS_SHEET)[0]
    assert tuple(header) == tuple(h for h, _ in EXTRA_OUTPUT_COLUMNS[ACCOUNTS_SHEET])
    (row,) = records(path, ACCOUNTS_SHEET)
    assert row["客户编码"] == "C1" and row["必保"] == "是" and row["缺少角色"] == "服务经理" and row["协同天数"] == 1
    assert row["决策层"] == dt.datetime(2026, 6, 1) and row["管理层"] is None
    assert row["未覆盖层级"] == "管理层、秘书/助理"
    problems = records(path, "校验结果")
    assert any(p["工作表"] == "客户" and p["级别"] == "警告" and "服务经理" in p["说明"] for p in problems)


# --- 3C清单: 组织架构, 决策链, 评估委员会, 竞争对手 per key account ---------------------------------------

def three_c(code="C1", row=None, **marks):
    return ThreeCCheck.model_validate({"客户编码": code, "row": row, **marks})


def with_three_c(customers, *checks):
    return Inputs(reps=REPS, customers=customers, log=log(), three_c=list(checks))


def test_3c_progress_and_missing_items_of_a_key_account():
    results, problems = run(with_three_c([must_win()], three_c(组织架构="是", 决策链="是", 评估委员会="否", 竞争对手="是")))
    assert [p for p in problems.items if p.sheet == THREE_C_SHEET] == []
    row = only(results)
    assert (row.three_c_done, row.three_c_progress, row.three_c_missing) == (3, "3/4", ("评估委员会",))


def test_3c_blank_is_no_and_all_yes_is_complete():
    results, _ = run(with_three_c(
        [must_win(), must_win("C2")],
        three_c(组织架构="是", 竞争对手=None),                        # blanks are 否
        three_c("C2", 组织架构="是", 决策链="是", 评估委员会="是", 竞争对手="是"),
    ))
    assert (only(results).three_c_progress, only(results).three_c_missing) == ("1/4", ("决策链", "评估委员会", "竞争对手"))
    assert (only(results, "C2").three_c_progress, only(results, "C2").three_c_missing) == ("4/4", ())


def test_a_key_account_without_a_3c_row_has_nothing_done():
    award = customer("C2", "E1", 技术经理="E2", 服务经理="E3", 战略突破奖=1_000_000)
    results, problems = run(with_three_c([must_win(), award]))
    for code in ("C1", "C2"):
        row = only(results, code)
        assert (row.three_c_done, row.three_c_progress) == (0, "0/4")
        assert row.three_c_missing == ("组织架构", "决策链", "评估委员会", "竞争对手")
    assert [p for p in problems.items if p.sheet == THREE_C_SHEET] == []


def test_3c_rows_of_unknown_plain_or_repeated_customers_are_warnings_on_their_cell():
    plain = customer("C3", "E1", 必保="否")
    results, problems = run(with_three_c(
        [must_win(), plain],
        three_c("C1", row=2, 组织架构="是"),
        three_c("C9", row=3, 组织架构="是"),                            # no such customer
        three_c("C3", row=4, 组织架构="是"),                            # not a key account
        three_c("C1", row=5, 组织架构="是", 决策链="是"),               # C1 again: the first row counts
    ))
    found = [(p.level.value, p.row, p.field, p.value) for p in problems.items if p.sheet == THREE_C_SHEET]
    assert found == [("警告", 3, "客户编码", "C9"), ("警告", 4, "客户编码", "C3"), ("警告", 5, "客户编码", "C1")]
    messages = [p.message for p in problems.items if p.sheet == THREE_C_SHEET]
    assert "客户表里没有" in messages[0] and "不是重点客户" in messages[1] and "第 2 行" in messages[2]
    assert only(results).three_c_progress == "1/4"
    assert [a.code for a in results.accounts] == ["C1"]


def test_3c_warnings_also_when_there_is_no_key_account():
    _, problems = run(with_three_c([customer("C3", "E1")], three_c("C3", row=2, 组织架构="是")))
    ((level, row),) = [(p.level.value, p.row) for p in problems.items if p.sheet == THREE_C_SHEET]
    assert (level, row) == ("警告", 2)


def test_a_bad_yes_no_is_an_error_on_its_cell():
    problems = Problems()
    good = validate_rows(ThreeCCheck, THREE_C_SHEET, [{"row": 2, "客户编码": "C1", "决策链": "也许"}], problems)
    assert good == []
    (problem,) = problems.items
    assert problem.is_error and (problem.row, problem.field) == (2, "决策链") and "是 或 否" in problem.message


def test_3c_columns_are_written_by_compute_and_warnings_go_to_校验结果_by_cell(tmp_path):
    path = tmp_path / "book.xlsx"
    tables = golden_tables(
        客户=[{"客户编码": "C1", "客户名称": "甲", "客户经理": "E1", "技术经理": "E2", "服务经理": "E3", "必保": "是"},
            {"客户编码": "C2", "客户名称": "乙", "客户经理": "E1", "必保": "否"},
            {"客户编码": "C3", "客户名称": "丙", "客户经理": "E1", "战略突破奖": 500_000}],
        **{THREE_C_SHEET: [{"客户编码": "C1", "组织架构": "是", "决策链": "是", "评估委员会": "否", "竞争对手": "是"},
                           {"客户编码": "C2", "组织架构": "是"},
                           {"客户编码": "C404", "组织架构": "是"}]},
    )
    write_tables(path, tables)
    assert main(["compute", str(path)]) == 0  # 警告 only
    header = sheet_rows(path, ACCOUNTS_SHEET)[0]
    assert tuple(header) == tuple(h for h, _ in EXTRA_OUTPUT_COLUMNS[ACCOUNTS_SHEET])
    assert header[-2:] == ["3C完成度", "3C缺项"]
    by_code = {r["客户编码"]: r for r in records(path, ACCOUNTS_SHEET)}
    assert (by_code["C1"]["3C完成度"], by_code["C1"]["3C缺项"]) == ("3/4", "评估委员会")
    assert (by_code["C3"]["3C完成度"], by_code["C3"]["3C缺项"]) == ("0/4", "组织架构、决策链、评估委员会、竞争对手")
    assert "C2" not in by_code
    problems = [(p["级别"], p["单元格"], p["值"]) for p in records(path, "校验结果") if p["工作表"] == THREE_C_SHEET]
    assert problems == [("警告", "A3", "C2"), ("警告", "A4", "C404")]
