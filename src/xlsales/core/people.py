"""People (销售的状态): the 5词 ratings a manager gives each rep per quarter.

A row of 5词评价 rates a rep for a quarter (YYYY-Qn) on 激情, 自信, 坚持, 专业 and 真诚, each a whole
number from 1 to 5 (models.FiveWordRating checks the values). Here, per rep and quarter:

- 平均分: the average of the five ratings, exact (Decimal; 4+4+3+5+3 → 3.8).
- 趋势: against the rep's previous rated quarter (skipped quarters are not gaps: 2026-Q1 then 2026-Q3
  compares Q3 with Q1): 上升 / 持平 / 下降, with 变化, the difference of the averages. The first rated
  quarter of a rep has no trend.

Rows of unknown reps (工号 not in 销售人员) and repeated (季度, 工号) pairs are errors on their cell and
left out (the first row of a pair is kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from xlsales.core.models import FiveWordRating, Rep
from xlsales.core.problems import Problems

FIVE_WORD_SHEET = "5词评价"
FIVE_WORDS: tuple[tuple[str, str], ...] = (("passion", "激情"), ("confidence", "自信"), ("persistence", "坚持"),
                                           ("expertise", "专业"), ("sincerity", "真诚"))
UP, SAME, DOWN = "上升", "持平", "下降"


@dataclass(frozen=True)
class FiveWordRow:
    """A row of 5词汇总: one rep, one quarter."""

    rep_id: str
    name: str
    quarter: str
    ratings: tuple[int, ...]  # in the order of FIVE_WORDS
    average: Decimal
    trend: str | None  # 上升 / 持平 / 下降 against the previous rated quarter; None for the first
    change: Decimal | None  # average − the previous rated quarter's average
    rater: str | None
    note: str | None


def average(ratings: Iterable[int]) -> Decimal:
    values = list(ratings)
    return Decimal(sum(values)) / Decimal(len(values))


def trend_of(change: Decimal) -> str:
    return UP if change > 0 else DOWN if change < 0 else SAME


def five_word_summary(ratings: Iterable[FiveWordRating], reps: Mapping[str, Rep],
                      problems: Problems) -> list[FiveWordRow]:
    """Per rep and quarter: the five ratings, their average and the trend; ordered by 工号, then 季度."""
    kept: dict[tuple[str, str], FiveWordRating] = {}
    for r in ratings:
        if r.rep_id not in reps:
            problems.error(FIVE_WORD_SHEET, r.row, "工号", r.rep_id,
                           f"销售人员表里没有工号“{r.rep_id}”：这一行不计算，请填写销售人员表里的工号")
            continue
        key = (r.rep_id, r.quarter)
        if key in kept:
            problems.error(FIVE_WORD_SHEET, r.row, "季度", r.quarter,
                           f"{r.quarter} 工号“{r.rep_id}”的 5词评价重复（第 {kept[key].row} 行已有）：这一行不计算，"
                           "请删除或合并成一行")
            continue
        kept[key] = r
    rows: list[FiveWordRow] = []
    previous: tuple[str, Decimal] | None = None  # (rep, average) of the row before, same rep
    for (rep, quarter), r in sorted(kept.items()):
        values = tuple(int(getattr(r, attr)) for attr, _ in FIVE_WORDS)
        avg = average(values)
        change = avg - previous[1] if previous is not None and previous[0] == rep else None
        rows.append(FiveWordRow(rep_id=rep, name=reps[rep].name, quarter=quarter, ratings=values, average=avg,
                                trend=None if change is None else trend_of(change), change=change,
                                rater=r.rater, note=r.note))
        previous = (rep, avg)
    return rows
