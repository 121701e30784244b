"""§4.4–4.6 Payout lines: staged release with due dates, must-win forfeiture with clawbacks, and
the ledger rules that keep finance's 实发日期 and paid amounts intact across re-runs."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from xlsales.core.commission import OrderEarnings
from xlsales.core.models import Collection, Day, Num, OptDay, OptText, Order, Progress, Record, Text
from xlsales.core.money import ZERO, pct, to_fen, yuan
from xlsales.core.problems import Problems
from xlsales.core.rulebook import Rulebook, StageName

PAYOUT_SHEET = "提成发放表"
COLLECTION_SHEET = "回款"
PROGRESS_SHEET = "进度"


class Item(StrEnum):
    COMMISSION = "提成"
    MARGIN_BONUS = "毛利奖"
    BREAKTHROUGH = "战略突破奖"
    RANKING_AWARD = "排名奖"
    CLAWBACK = "追回"
    ADJUSTMENT = "调整"
    REVERSAL = "冲回"


CORRECTIONS = (Item.CLAWBACK, Item.ADJUSTMENT, Item.REVERSAL)
RANKING_STAGE = "月度排名"


class PayStatus(StrEnum):
    DUE = "待发"
    PAID = "已发"
    OVERDUE = "逾期"
    CANCELLED = "已取消"


@dataclass(slots=True)
class PayoutLine:
    """A row of 提成发放表. `year` is the plan year the line belongs to (of its order or month)."""

    line_id: str
    rep_id: str
    name: str
    order_id: str | None
    item: Item
    stage: str
    event_date: dt.date
    due_date: dt.date
    amount: Decimal
    explanation: str
    status: PayStatus
    paid_date: dt.date | None
    year: int

    @property
    def base_id(self) -> str:
        return self.line_id.split("#", 1)[0]


class LedgerEntry(Record):
    """A row of the existing 提成发放表, as finance left it (read back before every run)."""

    line_id: Text = Field(alias="行ID")
    rep_id: Text = Field(alias="工号")
    name: OptText = Field(None, alias="姓名")
    order_id: OptText = Field(None, alias="订单号")
    item: Text = Field(alias="项目")
    stage: OptText = Field(None, alias="阶段")
    event_date: Day = Field(alias="事件日期")
    due_date: OptDay = Field(None, alias="应发日期")
    amount: Num = Field(alias="金额")
    explanation: OptText = Field(None, alias="计算说明")
    status: OptText = Field(None, alias="状态")
    paid_date: OptDay = Field(None, alias="实发日期")


def line_id(rep: str, order: str | None, item: Item, stage: str, event: dt.date | str) -> str:
    """Stable ID made from what the line is: rep, order, component, stage, event."""
    when = event.strftime("%Y%m%d") if isinstance(event, dt.date) else event
    return "/".join((rep, order or "-", item.value, stage, when))


@dataclass(frozen=True, slots=True)
class Release:
    stage: StageName
    date: dt.date
    before: Decimal  # the component's cumulative released fraction before this event
    after: Decimal
    detail: str


class OrderEvents:
    """Collections and progress of each order, as of the evaluation date."""

    def __init__(self, orders: dict[str, Order], collections: Iterable[Collection], progress: Iterable[Progress],
                 evaluation_date: dt.date, problems: Problems) -> None:
        self.collections: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
        self.progress: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
        by_order: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        rows: dict[str, list[Collection]] = defaultdict(list)
        for c in collections:
            if c.order_id not in orders:
                problems.error(COLLECTION_SHEET, c.row, "订单号", c.order_id,
                               f"订单表里没有订单号“{c.order_id}”：请核对订单号")
            elif c.date <= evaluation_date:
                by_order[c.order_id][c.date] += c.amount
                rows[c.order_id].append(c)
        for order_id, per_day in by_order.items():
            self.collections[order_id] = sorted(per_day.items())
            _flag_over_collection(orders[order_id], rows[order_id], problems)
        for p in progress:
            if p.order_id not in orders:
                problems.error(PROGRESS_SHEET, p.row, "订单号", p.order_id,
                               f"订单表里没有订单号“{p.order_id}”：请核对订单号")
            elif p.date <= evaluation_date:
                self.progress[p.order_id].append((p.date, p.cumulative))
        for points in self.progress.values():
            points.sort()
            best = ZERO
            for i, (day, value) in enumerate(points):
                best = max(best, value)
                points[i] = (day, best)


def _flag_over_collection(order: Order, rows: list[Collection], problems: Problems) -> None:
    total = ZERO
    for c in sorted(rows, key=lambda c: (c.date, c.row or 0)):
        before, total = total, total + c.amount
        if total > order.amount >= before:
            problems.warn(COLLECTION_SHEET, c.row, "回款金额", c.amount,
                          f"订单“{order.order_id}”累计回款 {yuan(total)} 超过合同金额 {yuan(order.amount)}："
                          "超出部分不再发放提成，请核对回款")


def releases(order: Order, book: Rulebook, events: OrderEvents) -> list[Release]:
    """The share of a component released at each event, cumulatively, in date order."""
    shares = {s.stage: s.share for s in book.stages if s.share > 0}
    steps: list[tuple[dt.date, int, StageName, Decimal, str]] = []
    order_of = {s: i for i, s in enumerate(StageName)}
    if StageName.SIGNING in shares:
        steps.append((order.signed, 0, StageName.SIGNING, shares[StageName.SIGNING], "签约"))
    if StageName.REVENUE in shares:
        previous = ZERO
        for day, cumulative in events.progress.get(order.order_id, []):
            if cumulative > previous:
                steps.append((day, order_of[StageName.REVENUE], StageName.REVENUE,
                              shares[StageName.REVENUE] * (cumulative - previous),
                              f"完工进度 {pct(previous)}→{pct(cumulative)}"))
                previous = cumulative
    if StageName.COLLECTION in shares and order.amount > 0:
        collected, previous = ZERO, ZERO
        for day, amount in events.collections.get(order.order_id, []):
            collected += amount
            ratio = min(collected / order.amount, Decimal(1))
            if ratio > previous:
                steps.append((day, order_of[StageName.COLLECTION], StageName.COLLECTION,
                              shares[StageName.COLLECTION] * (ratio - previous),
                              f"回款进度 {pct(previous)}→{pct(ratio)}（累计回款 {yuan(collected)}÷合同 {yuan(order.amount)}）"))
                previous = ratio
    if StageName.COMPLETION in shares and order.completed is not None and order.completed <= book.evaluation_date:
        steps.append((order.completed, order_of[StageName.COMPLETION], StageName.COMPLETION,
                      shares[StageName.COMPLETION], f"完工 {order.completed.isoformat()}"))
    steps.sort(key=lambda s: (s[0], s[1]))
    out: list[Release] = []
    released = ZERO
    for day, _, stage, fraction, detail in steps:
        share = next(s.share for s in book.stages if s.stage is stage)
        text = f"{stage.value} {pct(share)}" + ("" if stage is StageName.SIGNING else f" × {detail}")
        out.append(Release(stage, day, released, released + fraction, text))
        released += fraction
    return out


def component_lines(rep: str, name: str, order: Order, item: Item, total: Decimal, what: str,
                    steps: list[Release], book: Rulebook) -> list[PayoutLine]:
    """One line per release; amounts rounded cumulatively so the lines add up to the rounded total."""
    lines: list[PayoutLine] = []
    delay = dt.timedelta(days=book.params.payout_delay_days)
    for step in steps:
        amount = to_fen(total * step.after) - to_fen(total * step.before)
        if amount == 0:
            continue
        lines.append(PayoutLine(
            line_id=line_id(rep, order.order_id, item, step.stage.value, step.date),
            rep_id=rep, name=name, order_id=order.order_id, item=item, stage=step.stage.value,
            event_date=step.date, due_date=step.date + delay, amount=amount,
            explanation=f"{item.value} {yuan(total)}（{what}）× {step.detail} = {yuan(amount)}",
            status=PayStatus.DUE, paid_date=None, year=order.signed.year,
        ))
    return lines


def order_lines(earnings: OrderEarnings, name: str, book: Rulebook, events: OrderEvents) -> list[PayoutLine]:
    order = earnings.order
    steps = releases(order, book, events)
    lines = component_lines(order.rep_id, name, order, Item.COMMISSION, earnings.commission,
                            earnings.commission_text, steps, book)
    if earnings.bonus:
        lines += component_lines(order.rep_id, name, order, Item.MARGIN_BONUS, earnings.bonus,
                                 earnings.bonus_text, steps, book)
    return lines


def single_line(rep: str, name: str, order_id: str | None, item: Item, stage: str, event: dt.date,
                amount: Decimal, explanation: str, year: int, book: Rulebook, key: str | None = None) -> PayoutLine:
    return PayoutLine(
        line_id=line_id(rep, order_id, item, stage, key or event),
        rep_id=rep, name=name, order_id=order_id, item=item, stage=stage, event_date=event,
        due_date=event + dt.timedelta(days=book.params.payout_delay_days), amount=to_fen(amount),
        explanation=explanation, status=PayStatus.DUE, paid_date=None, year=year,
    )


@dataclass(frozen=True, slots=True)
class Forfeiture:
    """A lost must-win account: its owner's bonus for the year is zero."""

    rep_id: str
    year: int
    date: dt.date
    customer: str
    opportunity: str

    @property
    def reason(self) -> str:
        return f"必保客户“{self.customer}”丢单（商机 {self.opportunity}，{self.date.isoformat()}），{self.year} 年奖金清零"


