"""§5 The monthly ranking: attainment and relationship into one score, the top and bottom groups
with ties in the rep's favour, the history of every month and consecutive bottom months."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from xlsales.core.dates import previous_month_label
from xlsales.core.models import Choice, Count, Num, OptNum, Record, Text
from xlsales.core.money import round_to

HISTORY_SHEET = "排名历史"
SCORE_PLACES = 2  # ranked on the score as shown: what a rep sees is what a rep is ranked on


class Group(StrEnum):
    TOP = "前30%"
    MIDDLE = "中间"
    BOTTOM = "后15%"


HELP_NEEDED_MONTHS = 2


@dataclass(slots=True)
class RankingRow:
    """A row of 月度排名 and 排名历史."""

    month: str
    rank: int
    rep_id: str
    name: str
    attainment: Decimal | None
    relationship: Decimal
    score: Decimal
    group: Group
    bottom_streak: int

    @property
    def needs_help(self) -> bool:
        return self.bottom_streak >= HELP_NEEDED_MONTHS


class HistoryEntry(Record):
    """A row of the existing 排名历史 sheet, read back so that earlier months are kept."""

    month: Text = Field(alias="月份", pattern=r"^\d{4}-\d{2}$")
    rank: Count = Field(alias="排名", ge=1)
    rep_id: Text = Field(alias="工号")
    name: Text = Field("", alias="姓名")
    attainment: OptNum = Field(None, alias="业绩完成率")
    relationship: Num = Field(Decimal(0), alias="月度关系得分")
    score: Num = Field(alias="综合得分")
    group: Choice[Group] = Field(alias="分组")
    bottom_streak: Count = Field(0, alias="连续垫底月数", ge=0)

    def to_row(self) -> RankingRow:
        return RankingRow(self.month, self.rank, self.rep_id, self.name, self.attainment, self.relationship,
                          self.score, self.group, self.bottom_streak)


@dataclass(frozen=True, slots=True)
class Contender:
    rep_id: str
    name: str
    attainment: Decimal | None
    relationship: Decimal


def group_sizes(n: int, top_share: Decimal, bottom_share: Decimal) -> tuple[int, int]:
    """top = ceil(n × 30%), bottom = min(ceil(n × 15%), n − top)."""
    top = math.ceil(Decimal(n) * top_share)
    bottom = min(math.ceil(Decimal(n) * bottom_share), n - top)
    return top, bottom


def assign_groups(scores: list[Decimal], top_share: Decimal, bottom_share: Decimal) -> list[Group]:
    """Ties go the rep's way: 前30% if fewer than `top` score strictly higher; 后15% if the rep and
    everyone scoring the same or lower are at most `bottom`, and the rep is not in 前30%."""
    top, bottom = group_sizes(len(scores), top_share, bottom_share)
    ordered = sorted(scores)
    groups: list[Group] = []
    for score in scores:
        same_or_lower = bisect.bisect_right(ordered, score)
        higher = len(ordered) - same_or_lower
        if higher < top:
            groups.append(Group.TOP)
        elif same_or_lower <= bottom:
            groups.append(Group.BOTTOM)
        else:
            groups.append(Group.MIDDLE)
    return groups


def composite_score(attainment: Decimal | None, relationship: Decimal, performance_weight: Decimal,
                    relationship_weight: Decimal, cap: Decimal) -> Decimal:
    """综合得分 = 业绩权重 × min(完成率, 上限) × 100 + 关系权重 × 月度关系得分, to SCORE_PLACES."""
    rate = min(attainment if attainment is not None else Decimal(0), cap)
    return round_to(performance_weight * rate * 100 + relationship_weight * relationship, SCORE_PLACES)


def rank_month(month: str, contenders: Iterable[Contender], history: Iterable[RankingRow],
               performance_weight: Decimal, relationship_weight: Decimal, cap: Decimal,
               top_share: Decimal, bottom_share: Decimal) -> tuple[list[RankingRow], list[RankingRow]]:
    """Rank one month; returns (the month's rows, the history with that month replaced)."""
    people = list(contenders)
    scores = [composite_score(c.attainment, c.relationship, performance_weight, relationship_weight, cap)
              for c in people]
    groups = assign_groups(scores, top_share, bottom_share)
    ordered = sorted(scores)
    earlier = [r for r in history if r.month != month]
    bottom_months = {(r.month, r.rep_id) for r in earlier if r.group is Group.BOTTOM}
    bottom_months |= {(month, p.rep_id) for p, g in zip(people, groups, strict=True) if g is Group.BOTTOM}
    rows: list[RankingRow] = []
    for person, score, group in zip(people, scores, groups, strict=True):
        rank = 1 + len(ordered) - bisect.bisect_right(ordered, score)  # competition rank: 1, 2, 2, 4
        rows.append(RankingRow(month, rank, person.rep_id, person.name, person.attainment, person.relationship,
                               score, group, _bottom_streak(month, person.rep_id, bottom_months)))
    rows.sort(key=lambda r: (r.rank, r.rep_id))
    # Only this month is ranked again, but a later month's 连续垫底月数 counts this one: when an
    # earlier month is recomputed, the later months' counts follow the history as it now is.
    earlier = [replace(r, bottom_streak=_bottom_streak(r.month, r.rep_id, bottom_months)) if r.month > month else r
               for r in earlier]
    merged = sorted(earlier + rows, key=lambda r: (r.month, r.rank, r.rep_id))
    return rows, merged


def _bottom_streak(month: str, rep_id: str, bottom_months: set[tuple[str, str]]) -> int:
    """How many months in a row, up to and including `month`, the rep was in 后15% (0 if not now)."""
    streak, label = 0, month
    while (label, rep_id) in bottom_months:
        streak += 1
        label = previous_month_label(label)
    return streak
