"""Benchmark of the pure core: `pipeline.compute` on a big, realistic, synthetic team.

    python benchmarks/bench_pipeline.py [--scale 1.0] [--seed 20261130] [--repeat 1] [--ledger]
                                        [--gc-freeze] [--stages] [--profile out.prof]

At --scale 1.0 the inputs are exactly 1,000,000 relationship-log entries, 50,000 orders, 100,000
collections, 1,000 reps and 20,000 customers (plus 2 targets a rep, 10,000 opportunities and some
progress rows). The data is generated deterministically from --seed with numpy and looks like a
real year: most log entries are valid and approved, a few % are pending approval or over a monthly
cap, dates spread over the 12 months that end at the evaluation date, orders of 1M–100M CNY at
15–40% margin, targets that put attainment around 50–200%, 1–3 collections an order, a few lost
must-win accounts and paused opportunities, and a sprinkling of the data errors a busy team makes.

Inputs are built outside the timed region; only `compute` is timed (time.perf_counter). Reported:
input-construction time, compute wall and CPU time (CPU is the steadier figure when other work
shares the machine; the 1-minute load average is printed with it), peak RSS (ru_maxrss) before and
after, RSS growth during compute, gc pauses during compute, result row counts and problem counts.
Targets: compute ≤ 2 s, peak RSS ≤ 1 GB. Which xlsales is measured (commit, uncommitted changes,
path) is printed first: put a snapshot first on PYTHONPATH to measure another version.

--ledger simulates a re-run: an untimed first run produces the payout lines and the month's
ranking; lines due more than 30 days before the evaluation date become finance's paid ledger
(提成发放表) and earlier months become the 排名历史, then the timed run reconciles against them.
--gc-freeze calls gc.freeze() on the inputs before timing. --stages times each stage of one compute
by wrapping the functions it calls (wall and CPU). --profile writes cProfile stats of one compute
to a file and prints the top functions by tottime and cumulative time.

This is a script, not a test: nothing is asserted beyond sanity checks on the generated sizes.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import os
import pstats
import resource
import statistics
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from xlsales.core.activity import LOG_SCHEMA, ActivityLog
from xlsales.core.models import (
    APPROVED,
    Collection,
    Customer,
    Opportunity,
    OpportunityStatus,
    Order,
    Progress,
    Rep,
    RepStatus,
    Target,
    Tier,
)
from xlsales.core.payouts import LedgerEntry
from xlsales.core.pipeline import Inputs, Results, compute
from xlsales.core.problems import Problems
from xlsales.core.ranking import HistoryEntry
from xlsales.core.rulebook import Rulebook, default_rulebook

EVALUATION_DATE = dt.date(2026, 11, 30)
YEAR = EVALUATION_DATE.year

BASE = {"log": 1_000_000, "orders": 50_000, "collections": 100_000, "reps": 1_000, "customers": 20_000}

ROLES = ["决策层", "管理层", "技术/采购层", "秘书/助理"]
ROLE_WEIGHTS = [0.10, 0.25, 0.50, 0.15]
# the default catalog A01..A13, weighted toward everyday actions (calls and visits)
ACTIONS = [f"A{i:02d}" for i in range(1, 14)]
ACTION_WEIGHTS = [30, 25, 8, 6, 2, 1.5, 2.5, 1.5, 3, 0.3, 6, 1, 0.2]
GATED_ACTION = "A11"  # 商务接待 needs approval
PENDING = "待审批"
REJECTED = "已驳回"
CONTACTS = ["总经理", "副总经理", "信息中心主任", "采购经理", "技术主管", "总经理秘书", "财务总监", "项目经理",
            "设备处处长", "总工程师", "办公室主任", "运维主管"]
SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉")
REGIONS = ["华北", "华东", "华南", "西南", "西北", "东北"]
CITIES = ["北京", "上海", "广州", "深圳", "成都", "武汉", "南京", "杭州", "西安", "天津", "重庆", "苏州", "青岛",
          "长沙", "郑州", "沈阳"]
TRADES = ["电力", "钢铁", "港口", "能源", "轨道交通", "水务", "医药", "汽车", "银行", "航空", "化工", "烟草"]
PAUSE_REASONS = ["客户领导更换，项目重新立项", "预算冻结，等待下一财年", "重新招标", "客户内部组织调整"]
SEASONAL_SPLIT = (4, 4, 6, 8, 8, 9, 9, 9, 10, 10, 11, 12)  # percent of the floor, sums to 100


def scaled(name: str, scale: float) -> int:
    return max(1, round(BASE[name] * scale))


# ----------------------------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------------------------

def _dates(days: np.ndarray) -> list[dt.date]:
    """Day numbers (days since 1970-01-01) -> datetime.date objects."""
    epoch = dt.date(1970, 1, 1).toordinal()
    return [dt.date.fromordinal(epoch + int(d)) for d in days]


def _day_number(day: dt.date) -> int:
    return day.toordinal() - dt.date(1970, 1, 1).toordinal()


def build_inputs(scale: float, seed: int) -> tuple[Inputs, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n_reps, n_customers = scaled("reps", scale), scaled("customers", scale)
    n_orders, n_collections, n_log = scaled("orders", scale), scaled("collections", scale), scaled("log", scale)
    n_collections = min(max(n_collections, n_orders), 3 * n_orders)  # 1–3 collections an order
    ev_day = _day_number(EVALUATION_DATE)
    info: dict[str, Any] = {}

    # NOTE: records are built with pydantic's model_construct, which skips validation. That is
    # acceptable here only because the benchmark's synthetic data is valid by construction (right
    # types: str, Decimal, date, enums); real adapters must validate every row. Targets go through
    # Target.from_row (validated) as the pipeline expects.

    # --- reps: ~3% have left ---
    rep_ids = [f"E{i + 1:05d}" for i in range(n_reps)]
    left = rng.random(n_reps) < 0.03
    reps = [
        Rep.model_construct(row=i + 2, rep_id=rep_ids[i],
                            name=SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)] + GIVEN[(i * 13) % len(GIVEN)],
                            region=REGIONS[i % len(REGIONS)], status=RepStatus.LEFT if left[i] else RepStatus.ACTIVE)
        for i in range(n_reps)
    ]
    active_idx = np.flatnonzero(~left)

    # --- customers: an account team each; ~5% must-win, ~2% with a breakthrough award ---
    cust_codes = [f"C{i + 1:06d}" for i in range(n_customers)]
    account = active_idx[rng.integers(0, active_idx.size, n_customers)]
    if left.any():  # a leaver's accounts, not yet handed over
        account[: min(n_customers, 40)] = np.flatnonzero(left)[0]
    tech = rng.integers(0, n_reps, n_customers)
    has_service = rng.random(n_customers) < 0.7
    service = rng.integers(0, n_reps, n_customers)
    must_win = rng.random(n_customers) < 0.05
    award = rng.random(n_customers) < 0.02
    against = rng.random(n_customers) < 0.01
    claimed = rng.choice(5, n_customers, p=[0.10, 0.25, 0.30, 0.05, 0.30])  # index 4 = not filled in
    tiers = [*list(Tier), None]
    customers = [
        Customer.model_construct(
            row=i + 2, code=cust_codes[i],
            name=f"{CITIES[i % len(CITIES)]}{TRADES[(i * 7) % len(TRADES)]}{'集团' if i % 3 else '股份公司'}{i + 1}",
            account_manager=rep_ids[account[i]], tech_manager=rep_ids[tech[i]],
            service_manager=rep_ids[service[i]] if has_service[i] else None,
            must_win=bool(must_win[i]), breakthrough_award=Decimal(500_000 * (1 + i % 4)) if award[i] else None,
            stance=Tier.AGAINST.value if against[i] else None, claimed_tier=tiers[claimed[i]],
        )
        for i in range(n_customers)
    ]

    # --- the relationship log, built directly as a polars frame ---
    activity = rng.gamma(1.5, 1.0, n_customers)  # a few accounts are worked much harder than most
    cust = rng.choice(n_customers, n_log, p=activity / activity.sum())
    who = rng.random(n_log)
    rep = np.where(who < 0.60, account[cust], np.where(who < 0.88, tech[cust], service[cust]))
    rep = np.where((who >= 0.88) & ~has_service[cust], account[cust], rep)
    helper = rng.random(n_log) < 0.03  # a colleague from another team helps out
    rep = np.where(helper, rng.integers(0, n_reps, n_log), rep)
    # ~12 months ending at the evaluation date, a little busier on weekdays
    offset = rng.integers(0, 365, n_log)
    weekend = ((ev_day - offset) + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    offset = np.where(weekend & (rng.random(n_log) < 0.7), rng.integers(0, 365, n_log), offset)
    day = ev_day - offset
    action = rng.choice(len(ACTIONS), n_log, p=np.array(ACTION_WEIGHTS) / sum(ACTION_WEIGHTS))
    role = rng.choice(len(ROLES), n_log, p=ROLE_WEIGHTS)
    contact = rng.integers(0, len(CONTACTS), n_log)
    count = rng.choice(3, n_log, p=[0.90, 0.08, 0.02]) + 1
    blank_count = rng.random(n_log) < 0.25  # blank means once
    approval_draw = rng.random(n_log)
    gated = action == ACTIONS.index(GATED_ACTION)
    approval = np.where(gated, np.where(approval_draw < 0.70, 0, np.where(approval_draw < 0.92, 1, 2)), 3)

    order = np.lexsort((cust, rep, day))  # the sheet is kept in date order
    cust, rep, day, action, role, contact, count, blank_count, approval = (
        a[order] for a in (cust, rep, day, action, role, contact, count, blank_count, approval))

    def pick(values: list[Any], index: np.ndarray) -> pl.Series:
        return pl.Series(values, dtype=pl.String).gather(pl.Series(index, dtype=pl.UInt32))

    frame = pl.DataFrame({
        "row": pl.Series(np.arange(2, n_log + 2, dtype=np.int64)),
        "date": pl.Series(day.astype("datetime64[D]")).cast(pl.Date),
        "rep_id": pick(rep_ids, rep),
        "customer": pick(cust_codes, cust),
        "contact": pick(CONTACTS, contact),
        "role": pick(ROLES, role),
        "action": pick(ACTIONS, action),
        "count": pl.Series(count.astype(np.int64)),
        "approval": pick([APPROVED, PENDING, REJECTED, None], approval),  # type: ignore[list-item]
    }).with_columns(count=pl.when(pl.Series(blank_count)).then(None).otherwise(pl.col("count")))
    # the mistakes of a busy team: ~0.02% each of an unknown action, an unknown customer, a count of
    # 0, a blank date and a handful of entries dated after the evaluation date
    n_bad = max(1, n_log // 5000)
    bad = rng.choice(n_log, 5 * n_bad, replace=False).reshape(5, n_bad)
    bad[4, max(1, n_bad // 20):] = bad[4, 0]  # only a handful of future dates
    is_bad = [pl.Series(np.isin(np.arange(n_log), b)) for b in bad]
    frame = frame.with_columns(
        action=pl.when(is_bad[0]).then(pl.lit("A99")).otherwise(pl.col("action")),
        customer=pl.when(is_bad[1]).then(pl.lit("C999999X")).otherwise(pl.col("customer")),
        count=pl.when(is_bad[2]).then(0).otherwise(pl.col("count")),
        date=pl.when(is_bad[3]).then(None)
        .when(is_bad[4]).then(pl.lit(EVALUATION_DATE + dt.timedelta(days=3)))
        .otherwise(pl.col("date")),
    ).select([pl.col(c).cast(t) for c, t in LOG_SCHEMA.items()])
    log = ActivityLog(frame)

    # --- orders: ~10% signed last year (still collecting), the rest this year up to the evaluation date ---
    order_cust = rng.choice(n_customers, n_orders, p=np.sqrt(activity) / np.sqrt(activity).sum())
    order_rep = account[order_cust]
    last_year = rng.random(n_orders) < 0.10
    year_start, prev_start = _day_number(dt.date(YEAR, 1, 1)), _day_number(dt.date(YEAR - 1, 1, 1))
    signed = np.where(last_year, rng.integers(prev_start, year_start, n_orders), rng.integers(year_start, ev_day + 1, n_orders))
    amount = (np.exp(rng.uniform(np.log(1e6), np.log(1e8), n_orders)) / 1000).round().astype(np.int64) * 1000
    margin_permille = (150 + 250 * rng.beta(2.5, 2.5, n_orders)).round().astype(np.int64)  # 15.0%–40.0%
    done = signed + rng.integers(60, 300, n_orders)
    signed_dates = _dates(signed)
    order_ids = [f"SO{signed_dates[i].year}{i + 1:07d}" for i in range(n_orders)]
    done_dates = _dates(done)
    orders = [
        Order.model_construct(
            row=i + 2, order_id=order_ids[i], signed=signed_dates[i], rep_id=rep_ids[order_rep[i]],
            customer=cust_codes[order_cust[i]], amount=Decimal(int(amount[i])),
            margin=Decimal(int(margin_permille[i])) / 1000, completed=done_dates[i] if done[i] <= ev_day else None,
        )
        for i in range(n_orders)
    ]
    info["orders below red line"] = int((margin_permille < 200).sum())

    # --- collections: exactly n_collections, 1–3 an order, mostly within the contract amount ---
    extra = rng.choice(2 * n_orders, n_collections - n_orders, replace=False)
    per_order = 1 + np.bincount(extra % n_orders, minlength=n_orders)
    share_total = np.where(rng.random(n_orders) < 0.02, rng.uniform(1.0, 1.08, n_orders), rng.uniform(0.3, 1.0, n_orders))
    collections: list[Collection] = []
    row = 2
    coll_owner = np.repeat(np.arange(n_orders), per_order)
    coll_day_draw = rng.random(n_collections)
    coll_share_draw = rng.gamma(2.0, 1.0, n_collections)
    start = 0
    for i in range(n_orders):
        k = int(per_order[i])
        span = ev_day - int(signed[i])
        days = np.sort(signed[i] + (coll_day_draw[start:start + k] * (span + 1)).astype(np.int64))
        parts = coll_share_draw[start:start + k] / coll_share_draw[start:start + k].sum() * share_total[i]
        for d, s in zip(_dates(days), parts, strict=True):
            cents = max(1, round(float(amount[i]) * float(s) * 100))
            collections.append(Collection.model_construct(row=row, order_id=order_ids[i], date=d,
                                                          amount=Decimal(cents).scaleb(-2)))
            row += 1
        start += k
    assert start == n_collections == coll_owner.size
    info["orders over-collected"] = int((share_total > 1).sum())

    # --- progress: completed orders report 50% at mid-way and 100% at completion ---
    progress: list[Progress] = []
    half = Decimal("0.5")
    for i in np.flatnonzero(done <= ev_day):
        mid = _dates([(int(signed[i]) + int(done[i])) // 2])[0]
        progress.append(Progress.model_construct(row=len(progress) + 2, order_id=order_ids[i], date=mid, cumulative=half))
        progress.append(Progress.model_construct(row=len(progress) + 2, order_id=order_ids[i], date=done_dates[i],
                                                 cumulative=Decimal(1)))

    # --- targets: per rep and year, floor = orders ÷ attainment with attainment ~ 50%–200% ---
    targets: list[Target] = []
    for y, in_year in ((YEAR - 1, last_year), (YEAR, ~last_year)):
        totals = np.bincount(order_rep[in_year], weights=amount[in_year], minlength=n_reps)
        attainment = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_reps))
        if y == YEAR:  # the floor is for the whole year; orders so far cover 11 of 12 months
            attainment *= (ev_day - year_start + 1) / 365
        floors = np.where(totals > 0, totals / attainment, 50_000_000)
        floors = np.maximum((floors / 100_000).round(), 10) * 100_000
        for r in range(n_reps):
            floor = Decimal(int(floors[r]))
            values: dict[str, Any] = {"年度": y, "工号": rep_ids[r], "保底目标": floor,
                                      "挑战目标": floor * Decimal("1.3"),
                                      "自报目标": floor * Decimal("1.1") if r % 3 else None}
            if r % 10 == 0:  # a seasonal split for some reps
                values.update({f"{m}月": floor * p / 100 for m, p in enumerate(SEASONAL_SPLIT, 1)})
            targets.append(Target.from_row(values, row=len(targets) + 2))

    # --- opportunities: mostly open; some won, lost or paused; a few must-win accounts lost ---
    n_opps = max(1, n_customers // 2)
    opp_cust = rng.choice(n_customers, n_opps, replace=False)
    status = rng.choice(4, n_opps, p=[0.72, 0.12, 0.10, 0.06])  # open, won, paused, lost
    lost = status == 3
    # must-win accounts are lost rarely: keep about 1 in 8 of their losses
    status = np.where(lost & must_win[opp_cust] & (rng.random(n_opps) > 0.125), 0, status)
    if not (status == 3).any() or not ((status == 3) & must_win[opp_cust]).any():  # at least one must-win loss
        candidates = np.flatnonzero(must_win[opp_cust])
        if candidates.size:
            status[candidates[0]] = 3
    statuses = [OpportunityStatus.OPEN, OpportunityStatus.WON, OpportunityStatus.PAUSED, OpportunityStatus.LOST]
    status_day = rng.integers(year_start, ev_day + 1, n_opps)
    status_dates = _dates(status_day)
    opp_amount = (np.exp(rng.uniform(np.log(5e5), np.log(1.5e8), n_opps)) / 10_000).round().astype(np.int64) * 10_000
    no_reason = rng.random(n_opps) < 0.05
    opportunities = []
    for i in range(n_opps):
        s = statuses[status[i]]
        c = int(opp_cust[i])
        opportunities.append(Opportunity.model_construct(
            row=i + 2, code=f"OP{i + 1:06d}", customer=cust_codes[c], rep_id=rep_ids[account[c]],
            amount=Decimal(int(opp_amount[i])), status=s,
            status_date=None if s is OpportunityStatus.OPEN else status_dates[i],
            expected_month=f"{YEAR + (i % 3 == 0)}-{(i % 12) + 1:02d}",
            pause_reason=PAUSE_REASONS[i % len(PAUSE_REASONS)] if s is OpportunityStatus.PAUSED and not no_reason[i] else None,
        ))
    info["must-win losses"] = int(((status == 3) & must_win[opp_cust]).sum())
    info["paused opportunities"] = int((status == 2).sum())

    inputs = Inputs(reps=reps, customers=customers, log=log, targets=targets, opportunities=opportunities,
                    orders=orders, collections=collections, progress=progress)
    return inputs, info


def add_ledger(inputs: Inputs, book: Rulebook) -> dict[str, Any]:
    """Turn an untimed first run into finance's ledger and the ranking history (a re-run)."""
    first = compute(inputs, book, Problems())
    paid_until = book.evaluation_date - dt.timedelta(days=30)
    ledger: list[LedgerEntry] = []
    for line in first.payouts:
        if line.due_date > paid_until:
            continue
        ledger.append(LedgerEntry.model_construct(
            row=len(ledger) + 2, line_id=line.line_id, rep_id=line.rep_id, name=line.name, order_id=line.order_id,
            item=line.item.value, stage=line.stage, event_date=line.event_date, due_date=line.due_date,
            amount=line.amount, explanation=line.explanation, status="已发",
            paid_date=line.due_date + dt.timedelta(days=len(ledger) % 3),  # mostly on time, some late
        ))
    history: list[HistoryEntry] = []
    for month in range(1, book.evaluation_date.month):
        label = f"{book.year:04d}-{month:02d}"
        for r in first.ranking:
            history.append(HistoryEntry.model_construct(
                row=len(history) + 2, month=label, rank=r.rank, rep_id=r.rep_id, name=r.name, attainment=r.attainment,
                relationship=r.relationship, score=r.score, group=r.group, bottom_streak=r.bottom_streak))
    inputs.ledger, inputs.history = ledger, history
    del first
    _release_freed_memory()  # so that the warm-up run's garbage does not count as the timed run's memory
    return {"ledger entries": len(ledger), "history rows": len(history)}


