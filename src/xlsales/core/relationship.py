"""§1 Customer-relationship evaluation: points per log entry, monthly caps, the approval gate,
the company's relationship score per customer and the rep's monthly relationship score.

Vectorised over the log with polars. Points are summed exactly as fixed-point integers: every
(action, role) pair has a Decimal unit value (分值 × 系数 × 角色系数), scaled to an integer once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from xlsales.core.activity import LOG_HEADERS, LOG_SHEET, ActivityLog
from xlsales.core.dates import month_start, window_start
from xlsales.core.models import APPROVED, CUSTOMER_SHEET, REP_SHEET
from xlsales.core.money import clamp
from xlsales.core.problems import Problems, Rejected
from xlsales.core.rulebook import Rulebook

COUNTED_SCHEMA: dict[str, pl.DataType] = {"date": pl.Date(), "rep_id": pl.String(), "customer": pl.String(), "role": pl.String()}
_INT64_SAFE = 2**62


@dataclass(frozen=True)
class CustomerEvidence:
    raw_score: Decimal  # before the clamp, for the explanation
    score: Decimal
    indicators: frozenset[str]
    entries: int
    last_contact: dt.date | None


@dataclass(frozen=True)
class RelationshipFacts:
    customers: dict[str, CustomerEvidence]
    rep_month_scores: dict[str, Decimal]  # clamped to [0, 上限], for the evaluation month
    rep_month_raw: dict[str, Decimal]
    entries_read: int
    entries_counted: int
    # the counted entries (approved, within the monthly caps, dated up to the evaluation date):
    # 日期, 工号, 客户编码, 角色 as date, rep_id, customer, role; for the iron triangle and coverage
    counted: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=COUNTED_SCHEMA))

    def evidence(self, customer: str) -> CustomerEvidence:
        return self.customers.get(customer, _NO_EVIDENCE)


_NO_EVIDENCE = CustomerEvidence(Decimal(0), Decimal(0), frozenset(), 0, None)


def entry_points(unit_points: Decimal, role_weight: Decimal, count: int) -> Decimal:
    """Points of one log entry = 分值 × 系数 × 角色系数 × 次数 (the UDFs use this too)."""
    return unit_points * role_weight * count


def _report(problems: Problems, frame: pl.DataFrame, column: str, message: str, warn: bool = False,
            rejected: Rejected | None = None) -> None:
    field = LOG_HEADERS[column]
    add = problems.warn if warn else problems.error
    sheet = _REFERRED_SHEETS.get(column)
    for row, value in frame.select("row", column).iter_rows():
        text = message.format(value=value)
        add(LOG_SHEET, row, field, value, rejected.message(sheet, value, text) if rejected and sheet else text)


# Each reference column's code in its known list (pl.Enum's physical index), made once while the
# references are checked: the monthly caps' key, the caps, the points and the per-customer sums
# are looked up by these small integers (a join, a Categorical cast or a group_by on a million
# strings cost 0.05–0.1 s each).
_CODES = {"rep_id": "_rep", "customer": "_customer", "action": "_action", "role": "_role"}


_REFERRED_SHEETS = {"customer": CUSTOMER_SHEET, "rep_id": REP_SHEET}  # where a bad row's key may be
_REFERENCES = {  # the log's reference columns, in the order they are checked, and what to fix
    "action": "动作库里没有动作编码“{value}”：请从下拉列表选择，或先在动作库里添加",
    "role": "角色“{value}”不在角色系数表里：请从下拉列表选择",
    "customer": "客户表里没有客户编码“{value}”：请核对编码，或先在客户表里添加",
    "rep_id": "销售人员表里没有工号“{value}”：请核对工号",
}


def check_log_references(log: ActivityLog, reps: set[str], customers: set[str], problems: Problems,
                         rejected: Rejected | None = None) -> None:
    """The log's customers and reps that are not in their sheets, for a run without a rulebook
    (see pipeline.check_without_rules): the same errors that scoring the log reports."""
    frame = log.frame.select("row", "customer", "rep_id")
    for column, known in (("customer", customers), ("rep_id", reps)):
        _report(problems, frame.filter(pl.col(column).is_not_null() & ~pl.col(column).is_in(sorted(known))),
                column, _REFERENCES[column], rejected=rejected)


def _check_rows(frame: pl.DataFrame, book: Rulebook, known: dict[str, list[str]], problems: Problems,
                rejected: Rejected | None) -> pl.DataFrame:
    """The rows that count: dated up to the evaluation date, every reference known, approved when the
    action needs it, with each reference's code in `known` (_CODES). Every check is a flag of one
    pass and the rows are filtered once (a million-row log copied once, not three times); the
    problems come in the same order as checking one by one: future dates, then each reference check,
    then pending approvals."""
    ev = book.evaluation_date
    checks = (("date", "日期不能为空：请填写动作发生的日期"), *_REFERENCES.items())
    # a value outside its list becomes null in the Enum cast: that null is the check
    codes = {_CODES[c]: pl.col(c).cast(pl.Enum(known[c]), strict=False).to_physical() for c in _CODES}
    flags = {f"ok_{column}": pl.col(_CODES.get(column, column)).is_not_null() for column, _ in checks}
    flags["ok_count"] = pl.col("count").is_not_null() & (pl.col("count") >= 1)
    gated = [i for i, code in enumerate(known["action"]) if book.actions[code].needs_approval]
    flagged = frame.with_columns(future=(pl.col("date") > ev).fill_null(False), **codes) \
        .with_columns(**flags).with_columns(ok=pl.all_horizontal(*flags)) \
        .with_columns(pending=pl.col("ok") & pl.col("_action").is_in(gated) & (pl.col("approval").fill_null("") != APPROVED))

    future = flagged.filter(pl.col("future"))
    if future.height:
        first = future.sort("row").row(0, named=True)
        problems.warn(LOG_SHEET, first["row"], "日期", first["date"],
                      f"有 {future.height} 条记录的日期晚于评估日期 {ev}，本次不计入（从这一行起）")
    bad = flagged.filter(~pl.col("future") & ~pl.col("ok"))  # only the (few) bad rows are looked at again
    for column, message in checks:
        _report(problems, bad.filter(~pl.col(f"ok_{column}")), column, message, rejected=rejected)
    _report(problems, bad.filter(~pl.col("ok_count")), "count", "次数应为不小于 1 的整数（留空按 1 次）")
    pending = flagged.filter(~pl.col("future") & pl.col("pending"))
    for row, state in pending.select("row", "approval").iter_rows():
        shown = f"为“{state}”" if state else "为空"
        problems.warn(LOG_SHEET, row, LOG_HEADERS["approval"], state,
                      f"该动作需审批，审批状态{shown}，批准前不计分：审批通过后请把审批状态填为“{APPROVED}”")
    return flagged.filter(~pl.col("future") & pl.col("ok") & ~pl.col("pending")).select(*frame.columns, *codes)


def evaluate_log(log: ActivityLog, book: Rulebook, reps: set[str], customers: set[str],
                 problems: Problems, rejected: Rejected | None = None) -> RelationshipFacts:
    ev = book.evaluation_date
    # only the columns the rules use: every filter and sort below copies what it is given
    frame = log.frame.select("row", "date", "rep_id", "customer", "role", "action", "count", "approval") \
        .with_columns(pl.col("count").fill_null(1))
    read = frame.height
    known = {"rep_id": sorted(reps), "customer": sorted(customers), "action": list(book.actions), "role": list(book.roles)}
    frame = _check_rows(frame, book, known, problems, rejected)

    frame = _apply_monthly_caps(frame, book, known)
    excess = frame.filter(pl.col("counted") < pl.col("count")).sort("row")  # in sheet order
    if excess.height:  # tens of thousands on a big log: the messages made by polars, not one by one
        names = [book.actions[code].name for code in known["action"]]
        messages = excess.select(
            pl.col("row"), pl.col("count").cast(pl.String),
            pl.format("“{}”每月每客户最多计 {} 次，本月已满，这一行 {} 次中只计 {} 次，超出的 {} 次不计分",
                      pl.col("_action").replace_strict(list(range(len(names))), names, return_dtype=pl.String),
                      "cap", "count", "counted", pl.col("count") - pl.col("counted")))
        problems.warn_rows(LOG_SHEET, "次数", messages.iter_rows())

    frame, scale = _with_points(frame, book, known)
    frame = frame.filter(pl.col("counted") > 0)

    # per customer, by code; an indicator by its place in `indicators`
    indicators = sorted({a.indicator for a in book.actions.values() if a.indicator})
    indicator_at = [indicators.index(a.indicator) if a.indicator else None
                    for a in (book.actions[code] for code in known["action"])]
    in_window = frame.filter(pl.col("date") >= window_start(ev, book.params.window_months))
    per_customer = in_window.group_by("_customer").agg(
        pl.col("points").sum().alias("points"),
        pl.len().alias("entries"),
        pl.col("date").max().alias("last"),
        pl.col("_action").replace_strict(list(range(len(indicator_at))), indicator_at, default=None,
                                         return_dtype=pl.Int64).drop_nulls().unique().sort().alias("indicators"),
    )
    cap = book.params.score_cap
    customers_out: dict[str, CustomerEvidence] = {}
    held: dict[tuple[int, ...], frozenset[str]] = {}  # a few distinct sets, each made once
    codes = known["customer"]
    for at, points, entries, last, found in per_customer.iter_rows():
        key = tuple(found)
        these = held.get(key)
        if these is None:
            these = held[key] = frozenset(indicators[i] for i in key)
        raw = _decimal(points, scale)
        customers_out[codes[at]] = CustomerEvidence(raw, clamp(raw, -cap, cap), these, entries, last)

    this_month = frame.filter(pl.col("date") >= month_start(ev)).group_by("rep_id").agg(pl.col("points").sum())
    rep_raw = {rep: _decimal(points, scale) for rep, points in this_month.iter_rows()}
    return RelationshipFacts(
        customers=customers_out,
        rep_month_scores={rep: clamp(v, Decimal(0), cap) for rep, v in rep_raw.items()},
        rep_month_raw=rep_raw,
        entries_read=read,
        entries_counted=frame.height,
        counted=frame.select(list(COUNTED_SCHEMA)),
    )


def _apply_monthly_caps(frame: pl.DataFrame, book: Rulebook, known: dict[str, list[str]]) -> pl.DataFrame:
    """Add `counted` (and `cap`): an action counts at most N times per (rep, customer, action,
    month), the first N in date order (then sheet order). One int key from the codes and a running
    sum: polars' over() with four string keys costs seconds on a million rows. The entries of
    months over their cap come first, in (key, date, row) order, then the others as they were."""
    caps = [book.actions[code].monthly_cap for code in known["action"]]
    frame = frame.with_columns(
        month=pl.col("date").dt.year().cast(pl.Int64) * 12 + pl.col("date").dt.month().cast(pl.Int64),
        cap=pl.col("_action").replace_strict(list(range(len(caps))), caps, default=None, return_dtype=pl.Int64),
    )
    if frame.height == 0:
        return frame.with_columns(counted=pl.col("count"))
    low, high = _int(frame["month"].min()), _int(frame["month"].max())
    sizes = [len(known["customer"]), len(known["action"]), high - low + 1]
    key = ((pl.col("_rep").cast(pl.Int64) * sizes[0] + pl.col("_customer")) * sizes[1] + pl.col("_action")) \
        * sizes[2] + (pl.col("month") - low)
    frame = frame.with_columns(key=key)
    # Only a month that goes over its cap needs its entries in order; most stay within (a rep logs
    # a visit or two per customer a month), and sorting just those is a fraction of sorting all.
    over = pl.col("cap").is_not_null() & (pl.col("count").sum().over("key") > pl.col("cap"))
    frame = frame.with_columns(_over=over)
    within = frame.filter(~pl.col("_over")).with_columns(counted=pl.col("count"))
    before = pl.col("count").cum_sum() - pl.col("count")
    starts = pl.col("key") != pl.col("key").shift(1)
    capped = frame.filter(pl.col("_over")).sort("key", "date", "row").with_columns(
        prior=before - pl.when(starts.fill_null(True)).then(before).otherwise(None).forward_fill()
    ).with_columns(
        counted=(pl.col("cap") - pl.col("prior")).clip(0, None).clip(None, pl.col("count"))
    ).drop("prior")
    return pl.concat([capped, within]).drop("key", "_over")


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def _decimal(fixed: int, scale: int) -> Decimal:
    return Decimal(int(fixed)).scaleb(-scale).normalize() + Decimal(0)


def _with_points(frame: pl.DataFrame, book: Rulebook, known: dict[str, list[str]]) -> tuple[pl.DataFrame, int]:
    """Add an exact fixed-point `points` column (value × 10^scale) = unit × role weight × counted,
    the unit looked up by (action, role) code."""
    roles = known["role"]
    units = [book.actions[code].unit_points * book.roles[role] for code in known["action"] for role in roles]
    scale = max((max(0, -int(u.normalize().as_tuple().exponent)) for u in units), default=0)
    fixed = [int(u.scaleb(scale)) for u in units]
    largest = max((abs(v) for v in fixed), default=0)
    total_count = int(frame["counted"].sum() or 0)
    if largest * max(total_count, 1) >= _INT64_SAFE:
        raise OverflowError(
            f"关系分计算超出精确整数范围（分值×系数的小数位 {scale} 位，合计次数 {total_count}）：请减少系数的小数位")
    pair = pl.col("_action").cast(pl.Int64) * len(roles) + pl.col("_role")
    unit = pair.replace_strict(list(range(len(fixed))), fixed, return_dtype=pl.Int64) if fixed else pl.lit(0, pl.Int64)
    return frame.with_columns(points=unit * pl.col("counted")), scale
