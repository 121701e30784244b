"""§4.4–4.6 Payout lines: staged release with due dates, must-win forfeiture with clawbacks, and
the ledger rules that keep finance's 实发日期 and paid amounts intact across re-runs."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import NamedTuple, TypeVar

from pydantic import Field

from xlsales.core.commission import OrderEarnings
from xlsales.core.models import ORDER_SHEET, Amount, Collection, Day, OptDay, OptText, Order, Progress, Record, Text
from xlsales.core.money import FEN, ONE, ZERO, exact_yuan, pct, to_fen, yuan
from xlsales.core.problems import Problems, Rejected
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
    explanation: str | LineText  # str() gives the text
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
    amount: Amount = Field(alias="金额")
    explanation: OptText = Field(None, alias="计算说明")
    status: OptText = Field(None, alias="状态")
    paid_date: OptDay = Field(None, alias="实发日期")


def line_id(rep: str, order: str | None, item: Item, stage: str, event: dt.date | str) -> str:
    """Stable ID made from what the line is: rep, order, component, stage, event."""
    when = event.strftime("%Y%m%d") if isinstance(event, dt.date) else event
    return "/".join((rep, order or "-", item.value, stage, when))


class Release(NamedTuple):
    """One event that releases part of an order's components: `low`→`high` is the progress or
    collection ratio it moved (and `collected` the cumulative collections), kept for the text.
    Sorted as a tuple: by date, then stage order (a stage has at most one event a day)."""

    date: dt.date
    rank: int  # the stage's place in 签约, 收入确认, 回款, 完工
    stage: str
    label: str  # "回款 50%"
    low: Decimal
    high: Decimal
    collected: Decimal

    def detail(self, contract: str) -> str:
        """`contract`: the contract amount as yuan() text."""
        if self.stage == _COLLECTION:
            return (f"{self.label} × 回款进度 {pct(self.low)}→{pct(self.high)}"
                    f"（累计回款 {yuan(self.collected)}÷合同 {contract}）")
        if self.stage == _REVENUE:
            return f"{self.label} × 完工进度 {pct(self.low)}→{pct(self.high)}"
        if self.stage == _COMPLETION:
            return f"{self.label} × 完工 {self.date.isoformat()}"
        return self.label


class OrderTexts:
    """What the lines of one order share in their 计算说明, each part formatted once, when a line is
    first read: the component's head (提成 12,345.00（累计 …）× ), each release's detail and the
    contract amount. An order's releases give a line per component, so this halves the formatting
    and more."""

    __slots__ = ("amount", "details", "earnings", "heads")

    def __init__(self, earnings: OrderEarnings) -> None:
        self.earnings = earnings
        self.heads: dict[str, str] = {}
        self.details: dict[int, str] = {}  # by id() of the Release, which every line keeps alive
        self.amount: str | None = None  # yuan(contract amount)

    def contract(self) -> str:
        if self.amount is None:
            self.amount = yuan(self.earnings.order.amount)
        return self.amount

    def head(self, item: str) -> str:
        text = self.heads.get(item)
        if text is None:
            e = self.earnings
            if item == _COMMISSION_TEXT:
                total = exact_yuan(e.commission)
                what = e.commission_explained(total, self.contract())
            else:
                total = exact_yuan(e.bonus)
                what = e.bonus_explained(total, self.contract())
            text = self.heads[item] = f"{item} {total}（{what}）× "
        return text

    def detail(self, release: Release) -> str:
        text = self.details.get(id(release))
        if text is None:
            text = self.details[id(release)] = release.detail(self.contract())
        return text


class LineText:
    """The 计算说明 of a released line, formatted when it is read (str()): a run makes a quarter of
    a million lines and formatting them all up front would cost more than computing them."""

    __slots__ = ("amount", "carried", "item", "release", "texts")

    def __init__(self, item: str, texts: OrderTexts, release: Release, amount: Decimal,
                 carried: tuple[Decimal, Decimal] | None = None) -> None:
        self.item, self.texts, self.release, self.amount = item, texts, release, amount
        self.carried = carried  # (released before, released after) when the product alone rounds otherwise

    def __str__(self) -> str:
        texts = self.texts  # the parts' dictionaries looked up here: this runs for every line
        head = texts.heads.get(self.item) or texts.head(self.item)
        detail = texts.details.get(id(self.release)) or texts.detail(self.release)
        text = f"{head}{detail} = {self.amount:,}"
        if self.carried is not None:
            before, after = self.carried
            text += f"（按累计取整：累计应发 {after:,} − 此前已发 {before:,}）"
        return text

    def __repr__(self) -> str:
        return repr(str(self))

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other) if isinstance(other, (LineText, str)) else NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


def format_texts(lines: Iterable[PayoutLine]) -> None:
    """Turn every line's lazy 计算说明 into its text now (a file run does this while the log is
    still loading, rather than when it writes 提成发放表)."""
    for line in lines:
        if type(line.explanation) is LineText:
            line.explanation = str(line.explanation)


class OrderEvents:
    """Collections and progress of each order, as of the evaluation date; collections or progress
    on the same day are one event. Those dated after the evaluation date, or of an order signed
    after it (`later`), are left out with one warning a sheet, as orders and log entries are."""

    def __init__(self, orders: dict[str, Order], collections: Iterable[Collection], progress: Iterable[Progress],
                 evaluation_date: dt.date, problems: Problems, later: AbstractSet[str] = frozenset(),
                 rejected: Rejected | None = None) -> None:
        self.collections: dict[str, list[tuple[dt.date, Decimal]]] = {}
        self.progress: dict[str, list[tuple[dt.date, Decimal]]] = {}
        counted = _as_of(COLLECTION_SHEET, "回款日期", "笔回款", collections, orders, later, evaluation_date,
                         rejected or Rejected(), problems)
        rows: dict[str, list[Collection]] = defaultdict(list)
        for c in counted:
            rows[c.order_id].append(c)
        for order_id, mine in rows.items():
            mine.sort(key=lambda c: (c.date, c.row or 0))
            merged: list[tuple[dt.date, Decimal]] = []
            for c in mine:
                if merged and merged[-1][0] == c.date:
                    merged[-1] = (c.date, merged[-1][1] + c.amount)
                else:
                    merged.append((c.date, c.amount))
            self.collections[order_id] = merged
            _flag_over_collection(orders[order_id], mine, problems)
        for p in _as_of(PROGRESS_SHEET, "日期", "条进度", progress, orders, later, evaluation_date,
                        rejected or Rejected(), problems):
            self.progress.setdefault(p.order_id, []).append((p.date, p.cumulative))
        for order_id, points in self.progress.items():
            points.sort()
            merged_points: list[tuple[dt.date, Decimal]] = []
            best = ZERO
            for day, value in points:
                best = max(best, value)  # completion never goes back: a lower figure releases nothing
                if merged_points and merged_points[-1][0] == day:
                    merged_points[-1] = (day, best)  # one event a day, as for collections
                else:
                    merged_points.append((day, best))
            self.progress[order_id] = merged_points


_Dated = TypeVar("_Dated", Collection, Progress)


def _as_of(sheet: str, header: str, noun: str, rows: Iterable[_Dated], orders: dict[str, Order], later: AbstractSet[str],
           ev: dt.date, rejected: Rejected, problems: Problems) -> list[_Dated]:
    """The collections (or progress rows) that count as of `ev`. Those dated before their order's
    signing are errors; those dated after `ev`, or of an order signed after it (`later`), are left
    out with one warning for the sheet; those of an order that is nowhere are errors."""
    counted: list[_Dated] = []
    after: list[_Dated] = []
    what = "回款日期" if sheet == COLLECTION_SHEET else "进度日期"
    for r in rows:
        order = orders.get(r.order_id)
        if order is not None and r.date < order.signed:
            problems.error(sheet, r.row, header, r.date,
                           f"{what}早于订单“{r.order_id}”的签约日期 {order.signed}：请核对{header}（这一行不计算）")
        elif order is not None and r.date <= ev:
            counted.append(r)
        elif order is not None or r.order_id in later:
            after.append(r)
        else:
            problems.error(sheet, r.row, "订单号", r.order_id, rejected.message(
                ORDER_SHEET, r.order_id, f"订单表里没有订单号“{r.order_id}”：请核对订单号"))
    if after:
        first = min(after, key=lambda r: r.row or 0)
        problems.warn(sheet, first.row, header, first.date,
                      f"有 {len(after)} {noun}的日期晚于评估日期 {ev}（或其订单在评估日期之后签约），本次不计入（从这一行起）")
    return counted


def _flag_over_collection(order: Order, rows: list[Collection], problems: Problems) -> None:
    total = ZERO
    for c in rows:
        before, total = total, total + c.amount
        if total <= order.amount:
            continue
        if before < order.amount:
            problems.warn(COLLECTION_SHEET, c.row, "回款金额", c.amount,
                          f"订单“{order.order_id}”累计回款 {yuan(total)} 超过合同金额 {yuan(order.amount)}："
                          "超出部分不再发放提成，请核对回款")
        else:  # every later collection is wholly above the contract: each one is flagged
            problems.warn(COLLECTION_SHEET, c.row, "回款金额", c.amount,
                          f"订单“{order.order_id}”此前已回款 {yuan(before)}，已达合同金额 {yuan(order.amount)}："
                          "这笔回款不再发放提成，请核对回款")


_PRO_RATA = frozenset((StageName.REVENUE.value, StageName.COLLECTION.value))
_SIGNING, _REVENUE, _COLLECTION, _COMPLETION = (s.value for s in StageName)


class ReleasePlan:
    """The stage table of a run, prepared once: shares, texts and the payout delay."""

    def __init__(self, book: Rulebook) -> None:
        self.shares: dict[str, Decimal] = {s.stage.value: s.share for s in book.stages if s.share > 0}
        self.labels = {stage: f"{stage} {pct(share)}" for stage, share in self.shares.items()}
        self.delay = dt.timedelta(days=book.params.payout_delay_days)
        self.evaluation_date = book.evaluation_date
        self._day_keys: dict[dt.date, tuple[str, dt.date, PayStatus]] = {}  # event day -> (YYYYMMDD, due, status)

    def _day(self, day: dt.date) -> tuple[str, dt.date, PayStatus]:
        due = day + self.delay
        known = self._day_keys[day] = (f"{day.year:04d}{day.month:02d}{day.day:02d}", due,
                                       unpaid_status(due, self.evaluation_date))
        return known

    def releases(self, order: Order, events: OrderEvents) -> list[Release]:
        """The events that release part of an order's components, in date order."""
        shares, labels = self.shares, self.labels
        steps: list[Release] = []
        if _SIGNING in shares:
            steps.append(Release(order.signed, 0, _SIGNING, labels[_SIGNING], ZERO, ZERO, ZERO))
        if _REVENUE in shares:
            previous = ZERO
            for day, cumulative in events.progress.get(order.order_id, ()):
                if cumulative > previous:
                    steps.append(Release(day, 1, _REVENUE, labels[_REVENUE], previous, cumulative, ZERO))
                    previous = cumulative
        if _COLLECTION in shares and order.amount > 0:
            contract = order.amount
            collected, previous = ZERO, ZERO
            for day, amount in events.collections.get(order.order_id, ()):
                collected += amount
                ratio = min(collected / contract, ONE)
                if ratio > previous:
                    steps.append(Release(day, 2, _COLLECTION, labels[_COLLECTION], previous, ratio, collected))
                    previous = ratio
        if _COMPLETION in shares and order.completed is not None and order.completed <= self.evaluation_date:
            steps.append(Release(order.completed, 3, _COMPLETION, labels[_COMPLETION], ZERO, ZERO, ZERO))
        if len(steps) > 1:
            steps.sort()  # by (date, stage order): a stage has at most one event a day, so ties stop there
        return steps

    def order_lines(self, earnings: OrderEarnings, name: str, events: OrderEvents) -> list[PayoutLine]:
        """One line per release and component (the commission's lines, then the margin bonus's), in one
        pass over the releases. Each component is rounded cumulatively: line = round(total × released
        after) − round(total × released before), so an order's lines add up to its rounded components.
        Where that differs from rounding the line's own product (a half fen carried from an earlier
        line), its 计算说明 says so with both cumulative figures, so a calculator still checks it."""
        commission, bonus = earnings.commission, earnings.bonus
        if not commission and not bonus:
            return []  # below the red line and no bonus: nothing to release
        order = earnings.order
        rep, order_id, year = order.rep_id, order.order_id, order.signed.year
        shares, days = self.shares, self._day_keys
        commission_id, bonus_id = f"{rep}/{order_id}/{_COMMISSION_TEXT}/", f"{rep}/{order_id}/{_BONUS_TEXT}/"
        lines: list[PayoutLine] = []
        bonus_lines: list[PayoutLine] = []
        paid_commission = paid_bonus = ZERO
        # The released share after each event is recomputed from each stage's own progress (share ×
        # fraction), not accumulated: a running sum of 28-digit quotients can end at 0.999…9, not 1.
        terms = dict.fromkeys(shares, ZERO)
        texts = OrderTexts(earnings)
        before = ZERO
        for step in self.releases(order, events):
            stage = step.stage
            terms[stage] = shares[stage] * step.high if stage in _PRO_RATA else shares[stage]
            after = sum(terms.values(), ZERO)
            day = step.date
            key, due, status = days.get(day) or self._day(day)
            released = (commission * after).quantize(FEN, ROUND_HALF_UP)
            if released != paid_commission:
                amount = released - paid_commission
                carried = None
                if paid_commission and amount != (commission * (after - before)).quantize(FEN, ROUND_HALF_UP):
                    carried = (paid_commission, released)
                paid_commission = released
                lines.append(PayoutLine(
                    f"{commission_id}{stage}/{key}", rep, name, order_id, _COMMISSION, stage, day, due, amount,
                    LineText(_COMMISSION_TEXT, texts, step, amount, carried), status, None, year,
                ))
            if bonus:
                released = (bonus * after).quantize(FEN, ROUND_HALF_UP)
                if released != paid_bonus:
                    amount = released - paid_bonus
                    carried = None
                    if paid_bonus and amount != (bonus * (after - before)).quantize(FEN, ROUND_HALF_UP):
                        carried = (paid_bonus, released)
                    paid_bonus = released
                    bonus_lines.append(PayoutLine(
                        f"{bonus_id}{stage}/{key}", rep, name, order_id, _BONUS, stage, day, due, amount,
                        LineText(_BONUS_TEXT, texts, step, amount, carried), status, None, year,
                    ))
            before = after
        return lines + bonus_lines if bonus_lines else lines


