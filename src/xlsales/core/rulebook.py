"""The rulebook: every parameter and rule table of rules.md, validated as a whole.

Rules are data. Nothing in the engine holds a rate, share, cap or threshold of its own: it reads
them from a Rulebook, which is built from the workbook's rule sheets (参数, 动作库, 角色系数,
分级规则, 提成档位, 发放阶段). An invalid rulebook reports all its problems at once and stops
the run.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xlsales.core.models import (
    Amount,
    Choice,
    Count,
    Day,
    Fraction,
    Num,
    OptAmount,
    OptNum,
    OptText,
    Record,
    Text,
    Tier,
    YesNo,
)
from xlsales.core.problems import Problems
from xlsales.core.validation import RawRow, explain, validate_rows

PARAM_SHEET = "参数"
CATALOG_SHEET = "动作库"
ROLE_SHEET = "角色系数"
TIER_SHEET = "分级规则"
BAND_SHEET = "提成档位"
STAGE_SHEET = "发放阶段"


class Parameters(BaseModel):
    """The 参数 sheet. Alias = the parameter's name in the sheet, description = its help text."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    year: Count | None = Field(None, alias="年度", ge=2000, le=2100,
                               description="计划年度；留空取评估日期所在的年份")
    evaluation_date: Day | None = Field(None, alias="评估日期",
                                        description="按哪一天计算（排名月份、逾期、评估窗口）；留空取今天")
    window_months: Count = Field(12, alias="评估窗口月数", ge=1, le=120,
                                 description="客户关系分只计评估日期前这么多个月内的记录")
    coverage_days: Count = Field(90, alias="覆盖天数", ge=1, le=3650,
                                 description="铁三角与覆盖：重点客户各层级联系人是否触达，看评估日期及之前这么多天（含评估日期当天）的计分记录")
    score_cap: Num = Field(Decimal(100), alias="关系分上限", gt=0,
                           description="客户关系分截在 ±上限，月度关系得分截在 0～上限（满分）")
    base_rate: Fraction = Field(Decimal("0.02"), alias="基础提成率",
                                description="订单提成的基础比例，各档位按倍数放大")
    margin_red_line: Fraction = Field(Decimal("0.20"), alias="毛利红线",
                                      description="毛利率低于红线的订单不计提成和毛利奖，但计入业绩")
    margin_bonus_low: Fraction = Field(Decimal("0.25"), alias="毛利奖励下限",
                                       description="毛利率超过下限的部分开始计毛利奖")
    margin_bonus_high: Fraction = Field(Decimal("0.30"), alias="毛利奖励上限",
                                        description="毛利率超过上限的部分不再计毛利奖")
    margin_bonus_share: Fraction = Field(Decimal(1), alias="毛利奖励分成",
                                         description="奖励区间内的毛利分给销售的比例")
    payout_delay_days: Count = Field(1, alias="发放时限天数", ge=0, le=365,
                                     description="应发日期 = 事件日期 + 天数（签约今天，发放明天）")
    top_share: Fraction = Field(Decimal("0.30"), alias="排名前比例",
                                description="月度排名奖励组的比例（向上取整）")
    bottom_share: Fraction = Field(Decimal("0.15"), alias="排名后比例",
                                   description="月度排名帮扶组的比例（向上取整）")
    performance_weight: Num = Field(Decimal("0.6"), alias="业绩权重", ge=0,
                                    description="综合得分中业绩完成率的权重")
    relationship_weight: Num = Field(Decimal("0.4"), alias="关系权重", ge=0,
                                     description="综合得分中月度关系得分的权重")
    attainment_cap: Num = Field(Decimal(2), alias="完成率上限", gt=0,
                                description="综合得分里完成率最多计到这个倍数")
    ranking_award: Amount = Field(Decimal(0), alias="排名奖", ge=0,
                               description="每位前30%销售的排名奖金额（元），0 表示不发")
    company_target: OptAmount = Field(None, alias="公司年度目标", gt=0,
                                   description="公司年度目标（元），用于与自下而上的目标对比；可留空")


