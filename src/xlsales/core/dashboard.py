"""看板: the figures behind the dashboard's charts, taken from a run's results.

Nothing here is a new rule: the ranking, tiers, attainment, on-time rate and forecast are computed
by their own modules; this module only groups and totals them the way the charts show them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from xlsales.core.dates import month_label
from xlsales.core.models import OpportunityStatus, Tier
from xlsales.core.payouts import OnTimeRate
from xlsales.core.pipeline import Results
from xlsales.core.ranking import RankingRow

ZERO = Decimal(0)
UNDATED = "未填"  # the pipeline bucket of open opportunities without a (readable) 预计签约月


@dataclass(frozen=True, slots=True)
class TierCount:
    tier: Tier
    customers: int
    probability: Decimal  # the tier's win probability (分级规则)


@dataclass(frozen=True, slots=True)
class Attainment:
    """A rep's plan-year orders against the floor and challenge targets (提成汇总's figures)."""

    rep_id: str
    name: str
    orders: Decimal
    floor: Decimal
    challenge: Decimal
    vs_floor: Decimal
    vs_challenge: Decimal


@dataclass(frozen=True, slots=True)
class PipelineMonth:
    """Open (跟进中) opportunities expected to sign in `month` (YYYY-MM, or UNDATED)."""

    month: str
    opportunities: int
    amount: Decimal
    weighted: Decimal


@dataclass(frozen=True, slots=True)
class Dashboard:
    evaluation_date: dt.date
    month: str  # the ranking month, YYYY-MM
    ranking: list[RankingRow]  # 月度排名, best first
    tiers: list[TierCount]  # every tier, best first, also when no customer has it
    attainment: list[Attainment]  # reps with a target, best attainment against the floor first
    on_time: list[OnTimeRate]  # 发放及时率 per month of due date, oldest first
    pipeline: list[PipelineMonth]  # by expected month, oldest first, UNDATED last
    team_orders: Decimal  # the plan year's orders of the reps with a target
    team_floor: Decimal
    team_challenge: Decimal
    target_gap: str | None = None  # rules §3: Σ 保底 and Σ 自报 against 公司年度目标 (TargetGap.summary)

    @property
    def team_vs_floor(self) -> Decimal | None:
        return self.team_orders / self.team_floor if self.team_floor else None

    @property
    def team_vs_challenge(self) -> Decimal | None:
        return self.team_orders / self.team_challenge if self.team_challenge else None

    @property
    def weighted_pipeline(self) -> Decimal:
        return sum((m.weighted for m in self.pipeline), ZERO)


def dashboard(results: Results) -> Dashboard:
    book = results.book
    counts: dict[Tier, int] = dict.fromkeys(Tier, 0)
    for rating in results.ratings:
        counts[rating.tier] += 1
    tiers = [TierCount(tier, counts[tier], book.tiers[tier].probability) for tier in Tier]

    attainment = [
        Attainment(row.rep_id, row.name, row.orders_total, row.floor, row.challenge,
                   row.orders_total / row.floor, row.orders_total / row.challenge)
        for row in results.summary
        if row.floor and row.challenge  # a rep without a target has nothing to attain
    ]
    attainment.sort(key=lambda a: (-a.vs_floor, a.rep_id))

    months: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for opp in results.forecast:
        if opp.status is not OpportunityStatus.OPEN or opp.weighted is None:
            continue  # won is already an order, lost and paused carry nothing
        bucket = months[opp.expected_month or UNDATED]
        bucket[0] += 1
        bucket[1] += opp.amount
        bucket[2] += opp.weighted
    pipeline = [PipelineMonth(month, int(n), amount, weighted)
                for month, (n, amount, weighted) in sorted(months.items(), key=lambda kv: (kv[0] == UNDATED, kv[0]))]

    ev = book.evaluation_date
    return Dashboard(
        evaluation_date=ev,
        month=month_label(ev),
        ranking=list(results.ranking),
        tiers=tiers,
        attainment=attainment,
        on_time=list(results.on_time),
        pipeline=pipeline,
        team_orders=sum((a.orders for a in attainment), ZERO),
        team_floor=sum((a.floor for a in attainment), ZERO),
        team_challenge=sum((a.challenge for a in attainment), ZERO),
        target_gap=results.target_gap.summary(),
    )
