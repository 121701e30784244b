"""The engine: inputs + rulebook (+ the existing payout ledger and ranking history) -> results.

Adapters read sheets into these records and write the results back; this module never sees a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter

from xlsales.core.accounts import KeyAccountRow, key_accounts
from xlsales.core.activity import ActivityLog
from xlsales.core.commission import OrderEarnings, breakthrough_winners, year_earnings
from xlsales.core.dates import month_end, month_label
from xlsales.core.models import (
    CUSTOMER_SHEET,
    ORDER_SHEET,
    REP_SHEET,
    Collection,
    Customer,
    FiveWordRating,
    Opportunity,
    OpportunityStatus,
    Order,
    Progress,
    Rep,
    RepStatus,
    Target,
    ThreeCCheck,
)
from xlsales.core.money import ZERO, pct, yuan
from xlsales.core.payouts import (
    RANKING_STAGE,
    Forfeiture,
    Item,
    LedgerEntry,
    OnTimeRate,
    OrderEvents,
    PayoutLine,
    PayStatus,
    ReleasePlan,
    on_time_rates,
    reconcile,
    single_line,
)
from xlsales.core.people import FiveWordRow, five_word_summary
from xlsales.core.problems import Problem, Problems, Rejected
from xlsales.core.ranking import HISTORY_SHEET, Contender, Group, HistoryEntry, RankingRow, rank_month
from xlsales.core.relationship import check_log_references, evaluate_log
from xlsales.core.rulebook import Rulebook, StageName
from xlsales.core.targets import TargetGap, check_targets, floor_to_date, target_gap
from xlsales.core.tiers import OPPORTUNITY_SHEET, CustomerRating, ForecastRow, forecast, rate_customers
from xlsales.core.watchlist import WatchRow, watchlist


@dataclass
class Inputs:
    reps: list[Rep] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    log: ActivityLog = field(default_factory=ActivityLog.empty)
    targets: list[Target] = field(default_factory=list)
    opportunities: list[Opportunity] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    collections: list[Collection] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)  # the 提成发放表 as finance left it
    rejected: Rejected = field(default_factory=Rejected)  # keys of rows left out for a bad cell
    history: list[HistoryEntry] = field(default_factory=list)  # the 排名历史 so far
    five_words: list[FiveWordRating] = field(default_factory=list)  # 5词评价 (optional sheet)
    three_c: list[ThreeCCheck] = field(default_factory=list)  # 3C清单 (optional sheet)


@dataclass(slots=True)
class SummaryRow:
    """A row of 提成汇总 (the plan year)."""

    rep_id: str
    name: str
    orders_total: Decimal
    floor: Decimal | None
    challenge: Decimal | None
    attainment: Decimal | None
    due_total: Decimal
    paid_total: Decimal
    unpaid_total: Decimal
    clawback_total: Decimal


@dataclass
class Results:
    book: Rulebook
    ratings: list[CustomerRating]
    forecast: list[ForecastRow]
    payouts: list[PayoutLine]
    summary: list[SummaryRow]
    ranking: list[RankingRow]
    history: list[RankingRow]
    on_time: list[OnTimeRate]
    target_gap: TargetGap
    forfeitures: list[Forfeiture]
    counts: dict[str, int]
    accounts: list[KeyAccountRow] = field(default_factory=list)  # 铁三角与覆盖: the key accounts
    five_words: list[FiveWordRow] = field(default_factory=list)  # 5词汇总: per rep and quarter
    watchlist: list[WatchRow] = field(default_factory=list)  # 创始人关注: the customers flagged 重点


def _unique_by(records: list, key: str, sheet: str, header: str, problems: Problems) -> dict:  # type: ignore[type-arg]
    seen: dict = {}  # type: ignore[type-arg]
    for record in records:
        value = getattr(record, key)
        if value in seen:
            problems.error(sheet, record.row, header, value,
                           f"{header}“{value}”重复（第 {seen[value].row} 行已有）：这一行不计算，请删除或改正")
        else:
            seen[value] = record
    return seen


@dataclass
class OrderSide:
    """The part of a run that does not need the relationship log: the checked reps, customers,
    orders, opportunities and targets, the commission, and the release and breakthrough lines.
    A file run computes it while the log is still loading (see `prepare`); the problems found are
    kept apart in two lists, to be reported where `compute` reports them."""

    reps: dict[str, Rep]
    customers: dict[str, Customer]
    orders: dict[str, Order]
    opportunities: list[Opportunity]
    targets: dict[tuple[int, str], Target]
    gap: TargetGap
    frozen: set[tuple[str, int]]  # (rep, year) without a target: their ledger lines are kept as they are
    fresh: list[PayoutLine]  # release lines of every order, then the breakthrough awards
    before_log: list[Problem]  # reported before the log's problems
    after_log: list[Problem]  # reported after the ratings' and the forecast's

    def name_of(self, rep: str) -> str:
        return self.reps[rep].name if rep in self.reps else ""


def compute(inputs: Inputs, book: Rulebook, problems: Problems, prepared: OrderSide | None = None,
            on_ledger: Callable[[list[PayoutLine]], None] | None = None) -> Results:
    """Run every rule of rules.md over the inputs. The collector is paused meanwhile: a run makes a
    few hundred thousand short-lived objects and no reference cycles, and full collections over the
    inputs' records would otherwise cost more than the work itself.

    `prepared`: `prepare(inputs, book)` done earlier on these same inputs and rulebook (the log aside).
    `on_ledger(lines)`: called with the final payout lines (Results.payouts) as soon as they are
    known, before the summaries are made (a file run starts writing 提成发放表 then)."""
    with collector_paused():
        return _compute(inputs, book, problems, prepared, on_ledger)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for a while (reference counting still frees everything that is
    not in a cycle), back as it was afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare(inputs: Inputs, book: Rulebook) -> OrderSide:
    """Everything of `compute` that does not read `inputs.log` (nor history, five-word ratings or 3C):
    the same results and problems, ready before the log is."""
    with collector_paused():
        return _prepare(inputs, book)


@dataclass
class _Checked:
    reps: dict[str, Rep]
    customers: dict[str, Customer]
    orders: dict[str, Order]
    later_orders: set[str]  # signed after the evaluation date: left out, their collections too
    opportunities: list[Opportunity]
    targets: dict[tuple[int, str], Target]
    rejected: Rejected  # the input's rejected keys, and the orders left out for a bad reference


def _check_records(inputs: Inputs, ev: dt.date, problems: Problems) -> _Checked:
    """Keys unique, every reference to a rep, customer or order known, targets sound: what a run
    checks before it computes (records dated after `ev` are left out, with one warning a sheet)."""
    reps: dict[str, Rep] = _unique_by(inputs.reps, "rep_id", REP_SHEET, "工号", problems)
    customers: dict[str, Customer] = _unique_by(inputs.customers, "code", CUSTOMER_SHEET, "客户编码", problems)
    for c in customers.values():
        for attr, header in (("account_manager", "客户经理"), ("tech_manager", "技术经理"), ("service_manager", "服务经理")):
            code = getattr(c, attr)
            if code is not None and code not in reps:
                problems.error(CUSTOMER_SHEET, c.row, header, code, inputs.rejected.message(
                    REP_SHEET, code, f"{header}“{code}”不在销售人员表里：请填工号"))
    orders, later, dropped = _valid_orders(inputs.orders, reps, customers, ev, problems, inputs.rejected)
    opportunities = _valid_opportunities(inputs.opportunities, reps, customers, problems, inputs.rejected)
    targets = check_targets(inputs.targets, set(reps), problems, inputs.rejected)
    return _Checked(reps, customers, orders, later, opportunities, targets, inputs.rejected.with_rows(ORDER_SHEET, dropped))


def check_without_rules(inputs: Inputs, problems: Problems) -> None:
    """The checks of a run that need no rule table or parameter, for a run that its rulebook stops:
    duplicate keys, every reference to a rep, customer or order (the log's too), the targets. They
    are reported with the rulebook's problems, so that fixing the rule sheets does not bring a
    second list of problems only then (rules §6: all problems at once). Nothing is compared with
    评估日期, itself a parameter; the log's actions and roles need the rule tables."""
    checked = _check_records(inputs, dt.date.max, problems)
    OrderEvents(checked.orders, inputs.collections, inputs.progress, dt.date.max, problems, checked.later_orders,
                checked.rejected)
    check_log_references(inputs.log, set(checked.reps), set(checked.customers), problems, inputs.rejected)


def _prepare(inputs: Inputs, book: Rulebook) -> OrderSide:
    ev = book.evaluation_date
    problems = Problems()
    checked = _check_records(inputs, ev, problems)
    reps, customers, orders, targets = checked.reps, checked.customers, checked.orders, checked.targets
    opportunities = checked.opportunities
    gap = target_gap(targets, book.year, book.params.company_target, problems)
    before_log, problems = problems.items, Problems()

    # --- commission, by rep and year ---
    by_rep_year: dict[tuple[str, int], list[Order]] = defaultdict(list)
    for order in orders.values():
        by_rep_year[(order.rep_id, order.signed.year)].append(order)
    earnings: list[OrderEarnings] = []
    frozen: set[tuple[str, int]] = set()
    for (rep, year), rep_orders in sorted(by_rep_year.items()):
        target = targets.get((year, rep))
        if target is None:
            frozen.add((rep, year))
            first = min(rep_orders, key=lambda o: (o.signed, o.order_id))
            # an error in the plan year (its commission is what the run is for); a warning for another
            # year, whose targets a new year's workbook need not carry (its lines are kept as they are)
            report = problems.error if year == book.year else problems.warn
            report(ORDER_SHEET, first.row, "工号", rep,
                   f"工号“{rep}”在 {year} 年有 {len(rep_orders)} 张订单，但没有有效的业绩目标："
                   "这些订单的提成暂不计算，已有的发放行保持不变（订单仍算作客户的首单）；如需计算，请在业绩目标表补上该年目标")
            continue
        earnings += year_earnings(rep_orders, target.floor, target.challenge, book)
    for e in earnings:
        if e.below_red_line:
            problems.warn(ORDER_SHEET, e.order.row, "毛利率", pct(e.order.margin),
                          f"订单“{e.order.order_id}”毛利率 {pct(e.order.margin)} 低于红线 "
                          f"{pct(book.params.margin_red_line)}：不计提成和毛利奖（计入业绩）")

    events = OrderEvents(orders, inputs.collections, inputs.progress, ev, problems, checked.later_orders, checked.rejected)
    side = OrderSide(reps, customers, orders, opportunities, targets, gap, frozen, [], before_log, problems.items)
    plan = ReleasePlan(book)
    fresh = side.fresh
    for e in earnings:
        fresh += plan.order_lines(e, side.name_of(e.order.rep_id), events)
    for code, order in sorted(breakthrough_winners(orders.values(), customers).items()):
        award = customers[code].breakthrough_award or ZERO
        fresh.append(single_line(order.rep_id, side.name_of(order.rep_id), order.order_id, Item.BREAKTHROUGH,
                                 StageName.SIGNING.value, order.signed, award,
                                 f"客户“{customers[code].name}”的第一张订单，战略突破奖 {yuan(award)}，签约时全额发放",
                                 order.signed.year, book))
    return side


def _compute(inputs: Inputs, book: Rulebook, problems: Problems, side: OrderSide | None,
             on_ledger: Callable[[list[PayoutLine]], None] | None = None) -> Results:
    ev = book.evaluation_date
    # The log first: its frames are a run's biggest temporaries (a few hundred MB for a million
    # rows) and are gone before the payout lines are made, unless those were prepared already.
    # Its problems are reported after the order side's first ones, as if checked in that order.
    log_problems = Problems()
    facts = evaluate_log(inputs.log, book, {r.rep_id for r in inputs.reps}, {c.code for c in inputs.customers},
                         log_problems, inputs.rejected)
    if side is None:
        side = _prepare(inputs, book)
    reps, customers, orders, targets = side.reps, side.customers, side.orders, side.targets
    problems.extend(side.before_log)
    problems.extend(log_problems.items)
    ratings = rate_customers(customers.values(), facts, book)
    accounts = key_accounts(customers.values(), facts, book, problems, inputs.three_c)
    five_words = five_word_summary(inputs.five_words, reps, problems)
    watched = watchlist(customers.values(), ratings, facts, inputs.log, side.opportunities, set(reps), book)
    tier_of = {r.code: r.tier for r in ratings}
    pipeline = forecast(side.opportunities, tier_of, book, problems)
    problems.extend(side.after_log)
    fresh = list(side.fresh)  # the prepared lines stay as they were (a prepared side may be used twice)

    # --- the month's ranking ---
    month = month_label(ev)
    year_orders: dict[str, Decimal] = defaultdict(Decimal)
    for order in orders.values():
        if order.signed.year == ev.year:
            year_orders[order.rep_id] += order.amount
    contenders: list[Contender] = []
    for person in reps.values():
        target = targets.get((ev.year, person.rep_id))
        if person.status is RepStatus.ACTIVE and target is not None:
            contenders.append(Contender(person.rep_id, person.name, _attainment(year_orders[person.rep_id],
                                        floor_to_date(target, ev.month), book.params.attainment_cap),
                                        facts.rep_month_scores.get(person.rep_id, ZERO)))
    p = book.params
    ranking, history = rank_month(month, contenders, _unique_history(inputs.history, problems), p.performance_weight,
                                  p.relationship_weight, p.attainment_cap, p.top_share, p.bottom_share)
    if p.ranking_award > 0:
        for row in history:
            if row.group is Group.TOP and row.month.startswith(f"{book.year:04d}-"):
                y, m = (int(x) for x in row.month.split("-"))
                # dated at the month's close; the month being ranked closes at the evaluation date. A
                # later month (in the history when an earlier month is recomputed) keeps its own date
                end = month_end(dt.date(y, m, 1))
                event = ev if (y, m) == (ev.year, ev.month) else end
                fresh.append(single_line(row.rep_id, row.name, None, Item.RANKING_AWARD, RANKING_STAGE, event,
                                         p.ranking_award, f"{row.month} 月度排名第 {row.rank}（前30%），排名奖 "
                                         f"{yuan(p.ranking_award)}", y, book, key=row.month))

    # --- must-win losses, the ledger, statuses ---
    forfeits = _forfeitures(side.opportunities, customers, ev)
    year_of_order = {o.order_id: o.signed.year for o in orders.values()}
    lines = reconcile(fresh, inputs.ledger, forfeits, side.frozen, year_of_order, book)
    lines = _in_ledger_order(lines)
    if on_ledger is not None:
        on_ledger(lines)

    summary = _summary(reps, targets, year_orders, lines, book)
    return Results(
        book=book, ratings=ratings, forecast=pipeline, payouts=lines, summary=summary, ranking=ranking,
        history=history, on_time=on_time_rates(lines, ev), target_gap=side.gap,
        forfeitures=sorted(forfeits.values(), key=lambda f: (f.rep_id, f.year)), accounts=accounts,
        five_words=five_words, watchlist=watched,
        counts={
            "销售人员": len(inputs.reps), "客户": len(inputs.customers), "客户关系记录": facts.entries_read,
            "计分记录": facts.entries_counted, "订单": len(inputs.orders), "回款": len(inputs.collections),
            "商机": len(inputs.opportunities), "排名人数": len(ranking), "发放行": len(lines),
        },
    )


def _in_ledger_order(lines: list[PayoutLine]) -> list[PayoutLine]:
    """Sorted by (rep_id, year, event_date, line_id), stably: each (rep, year) apart, then the groups
    in order, which compares far less than one sort of a quarter of a million lines on four keys."""
    groups: dict[tuple[str, int], list[PayoutLine]] = defaultdict(list)
    for line in lines:
        groups[(line.rep_id, line.year)].append(line)
    by_event = attrgetter("event_date", "line_id")
    out: list[PayoutLine] = []
    for key in sorted(groups):
        group = groups[key]
        group.sort(key=by_event)
        out += group
    return out


def _unique_history(history: list[HistoryEntry], problems: Problems) -> list[RankingRow]:
    """One row per (月份, 工号): a duplicate would pay a ranking award twice."""
    seen: dict[tuple[str, str], HistoryEntry] = {}
    for entry in history:
        key = (entry.month, entry.rep_id)
        if key in seen:
            problems.error(HISTORY_SHEET, entry.row, "工号", entry.rep_id,
                           f"{entry.month} 工号“{entry.rep_id}”在排名历史里重复（第 {seen[key].row} 行已有）：请删除重复的一行")
        else:
            seen[key] = entry
    return [h.to_row() for h in seen.values()]


def _attainment(orders: Decimal, target_to_date: Decimal, cap: Decimal) -> Decimal:
    if target_to_date > 0:
        return orders / target_to_date
    # nothing was due yet: on plan with no orders, ahead of plan (at the cap) with any
    return cap if orders > 0 else Decimal(1)


def _valid_orders(orders: list[Order], reps: dict[str, Rep], customers: dict[str, Customer], ev: dt.date,
                  problems: Problems, rejected: Rejected) -> tuple[dict[str, Order], set[str], dict[str, int | None]]:
    """The orders that count, the IDs of those signed after the evaluation date (left out, with
    one warning: their collections and progress are left out with them, not unknown), and those
    left out for an error here, with their row."""
    good: dict[str, Order] = {}
    future: list[Order] = []
    for order in orders:
        bad = False
        if order.order_id in good:
            problems.error(ORDER_SHEET, order.row, "订单号", order.order_id,
                           f"订单号“{order.order_id}”重复（第 {good[order.order_id].row} 行已有）：这一行不计算")
            continue
        if order.rep_id not in reps:
            problems.error(ORDER_SHEET, order.row, "工号", order.rep_id,
                           rejected.message(REP_SHEET, order.rep_id, f"销售人员表里没有工号“{order.rep_id}”"))
            bad = True
        if order.customer not in customers:
            problems.error(ORDER_SHEET, order.row, "客户编码", order.customer,
                           rejected.message(CUSTOMER_SHEET, order.customer, f"客户表里没有客户编码“{order.customer}”"))
            bad = True
        if order.completed is not None and order.completed < order.signed:
            problems.error(ORDER_SHEET, order.row, "完工日期", order.completed, "完工日期早于签约日期：请核对")
            bad = True
        if order.signed > ev:
            future.append(order)
            continue
        if not bad:
            good[order.order_id] = order
            if order.amount == 0:
                problems.warn(ORDER_SHEET, order.row, "合同金额", order.amount,
                              f"订单“{order.order_id}”合同金额为 0：不产生提成和毛利奖，回款也不再发放，请核对合同金额")
    if future:
        first = min(future, key=lambda o: o.row or 0)
        problems.warn(ORDER_SHEET, first.row, "签约日期", first.signed,
                      f"有 {len(future)} 张订单的签约日期晚于评估日期 {ev}，本次不计入（从这一行起）")
    dropped = {o.order_id: o.row for o in orders if o.order_id not in good and o.signed <= ev}
    return good, {o.order_id for o in future}, dropped


def _valid_opportunities(opportunities: list[Opportunity], reps: dict[str, Rep], customers: dict[str, Customer],
                         problems: Problems, rejected: Rejected) -> list[Opportunity]:
    good: list[Opportunity] = []
    seen: dict[str, Opportunity] = {}
    for opp in opportunities:
        bad = False
        if opp.code in seen:
            problems.error(OPPORTUNITY_SHEET, opp.row, "商机编码", opp.code,
                           f"商机编码“{opp.code}”重复（第 {seen[opp.code].row} 行已有）：这一行不计算")
            continue
        seen[opp.code] = opp
        if opp.customer not in customers:
            problems.error(OPPORTUNITY_SHEET, opp.row, "客户编码", opp.customer,
                           rejected.message(CUSTOMER_SHEET, opp.customer, f"客户表里没有客户编码“{opp.customer}”"))
            bad = True
        if opp.rep_id not in reps:
            problems.error(OPPORTUNITY_SHEET, opp.row, "工号", opp.rep_id,
                           rejected.message(REP_SHEET, opp.rep_id, f"销售人员表里没有工号“{opp.rep_id}”"))
            bad = True
        if opp.status in (OpportunityStatus.WON, OpportunityStatus.LOST) and opp.status_date is None:
            problems.error(OPPORTUNITY_SHEET, opp.row, "状态日期", "",
                           f"状态为“{opp.status.value}”时必须填写状态日期（哪天赢单/丢单）")
            bad = True
        if opp.status is OpportunityStatus.PAUSED and not opp.pause_reason:
            problems.warn(OPPORTUNITY_SHEET, opp.row, "暂缓原因", "",
                          "暂缓的商机请写明原因（领导更换、重新招标、预算等）")
        if not bad:
            good.append(opp)
    return good


def _forfeitures(opportunities: list[Opportunity], customers: dict[str, Customer],
                 ev: dt.date) -> dict[tuple[str, int], Forfeiture]:
    out: dict[tuple[str, int], Forfeiture] = {}
    for opp in sorted(opportunities, key=lambda o: (o.status_date or ev, o.code)):
        customer = customers[opp.customer]
        if opp.status is not OpportunityStatus.LOST or not customer.must_win or customer.account_manager is None:
            continue
        assert opp.status_date is not None
        if opp.status_date > ev:
            continue
        key = (customer.account_manager, opp.status_date.year)
        out.setdefault(key, Forfeiture(customer.account_manager, opp.status_date.year, opp.status_date,
                                       customer.name, opp.code))
    return out


def _summary(reps: dict[str, Rep], targets: dict[tuple[int, str], Target], year_orders: dict[str, Decimal],
             lines: list[PayoutLine], book: Rulebook) -> list[SummaryRow]:
    year = book.year
    due: dict[str, Decimal] = defaultdict(Decimal)
    paid: dict[str, Decimal] = defaultdict(Decimal)
    clawback: dict[str, Decimal] = defaultdict(Decimal)
    cancelled, clawback_item = PayStatus.CANCELLED, Item.CLAWBACK  # an enum member looked up a line costs
    for line in lines:
        if line.year != year or line.status is cancelled:
            continue
        owner, amount = line.rep_id, line.amount
        due[owner] += amount
        if line.paid_date is not None:
            paid[owner] += amount
        if line.item is clawback_item:
            clawback[owner] += amount
    rows: list[SummaryRow] = []
    for rep in reps.values():
        target = targets.get((year, rep.rep_id))
        if target is None and rep.rep_id not in due:
            continue
        total = year_orders.get(rep.rep_id, ZERO)
        rows.append(SummaryRow(
            rep_id=rep.rep_id, name=rep.name, orders_total=total,
            floor=target.floor if target else None, challenge=target.challenge if target else None,
            attainment=total / target.floor if target else None,
            due_total=due[rep.rep_id], paid_total=paid[rep.rep_id],
            unpaid_total=due[rep.rep_id] - paid[rep.rep_id], clawback_total=clawback[rep.rep_id],
        ))
    return rows