PARAMETER_NAMES: dict[str, str] = {
    field.alias: name for name, field in Parameters.model_fields.items() if field.alias
}


class Action(Record):
    code: Text = Field(alias="动作编码")
    name: Text = Field(alias="动作名称")
    points: Num = Field(alias="分值")
    coefficient: Num = Field(alias="系数", ge=0)
    monthly_cap: Count | None = Field(None, alias="每月上限", ge=1)
    indicator: OptText = Field(None, alias="指标")
    needs_approval: YesNo = Field(False, alias="需审批")

    @property
    def unit_points(self) -> Decimal:
        return self.points * self.coefficient


class RoleWeight(Record):
    role: Text = Field(alias="角色")
    weight: Num = Field(alias="系数", gt=0)


def _split_indicators(value: Any) -> Any:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        parts = value.replace("，", ",").replace("、", ",").replace(";", ",").split(",")
        return frozenset(p.strip() for p in parts if p.strip())
    return value


class TierRule(Record):
    tier: Choice[Tier] = Field(alias="等级")
    min_score: OptNum = Field(None, alias="最低关系分")
    indicators: frozenset[str] = Field(frozenset(), alias="必备指标")
    probability: Fraction = Field(alias="赢单概率")

    _split = field_validator("indicators", mode="before")(_split_indicators)


class BandStart(StrEnum):
    ZERO = "0"
    FLOOR = "保底"
    CHALLENGE = "挑战"


class Band(Record):
    start: Choice[BandStart] = Field(alias="起点")
    multiplier: Num = Field(alias="倍数", ge=0)

    @field_validator("start", mode="before")
    @classmethod
    def _zero(cls, value: Any) -> Any:
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and value == 0:
            return "0"
        return value.strip() if isinstance(value, str) else value


class StageName(StrEnum):
    SIGNING = "签约"
    REVENUE = "收入确认"
    COLLECTION = "回款"
    COMPLETION = "完工"


class Stage(Record):
    stage: Choice[StageName] = Field(alias="阶段")
    share: Fraction = Field(alias="比例")


class Rulebook(BaseModel):
    """Everything a run needs to know about the rules, validated together."""

    model_config = ConfigDict(frozen=True)

    params: Parameters
    year: int
    evaluation_date: dt.date
    actions: dict[str, Action]
    roles: dict[str, Decimal]
    tiers: dict[Tier, TierRule]
    bands: tuple[Band, ...]
    stages: tuple[Stage, ...]

    def band_floor(self, start: BandStart, floor: Decimal, challenge: Decimal) -> Decimal:
        return {BandStart.ZERO: Decimal(0), BandStart.FLOOR: floor, BandStart.CHALLENGE: challenge}[start]


# --- defaults: the practice of rules.md, as the rows a manager would see in the sheets ---