_COMMISSION, _BONUS = Item.COMMISSION, Item.MARGIN_BONUS
_COMMISSION_TEXT, _BONUS_TEXT = _COMMISSION.value, _BONUS.value  # enum attribute lookups cost, per line


def single_line(rep: str, name: str, order_id: str | None, item: Item, stage: str, event: dt.date,
                amount: Decimal, explanation: str, year: int, book: Rulebook, key: str | None = None) -> PayoutLine:
    due = event + dt.timedelta(days=book.params.payout_delay_days)
    return PayoutLine(
        line_id=line_id(rep, order_id, item, stage, key or event),
        rep_id=rep, name=name, order_id=order_id, item=item, stage=stage, event_date=event,
        due_date=due, amount=to_fen(amount), explanation=explanation,
        status=unpaid_status(due, book.evaluation_date), paid_date=None, year=year,
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
        # a line is made only for what is kept: an unpaid line outside the frozen groups is recomputed
        # from scratch, and on a re-run that is nearly the whole ledger (0.5 s of 122,617 lines)
        year = _ledger_year(entry, year_of_order)
        if (entry.rep_id, year) in frozen:
            kept.append(_from_ledger(entry, year, book))
        elif entry.paid_date is not None:
            line = _from_ledger(entry, year, book)
            paid_by_base[line.base_id].append(line)

    out: list[PayoutLine] = list(kept)
    for line in fresh:
        owner = (line.rep_id, line.year)
        if owner in frozen:
            continue
        paid = paid_by_base.pop(line.line_id, None) if paid_by_base else None
        forfeit = forfeits.get(owner) if forfeits else None
        if not paid:
            if forfeit is not None:
                line = replace(line, status=PayStatus.CANCELLED,
                               explanation=f"{line.explanation}；已取消：{forfeit.reason}")
            out.append(line)
            continue
        out.extend(paid)
        target = ZERO if forfeit is not None else line.amount
        out.extend(_correction(line, paid, target, forfeit, delay, book.evaluation_date))
    for paid in paid_by_base.values():  # paid lines that no longer arise
        out.extend(paid)
        first = paid[0]
        forfeit = forfeits.get((first.rep_id, first.year))
        out.extend(_correction(first, paid, ZERO, forfeit, delay, book.evaluation_date, reversal=True))
    return out


def _correction(line: PayoutLine, paid: list[PayoutLine], target: Decimal, forfeit: Forfeiture | None,
                delay: dt.timedelta, evaluation_date: dt.date, reversal: bool = False) -> list[PayoutLine]:
    paid_total = sum((p.amount for p in paid), ZERO)
    delta = target - paid_total
    if delta == 0:
        return []
    if forfeit is not None or reversal:
        undone = _line_by_line(paid, forfeit, delay, evaluation_date)
        if paid_total + sum((c.amount for c in undone), ZERO) == 0:
            return undone
        # otherwise (a ledger from before these were made line by line): one line settles the rest
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
        status=unpaid_status(event + delay, evaluation_date), paid_date=None, year=line.year,
    )]