def reconcile(fresh: list[PayoutLine], previous: Iterable[LedgerEntry], forfeits: dict[tuple[str, int], Forfeiture],
              frozen: set[tuple[str, int]], year_of_order: dict[str, int], book: Rulebook) -> list[PayoutLine]:
    """Merge what arises now with finance's ledger.

    - a paid line keeps its amount and 实发日期; a difference becomes an 调整 line, a paid line that
      no longer arises gets a 冲回 line, a paid line of a forfeited year gets a 追回 line;
    - unpaid lines are recomputed freely; unpaid lines of a forfeited year become 已取消;
    - lines of a (rep, year) that could not be computed this run are kept exactly as they were.
    """
    delay = dt.timedelta(days=book.params.payout_delay_days)
    kept: list[PayoutLine] = []
    paid_by_base: dict[str, list[PayoutLine]] = defaultdict(list)
    for entry in previous:
        line = _from_ledger(entry, year_of_order, book)
        if (line.rep_id, line.year) in frozen:
            kept.append(line)
        elif line.paid_date is not None:
            paid_by_base[line.base_id].append(line)

    out: list[PayoutLine] = list(kept)
    for line in fresh:
        if (line.rep_id, line.year) in frozen:
            continue
        paid = paid_by_base.pop(line.line_id, [])
        forfeit = forfeits.get((line.rep_id, line.year))
        if not paid:
            if forfeit is not None:
                line = replace(line, status=PayStatus.CANCELLED,
                               explanation=f"{line.explanation}；已取消：{forfeit.reason}")
            out.append(line)
            continue
        out.extend(paid)
        target = ZERO if forfeit is not None else line.amount
        out.extend(_correction(line, paid, target, forfeit, delay))
    for paid in paid_by_base.values():  # paid lines that no longer arise
        out.extend(paid)
        first = paid[0]
        forfeit = forfeits.get((first.rep_id, first.year))
        out.extend(_correction(first, paid, ZERO, forfeit, delay, reversal=True))
    return out


