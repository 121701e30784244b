"""§3 Targets: floor and challenge per rep and year, the monthly split, the bottom-up gap."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from xlsales.core.models import MONTH_HEADERS, REP_SHEET, Target
from xlsales.core.money import FEN, yuan
from xlsales.core.problems import Problems, Rejected

TARGET_SHEET = "业绩目标"


def monthly_split(target: Target) -> list[Decimal] | None:
    """The floor's split over 1月…12月; None means an even split (floor × m / 12, kept exact)."""
    if all(m is None for m in target.months):
        return None
    return [m if m is not None else Decimal(0) for m in target.months]


def floor_to_date(target: Target, month: int) -> Decimal:
    """The floor's split summed over months 1..month."""
    split = monthly_split(target)
    if split is None:
        return target.floor * month / 12
    return sum(split[:month], Decimal(0))


def check_targets(targets: Iterable[Target], reps: set[str], problems: Problems,
                  rejected: Rejected | None = None) -> dict[tuple[int, str], Target]:
    """Bad targets are errors and are left out; returns the good ones by (year, rep)."""
    good: dict[tuple[int, str], Target] = {}
    for t in targets:
        bad = False
        if t.rep_id not in reps:
            problems.error(TARGET_SHEET, t.row, "工号", t.rep_id, (rejected or Rejected()).message(
                REP_SHEET, t.rep_id, f"销售人员表里没有工号“{t.rep_id}”：请核对工号"))
            bad = True
        if t.floor <= 0:
            problems.error(TARGET_SHEET, t.row, "保底目标", t.floor, "保底目标必须大于 0")
            bad = True
        if t.challenge < t.floor:
            problems.error(TARGET_SHEET, t.row, "挑战目标", t.challenge,
                           f"挑战目标 {yuan(t.challenge)} 低于保底目标 {yuan(t.floor)}：挑战目标不能低于保底")
            bad = True
        split = monthly_split(t)
        if split is not None:
            for header, value in zip(MONTH_HEADERS, t.months, strict=True):
                if value is not None and value < 0:
                    problems.error(TARGET_SHEET, t.row, header, value, f"{header}分解不能为负数")
                    bad = True
            total = sum(split, Decimal(0))
            if abs(total - t.floor) > FEN:
                problems.error(TARGET_SHEET, t.row, "1月", total,
                               f"1月～12月分解合计 {yuan(total)}，与保底目标 {yuan(t.floor)} 相差 {yuan(total - t.floor)}："
                               "请调整月度分解，或全部留空按月平均")
                bad = True
        key = (t.year, t.rep_id)
        if key in good:
            problems.error(TARGET_SHEET, t.row, "工号", t.rep_id,
                           f"{t.year} 年工号“{t.rep_id}”的目标重复（第 {good[key].row} 行已有）：每人每年只填一行")
            bad = True
        if not bad:
            good[key] = t
    return good


@dataclass(frozen=True)
class TargetGap:
    """Bottom-up (Σ 自报目标, Σ 保底目标) against top-down (公司年度目标)."""

    year: int
    company: Decimal | None
    floors: Decimal
    self_reported: Decimal
    reps_without_self_report: int

    @property
    def floor_gap(self) -> Decimal | None:
        return None if self.company is None else self.floors - self.company

    @property
    def self_reported_gap(self) -> Decimal | None:
        return None if self.company is None else self.self_reported - self.company

    def summary(self) -> str | None:
        """rules §3 "the gap is reported": one sentence, also when the team's sums are above the
        company's target (None when 公司年度目标 is not set)."""
        if self.company is None:
            return None
        parts = [f"{label}合计 {yuan(total)}，{_versus(total - self.company)}"
                 for label, total in (("保底目标", self.floors), ("自报目标", self.self_reported))]
        missing = f"（{self.reps_without_self_report} 人未填自报目标）" if self.reps_without_self_report else ""
        return f"{self.year} 年公司年度目标 {yuan(self.company)}：" + "；".join(parts) + missing


def _versus(diff: Decimal) -> str:
    if diff > 0:
        return f"比公司目标多 {yuan(diff)}"
    return f"比公司目标少 {yuan(-diff)}" if diff < 0 else "与公司目标持平"


def target_gap(targets: dict[tuple[int, str], Target], year: int, company: Decimal | None,
               problems: Problems) -> TargetGap:
    of_year = [t for (y, _), t in targets.items() if y == year]
    gap = TargetGap(
        year=year,
        company=company,
        floors=sum((t.floor for t in of_year), Decimal(0)),
        self_reported=sum((t.self_reported for t in of_year if t.self_reported is not None), Decimal(0)),
        reps_without_self_report=sum(t.self_reported is None for t in of_year),
    )
    if company is not None:
        for label, total, diff in (("保底目标", gap.floors, gap.floor_gap), ("自报目标", gap.self_reported,
                                                                           gap.self_reported_gap)):
            assert diff is not None
            if diff < 0:
                problems.warn(TARGET_SHEET, None, label, yuan(total),
                              f"{year} 年各人{label}合计 {yuan(total)}，比公司年度目标 {yuan(company)} 少 {yuan(-diff)}")
    return gap
