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
from xlsales.core.models import Customer
from xlsales.core.problems import Problems
from xlsales.core.relationship import RelationshipFacts
from xlsales.core.rulebook import Rulebook

CUSTOMER_SHEET = "客户"
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


def is_key_account(customer: Customer) -> bool:
    return customer.must_win or bool(customer.breakthrough_award)


def coverage_start(book: Rulebook) -> dt.date:
    """First day of the coverage window (inclusive): the evaluation date minus 覆盖天数."""
    return book.evaluation_date - dt.timedelta(days=book.params.coverage_days)


def key_accounts(customers: Iterable[Customer], facts: RelationshipFacts, book: Rulebook,
                 problems: Problems) -> list[KeyAccountRow]:
    keys = [c for c in customers if is_key_account(c)]
    if not keys:
        return []
    members = {c.code: {getattr(c, attr) for attr, _ in TRIANGLE} - {None} for c in keys}
    joint = _joint_days(facts.counted, members, window_start(book.evaluation_date, book.params.window_months),
                        book.evaluation_date)
    last = _last_contacts(facts.counted, set(members), coverage_start(book), book.evaluation_date)
    levels = list(book.roles)
    days = book.params.coverage_days
    rows: list[KeyAccountRow] = []
    for c in keys:
        missing = tuple(header for attr, header in TRIANGLE if getattr(c, attr) is None)
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
        rows.append(KeyAccountRow(
            code=c.code, name=c.name, must_win=c.must_win, account_manager=c.account_manager,
            tech_manager=c.tech_manager, service_manager=c.service_manager, missing_roles=missing,
            joint_days=joint.get(c.code, 0), last_contact=reached, uncovered=uncovered, hints=tuple(hints),
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


def _last_contacts(counted: pl.DataFrame, codes: set[str], start: dt.date,
                   end: dt.date) -> dict[tuple[str, str], dt.date]:
    """(customer, level) -> the last date in [start, end] of a counted entry at that level."""
    last = (counted.filter(pl.col("date").is_between(start, end) & pl.col("customer").is_in(sorted(codes)))
            .group_by("customer", "role").agg(pl.col("date").max()))
    return {(code, role): date for code, role, date in last.iter_rows()}