def _correction(line: PayoutLine, paid: list[PayoutLine], target: Decimal, forfeit: Forfeiture | None,
                delay: dt.timedelta, reversal: bool = False) -> list[PayoutLine]:
    paid_total = sum((p.amount for p in paid), ZERO)
    delta = target - paid_total
    if delta == 0:
        return []
    base = line.base_id
    number = len(paid)  # paid lines in the family: a new correction gets the next number
    if forfeit is not None:
        item, event, why = Item.CLAWBACK, forfeit.date, forfeit.reason
    elif reversal:
        item, event, why = Item.REVERSAL, line.event_date, "该行已发放，但按现有数据已不再产生"
    else:
        item, event, why = Item.ADJUSTMENT, line.event_date, f"重算为 {yuan(target)}"
    return [PayoutLine(
        line_id=f"{base}#{item.value}{number}", rep_id=line.rep_id, name=line.name, order_id=line.order_id,
        item=item, stage=line.stage, event_date=event, due_date=event + delay, amount=delta,
        explanation=f"{why}：已发 {yuan(paid_total)}，应为 {yuan(target)}，差额 {yuan(delta)}",
        status=PayStatus.DUE, paid_date=None, year=line.year,
    )]


def _from_ledger(entry: LedgerEntry, year_of_order: dict[str, int], book: Rulebook) -> PayoutLine:
    try:
        item = Item(entry.item)
    except ValueError:
        item = Item.ADJUSTMENT
    year = year_of_order.get(entry.order_id or "", entry.event_date.year)
    return PayoutLine(
        line_id=entry.line_id, rep_id=entry.rep_id, name=entry.name or "", order_id=entry.order_id,
        item=item, stage=entry.stage or "", event_date=entry.event_date,
        due_date=entry.due_date or entry.event_date + dt.timedelta(days=book.params.payout_delay_days),
        amount=entry.amount, explanation=entry.explanation or "",
        status=PayStatus.PAID if entry.paid_date else PayStatus.DUE, paid_date=entry.paid_date, year=year,
    )


def settle_status(lines: list[PayoutLine], evaluation_date: dt.date) -> None:
    for line in lines:
        if line.paid_date is not None:
            line.status = PayStatus.PAID
        elif line.status is not PayStatus.CANCELLED:
            line.status = PayStatus.OVERDUE if evaluation_date > line.due_date else PayStatus.DUE


@dataclass(frozen=True, slots=True)
class OnTimeRate:
    """及时率 for the lines due in one month."""

    month: str
    due: int
    on_time: int

    @property
    def rate(self) -> Decimal:
        return Decimal(self.on_time) / Decimal(self.due) if self.due else Decimal(0)


def on_time_rates(lines: Iterable[PayoutLine], evaluation_date: dt.date) -> list[OnTimeRate]:
    due: dict[str, int] = defaultdict(int)
    ok: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.status is PayStatus.CANCELLED or line.due_date > evaluation_date:
            continue
        month = f"{line.due_date.year:04d}-{line.due_date.month:02d}"
        due[month] += 1
        if line.paid_date is not None and line.paid_date <= line.due_date:
            ok[month] += 1
    return [OnTimeRate(m, due[m], ok[m]) for m in sorted(due)]