DEFAULT_ACTIONS: tuple[dict[str, Any], ...] = (
    {"动作编码": "A01", "动作名称": "电话/微信沟通", "分值": 1, "系数": 1, "每月上限": 4},
    {"动作编码": "A02", "动作名称": "上门拜访", "分值": 2, "系数": 1, "每月上限": 4},
    {"动作编码": "A03", "动作名称": "技术交流会", "分值": 8, "系数": 1, "每月上限": 2, "指标": "技术交流会"},
    {"动作编码": "A04", "动作名称": "产品演示/测试", "分值": 6, "系数": 1, "每月上限": 2},
    {"动作编码": "A05", "动作名称": "邀请参观公司", "分值": 12, "系数": 1, "每月上限": 1, "指标": "参观公司"},
    {"动作编码": "A06", "动作名称": "样板点参观", "分值": 12, "系数": 1, "每月上限": 1, "指标": "样板点参观"},
    {"动作编码": "A07", "动作名称": "高层会见", "分值": 10, "系数": 1.2, "每月上限": 1, "指标": "会见高层"},
    {"动作编码": "A08", "动作名称": "需求书签字确认", "分值": 15, "系数": 1, "每月上限": 1, "指标": "需求签字确认"},
    {"动作编码": "A09", "动作名称": "提供竞争情报", "分值": 8, "系数": 1, "每月上限": 2, "指标": "提供竞争情报"},
    {"动作编码": "A10", "动作名称": "签订战略合作协议", "分值": 25, "系数": 1, "每月上限": 1, "指标": "战略合作协议"},
    {"动作编码": "A11", "动作名称": "商务接待（按公司标准）", "分值": 3, "系数": 1, "每月上限": 2, "需审批": "是"},
    {"动作编码": "A12", "动作名称": "客户投诉", "分值": -10, "系数": 1},
    {"动作编码": "A13", "动作名称": "公开支持竞争对手", "分值": -30, "系数": 1},
)

DEFAULT_ROLES: tuple[dict[str, Any], ...] = (
    {"角色": "决策层", "系数": "1.5"},
    {"角色": "管理层", "系数": "1.2"},
    {"角色": "技术/采购层", "系数": "1.0"},
    {"角色": "秘书/助理", "系数": "0.6"},
)

DEFAULT_TIERS: tuple[dict[str, Any], ...] = (
    {"等级": "铁杆", "最低关系分": 80, "必备指标": "参观公司、会见高层、样板点参观、战略合作协议、提供竞争情报",
     "赢单概率": "0.9"},
    {"等级": "支持", "最低关系分": 50, "必备指标": "参观公司、会见高层、需求签字确认", "赢单概率": "0.8"},
    {"等级": "中立", "赢单概率": "0.3"},
    {"等级": "反对", "赢单概率": "0.05"},
)

DEFAULT_BANDS: tuple[dict[str, Any], ...] = (
    {"起点": "0", "倍数": 1},
    {"起点": "保底", "倍数": 2},
    {"起点": "挑战", "倍数": 3},
)

DEFAULT_STAGES: tuple[dict[str, Any], ...] = (
    {"阶段": "签约", "比例": "0.5"},
    {"阶段": "回款", "比例": "0.5"},
)


def _numbered(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"row": i, **r} for i, r in enumerate(rows, start=2)]


def default_tables() -> dict[str, list[dict[str, Any]]]:
    """The default rule sheets as raw rows (what `xlsales init` writes)."""
    return {
        PARAM_SHEET: [],
        CATALOG_SHEET: _numbered(DEFAULT_ACTIONS),
        ROLE_SHEET: _numbered(DEFAULT_ROLES),
        TIER_SHEET: _numbered(DEFAULT_TIERS),
        BAND_SHEET: _numbered(DEFAULT_BANDS),
        STAGE_SHEET: _numbered(DEFAULT_STAGES),
    }


def default_rulebook(evaluation_date: dt.date, **params: Any) -> Rulebook:
    """The default rulebook as of a date; keyword overrides use the Chinese parameter names."""
    tables = default_tables()
    tables[PARAM_SHEET] = [{"row": i, "参数": k, "值": v} for i, (k, v) in enumerate(params.items(), 2)]
    problems = Problems()
    book = build_rulebook(tables, today=evaluation_date, problems=problems)
    if book is None:
        raise ValueError("; ".join(p.message for p in problems.items))
    return book


# --- building and validating ---

