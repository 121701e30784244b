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
from xlsales.core.models import APPROVED
from xlsales.core.money import clamp
from xlsales.core.problems import Problems
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


def _report(problems: Problems, frame: pl.DataFrame, column: str, message: str, warn: bool = False) -> None:
    field = LOG_HEADERS[column]
    add = problems.warn if warn else problems.error
    for row, value in frame.select("row", column).iter_rows():
        add(LOG_SHEET, row, field, value, message.format(value=value))


def _check_rows(frame: pl.DataFrame, book: Rulebook, reps: set[str], customers: set[str], problems: Problems) -> pl.DataFrame:
    """The rows that count: dated up to the evaluation date, every reference known, approved when the
    action needs it. Every check is a flag of one pass and the rows are filtered once (a million-row
    log copied once, not three times); the problems come in the same order as checking one by one:
    future dates, then each reference check, then pending approvals."""
    ev = book.evaluation_date
    checks = (
        ("date", None, "日期不能为空：请填写动作发生的日期"),
        ("action", set(book.actions), "动作库里没有动作编码“{value}”：请从下拉列表选择，或先在动作库里添加"),
        ("role", set(book.roles), "角色“{value}”不在角色系数表里：请从下拉列表选择"),
        ("customer", customers, "客户表里没有客户编码“{value}”：请核对编码，或先在客户表里添加"),
        ("rep_id", reps, "销售人员表里没有工号“{value}”：请核对工号"),
    )
    flags = {}
    for column, allowed, _ in checks:
        ok = pl.col(column).is_not_null()
        if allowed is not None:
            ok = ok & pl.col(column).is_in(sorted(allowed))
        flags[f"ok_{column}"] = ok
    flags["ok_count"] = pl.col("count").is_not_null() & (pl.col("count") >= 1)
    gated = sorted(code for code, a in book.actions.items() if a.needs_approval)
    flagged = frame.with_columns(future=(pl.col("date") > ev).fill_null(False), **flags) \
        .with_columns(ok=pl.all_horizontal(*flags)) \
        .with_columns(pending=pl.col("ok") & pl.col("action").is_in(gated) & (pl.col("approval").fill_null("") != APPROVED))

    future = flagged.filter(pl.col("future"))
    if future.height:
        first = future.sort("row").row(0, named=True)
        problems.warn(LOG_SHEET, first["row"], "日期", first["date"],
                      f"有 {future.height} 条记录的日期晚于评估日期 {ev}，本次不计入（从这一行起）")
    bad = flagged.filter(~pl.col("future") & ~pl.col("ok"))  # only the (few) bad rows are looked at again
    for column, _, message in checks:
        _report(problems, bad.filter(~pl.col(f"ok_{column}")), column, message)
    _report(problems, bad.filter(~pl.col("ok_count")), "count", "次数应为不小于 1 的整数（留空按 1 次）")
    _report(problems, flagged.filter(~pl.col("future") & pl.col("pending")), "approval",
            "该动作需审批，审批状态为“{value}”，批准前不计分", warn=True)
    return flagged.filter(~pl.col("future") & pl.col("ok") & ~pl.col("pending")).select(frame.columns)


