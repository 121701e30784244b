"""Exact money: Decimal in 元, rounded half-up to the fen only when a line is produced."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
FEN = Decimal("0.01")


_PLACES = {n: Decimal(1).scaleb(-n) for n in range(0, 9)}


def to_fen(amount: Decimal) -> Decimal:
    """Round half-up to 0.01 元 (the only rounding money ever gets)."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def fen(amount: Decimal | None) -> Decimal | None:
    """to_fen for a money cell that may be empty: what a sheet shows is what it holds."""
    return None if amount is None else to_fen(amount)


def round_to(value: Decimal, places: int) -> Decimal:
    return value.quantize(_PLACES[places], rounding=ROUND_HALF_UP)


def clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    return max(low, min(high, value))


def yuan(amount: Decimal) -> str:
    """1234567.8 -> '1,234,567.80' (for 计算说明 texts)."""
    return f"{amount.quantize(FEN, ROUND_HALF_UP):,}"


def exact_yuan(amount: Decimal) -> str:
    """An amount that is not yet a line's, for a 计算说明: as yuan() when it is whole fen, else with
    every digit it has (24,691.345), so that a calculator gets the same line from it."""
    whole = amount.quantize(FEN, ROUND_HALF_UP)
    return f"{whole:,}" if whole == amount else f"{amount.normalize():,}"


def pct(rate: Decimal, places: int = 2) -> str:
    """0.025 -> '2.5%' without float noise; at most `places` decimals of a percent. Remembered:
    the 计算说明 of a big team's year ask for the same few rates and shares 150,000 times."""
    key = (rate, places)
    text = _PCT.get(key)
    if text is None:
        text = f"{(rate * 100).quantize(_PLACES[places], ROUND_HALF_UP).normalize():f}%"
        if len(_PCT) >= _PCT_MAX:
            _PCT.clear()
        _PCT[key] = text
    return text


_PCT: dict[tuple[Decimal, int], str] = {}  # equal Decimals (0.5, 0.50) give the same text, so share a key
_PCT_MAX = 100_000


def num(value: Decimal) -> str:
    """A plain number without trailing zeros: 1.50 -> '1.5'."""
    normal = value.normalize()
    return f"{normal:f}" if normal != normal.to_integral() else f"{normal.to_integral():f}"