def _line_by_line(paid: list[PayoutLine], forfeit: Forfeiture | None, delay: dt.timedelta,
                  evaluation_date: dt.date) -> list[PayoutLine]:
    """A line that undoes each paid line of a family: rules §4.5 "one 追回 line per paid line
    reverses them, dated at the loss" when the year is forfeited, else §4.6's 冲回 ("if the paid line
    no longer arises at all, a 冲回 line reverses it"), dated at the paid line's event. Each one's
    行ID is its paid line's with #追回 or #冲回, so a re-run makes the same lines, and a line undone
    (and that booked) before is not undone again."""
    item = Item.CLAWBACK if forfeit is not None else Item.REVERSAL
    ids = {p.line_id for p in paid}
    out: list[PayoutLine] = []
    for p in paid:
        line_id = f"{p.line_id}#{item.value}"
        if p.item is item or line_id in ids or not p.amount:
            continue
        event = forfeit.date if forfeit is not None else p.event_date
        why = forfeit.reason if forfeit is not None else "该行已发放，但按现有数据已不再产生"
        paid_on = p.paid_date.isoformat() if p.paid_date else ""
        out.append(PayoutLine(
            line_id=line_id, rep_id=p.rep_id, name=p.name, order_id=p.order_id, item=item, stage=p.stage,
            event_date=event, due_date=event + delay, amount=-p.amount,
            explanation=f"{why}：{item.value} {p.line_id}（{paid_on} 已发 {yuan(p.amount)}），{item.value} {yuan(-p.amount)}",
            status=unpaid_status(event + delay, evaluation_date), paid_date=None, year=p.year,
        ))
    return out