def evaluate_log(log: ActivityLog, book: Rulebook, reps: set[str], customers: set[str],
                 problems: Problems) -> RelationshipFacts:
    ev = book.evaluation_date
    # only the columns the rules use: every filter and sort below copies what it is given
    frame = log.frame.select("row", "date", "rep_id", "customer", "role", "action", "count", "approval") \
        .with_columns(pl.col("count").fill_null(1))
    read = frame.height
    frame = _check_rows(frame, book, reps, customers, problems)

    frame = _apply_monthly_caps(frame, book)
    excess = frame.filter(pl.col("counted") < pl.col("count"))
    for row, action, count, counted, cap in excess.select("row", "action", "count", "counted", "cap").iter_rows():
        problems.warn(LOG_SHEET, row, "次数", count,
                      f"“{book.actions[action].name}”每月每客户最多计 {cap} 次，本月已满，"
                      f"这一行 {count} 次中只计 {counted} 次，超出的 {count - counted} 次不计分")

    frame, scale = _with_points(frame, book)
    frame = frame.filter(pl.col("counted") > 0)

    indicator_of = {code: a.indicator for code, a in book.actions.items() if a.indicator}
    in_window = frame.filter(pl.col("date") >= window_start(ev, book.params.window_months))
    per_customer = in_window.group_by("customer").agg(
        pl.col("points").sum().alias("points"),
        pl.len().alias("entries"),
        pl.col("date").max().alias("last"),
        pl.col("action").replace_strict(indicator_of, default=None, return_dtype=pl.String)
        .drop_nulls().unique().alias("indicators"),
    )
    cap = book.params.score_cap
    customers_out: dict[str, CustomerEvidence] = {}
    for code, points, entries, last, indicators in per_customer.iter_rows():
        raw = _decimal(points, scale)
        customers_out[code] = CustomerEvidence(raw, clamp(raw, -cap, cap), frozenset(indicators), entries, last)

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


def _apply_monthly_caps(frame: pl.DataFrame, book: Rulebook) -> pl.DataFrame:
    """Add `counted`: an action counts at most N times per (rep, customer, action, month), the
    first N in date order (then sheet order). One int key and a running sum: polars' over() with
    four string keys costs seconds on a million rows. The entries of months over their cap come
    first, in (key, date, row) order, then the others as they were."""
    caps = {code: a.monthly_cap for code, a in book.actions.items() if a.monthly_cap is not None}
    frame = frame.with_columns(
        month=pl.col("date").dt.year().cast(pl.Int64) * 12 + pl.col("date").dt.month().cast(pl.Int64),
        cap=pl.col("action").replace_strict(caps, default=None, return_dtype=pl.Int64),
        **{f"_{c}": pl.col(c).cast(pl.Categorical).to_physical().cast(pl.Int64) for c in ("rep_id", "customer", "action")},
    )
    helpers = ["_rep_id", "_customer", "_action"]
    if frame.height == 0:
        return frame.with_columns(counted=pl.col("count")).drop(helpers)
    sizes = [_int(frame[c].max()) + 1 for c in ("_rep_id", "_customer", "_action")]
    low, high = _int(frame["month"].min()), _int(frame["month"].max())
    key = ((pl.col("_rep_id") * sizes[1] + pl.col("_customer")) * sizes[2] + pl.col("_action")) \
        * (high - low + 1) + (pl.col("month") - low)
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
    return pl.concat([capped, within]).drop(*helpers, "key", "_over")


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def _decimal(fixed: int, scale: int) -> Decimal:
    return Decimal(int(fixed)).scaleb(-scale).normalize() + Decimal(0)


def _with_points(frame: pl.DataFrame, book: Rulebook) -> tuple[pl.DataFrame, int]:
    """Add an exact fixed-point `points` column (value × 10^scale) = unit × role weight × counted."""
    units = {(code, role): a.unit_points * w for code, a in book.actions.items() for role, w in book.roles.items()}
    scale = max((max(0, -int(u.normalize().as_tuple().exponent)) for u in units.values()), default=0)
    fixed = {key: int(u.scaleb(scale)) for key, u in units.items()}
    largest = max((abs(v) for v in fixed.values()), default=0)
    total_count = int(frame["counted"].sum() or 0)
    if largest * max(total_count, 1) >= _INT64_SAFE:
        raise OverflowError(
            f"关系分计算超出精确整数范围（分值×系数的小数位 {scale} 位，合计次数 {total_count}）：请减少系数的小数位")
    table = pl.DataFrame(
        {"action": [k[0] for k in fixed], "role": [k[1] for k in fixed], "unit": list(fixed.values())},
        schema={"action": pl.String, "role": pl.String, "unit": pl.Int64},
    )
    frame = frame.join(table, on=["action", "role"], how="left").with_columns(
        points=pl.col("unit") * pl.col("counted")
    )
    return frame, scale