def _parameters(rows: Sequence[RawRow], problems: Problems) -> Parameters | None:
    values: dict[str, Any] = {}
    where: dict[str, RawRow] = {}
    for raw in rows:
        name = raw.get("参数")
        name = name.strip() if isinstance(name, str) else name
        if name is None or name == "":
            if raw.get("值") not in (None, ""):
                problems.error(PARAM_SHEET, raw.get("row"), "参数", "", "参数名为空：请填写参数名或删除这一行")
            continue
        if name not in PARAMETER_NAMES:
            problems.error(PARAM_SHEET, raw.get("row"), "参数", name,
                           f"未知参数“{name}”：可用的参数有 {'、'.join(PARAMETER_NAMES)}")
            continue
        if name in values:
            problems.error(PARAM_SHEET, raw.get("row"), "参数", name, f"参数“{name}”重复：只保留一行")
            continue
        value = raw.get("值")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # blank: the default applies
        values[name] = value
        where[name] = raw
    try:
        return Parameters.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            raw = where.get(name, {})
            problems.error(PARAM_SHEET, raw.get("row"), "值", raw.get("值"), f"参数“{name}”{explain(error)}")
        return None


def _unique(items: list[Any], key: str, sheet: str, field: str, problems: Problems) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for item in items:
        value = getattr(item, key)
        if value in seen:
            problems.error(sheet, item.row, field, value,
                           f"{field}“{value}”重复（第 {seen[value].row} 行已有）：每个{field}只能出现一次")
        else:
            seen[value] = item
    return seen


def build_rulebook(tables: Mapping[str, Sequence[RawRow]], today: dt.date, problems: Problems) -> Rulebook | None:
    """Validate the rule sheets as a whole. Returns None (with every problem recorded) when the
    rules are unusable: a run must not compute anything on a broken rulebook."""
    before = sum(p.is_error for p in problems.items)
    params = _parameters(list(tables.get(PARAM_SHEET, [])), problems)

    actions = validate_rows(Action, CATALOG_SHEET, tables.get(CATALOG_SHEET, []), problems)
    action_map = _unique(actions, "code", CATALOG_SHEET, "动作编码", problems)
    if not action_map:
        problems.error(CATALOG_SHEET, None, None, "", "动作库是空的：至少需要一个动作")

    roles = validate_rows(RoleWeight, ROLE_SHEET, tables.get(ROLE_SHEET, []), problems)
    role_map = _unique(roles, "role", ROLE_SHEET, "角色", problems)
    if not role_map:
        problems.error(ROLE_SHEET, None, None, "", "角色系数表是空的：至少需要一个角色")

    tiers = validate_rows(TierRule, TIER_SHEET, tables.get(TIER_SHEET, []), problems)
    tier_map = _unique(tiers, "tier", TIER_SHEET, "等级", problems)
    named = {str(raw.get("等级", "")).strip() for raw in tables.get(TIER_SHEET, [])}
    _check_tiers(tier_map, {a.indicator for a in actions if a.indicator}, named, problems)

    bands = validate_rows(Band, BAND_SHEET, tables.get(BAND_SHEET, []), problems)
    band_map = _unique(bands, "start", BAND_SHEET, "起点", problems)
    if bands and BandStart.ZERO not in band_map:
        problems.error(BAND_SHEET, None, "起点", "", "提成档位缺少起点为 0 的一档：第一档必须从 0 开始")
    if not tables.get(BAND_SHEET):
        problems.error(BAND_SHEET, None, None, "", "提成档位是空的：至少需要起点为 0 的一档")

    stages = validate_rows(Stage, STAGE_SHEET, tables.get(STAGE_SHEET, []), problems)
    _unique(stages, "stage", STAGE_SHEET, "阶段", problems)
    total = sum((s.share for s in stages), Decimal(0))
    if stages and total != 1:
        problems.error(STAGE_SHEET, None, "比例", str(total),
                       f"发放阶段比例合计为 {total.normalize():f}，应为 1（100%）：请调整各阶段比例")
    if not tables.get(STAGE_SHEET):
        problems.error(STAGE_SHEET, None, None, "", "发放阶段是空的：至少需要一个阶段")

    if params is not None:
        _check_parameters(params, tables.get(PARAM_SHEET, []), problems)

    if params is None or sum(p.is_error for p in problems.items) > before:
        return None
    evaluation_date = params.evaluation_date or _default_evaluation_date(params.year, today)
    order = {s: i for i, s in enumerate(StageName)}
    return Rulebook(
        params=params,
        year=params.year or evaluation_date.year,
        evaluation_date=evaluation_date,
        actions=action_map,
        roles={r.role: r.weight for r in role_map.values()},
        tiers=tier_map,
        bands=tuple(sorted(band_map.values(), key=lambda b: list(BandStart).index(b.start))),
        stages=tuple(sorted(stages, key=lambda s: order[s.stage])),
    )