def _ledger_year(entry: LedgerEntry, year_of_order: dict[str, int]) -> int:
    """The plan year of a ledger line: its order's, else its event's."""
    return year_of_order.get(entry.order_id or "", entry.event_date.year)


def _from_ledger(entry: LedgerEntry, year: int, book: Rulebook) -> PayoutLine:
    """A row of finance's ledger as a line of plan year `year` (_ledger_year)."""
    try:
        item = Item(entry.item)
    except ValueError:
        item = Item.ADJUSTMENT
    due = entry.due_date or entry.event_date + dt.timedelta(days=book.params.payout_delay_days)
    return PayoutLine(
        line_id=entry.line_id, rep_id=entry.rep_id, name=entry.name or "", order_id=entry.order_id,
        item=item, stage=entry.stage or "", event_date=entry.event_date,
        due_date=due, amount=entry.amount, explanation=entry.explanation or "",
        status=PayStatus.PAID if entry.paid_date else unpaid_status(due, book.evaluation_date),
        paid_date=entry.paid_date, year=year,
    )


def unpaid_status(due: dt.date, evaluation_date: dt.date) -> PayStatus:
    """Every line gets its status when it is made (已发 when paid, 已取消 when forfeited), so the
    quarter of a million lines of a run need no second pass."""
    return PayStatus.OVERDUE if evaluation_date > due else PayStatus.DUE


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
    # counted by due date first, then by month: a run has a few hundred due dates and a quarter of a
    # million lines, and a (year, month) key a line costs more than the count itself
    due_on: dict[dt.date, int] = defaultdict(int)
    ok_on: dict[dt.date, int] = defaultdict(int)
    cancelled = PayStatus.CANCELLED
    for line in lines:
        day = line.due_date
        if day > evaluation_date or line.status is cancelled:
            continue
        due_on[day] += 1
        paid = line.paid_date
        if paid is not None and paid <= day:
            ok_on[day] += 1
    due: dict[tuple[int, int], int] = defaultdict(int)
    ok: dict[tuple[int, int], int] = defaultdict(int)
    for day, n in due_on.items():
        due[(day.year, day.month)] += n
        ok[(day.year, day.month)] += ok_on.get(day, 0)
    return [OnTimeRate(f"{y:04d}-{m:02d}", due[(y, m)], ok[(y, m)]) for y, m in sorted(due)]
