"""§2 Relationship tiers, what is missing for the next tier, and the weighted pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from xlsales.core.models import Customer, Opportunity, OpportunityStatus, Tier, is_month
from xlsales.core.money import num
from xlsales.core.problems import Problems
from xlsales.core.relationship import RelationshipFacts
from xlsales.core.rulebook import Rulebook

AGAINST_STANCE = Tier.AGAINST.value


def tier_for(score: Decimal, held: frozenset[str], against: bool, book: Rulebook) -> Tier:
    """反对 first (manager's stance or a negative score), then the best tier whose threshold
    and indicators are all met, otherwise 中立."""
    if against or score < 0:
        return Tier.AGAINST
    for tier in (Tier.IRON, Tier.SUPPORT, Tier.NEUTRAL):
        rule = book.tiers[tier]
        if (rule.min_score is None or rule.min_score <= score) and rule.indicators <= held:
            return tier
    return Tier.NEUTRAL


_NEXT_UP: dict[Tier, Tier | None] = {Tier.IRON: None, Tier.SUPPORT: Tier.IRON, Tier.NEUTRAL: Tier.SUPPORT,
                                     Tier.AGAINST: Tier.NEUTRAL}


def next_tier_up(tier: Tier) -> Tier | None:
    return _NEXT_UP[tier]


@dataclass(slots=True)
class CustomerRating:
    """A row of 关系评分."""

    code: str
    name: str
    account_manager: str | None
    score: Decimal
    held: frozenset[str]
    missing: frozenset[str]
    tier: Tier
    probability: Decimal
    claimed: Tier | None
    hints: list[str]

    @property
    def over_claimed(self) -> bool:
        return self.claimed is not None and self.claimed.rank < self.tier.rank


OVER_CLAIM = "自评高于佐证"


def rate_customers(customers: Iterable[Customer], facts: RelationshipFacts, book: Rulebook) -> list[CustomerRating]:
    ratings: list[CustomerRating] = []
    for customer in customers:
        evidence = facts.evidence(customer.code)
        against = (customer.stance or "") == AGAINST_STANCE
        tier = tier_for(evidence.score, evidence.indicators, against, book)
        hints: list[str] = []
        up = next_tier_up(tier)
        missing: frozenset[str] = frozenset()
        if up is not None:
            rule = book.tiers[up]
            missing = rule.indicators - evidence.indicators
            if rule.min_score is not None and evidence.score < rule.min_score:
                hints.append(f"距“{up.value}”还差 {num(rule.min_score - evidence.score)} 分")
        if against:
            hints.append("立场为反对（经理设定）")
        elif evidence.score < 0:
            hints.append("关系分为负，先化解投诉或不利事件")
        if evidence.raw_score != evidence.score:
            hints.append(f"原始得分 {num(evidence.raw_score)}，按上限截取")
        rating = CustomerRating(
            code=customer.code,
            name=customer.name,
            account_manager=customer.account_manager,
            score=evidence.score,
            held=evidence.indicators,
            missing=missing,
            tier=tier,
            probability=book.tiers[tier].probability,
            claimed=customer.claimed_tier,
            hints=hints,
        )
        if rating.over_claimed:
            assert customer.claimed_tier is not None
            hints.insert(0, f"{OVER_CLAIM}：自评“{customer.claimed_tier.value}”，佐证只够“{tier.value}”")
        ratings.append(rating)
    return ratings


@dataclass(slots=True)
class ForecastRow:
    """A row of 商机预测. Paused opportunities carry no probability and stay out of the forecast."""

    code: str
    customer: str
    rep_id: str
    amount: Decimal
    status: OpportunityStatus
    tier: Tier | None
    probability: Decimal | None
    weighted: Decimal | None
    pause_reason: str | None
    expected_month: str | None = None  # YYYY-MM; None when empty or not a month


OPPORTUNITY_SHEET = "商机"


def forecast(opportunities: Iterable[Opportunity], tiers: dict[str, Tier], book: Rulebook,
             problems: Problems) -> list[ForecastRow]:
    active: list[ForecastRow] = []
    paused: list[ForecastRow] = []
    for opp in opportunities:
        month = opp.expected_month
        if month is not None and not is_month(month):
            problems.warn(OPPORTUNITY_SHEET, opp.row, "预计签约月", month,
                          f"预计签约月“{month}”不是年月：请写成 2026-11 这样的年月。这条商机照常预测，"
                          "只是看板的“按预计签约月”图里算作未填")
            month = None
        tier = tiers.get(opp.customer)
        probability: Decimal | None
        if opp.status is OpportunityStatus.WON:
            probability = Decimal(1)
        elif opp.status is OpportunityStatus.LOST:
            probability = Decimal(0)
        elif opp.status is OpportunityStatus.PAUSED:
            probability = None
        else:
            probability = book.tiers[tier].probability if tier is not None else None
        row = ForecastRow(
            code=opp.code,
            customer=opp.customer,
            rep_id=opp.rep_id,
            amount=opp.amount,
            status=opp.status,
            tier=tier,
            probability=probability,
            weighted=None if probability is None else opp.amount * probability,
            pause_reason=opp.pause_reason,
            expected_month=month,
        )
        (paused if opp.status is OpportunityStatus.PAUSED else active).append(row)
    return active + paused


def weighted_total(rows: Iterable[ForecastRow]) -> Decimal:
    return sum((r.weighted for r in rows if r.weighted is not None), Decimal(0))