def _release_freed_memory() -> None:
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak before compute then includes the warm-up run
        pass


# ----------------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _load_average() -> str:
    """1-minute load average: on a 2-core machine, anything above ~1 means compute shared the CPU."""
    try:
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            return loadavg.read().split()[0]
    except OSError:
        return "?"


class GcTimer:
    """Total time of the garbage collector's pauses while active."""

    def __init__(self) -> None:
        self.total = 0.0
        self.collections = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start
            self.collections += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def timed_compute(inputs: Inputs, book: Rulebook) -> tuple[Results, Problems, dict[str, float]]:
    gc.collect()
    rss_before, peak_before = current_rss_mb(), peak_rss_mb()
    problems = Problems()
    with GcTimer() as gc_timer:
        start, cpu_start = time.perf_counter(), time.process_time()
        results = compute(inputs, book, problems)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_after = peak_rss_mb()
    return results, problems, {
        "seconds": elapsed, "cpu_seconds": cpu, "load": _load_average(), "gc_seconds": gc_timer.total, "gc_runs": gc_timer.collections,
        "rss_before": rss_before, "rss_after": current_rss_mb(), "peak_before": peak_before, "peak_after": peak_after,
        # growth above the RSS compute started from; a lower bound when compute never exceeded the earlier peak
        "growth": max(peak_after, rss_before) - rss_before,
    }