def _default_evaluation_date(year: int | None, today: dt.date) -> dt.date:
    """Today, or for another plan year its last day (a past year) or first day (a future one)."""
    if year is None or year == today.year:
        return today
    return dt.date(year, 12, 31) if year < today.year else dt.date(year, 1, 1)


def _check_tiers(tiers: dict[Tier, TierRule], indicators: set[str], named: set[str], problems: Problems) -> None:
    """`named`: the 等级 the sheet's rows name, valid or not (a row left out for a bad cell is not
    'missing': its own error says what to fix)."""
    for tier in Tier:
        if tier not in tiers and tier.value not in named:
            problems.error(TIER_SHEET, None, "等级", tier.value, f"分级规则缺少“{tier.value}”一行：四个等级都要有")
    for tier in (Tier.IRON, Tier.SUPPORT):
        rule = tiers.get(tier)
        if rule is not None and rule.min_score is None:
            problems.error(TIER_SHEET, rule.row, "最低关系分", "", f"“{tier.value}”必须填写最低关系分")
    for rule in tiers.values():
        unknown = sorted(rule.indicators - indicators)
        if unknown and rule.tier in (Tier.IRON, Tier.SUPPORT):
            # a warning, not a stop: a small team's own catalog may leave out a default indicator;
            # the run goes on, and nobody reaches that tier until an action provides it
            problems.warn(TIER_SHEET, rule.row, "必备指标", "、".join(unknown),
                          f"动作库里没有能达成指标“{'、'.join(unknown)}”的动作：在动作库加上这样的动作之前，"
                          f"没有客户能达到“{rule.tier.value}”。请核对指标名称")
    ranked = [tiers[t] for t in Tier if t in tiers]
    for better, worse in itertools.pairwise(ranked):
        if better.probability < worse.probability:
            problems.error(TIER_SHEET, worse.row, "赢单概率", worse.probability,
                           f"“{worse.tier.value}”的赢单概率高于“{better.tier.value}”：等级越好概率应越高")
    iron, support = tiers.get(Tier.IRON), tiers.get(Tier.SUPPORT)
    if iron and support and iron.min_score is not None and support.min_score is not None \
            and iron.min_score < support.min_score:
        problems.error(TIER_SHEET, iron.row, "最低关系分", iron.min_score,
                       "“铁杆”的最低关系分低于“支持”：请检查分级规则")


def _check_parameters(params: Parameters, rows: Sequence[RawRow], problems: Problems) -> None:
    where = {r.get("参数"): r.get("row") for r in rows}

    def fail(name: str, value: object, message: str) -> None:
        problems.error(PARAM_SHEET, where.get(name), "值", value, message)

    if params.margin_bonus_low > params.margin_bonus_high:
        fail("毛利奖励上限", params.margin_bonus_high, "毛利奖励上限不能低于毛利奖励下限")
    if params.year is not None and params.evaluation_date is not None \
            and params.year != params.evaluation_date.year:
        fail("评估日期", params.evaluation_date,
             f"评估日期 {params.evaluation_date} 不在计划年度 {params.year} 内：请把评估日期改到该年，或清空年度")
    if params.top_share + params.bottom_share > 1:
        fail("排名后比例", params.bottom_share, "排名前比例与排名后比例之和不能超过 1")
