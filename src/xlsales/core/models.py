"""Input records of the workbook contract (shared/spec/workbook.md), one pydantic model a sheet.

Field aliases are the contract's Chinese headers, so a row read by header text validates as is.
Every record carries `row`, its sheet row, so that problems can point at a cell.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Tier(StrEnum):
    """Relationship tiers, best first (the order of the enum is the order of evaluation)."""

    IRON = "铁杆"
    SUPPORT = "支持"
    NEUTRAL = "中立"
    AGAINST = "反对"

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]


_TIER_RANK = {tier: i for i, tier in enumerate(Tier)}


class RepStatus(StrEnum):
    ACTIVE = "在职"
    LEFT = "离职"


class OpportunityStatus(StrEnum):
    OPEN = "跟进中"
    PAUSED = "暂缓"
    WON = "赢单"
    LOST = "丢单"


APPROVED = "已批准"

# the sheets whose keys other sheets refer to (workbook.md)
REP_SHEET = "销售人员"
CUSTOMER_SHEET = "客户"
ORDER_SHEET = "订单"


# --- cell value parsers: forgiving about how Excel hands values over, strict about meaning ---

def parse_text(value: Any) -> Any:
    """Codes are text: a 工号 typed as 1001 arrives as 1001 or 1001.0 and means '1001'."""
    if type(value) is str:  # the common case first: this runs for every text cell of every row
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return value


def parse_decimal(value: Any) -> Any:
    """Numbers become exact Decimals; '20%' becomes 0.2; floats go through their shortest repr."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("应为数字")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("，", "")
        if not text:
            return None
        percent = text.endswith("%")
        try:
            number = Decimal(text[:-1] if percent else text)
        except InvalidOperation:
            raise ValueError("应为数字") from None
        if not number.is_finite():
            raise ValueError("应为数字")
        return number / 100 if percent else number
    return value


def parse_choice(value: Any) -> Any:
    """One of a list (状态, 等级 ...): surrounding spaces are not part of the choice ("在职 " is 在职)."""
    return value.strip() or None if isinstance(value, str) else value


def parse_money(value: Any) -> Any:
    """An amount in 元: what parse_decimal reads, but a percentage typed as text ('15%') is not an
    amount (it would silently become 0.15 元)."""
    if isinstance(value, str) and value.strip().endswith(("%", "％")):
        raise ValueError("应为金额（元），不是百分比")
    return parse_decimal(value)


def parse_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        return text or None
    return value


def parse_date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text)
        if match is None:
            raise ValueError("应为日期")
        year, month, day = (int(g) for g in match.groups())
        try:
            return dt.date(year, month, day)
        except ValueError:
            raise ValueError("是不存在的日期：请核对年、月、日") from None
    return value


def parse_yes_no(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().upper()
    if text in {"是", "Y", "YES", "TRUE", "1"}:
        return True
    if text in {"否", "N", "NO", "FALSE", "0", ""}:
        return False
    raise ValueError("应填 是 或 否")


MONTH = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?(?:\s*[-/.]\s*\d{1,2}\s*日?|\s*\d{1,2}\s*日)?")


def parse_month(value: Any) -> Any:
    """A month as text YYYY-MM. Excel turns a typed 2026-11 into the date 2026-11-01, so a date is
    its month; 2026/11, 2026年11月 and 2026-11-05 read as 2026-11. Other text is kept as typed:
    the row is still valid and the core warns about the month (see core.dashboard.month_of)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    if not isinstance(value, str):
        return str(parse_text(value))  # a number: 2026.1 may have been typed as 2026.10, so no guess
    text = value.strip()
    if not text:
        return None
    match = MONTH.fullmatch(text)
    if match is not None and 1 <= int(match.group(2)) <= 12:
        return f"{match.group(1)}-{int(match.group(2)):02d}"
    return text


_YEAR_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def is_month(text: str) -> bool:
    """Whether `text` is a month as parse_month writes it (YYYY-MM)."""
    return _YEAR_MONTH.fullmatch(text) is not None


QUARTER = re.compile(r"(\d{4})\s*-?\s*[Qq]([1-4])")


def parse_quarter(value: Any) -> Any:
    """A quarter is text YYYY-Qn (2026-Q3); 2026q3 and "2026 - Q3" are read as 2026-Q3."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = QUARTER.fullmatch(text)
        if match is not None and 2000 <= int(match.group(1)) <= 2100:
            return f"{match.group(1)}-Q{match.group(2)}"
    raise ValueError("应为季度文字 YYYY-Qn，如 2026-Q3")


def parse_rating(value: Any) -> Any:
    """A 5词 rating: a whole number from 1 to 5 (3.0 from Excel is 3; 3.5, 0, 6 and text are not)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: Any = value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float, Decimal)):
        raise ValueError("应为 1 到 5 的整数")
    if isinstance(number, float):
        number = Decimal(repr(number))
    if not Decimal(number).is_finite() or number != int(number) or not 1 <= int(number) <= 5:
        raise ValueError("应为 1 到 5 的整数")
    return int(number)


Text = Annotated[str, BeforeValidator(parse_text)]
OptText = Annotated[str | None, BeforeValidator(parse_text)]
Num = Annotated[Decimal, BeforeValidator(parse_decimal)]
OptNum = Annotated[Decimal | None, BeforeValidator(parse_decimal)]
_Option = TypeVar("_Option")
Choice = Annotated[_Option, BeforeValidator(parse_choice)]  # Choice[RepStatus]: one of an Enum's values
Amount = Annotated[Decimal, BeforeValidator(parse_money)]  # 元, any sign (a ledger's 追回 is negative)
OptAmount = Annotated[Decimal | None, BeforeValidator(parse_money)]
Money = Annotated[Decimal, BeforeValidator(parse_money), Field(ge=0)]
OptMoney = Annotated[Annotated[Decimal, Field(ge=0)] | None, BeforeValidator(parse_money)]
Fraction = Annotated[Decimal, BeforeValidator(parse_decimal), Field(ge=0, le=1)]
Count = Annotated[int, BeforeValidator(parse_int)]
Day = Annotated[dt.date, BeforeValidator(parse_date)]
OptDay = Annotated[dt.date | None, BeforeValidator(parse_date)]
YesNo = Annotated[bool, BeforeValidator(parse_yes_no)]
Quarter = Annotated[str, BeforeValidator(parse_quarter)]
OptMonth = Annotated[str | None, BeforeValidator(parse_month)]
Rating = Annotated[int, BeforeValidator(parse_rating)]


class Record(BaseModel):
    """Base of every input row: immutable, Chinese headers as aliases, the sheet row kept."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")
    row: int | None = Field(default=None, exclude=True)