def profile_compute(inputs: Inputs, book: Rulebook, path: str, top: int = 30) -> None:
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    compute(inputs, book, Problems())
    profiler.disable()
    profiler.dump_stats(path)
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print(f"\n--- cProfile of compute, top {top} by {key} (full stats in {path}) ---")
        print(out.getvalue().split("\n\n", 2)[-1].rstrip())


# functions looked up at call time through these modules' globals (or methods of their classes, as
# "Class.method"), so wrapping them times each stage; names the code no longer has are skipped (older
# names stay listed so an older snapshot on PYTHONPATH is timed by stage too: settle_status,
# component_lines and _check_references are gone since the payout lines and log checks were sped up)
STAGES = {
    "xlsales.core.pipeline": ["_unique_by", "_valid_orders", "_valid_opportunities", "check_targets", "target_gap",
                              "evaluate_log", "rate_customers", "forecast", "year_earnings", "OrderEvents", "order_lines",
                              "breakthrough_winners", "single_line", "rank_month", "_forfeitures", "reconcile",
                              "settle_status", "_in_ledger_order", "_summary", "on_time_rates"],
    "xlsales.core.payouts": ["releases", "component_lines", "ReleasePlan.order_lines", "ReleasePlan.releases",
                             "ReleasePlan.component_lines"],
    "xlsales.core.relationship": ["_check_references", "_check_rows", "_report", "_apply_monthly_caps", "_with_points"],
}

