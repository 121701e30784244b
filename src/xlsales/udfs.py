"""Worksheet functions (UDFs) a manager types into a cell, e.g. =XS_COMMISSION(B2, C2, D2, 2%).

Plain functions over the core rules (no workbook access): the same numbers as the engine, one
value at a time, for what-if sums beside the data. In Excel they are imported through xlwings
(xlwings.conf: UDF Modules = xlsales.udfs); on Linux the xlwings decorators leave the functions as
they are, so they are tested as ordinary Python.

    XS_POINTS(分值, 系数, 角色系数, 次数)                      points of one log entry (§1)
    XS_TIER(关系分, 已达指标, [分级规则], [立场])              the relationship tier (§2)
    XS_WIN_PROB(关系分, 已达指标, [分级规则], [立场])          the tier's win probability (§2)
    XS_COMMISSION(金额, 保底, 挑战, [提成率], [此前累计])      order commission over the bands (§4.1)
    XS_MARGIN_BONUS(金额, 毛利率, [下限], [上限], [分成], [红线])  the margin bonus (§4.2)
    XS_DUE_DATE(事件日期, [天数])                              应发日期 (§4.4)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import xlwings as xw
from pydantic import ValidationError

from xlsales.core.commission import band_commission, band_edges, margin_bonus
from xlsales.core.models import Tier, parse_date, parse_decimal
from xlsales.core.money import to_fen
from xlsales.core.relationship import entry_points
from xlsales.core.rulebook import DEFAULT_ROLES, Rulebook, TierRule, _split_indicators, default_rulebook
from xlsales.core.tiers import tier_for
from xlsales.core.validation import explain

CATEGORY = "xlsales"
_EPOCH = dt.date(1899, 12, 30)
_TIER_HEADERS = ("等级", "最低关系分", "必备指标", "赢单概率")


@lru_cache(maxsize=1)
def _default_book() -> Rulebook:
    return default_rulebook(dt.date(2026, 1, 1))


_ROLE_WEIGHTS = {r["角色"]: Decimal(r["系数"]) for r in DEFAULT_ROLES}


# --- argument conversion: Excel hands over floats, datetimes, text and ranges ------------------

def _number(value: Any, name: str, default: Decimal | None = None) -> Decimal:
    if isinstance(value, (list, tuple)):
        raise ValueError(f"{name}应为一个数字，不是一个区域")
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            raise ValueError(f"{name}不能为空")
        return default
    try:
        number = parse_decimal(value)
    except ValueError:
        raise ValueError(f"{name}应为数字：{value!r}") from None
    if not isinstance(number, Decimal):
        raise ValueError(f"{name}应为数字：{value!r}")
    return number


def _day(value: Any, name: str) -> dt.date:
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return _EPOCH + dt.timedelta(days=int(value))  # a date serial (cells not formatted as dates)
    try:
        day = parse_date(value)
    except ValueError:
        raise ValueError(f"{name}应为日期：{value!r}") from None
    if not isinstance(day, dt.date):
        raise ValueError(f"{name}应为日期：{value!r}")
    return day


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        out: list[Any] = []
        for item in value:
            out.extend(_flat(item))
        return out
    return [value]


def _indicators(value: Any) -> frozenset[str]:
    held: set[str] = set()
    for item in _flat(value):
        if isinstance(item, str):
            held |= _split_indicators(item)
    return frozenset(held)


def _frozen(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


@lru_cache(maxsize=64)
def _tier_book(rules: Any) -> Rulebook:
    """The default rulebook with the tier table of a 分级规则 range (header row optional; tiers
    not listed keep their defaults)."""
    book = _default_book()
    if rules is None:
        return book
    if not isinstance(rules, tuple):
        raise ValueError("分级规则应为一个区域：等级, 最低关系分, 必备指标, 赢单概率")
    rows = [list(r) for r in rules] if all(isinstance(r, tuple) for r in rules) else [list(rules)]
    header = [str(h).strip() if h is not None else "" for h in rows[0]] if rows else []
    if "等级" in header:
        index = {h: header.index(h) for h in _TIER_HEADERS if h in header}
        rows = rows[1:]
    else:
        index = {h: i for i, h in enumerate(_TIER_HEADERS)}
    tiers = dict(book.tiers)
    for row in rows:
        values = {h: row[i] if i < len(row) else None for h, i in index.items()}
        name = values.get("等级")
        if name is None or (isinstance(name, str) and not name.strip()):
            continue
        try:
            tier = Tier(str(name).strip())
        except ValueError:
            raise ValueError(f"分级规则里的等级“{name}”不认识：应为 {'、'.join(t.value for t in Tier)}") from None
        if values.get("赢单概率") is None:
            values["赢单概率"] = tiers[tier].probability
        try:
            tiers[tier] = TierRule.model_validate(values)
        except ValidationError as exc:
            raise ValueError(f"分级规则“{tier.value}”一行有误：{'；'.join(explain(e) for e in exc.errors())}") from None
    return book.model_copy(update={"tiers": tiers})


def _tier(score: Any, indicators: Any, rules: Any, stance: Any) -> tuple[Tier, Rulebook]:
    book = _tier_book(_frozen(rules) if rules is not None else None)
    against = isinstance(stance, str) and stance.strip() == Tier.AGAINST.value
    return tier_for(_number(score, "关系分"), _indicators(indicators), against, book), book


# --- the functions ------------------------------------------------------------------------------

@xw.func(category=CATEGORY)
@xw.arg("points", doc="分值：动作库里这个动作的分值（可为负，如客户投诉）")
@xw.arg("coefficient", doc="系数：动作库里这个动作的系数，默认 1")
@xw.arg("role_weight", doc="角色系数：数字，或角色名（决策层 1.5、管理层 1.2、技术/采购层 1.0、秘书/助理 0.6），默认 1")
@xw.arg("count", doc="次数：默认 1")
def XS_POINTS(points: Any, coefficient: Any = 1, role_weight: Any = 1, count: Any = 1) -> float:
    """一条客户关系记录的得分 = 分值 × 系数 × 角色系数 × 次数。"""
    if isinstance(role_weight, str) and role_weight.strip() in _ROLE_WEIGHTS:
        weight = _ROLE_WEIGHTS[role_weight.strip()]
    else:
        weight = _number(role_weight, "角色系数", Decimal(1))
    times = _number(count, "次数", Decimal(1))
    if times != times.to_integral_value() or times < 1:
        raise ValueError(f"次数应为不小于 1 的整数：{count!r}")
    unit = _number(points, "分值") * _number(coefficient, "系数", Decimal(1))
    return float(entry_points(unit, weight, int(times)))


@xw.func(category=CATEGORY)
@xw.arg("score", doc="客户关系分")
@xw.arg("indicators", doc="已达成的指标：用 、 或 , 分隔的文字，或一列指标名")
@xw.arg("rules", ndim=2, doc="可选：分级规则区域（等级, 最低关系分, 必备指标, 赢单概率），省略用默认规则")
@xw.arg("stance", doc="可选：经理设定的立场，填“反对”则为反对")
def XS_TIER(score: Any, indicators: Any = None, rules: Any = None, stance: Any = None) -> str:
    """客户关系等级（铁杆、支持、中立、反对）：关系分达到门槛且必备指标齐全的最高一级。"""
    return _tier(score, indicators, rules, stance)[0].value


@xw.func(category=CATEGORY)
@xw.arg("score", doc="客户关系分")
@xw.arg("indicators", doc="已达成的指标：用 、 或 , 分隔的文字，或一列指标名")
@xw.arg("rules", ndim=2, doc="可选：分级规则区域（等级, 最低关系分, 必备指标, 赢单概率），省略用默认规则")
@xw.arg("stance", doc="可选：经理设定的立场，填“反对”则为反对")
def XS_WIN_PROB(score: Any, indicators: Any = None, rules: Any = None, stance: Any = None) -> float:
    """该等级的赢单概率（默认：铁杆 90%、支持 80%、中立 30%、反对 5%）。"""
    tier, book = _tier(score, indicators, rules, stance)
    return float(book.tiers[tier].probability)


@xw.func(category=CATEGORY)
@xw.arg("amount", doc="订单金额（元）")
@xw.arg("floor", doc="保底目标（元）")
@xw.arg("challenge", doc="挑战目标（元），不低于保底")
@xw.arg("rate", doc="基础提成率，默认 2%")
@xw.arg("before", doc="可选：这张订单之前本年已签金额（元），默认 0")
def XS_COMMISSION(amount: Any, floor: Any, challenge: Any = None, rate: Any = None, before: Any = None) -> float:
    """订单提成：累计业绩在 [0, 保底) 按 1 倍、[保底, 挑战) 按 2 倍、挑战以上按 3 倍基础提成率，跨档的订单按档拆开计算。"""
    book = _default_book()
    low = _number(floor, "保底目标")
    high = _number(challenge, "挑战目标", low)
    if high < low:
        raise ValueError("挑战目标不能低于保底目标")
    edges = band_edges(book, low, high)
    base = _number(rate, "提成率", book.params.base_rate)
    return float(to_fen(band_commission(_number(before, "此前累计", Decimal(0)), _number(amount, "订单金额"), edges, base)))


@lru_cache(maxsize=64)
def _margin_book(low: Decimal, high: Decimal, share: Decimal, red_line: Decimal) -> Rulebook:
    book = _default_book()
    params = book.params.model_copy(update={"margin_bonus_low": low, "margin_bonus_high": high,
                                            "margin_bonus_share": share, "margin_red_line": red_line})
    return book.model_copy(update={"params": params})


@xw.func(category=CATEGORY)
@xw.arg("amount", doc="订单金额（元）")
@xw.arg("margin", doc="毛利率，如 28%")
@xw.arg("low", doc="可选：毛利奖励下限，默认 25%")
@xw.arg("high", doc="可选：毛利奖励上限，默认 30%")
@xw.arg("share", doc="可选：毛利奖励分成，默认 100%")
@xw.arg("red_line", doc="可选：毛利红线，低于红线无毛利奖，默认 20%")
def XS_MARGIN_BONUS(amount: Any, margin: Any, low: Any = None, high: Any = None, share: Any = None,
                    red_line: Any = None) -> float:
    """毛利奖 = 金额 × (毛利率 − 下限，限在 0 到 上限−下限 之间) × 分成；毛利率低于红线为 0。"""
    p = _default_book().params
    lo, hi = _number(low, "毛利奖励下限", p.margin_bonus_low), _number(high, "毛利奖励上限", p.margin_bonus_high)
    if hi < lo:
        raise ValueError("毛利奖励上限不能低于下限")
    book = _margin_book(lo, hi, _number(share, "毛利奖励分成", p.margin_bonus_share), _number(red_line, "毛利红线", p.margin_red_line))
    return float(to_fen(margin_bonus(_number(amount, "订单金额"), _number(margin, "毛利率"), book)))


@xw.func(category=CATEGORY)
@xw.arg("event_date", doc="事件日期：签约、回款或完工的日期")
@xw.arg("days", doc="可选：发放时限天数，默认 1（签约今天，发放明天）")
def XS_DUE_DATE(event_date: Any, days: Any = None) -> dt.date:
    """应发日期 = 事件日期 + 发放时限天数。"""
    delay = _number(days, "发放时限天数", Decimal(_default_book().params.payout_delay_days))
    if delay != delay.to_integral_value() or delay < 0:
        raise ValueError(f"发放时限天数应为不小于 0 的整数：{days!r}")
    return _day(event_date, "事件日期") + dt.timedelta(days=int(delay))


__all__: Sequence[str] = ("XS_COMMISSION", "XS_DUE_DATE", "XS_MARGIN_BONUS", "XS_POINTS", "XS_TIER", "XS_WIN_PROB")