class Rep(Record):
    rep_id: Text = Field(alias="工号")
    name: Text = Field(alias="姓名")
    region: OptText = Field(default=None, alias="区域")
    status: Choice[RepStatus] = Field(default=RepStatus.ACTIVE, alias="状态")


class Customer(Record):
    code: Text = Field(alias="客户编码")
    name: Text = Field(alias="客户名称")
    account_manager: OptText = Field(default=None, alias="客户经理")
    tech_manager: OptText = Field(default=None, alias="技术经理")
    service_manager: OptText = Field(default=None, alias="服务经理")
    must_win: YesNo = Field(default=False, alias="必保")
    breakthrough_award: OptMoney = Field(default=None, alias="战略突破奖")
    stance: OptText = Field(default=None, alias="立场")
    claimed_tier: Choice[Tier | None] = Field(default=None, alias="自评等级")
    key_watch: YesNo = Field(default=False, alias="重点")  # optional column: the founder's watchlist


class LogEntry(Record):
    """One line of 客户关系记录. The pipeline takes the log as a columnar ActivityLog for speed;
    this model is the schema of one row (and how small logs are built in tests)."""

    date: Day = Field(alias="日期")
    rep_id: Text = Field(alias="工号")
    customer: Text = Field(alias="客户编码")
    contact: OptText = Field(default=None, alias="联系人")
    role: Text = Field(alias="角色")
    action: Text = Field(alias="动作编码")
    count: Count = Field(default=1, ge=1, alias="次数")
    approval: OptText = Field(default=None, alias="审批状态")
    note: OptText = Field(default=None, alias="备注")


MONTH_HEADERS = tuple(f"{m}月" for m in range(1, 13))


class Target(Record):
    year: Count = Field(alias="年度", ge=2000, le=2100)
    rep_id: Text = Field(alias="工号")
    floor: Amount = Field(alias="保底目标")
    challenge: Amount = Field(alias="挑战目标")
    self_reported: OptAmount = Field(default=None, alias="自报目标")
    # None means the column was blank: an all-blank split is an even split of the floor.
    months: tuple[OptAmount, ...] = Field(default=(None,) * 12)

    @classmethod
    def from_row(cls, values: dict[str, Any], row: int | None = None) -> Target:
        data = {k: v for k, v in values.items() if k not in MONTH_HEADERS}
        data["months"] = tuple(values.get(h) for h in MONTH_HEADERS)
        return cls.model_validate({**data, "row": row})


class Opportunity(Record):
    code: Text = Field(alias="商机编码")
    customer: Text = Field(alias="客户编码")
    rep_id: Text = Field(alias="工号")
    amount: Money = Field(alias="金额")
    status: Choice[OpportunityStatus] = Field(alias="状态")
    status_date: OptDay = Field(default=None, alias="状态日期")
    expected_month: OptMonth = Field(default=None, alias="预计签约月")
    pause_reason: OptText = Field(default=None, alias="暂缓原因")


class Order(Record):
    order_id: Text = Field(alias="订单号")
    signed: Day = Field(alias="签约日期")
    rep_id: Text = Field(alias="工号")
    customer: Text = Field(alias="客户编码")
    amount: Money = Field(alias="合同金额")
    margin: Num = Field(alias="毛利率", ge=-1, le=1)
    completed: OptDay = Field(default=None, alias="完工日期")


class Collection(Record):
    order_id: Text = Field(alias="订单号")
    date: Day = Field(alias="回款日期")
    amount: Amount = Field(alias="回款金额", gt=0)


class Progress(Record):
    order_id: Text = Field(alias="订单号")
    date: Day = Field(alias="日期")
    cumulative: Fraction = Field(alias="累计完工比例")


class FiveWordRating(Record):
    """A row of 5词评价: a manager's ratings (1–5) of a rep for a quarter."""

    quarter: Quarter = Field(alias="季度")
    rep_id: Text = Field(alias="工号")
    passion: Rating = Field(alias="激情")
    confidence: Rating = Field(alias="自信")
    persistence: Rating = Field(alias="坚持")
    expertise: Rating = Field(alias="专业")
    sincerity: Rating = Field(alias="真诚")
    rater: OptText = Field(default=None, alias="评价人")
    note: OptText = Field(default=None, alias="备注")


class ThreeCCheck(Record):
    """A row of 3C清单: what is known of a key account (是/否 each; blank is 否)."""

    customer: Text = Field(alias="客户编码")
    org_chart: YesNo = Field(default=False, alias="组织架构")
    decision_chain: YesNo = Field(default=False, alias="决策链")
    committee: YesNo = Field(default=False, alias="评估委员会")
    competitors: YesNo = Field(default=False, alias="竞争对手")
    note: OptText = Field(default=None, alias="备注")