TOP_LEVEL = {"payouts.ReleasePlan.order_lines"}  # called by compute directly, though not through pipeline's globals


def stage_compute(inputs: Inputs, book: Rulebook) -> None:
    """Wall time of each stage of one compute, by wrapping the functions compute calls (low overhead,
    unlike cProfile). Nested stages (releases inside order_lines, …) are also counted in their parent."""
    import importlib

    spent: dict[str, list[float]] = {}
    originals: list[tuple[Any, str, Any]] = []

    def wrap(label: str, fn: Any) -> Any:
        record = spent.setdefault(label, [0.0, 0.0, 0])

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                record[0] += time.perf_counter() - start
                record[1] += time.process_time() - cpu
                record[2] += 1
        return timed

    for module_name, names in STAGES.items():
        module = importlib.import_module(module_name)
        for name in names:
            owner_name, _, attr = name.rpartition(".")
            owner = getattr(module, owner_name, None) if owner_name else module
            original = getattr(owner, attr, None) if owner is not None else None
            if original is None:
                continue
            originals.append((owner, attr, original))
            setattr(owner, attr, wrap(f"{module_name.rsplit('.', 1)[1]}.{name}", original))
    try:
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        compute(inputs, book, Problems())
        total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        for owner, attr, original in reversed(originals):
            setattr(owner, attr, original)
    top = [v for k, v in spent.items() if k in TOP_LEVEL or k.startswith("pipeline.")]
    width = max(len(k) for k in spent) + 16
    print("\nseconds by stage, one compute (functions wrapped; * = top-level stage, the rest nested in one)")
    print(f"{'stage':<{width}} {'wall s':>8} {'CPU s':>8}")
    for k, (wall, cpu_s, calls) in sorted(spent.items(), key=lambda kv: -kv[1][1]):
        if calls:
            mark = "*" if k in TOP_LEVEL or k.startswith("pipeline.") else " "
            print(f"{mark}{k + f' ({int(calls):,} calls)':<{width - 1}} {wall:8.3f} {cpu_s:8.3f}")
    print(f"{'compute itself (total − top-level stages)':<{width}} {total - sum(v[0] for v in top):8.3f} "
          f"{total_cpu - sum(v[1] for v in top):8.3f}")
    print(f"{'compute total':<{width}} {total:8.3f} {total_cpu:8.3f}")


