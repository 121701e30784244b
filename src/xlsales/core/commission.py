"""§4.1–4.3 What an order earns: marginal-band commission with over-target acceleration, the
gross-margin red line and margin band, and the once-per-customer strategic breakthrough award.
Amounts here are exact (unrounded); rounding happens when payout lines are produced."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from operator import attrgetter
from typing import NamedTuple

from xlsales.core.models import Customer, Order
from xlsales.core.money import ZERO, clamp, num, pct, yuan
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


class OrderEarnings(NamedTuple):
    order: Order
    ytd_before: Decimal
    segments: tuple[Segment, ...]
    commission: Decimal
    bonus: Decimal
    below_red_line: bool
    commission_text: str
    bonus_text: str


def year_earnings(orders: Iterable[Order], floor: Decimal, challenge: Decimal, book: Rulebook) -> list[OrderEarnings]:
    """A rep's orders of one year, in (签约日期, 订单号) order, each filling the year-to-date total."""
    p = book.params
    edges = band_edges(book, floor, challenge)
    # texts that do not depend on the order, formatted once
    rate, red_line = p.base_rate, pct(p.margin_red_line)
    times = {m: f"×{pct(rate)}×{num(m)}" for _, m in edges}
    low, width = p.margin_bonus_low, p.margin_bonus_high - p.margin_bonus_low
    bonus_range = f" 在 {pct(low)}～{pct(p.margin_bonus_high)} 间计 "
    bonus_share = f")×{pct(p.margin_bonus_share)} = "
    total = ZERO
    out: list[OrderEarnings] = []
    for order in sorted(orders, key=attrgetter("signed", "order_id")):
        segments = tuple(split_into_bands(total, order.amount, edges))
        amount_text, margin_text = yuan(order.amount), pct(order.margin)
        below = order.margin < p.margin_red_line
        if below:
            commission = ZERO
            text = f"毛利率 {margin_text} 低于红线 {red_line}，不计提成（{amount_text} 仍计入累计业绩）"
        else:
            commission = sum((s.amount * rate * s.multiplier for s in segments), ZERO)
            parts = " + ".join(f"{yuan(s.amount)}{times[s.multiplier]}" for s in segments)
            text = f"累计 {yuan(total)}→{yuan(total + order.amount)}：{parts or '0'} = {yuan(commission)}"
        bonus = margin_bonus(order.amount, order.margin, book)
        bonus_text = ""
        if bonus:  # no bonus, no bonus lines to explain
            band = clamp(order.margin - low, ZERO, width)
            bonus_text = f"{amount_text}×(毛利率 {margin_text}{bonus_range}{pct(band)}{bonus_share}{yuan(bonus)}"
        out.append(OrderEarnings(order, total, segments, commission, bonus, below, text, bonus_text))
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
