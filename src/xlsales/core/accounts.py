"""Key accounts (重点客户): the iron triangle (铁三角) and contact coverage (多角度触达).

Key accounts are the customers flagged 必保 or carrying a 战略突破奖 amount. For each one:

- 铁三角: 客户经理, 技术经理 and 服务经理 (工号 in the 客户 sheet) should all be set; a missing role
  is a 警告 on that customer's row and field.
- 协同天数: the days inside the evaluation window (评估窗口月数, ending at the evaluation date) on
  which counted entries of at least two different triangle members (their 工号 are that customer's
  客户经理/技术经理/服务经理) exist for the customer.
- 覆盖: for every contact level of the rulebook (the roles of 角色系数, in their order), the last date
  of a counted entry for the customer at that level within the coverage window: dates d with
  评估日期 - 覆盖天数 ≤ d ≤ 评估日期 (for 2026-06-30 and 90 days: 2026-04-01 … 2026-06-30; the day
  90 days back is in, the day 91 days back is out). Levels not reached are the next step.

- 3C: the 3C清单 row of the customer (组织架构, 决策链, 评估委员会, 竞争对手, 是/否 each): 3C完成度 is
  the number of items marked 是 out of 4 ("3/4"), 3C缺项 the others. A key account without a row has
  0/4 and all four missing. A row for an unknown 客户编码, for a customer that is not a key account,
  or a second row for the same customer is a 警告 on its 客户编码 cell and is not used.

Counted entries are those the relationship score counts (core.relationship): approved where approval
is needed, within the monthly caps, valid references, dated up to the evaluation date. Vectorised
over the log with polars.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from xlsales.core.dates import window_start
from xlsales.core.models import Customer, ThreeCCheck
from xlsales.core.problems import Problems
from xlsales.core.relationship import RelationshipFacts
from xlsales.core.rulebook import Rulebook

CUSTOMER_SHEET = "客户"
THREE_C_SHEET = "3C清单"
THREE_C: tuple[tuple[str, str], ...] = (("org_chart", "组织架构"), ("decision_chain", "决策链"),
                                        ("committee", "评估委员会"), ("competitors", "竞争对手"))
TRIANGLE: tuple[tuple[str, str], ...] = (("account_manager", "客户经理"), ("tech_manager", "技术经理"),
                                         ("service_manager", "服务经理"))


@dataclass(frozen=True)
class KeyAccountRow:
    """A row of 铁三角与覆盖."""

    code: str
    name: str
    must_win: bool
    account_manager: str | None
    tech_manager: str | None
    service_manager: str | None
    missing_roles: tuple[str, ...]  # 客户经理 / 技术经理 / 服务经理 not set
    joint_days: int
    last_contact: tuple[tuple[str, dt.date | None], ...]  # (level, last date in the coverage window), rulebook order
    uncovered: tuple[str, ...]  # levels without a counted entry in the coverage window
    hints: tuple[str, ...]
    three_c_done: int = 0  # 3C items marked 是, of len(THREE_C)
    three_c_missing: tuple[str, ...] = tuple(header for _, header in THREE_C)

    @property
    def three_c_progress(self) -> str:
        """3C完成度, as text: "3/4"."""
        return f"{self.three_c_done}/{len(THREE_C)}"


def is_key_account(customer: Customer) -> bool:
    return customer.must_win or bool(customer.breakthrough_award)


def missing_roles(customer: Customer) -> tuple[str, ...]:
    """The triangle roles (客户经理 / 技术经理 / 服务经理) not set for this customer."""
    return tuple(header for attr, header in TRIANGLE if getattr(customer, attr) is None)


def coverage_start(book: Rulebook) -> dt.date:
    """First day of the coverage window (inclusive): the evaluation date minus 覆盖天数."""
    return book.evaluation_date - dt.timedelta(days=book.params.coverage_days)


def three_c_checks(checks: Iterable[ThreeCCheck], customers: Iterable[Customer],
                   problems: Problems) -> dict[str, ThreeCCheck]:
    """The usable 3C清单 rows by 客户编码: one per key account; the others are 警告 on their 客户编码 cell."""
    by_code = {c.code: c for c in customers}
    out: dict[str, ThreeCCheck] = {}
    for check in checks:
        customer = by_code.get(check.customer)
        if customer is None:
            problems.warn(THREE_C_SHEET, check.row, "客户编码", check.customer,
                          f"客户表里没有客户编码“{check.customer}”：这一行 3C 不计入，请核对客户编码")
        elif not is_key_account(customer):
            problems.warn(THREE_C_SHEET, check.row, "客户编码", check.customer,
                          f"客户“{customer.name}”不是重点客户（必保或有战略突破奖）：3C清单只用于重点客户，这一行不计入")
        elif check.customer in out:
            problems.warn(THREE_C_SHEET, check.row, "客户编码", check.customer,
                          f"客户编码“{check.customer}”的 3C清单重复（第 {out[check.customer].row} 行已有）：这一行不计入")
        else:
            out[check.customer] = check
    return out


def key_accounts(customers: Iterable[Customer], facts: RelationshipFacts, book: Rulebook,
                 problems: Problems, checks: Iterable[ThreeCCheck] = ()) -> list[KeyAccountRow]:
    customers = list(customers)
    three_c = three_c_checks(checks, customers, problems)
    keys = [c for c in customers if is_key_account(c)]
    if not keys:
        return []
    members = {c.code: {getattr(c, attr) for attr, _ in TRIANGLE} - {None} for c in keys}
    joint = _joint_days(facts.counted, members, window_start(book.evaluation_date, book.params.window_months),
                        book.evaluation_date)
    last = last_contacts(facts.counted, set(members), coverage_start(book), book.evaluation_date)
    levels = list(book.roles)
    days = book.params.coverage_days
    rows: list[KeyAccountRow] = []
    for c in keys:
        missing = missing_roles(c)
        why = "必保客户" if c.must_win else "有战略突破奖的客户"
        for header in missing:
            problems.warn(CUSTOMER_SHEET, c.row, header, "",
                          f"{why}“{c.name}”没有{header}：铁三角（客户经理、技术经理、服务经理）不全，请填写{header}的工号")
        reached = tuple((level, last.get((c.code, level))) for level in levels)
        uncovered = tuple(level for level, date in reached if date is None)
        hints: list[str] = []
        if missing:
            hints.append(f"铁三角缺少{'、'.join(missing)}")
        if joint.get(c.code, 0) == 0 and len(members[c.code]) >= 2:
            hints.append("评估窗口内铁三角没有同一天共同跟进的记录")
        if uncovered:
            hints.append(f"下一步：近 {days} 天未接触{'、'.join(uncovered)}")
        check = three_c.get(c.code)
        done = tuple(header for attr, header in THREE_C if check is not None and getattr(check, attr))
        rows.append(KeyAccountRow(
            code=c.code, name=c.name, must_win=c.must_win, account_manager=c.account_manager,
            tech_manager=c.tech_manager, service_manager=c.service_manager, missing_roles=missing,
            joint_days=joint.get(c.code, 0), last_contact=reached, uncovered=uncovered, hints=tuple(hints),
            three_c_done=len(done), three_c_missing=tuple(header for _, header in THREE_C if header not in done),
        ))
    return rows


def _joint_days(counted: pl.DataFrame, members: dict[str, set[str]], start: dt.date, end: dt.date) -> dict[str, int]:
    """Per customer: days in [start, end] with counted entries of ≥ 2 different triangle members."""
    pairs = [(code, rep) for code, reps in members.items() for rep in sorted(reps)]
    if not pairs:
        return {}
    team = pl.DataFrame({"customer": [p[0] for p in pairs], "rep_id": [p[1] for p in pairs]},
                        schema={"customer": pl.String, "rep_id": pl.String})
    days = (counted.filter(pl.col("date").is_between(start, end))
            .join(team, on=["customer", "rep_id"], how="inner")
            .group_by("customer", "date").agg(pl.col("rep_id").n_unique().alias("reps"))
            .filter(pl.col("reps") >= 2)
            .group_by("customer").agg(pl.len().alias("days")))
    return {code: int(n) for code, n in days.iter_rows()}


def last_contacts(counted: pl.DataFrame, codes: set[str], start: dt.date,
                   end: dt.date) -> dict[tuple[str, str], dt.date]:
    """(customer, level) -> the last date in [start, end] of a counted entry at that level."""
    last = (counted.filter(pl.col("date").is_between(start, end) & pl.col("customer").is_in(sorted(codes)))
            .group_by("customer", "role").agg(pl.col("date").max()))
    return {(code, role): date for code, role, date in last.iter_rows()}