def code_version() -> str:
    """Which xlsales is measured: its commit, marked when src/ has uncommitted changes (or its path,
    outside a git checkout), since benchmarks of a tree that is being edited are easy to mix up."""
    import subprocess
    from pathlib import Path

    import xlsales

    where = Path(xlsales.__file__).resolve().parent

    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=where, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return f"at {where}"
    return f"{head}{' + uncommitted changes' if dirty else ''} at {where}"


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max(len(str(k)) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 20))
    for key, value in rows:
        shown = f"{value:,.3f}" if isinstance(value, float) else (f"{value:,}" if isinstance(value, int) else str(value))
        print(f"{key:<{width}}  {shown:>16}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every input size (1.0 = 1M log entries)")
    parser.add_argument("--seed", type=int, default=20261130, help="random seed of the generated data")
    parser.add_argument("--repeat", type=int, default=1, help="time compute this many times on the same inputs")
    parser.add_argument("--ledger", action="store_true", help="re-run against a paid ledger and ranking history")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() the inputs before timing (what an adapter could do after reading a workbook)")
    parser.add_argument("--stages", action="store_true", help="also time each stage of one compute")
    parser.add_argument("--profile", metavar="PATH", help="also profile one compute with cProfile, stats to PATH")
    args = parser.parse_args(argv)

    book = default_rulebook(EVALUATION_DATE)
    peak_start = peak_rss_mb()
    start = time.perf_counter()
    inputs, info = build_inputs(args.scale, args.seed)
    build_seconds = time.perf_counter() - start
    ledger_seconds = 0.0
    if args.ledger:
        start = time.perf_counter()
        info.update(add_ledger(inputs, book))
        ledger_seconds = time.perf_counter() - start

    print(f"xlsales {code_version()}, Python {sys.version.split()[0]}, polars {pl.__version__}, "
          f"{os.cpu_count()} CPUs, polars threads {pl.thread_pool_size()}")
    table(f"inputs (scale {args.scale}, seed {args.seed})", [
        ("log entries", inputs.log.frame.height), ("orders", len(inputs.orders)),
        ("collections", len(inputs.collections)), ("reps", len(inputs.reps)), ("customers", len(inputs.customers)),
        ("targets", len(inputs.targets)), ("opportunities", len(inputs.opportunities)),
        ("progress", len(inputs.progress)), *info.items(),
    ])

    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # the inputs live for the whole run: keep them out of every later collection
    runs = []
    for _ in range(max(1, args.repeat)):
        results, problems, measured = timed_compute(inputs, book)
        runs.append(measured)
    first = runs[0]
    seconds = [r["seconds"] for r in runs]
    timing: list[tuple[str, Any]] = [
        ("input construction s", build_seconds),
        *([("ledger warm-up run s", ledger_seconds)] if args.ledger else []),
        *[(f"compute s (run {i + 1})", s) for i, s in enumerate(seconds)],
        *[(f"compute CPU s (run {i + 1}, all threads)", r["cpu_seconds"]) for i, r in enumerate(runs)],
        *[(f"load average (run {i + 1})", r["load"]) for i, r in enumerate(runs)],
    ]
    if len(runs) > 1:
        timing += [("compute s (min)", min(seconds)), ("compute s (median)", statistics.median(seconds))]
    timing += [
        ("gc pauses in compute s", first["gc_seconds"]),
        ("gc runs in compute", first["gc_runs"] if first["gc_runs"] else "0 (gc paused by compute?)"),
        ("peak RSS at start MB", peak_start), ("peak RSS before compute MB", first["peak_before"]),
        ("peak RSS after compute MB", first["peak_after"]), ("RSS before compute MB", first["rss_before"]),
        ("RSS after compute MB", first["rss_after"]), ("RSS growth in compute MB", first["growth"]),
    ]
    table("timing and memory", timing)

    table("results", [
        ("ratings", len(results.ratings)), ("forecast", len(results.forecast)), ("payout lines", len(results.payouts)),
        ("summary", len(results.summary)), ("ranking", len(results.ranking)), ("history", len(results.history)),
        ("on-time months", len(results.on_time)), ("forfeitures", len(results.forfeitures)),
        *((f"counts[{k}]", v) for k, v in results.counts.items()),
    ])
    by_kind = Counter((p.level.value, p.sheet, p.field or "") for p in problems.items)
    table(f"problems: {len(problems.items):,} ({sum(p.is_error for p in problems.items):,} errors)",
          [(f"{level} {sheet}/{field}", n) for (level, sheet, field), n in by_kind.most_common()] or [("none", 0)])

    ok_time, ok_mem = min(seconds) <= 2.0, first["peak_after"] <= 1024
    print(f"\ntarget compute ≤ 2 s: {'met' if ok_time else 'MISSED'} ({min(seconds):.3f} s); "
          f"peak RSS ≤ 1 GB: {'met' if ok_mem else 'MISSED'} ({first['peak_after']:,.0f} MB)")

    if args.stages:
        stage_compute(inputs, book)
    if args.profile:
        profile_compute(inputs, book, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
