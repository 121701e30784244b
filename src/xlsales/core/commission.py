"""§4.1–4.3 What an order earns: marginal-band commission with over-target acceleration, the
gross-margin red line and margin band, and the once-per-customer strategic breakthrough award.
Amounts here are exact (unrounded); rounding happens when payout lines are produced."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from operator import attrgetter
from typing import NamedTuple

from xlsales.core.models import Customer, Order
from xlsales.core.money import ZERO, clamp, exact_yuan, num, pct, yuan
from xlsales.core.rulebook import Rulebook


class Segment(NamedTuple):  # NamedTuples: a big team has 50,000 orders a year
    amount: Decimal
    multiplier: Decimal


def band_edges(book: Rulebook, floor: Decimal, challenge: Decimal) -> list[tuple[Decimal, Decimal]]:
    """(start, multiplier) of each band, ascending; a band of zero width (floor == challenge)
    gives way to the band that starts at the same point after it."""
    edges: dict[Decimal, Decimal] = {}
    for band in book.bands:  # ordered 0, 保底, 挑战
        edges[book.band_floor(band.start, floor, challenge)] = band.multiplier
    return sorted(edges.items())


def split_into_bands(before: Decimal, amount: Decimal, edges: list[tuple[Decimal, Decimal]]) -> list[Segment]:
    """Split the increment [before, before + amount) of the year-to-date total at band edges."""
    segments: list[Segment] = []
    after = before + amount
    last = len(edges) - 1
    for i, (start, multiplier) in enumerate(edges):
        if i < last and edges[i + 1][0] <= before:
            continue  # this band is already full
        if start >= after:
            break
        high = after if i == last or edges[i + 1][0] > after else edges[i + 1][0]
        low = before if before > start else start
        if high > low:
            segments.append(Segment(high - low, multiplier))
    return segments


def band_commission(before: Decimal, amount: Decimal, edges: list[tuple[Decimal, Decimal]], rate: Decimal) -> Decimal:
    return sum((s.amount * rate * s.multiplier for s in split_into_bands(before, amount, edges)), ZERO)


def margin_bonus(amount: Decimal, margin: Decimal, book: Rulebook) -> Decimal:
    """amount × clamp(margin − 下限, 0, 上限 − 下限) × 分成; nothing below the red line."""
    p = book.params
    if margin < p.margin_red_line:
        return ZERO
    return amount * clamp(margin - p.margin_bonus_low, ZERO, p.margin_bonus_high - p.margin_bonus_low) \
        * p.margin_bonus_share


class EarningsTexts:
    """The parts of the 计算说明 that depend only on the rules, formatted once per rep and year."""

    __slots__ = ("bonus_range", "bonus_share", "last_total", "low", "red_line", "times", "width")

    def __init__(self, book: Rulebook, edges: list[tuple[Decimal, Decimal]]) -> None:
        p = book.params
        self.red_line = pct(p.margin_red_line)
        self.times = {m: f"×{pct(p.base_rate)}×{num(m)}" for _, m in edges}
        self.low, self.width = p.margin_bonus_low, p.margin_bonus_high - p.margin_bonus_low
        self.bonus_range = f" 在 {pct(p.margin_bonus_low)}～{pct(p.margin_bonus_high)} 间计 "
        self.bonus_share = f")×{pct(p.margin_bonus_share)} = "
        # the year-to-date total after the order last explained, as text: the next order's "before"
        self.last_total: tuple[Decimal, str] | None = None

    def total(self, value: Decimal) -> str:
        """yuan(value) of a year-to-date total (formatted once for the order that ends there and the
        one that starts from it)."""
        last = self.last_total
        return last[1] if last is not None and last[0] == value else yuan(value)


class OrderEarnings(NamedTuple):
    """What one order earns. The texts are formatted only when asked for (a big team's year has
    tens of thousands of orders, and only the lines being written need their explanation)."""

    order: Order
    ytd_before: Decimal
    segments: tuple[Segment, ...]
    commission: Decimal
    bonus: Decimal
    below_red_line: bool
    texts: EarningsTexts

    @property
    def commission_text(self) -> str:
        return self.commission_explained(exact_yuan(self.commission), yuan(self.order.amount))

    @property
    def bonus_text(self) -> str:
        return self.bonus_explained(exact_yuan(self.bonus), yuan(self.order.amount))

    def commission_explained(self, commission: str, amount: str) -> str:
        """commission_text, given exact_yuan(commission) and yuan(order amount), which the payout
        lines' texts show too (formatted once an order: a big team's year explains 50,000)."""
        o, t = self.order, self.texts
        if self.below_red_line:
            return f"毛利率 {pct(o.margin)} 低于红线 {t.red_line}，不计提成（{amount} 仍计入累计业绩）"
        # a segment that is the whole order (within one band) shows the amount already formatted
        parts = " + ".join(f"{amount if s.amount == o.amount else yuan(s.amount)}{t.times[s.multiplier]}"
                           for s in self.segments) or "0"
        after = self.ytd_before + o.amount
        after_text = yuan(after)
        text = f"累计 {t.total(self.ytd_before)}→{after_text}：{parts} = {commission}"
        t.last_total = (after, after_text)
        return text

    def bonus_explained(self, bonus: str, amount: str) -> str:
        """bonus_text, given exact_yuan(bonus) and yuan(order amount) (see commission_explained)."""
        o, t = self.order, self.texts
        band = clamp(o.margin - t.low, ZERO, t.width)
        return f"{amount}×(毛利率 {pct(o.margin)}{t.bonus_range}{pct(band)}{t.bonus_share}{bonus}"


def year_earnings(orders: Iterable[Order], floor: Decimal, challenge: Decimal, book: Rulebook) -> list[OrderEarnings]:
    """A rep's orders of one year, in (签约日期, 订单号) order, each filling the year-to-date total."""
    p = book.params
    edges = band_edges(book, floor, challenge)
    texts = EarningsTexts(book, edges)
    rate, red_line = p.base_rate, p.margin_red_line
    total = ZERO
    out: list[OrderEarnings] = []
    for order in sorted(orders, key=attrgetter("signed", "order_id")):
        segments = tuple(split_into_bands(total, order.amount, edges))
        below = order.margin < red_line
        commission = ZERO if below else sum((s.amount * rate * s.multiplier for s in segments), ZERO)
        bonus = margin_bonus(order.amount, order.margin, book)
        out.append(OrderEarnings(order, total, segments, commission, bonus, below, texts))
        total += order.amount
    return out


def breakthrough_winners(orders: Iterable[Order], customers: dict[str, Customer]) -> dict[str, Order]:
    """Customer code -> the first order ever with that customer, for customers with an award."""
    first: dict[str, Order] = {}
    for order in orders:
        customer = customers.get(order.customer)
        if customer is None or not customer.breakthrough_award:
            continue
        best = first.get(order.customer)
        if best is None or (order.signed, order.order_id) < (best.signed, best.order_id):
            first[order.customer] = order
    return first
