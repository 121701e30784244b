"""The founder's watchlist (创始人关注): a monthly summary of the customers flagged 重点.

One row per customer whose 重点 is 是 (the column is optional; blank or missing means 否):

- 关系分, 等级 and 缺少指标 (for the next tier up) as in 关系评分.
- 上月等级: the tier the same rules give as of the last day of the previous month: the relationship
  log is evaluated again for the watched customers only (the log is filtered to them first, so a
  large log costs little), with the evaluation date set to the previous month end. 等级变化 is 升,
  降 or 持平 against it, or 新 when the customer had no counted entries in the window then.
- 铁三角缺口 and 未覆盖层级: the key-account logic of core.accounts (missing triangle roles, contact
  levels without a counted entry within 覆盖天数), computed for every watched customer, key account
  or not. No problems are reported here: core.accounts warns about key accounts' triangles.
- 在跟商机: the number and total amount of the customer's 跟进中 and 暂缓 opportunities.
- 最近联系: the date of the customer's last counted entry (up to the evaluation date).
- 提示: one line, the most pressing next step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from xlsales.core.accounts import coverage_start, last_contacts, missing_roles
from xlsales.core.activity import ActivityLog
from xlsales.core.dates import month_start
from xlsales.core.models import Customer, Opportunity, OpportunityStatus, Tier
from xlsales.core.money import yuan
from xlsales.core.problems import Problems
from xlsales.core.relationship import RelationshipFacts, evaluate_log
from xlsales.core.rulebook import Rulebook
from xlsales.core.tiers import AGAINST_STANCE, CustomerRating, tier_for

WATCH_SHEET = "创始人关注"
UP, DOWN, SAME, NEW = "升", "降", "持平", "新"
OPEN_STATUSES = (OpportunityStatus.OPEN, OpportunityStatus.PAUSED)


@dataclass(frozen=True)
class WatchRow:
    """A row of 创始人关注."""

    code: str
    name: str
    account_manager: str | None
    score: Decimal
    tier: Tier
    last_month_tier: Tier
    change: str  # 升 / 降 / 持平 / 新
    missing: frozenset[str]  # indicators missing for the next tier up
    missing_roles: tuple[str, ...]
    uncovered: tuple[str, ...]
    open_count: int
    open_amount: Decimal
    last_contact: dt.date | None
    hint: str

    @property
    def open_text(self) -> str | None:
        """在跟商机, as text: "2 个，共 1,500,000.00 元"; None without any."""
        return f"{self.open_count} 个，共 {yuan(self.open_amount)} 元" if self.open_count else None


def previous_month_end(day: dt.date) -> dt.date:
    return month_start(day) - dt.timedelta(days=1)


def watchlist(customers: Iterable[Customer], ratings: Iterable[CustomerRating], facts: RelationshipFacts,
              log: ActivityLog, opportunities: Iterable[Opportunity], reps: set[str], book: Rulebook) -> list[WatchRow]:
    watched = [c for c in customers if c.key_watch]
    if not watched:
        return []
    codes = {c.code for c in watched}
    rating_of = {r.code: r for r in ratings if r.code in codes}

    # last month: the same rules over the watched customers' entries only, as of the previous month end
    before = book.model_copy(update={"evaluation_date": previous_month_end(book.evaluation_date)})
    small = ActivityLog(log.frame.filter(pl.col("customer").is_in(sorted(codes))))
    previous = evaluate_log(small, before, reps, codes, Problems())  # its findings are the main run's

    last = last_contacts(facts.counted, codes, coverage_start(book), book.evaluation_date)
    latest = dict(facts.counted.filter(pl.col("customer").is_in(sorted(codes)))
                  .group_by("customer").agg(pl.col("date").max()).iter_rows())
    count: dict[str, int] = dict.fromkeys(codes, 0)
    amount: dict[str, Decimal] = dict.fromkeys(codes, Decimal(0))
    for opp in opportunities:
        if opp.customer in codes and opp.status in OPEN_STATUSES:
            count[opp.customer] += 1
            amount[opp.customer] += opp.amount

    rows: list[WatchRow] = []
    for c in watched:
        rating = rating_of.get(c.code)
        if rating is None:
            continue
        evidence = previous.evidence(c.code)
        against = (c.stance or "") == AGAINST_STANCE
        before_tier = tier_for(evidence.score, evidence.indicators, against, before)
        if evidence.entries == 0:
            change = NEW
        elif rating.tier.rank < before_tier.rank:
            change = UP
        elif rating.tier.rank > before_tier.rank:
            change = DOWN
        else:
            change = SAME
        roles = missing_roles(c)
        uncovered = tuple(level for level in book.roles if (c.code, level) not in last)
        rows.append(WatchRow(
            code=c.code, name=c.name, account_manager=c.account_manager, score=rating.score, tier=rating.tier,
            last_month_tier=before_tier, change=change, missing=rating.missing, missing_roles=roles,
            uncovered=uncovered, open_count=count[c.code], open_amount=amount[c.code],
            last_contact=latest.get(c.code),
            hint=_hint(rating, before_tier, change, roles, uncovered, count[c.code], book),
        ))
    return rows


def _hint(rating: CustomerRating, before: Tier, change: str, roles: tuple[str, ...], uncovered: tuple[str, ...],
          open_count: int, book: Rulebook) -> str:
    """The most pressing next step, one line."""
    if change == DOWN:
        return f"关系从“{before.value}”降到“{rating.tier.value}”：请客户经理本周说明原因并安排高层拜访"
    if rating.tier is Tier.AGAINST:
        return "客户处于反对级：先化解不利因素，再谈商机"
    if roles:
        return f"铁三角缺少{'、'.join(roles)}：请指定人员"
    if uncovered:
        return f"近 {book.params.coverage_days} 天未接触{'、'.join(uncovered)}：安排接触"
    if rating.missing:
        return f"冲更高等级还缺{'、'.join(sorted(rating.missing))}"
    if open_count == 0:
        return "没有在跟商机：发掘新的需求"
    return "保持节奏"
