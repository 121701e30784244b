"""The workbook contract as sheets: core results -> output sheets, and new workbooks to start from.

Headers are those of shared/spec/workbook.md, in that order; extra columns (商机预测's 暂缓原因
and 预计签约月) follow the contract ones. `result_sheets` maps a run's results to every output sheet,
`init_workbook` writes a new empty contract workbook, `write_tables` writes raw rows (such as
demo_tables()) into a new workbook for demos and tests.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl

from xlsales.adapters.board import BOARD_SHEET, board_sheet
from xlsales.adapters.xlsx_reader import column_index
from xlsales.adapters.xlsx_rows import FrameRows
from xlsales.adapters.xlsx_writer import (
    BoardCell,
    BoardOut,
    Column,
    ColumnRows,
    OutSheet,
    SheetOut,
    WorkbookLocked,
    clean_text,
    column_letter,
    column_widths,
    lock_files,
    write_sheets,
)
from xlsales.core.accounts import THREE_C, THREE_C_SHEET, KeyAccountRow
from xlsales.core.dashboard import dashboard
from xlsales.core.models import OpportunityStatus, RepStatus, Tier
from xlsales.core.money import fen
from xlsales.core.payouts import PayoutLine, PayStatus
from xlsales.core.people import FIVE_WORD_SHEET, FIVE_WORDS, FiveWordRow
from xlsales.core.pipeline import Results, SummaryRow
from xlsales.core.problems import Level, Problem
from xlsales.core.ranking import Group, RankingRow
from xlsales.core.rulebook import (
    BAND_SHEET,
    CATALOG_SHEET,
    DEFAULT_ROLES,
    PARAM_SHEET,
    ROLE_SHEET,
    STAGE_SHEET,
    TIER_SHEET,
    BandStart,
    Parameters,
    StageName,
    default_tables,
)
from xlsales.core.tiers import CustomerRating, ForecastRow
from xlsales.core.watchlist import DOWN, UP, WATCH_SHEET, WatchRow

# --- the contract -------------------------------------------------------------------------------

RATINGS_SHEET = "关系评分"
RANKING_SHEET = "月度排名"
HISTORY_SHEET = "排名历史"
PAYOUT_SHEET = "提成发放表"
SUMMARY_SHEET = "提成汇总"
FORECAST_SHEET = "商机预测"
PROBLEM_SHEET = "校验结果"

_RANKING_COLUMNS = (("月份", "text"), ("排名", "int"), ("工号", "text"), ("姓名", "text"), ("业绩完成率", "percent"),
                    ("月度关系得分", "number"), ("综合得分", "number"), ("分组", "text"), ("连续垫底月数", "int"),
                    ("提示", "text"))
NEEDS_HELP = "需帮扶"  # rules §5: 2 or more months in a row in 后15% (the spec's own word, alone in its cell)

OUTPUT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    RATINGS_SHEET: (("客户编码", "text"), ("客户名称", "text"), ("客户经理", "text"), ("关系分", "number"),
                    ("已达指标", "text"), ("缺少指标", "text"), ("等级", "text"), ("赢单概率", "percent"),
                    ("自评等级", "text"), ("提示", "text")),
    RANKING_SHEET: _RANKING_COLUMNS,
    HISTORY_SHEET: _RANKING_COLUMNS,
    PAYOUT_SHEET: (("行ID", "text"), ("工号", "text"), ("姓名", "text"), ("订单号", "text"), ("项目", "text"),
                   ("阶段", "text"), ("事件日期", "date"), ("应发日期", "date"), ("金额", "money"), ("计算说明", "text"),
                   ("状态", "text"), ("实发日期", "date")),
    SUMMARY_SHEET: (("工号", "text"), ("姓名", "text"), ("年度订单额", "money"), ("保底目标", "money"),
                    ("挑战目标", "money"), ("完成率", "percent"), ("应发合计", "money"), ("已发合计", "money"),
                    ("未发合计", "money"), ("追回合计", "money")),
    FORECAST_SHEET: (("商机编码", "text"), ("客户编码", "text"), ("工号", "text"), ("金额", "money"), ("状态", "text"),
                     ("等级", "text"), ("赢单概率", "percent"), ("加权金额", "money"), ("暂缓原因", "text"),
                     ("预计签约月", "text")),
    PROBLEM_SHEET: (("级别", "text"), ("工作表", "text"), ("单元格", "text"), ("值", "text"), ("说明", "text")),
}
OUTPUT_SHEETS: tuple[str, ...] = tuple(OUTPUT_COLUMNS)
# the headers workbook.md names (OUTPUT_COLUMNS may add more after them)
CONTRACT_HEADERS: dict[str, tuple[str, ...]] = {
    name: tuple(h for h, _ in cols if not (name == FORECAST_SHEET and h in ("暂缓原因", "预计签约月"))
                and not (name in (RANKING_SHEET, HISTORY_SHEET) and h == "提示"))
    for name, cols in OUTPUT_COLUMNS.items()
}

# result sheets beyond workbook.md (not part of the contract): written after the contract sheets.
# 铁三角与覆盖 has one date column per contact level, the roles of 角色系数: listed here with the
# default roles; a run writes the roles of its own rulebook (see accounts_columns).
ACCOUNTS_SHEET = "铁三角与覆盖"
_ACCOUNTS_HEAD = (("客户编码", "text"), ("客户名称", "text"), ("必保", "text"), ("客户经理", "text"), ("技术经理", "text"),
                  ("服务经理", "text"), ("缺少角色", "text"), ("协同天数", "int"))
_ACCOUNTS_TAIL = (("未覆盖层级", "text"), ("提示", "text"), ("3C完成度", "text"), ("3C缺项", "text"))


def accounts_columns(levels: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The columns of 铁三角与覆盖 for these contact levels (the roles of 角色系数, in order)."""
    return (*_ACCOUNTS_HEAD, *((level, "date") for level in levels), *_ACCOUNTS_TAIL)


# 5词汇总: the 5词评价 per rep and quarter, with the trend against the rep's previous rated quarter
FIVE_WORD_SUMMARY_SHEET = "5词汇总"

EXTRA_OUTPUT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    ACCOUNTS_SHEET: accounts_columns(str(r["角色"]) for r in DEFAULT_ROLES),
    FIVE_WORD_SUMMARY_SHEET: (("工号", "text"), ("姓名", "text"), ("季度", "text"),
                              *((header, "int") for _, header in FIVE_WORDS), ("平均分", "number"),
                              ("趋势", "text"), ("变化", "number"), ("评价人", "text"), ("备注", "text")),
    # 创始人关注: one row per customer flagged 重点 (core.watchlist)
    WATCH_SHEET: (("客户编码", "text"), ("客户名称", "text"), ("客户经理", "text"), ("关系分", "number"), ("等级", "text"),
                  ("上月等级", "text"), ("等级变化", "text"), ("缺少指标", "text"), ("铁三角缺口", "text"),
                  ("未覆盖层级", "text"), ("在跟商机", "text"), ("最近联系", "date"), ("提示", "text")),
}

MONTHS = tuple(f"{m}月" for m in range(1, 13))
INPUT_HEADERS: dict[str, tuple[str, ...]] = {
    PARAM_SHEET: ("参数", "值", "说明"),
    CATALOG_SHEET: ("动作编码", "动作名称", "分值", "系数", "每月上限", "指标", "需审批"),
    ROLE_SHEET: ("角色", "系数"),
    "销售人员": ("工号", "姓名", "区域", "状态"),
    "客户": ("客户编码", "客户名称", "客户经理", "技术经理", "服务经理", "必保", "战略突破奖", "立场", "自评等级",
           "重点"),  # 重点: optional, beyond workbook.md (the founder's watchlist)
    "客户关系记录": ("日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态", "备注"),
    TIER_SHEET: ("等级", "最低关系分", "必备指标", "赢单概率"),
    "业绩目标": ("年度", "工号", "保底目标", "挑战目标", "自报目标", *MONTHS),
    BAND_SHEET: ("起点", "倍数"),
    STAGE_SHEET: ("阶段", "比例"),
    "商机": ("商机编码", "客户编码", "工号", "金额", "状态", "状态日期", "预计签约月", "暂缓原因"),
    "订单": ("订单号", "签约日期", "工号", "客户编码", "合同金额", "毛利率", "完工日期"),
    "回款": ("订单号", "回款日期", "回款金额"),
    "进度": ("订单号", "日期", "累计完工比例"),
    # optional input sheets beyond workbook.md (issue 5)
    FIVE_WORD_SHEET: ("季度", "工号", *(header for _, header in FIVE_WORDS), "评价人", "备注"),
    THREE_C_SHEET: ("客户编码", *(header for _, header in THREE_C), "备注"),
}

# how an input column is formatted (headers not listed are general)
INPUT_KINDS: dict[str, str] = {
    **dict.fromkeys(("日期", "签约日期", "完工日期", "回款日期", "状态日期"), "date"),
    **dict.fromkeys(("合同金额", "回款金额", "金额", "保底目标", "挑战目标", "自报目标", "战略突破奖", *MONTHS), "money"),
    **dict.fromkeys(("毛利率", "累计完工比例", "赢单概率", "比例"), "percent"),
    **dict.fromkeys(("工号", "客户编码", "订单号", "商机编码", "动作编码", "客户经理", "技术经理", "服务经理", "预计签约月"),
                    "text"),
    **dict.fromkeys(("年度", "次数", "每月上限", *(header for _, header in FIVE_WORDS)), "int"),
    "季度": "text",
}
# rule-sheet columns whose default values are written as Decimal text ("0.5"): stored as numbers
_RULE_NUMBERS = {CATALOG_SHEET: {"分值", "系数", "每月上限"}, ROLE_SHEET: {"系数"}, TIER_SHEET: {"最低关系分", "赢单概率"},
                 BAND_SHEET: {"起点", "倍数"}, STAGE_SHEET: {"比例"}}
# dropdowns for the closed lists of the contract
_CHOICES: dict[tuple[str, str], list[str]] = {
    ("销售人员", "状态"): [s.value for s in RepStatus],
    ("客户", "必保"): ["是", "否"],
    ("客户", "自评等级"): [t.value for t in Tier],
    ("客户", "重点"): ["是", "否"],
    (CATALOG_SHEET, "需审批"): ["是", "否"],
    (TIER_SHEET, "等级"): [t.value for t in Tier],
    (BAND_SHEET, "起点"): [b.value for b in BandStart],
    (STAGE_SHEET, "阶段"): [s.value for s in StageName],
    ("商机", "状态"): [s.value for s in OpportunityStatus],
    **{(FIVE_WORD_SHEET, header): [str(n) for n in range(1, 6)] for _, header in FIVE_WORDS},
    **{(THREE_C_SHEET, header): ["是", "否"] for _, header in THREE_C},
}

JOIN = "、"  # indicator lists
HINT_JOIN = "；"  # hint sentences

_STATUS_FILLS = {PayStatus.OVERDUE: "red", PayStatus.CANCELLED: "grey", PayStatus.PAID: "green"}
_GROUP_FILLS = {Group.TOP: "green", Group.BOTTOM: "red"}
_LEVEL_FILLS = {Level.ERROR: "red", Level.WARNING: "amber"}


def _columns(name: str) -> list[Column]:
    return [Column(h, k) for h, k in OUTPUT_COLUMNS[name]]  # type: ignore[arg-type]


class _Joiner:
    """Joins indicator names in a given order (the catalog's; unknown names after, by name).
    One per sheet: a sheet joins two lists per customer, 40,000 on a big team."""

    def __init__(self, order: Sequence[str] | None = None) -> None:
        self.rank = {v: i for i, v in enumerate(order or ())}
        self.known: dict[frozenset[str], str | None] = {}  # customers share a handful of sets

    def __call__(self, items: Iterable[str]) -> str | None:
        key = frozenset(items)
        text = self.known.get(key, "")
        if text == "":
            rank, last = self.rank, len(self.rank)
            text = self.known[key] = JOIN.join(sorted(key, key=lambda v: (rank.get(v, last), v))) or None
        return text


# --- results -> output sheets -------------------------------------------------------------------

def ratings_sheet(ratings: Iterable[CustomerRating], indicator_order: Sequence[str] | None = None) -> SheetOut:
    """关系评分; indicators in `indicator_order` (the catalog's order) where given, else by name."""
    rows: list[list[Any]] = []
    fills: list[str | None] = []
    joined = _Joiner(indicator_order)
    for r in ratings:
        rows.append([r.code, r.name, r.account_manager, r.score, joined(r.held),
                     joined(r.missing), r.tier.value, r.probability,
                     r.claimed.value if r.claimed is not None else None, HINT_JOIN.join(r.hints) or None])
        fills.append("red" if r.tier is Tier.AGAINST else "amber" if r.over_claimed else None)
    return SheetOut(RATINGS_SHEET, _columns(RATINGS_SHEET), rows, fills)


def ranking_sheet(rows: Iterable[RankingRow], name: str = RANKING_SHEET) -> SheetOut:
    """月度排名 (or, with name=排名历史, the history): 前30% green, 后15% red; 提示 says 需帮扶 when
    连续垫底月数 reaches 2."""
    out: list[list[Any]] = []
    fills: list[str | None] = []
    for r in rows:
        out.append([r.month, r.rank, r.rep_id, r.name, r.attainment, r.relationship, r.score, r.group.value,
                    r.bottom_streak, NEEDS_HELP if r.needs_help else None])
        fills.append(_GROUP_FILLS.get(r.group))
    return SheetOut(name, _columns(name), out, fills)


# what each column of 提成发放表 holds, as FrameRows keeps it
_PAYOUT_KINDS = ("text", "text", "text", "text", "text", "text", "date", "date", "decimal", "text", "text", "date")


def _payout_columns(lines: list[PayoutLine]) -> list[list[Any]]:
    """提成发放表's cells, column by column. An enum's text is read as `_value_`: `.value` is a
    property, four times slower per line."""
    return [[x.line_id for x in lines], [x.rep_id for x in lines], [x.name for x in lines],
            [x.order_id for x in lines], [x.item._value_ for x in lines], [x.stage for x in lines],
            [x.event_date for x in lines], [x.due_date for x in lines], [x.amount for x in lines],
            [str(x.explanation) for x in lines], [x.status._value_ for x in lines], [x.paid_date for x in lines]]


class PreparedPayouts:
    """提成发放表's cells of lines made before the log is read (the order side's release and
    breakthrough lines, 计算说明 formatted), kept as polars columns (FrameRows). Lines of the final
    ledger that are those very objects (on a first run of a month, nearly all) are gathered from
    here instead of being turned into cells after the log: about 0.2 s less after it on a 1M-row
    workbook (result sheets and write, traced), for 0.26–0.30 s spent while the log still loads.
    Lines are matched by identity: they are kept alive here, and a PayoutLine is not changed once
    its cells are made (only format_texts changes lines, before; reconcile makes new ones)."""

    def __init__(self, lines: Iterable[PayoutLine]) -> None:
        self.lines = list(lines)
        self.position = {id(x): i for i, x in enumerate(self.lines)}
        self.rows = FrameRows.of(_payout_columns(self.lines), _PAYOUT_KINDS)

    def gather(self, lines: list[PayoutLine]) -> FrameRows | None:
        """These lines' cells in their order (None when some line's cells do not fit the kinds)."""
        if self.rows is None:
            return None
        at, base = self.position, len(self.lines)
        index = [at.get(id(x), -1) for x in lines]
        new = [x for x, i in zip(lines, index, strict=True) if i < 0]
        frame = self.rows.frame
        if new:
            extra = FrameRows.of(_payout_columns(new), _PAYOUT_KINDS)
            if extra is None:
                return None
            frame = pl.concat([frame, extra.frame])
            fresh = iter(range(base, base + len(new)))
            index = [i if i >= 0 else next(fresh) for i in index]
        return FrameRows(frame.select(pl.all().gather(pl.Series(index, dtype=pl.UInt32))), _PAYOUT_KINDS)


def payouts_sheet(lines: Iterable[PayoutLine], protect: bool = True, prepared: PreparedPayouts | None = None) -> SheetOut:
    """提成发放表: 逾期 red, 已取消 grey, 已发 green; only 实发日期 stays editable (when protected).
    Made column by column (a quarter of a million lines on a big team; the writer takes columns),
    from `prepared` where it can."""
    lines = list(lines)
    rows: Sequence[Sequence[Any]] | None = prepared.gather(lines) if prepared is not None else None
    if rows is None:
        rows = ColumnRows(_payout_columns(lines))
    fills = [_STATUS_FILLS.get(x.status) for x in lines]
    return SheetOut(PAYOUT_SHEET, _columns(PAYOUT_SHEET), rows, fills, editable={"实发日期"} if protect else set(),
                    protect=protect)


def summary_sheet(rows: Iterable[SummaryRow]) -> SheetOut:
    out = [[s.rep_id, s.name, fen(s.orders_total), fen(s.floor), fen(s.challenge), s.attainment, fen(s.due_total),
            fen(s.paid_total), fen(s.unpaid_total), fen(s.clawback_total)] for s in rows]
    return SheetOut(SUMMARY_SHEET, _columns(SUMMARY_SHEET), out)


def forecast_sheet(rows: Iterable[ForecastRow]) -> SheetOut:
    """商机预测 (+ 暂缓原因, 预计签约月 as YYYY-MM); paused opportunities amber."""
    out: list[list[Any]] = []
    fills: list[str | None] = []
    for f in rows:
        out.append([f.code, f.customer, f.rep_id, fen(f.amount), f.status.value, f.tier.value if f.tier else None,
                    f.probability, fen(f.weighted), f.pause_reason, f.expected_month])
        fills.append("amber" if f.status is OpportunityStatus.PAUSED else None)
    return SheetOut(FORECAST_SHEET, _columns(FORECAST_SHEET), out, fills)


def accounts_sheet(rows: Iterable[KeyAccountRow], levels: Sequence[str]) -> SheetOut:
    """铁三角与覆盖: one row per key account; an incomplete triangle red, uncovered levels amber."""
    out: list[list[Any]] = []
    fills: list[str | None] = []
    for a in rows:
        last = dict(a.last_contact)
        out.append([a.code, a.name, "是" if a.must_win else "否", a.account_manager, a.tech_manager, a.service_manager,
                    JOIN.join(a.missing_roles) or None, a.joint_days, *(last.get(level) for level in levels),
                    JOIN.join(a.uncovered) or None, HINT_JOIN.join(a.hints) or None, a.three_c_progress,
                    JOIN.join(a.three_c_missing) or None])
        fills.append("red" if a.missing_roles else "amber" if a.uncovered else None)
    columns = [Column(h, k) for h, k in accounts_columns(levels)]  # type: ignore[arg-type]
    return SheetOut(ACCOUNTS_SHEET, columns, out, fills, protect=True)


def five_word_sheet(rows: Iterable[FiveWordRow]) -> SheetOut:
    """5词汇总: one row per rep and quarter; 下降 amber, 上升 green."""
    out: list[list[Any]] = []
    fills: list[str | None] = []
    for r in rows:
        out.append([r.rep_id, r.name, r.quarter, *r.ratings, r.average, r.trend, r.change, r.rater, r.note])
        fills.append({"下降": "amber", "上升": "green"}.get(r.trend or ""))
    columns = [Column(h, k) for h, k in EXTRA_OUTPUT_COLUMNS[FIVE_WORD_SUMMARY_SHEET]]  # type: ignore[arg-type]
    return SheetOut(FIVE_WORD_SUMMARY_SHEET, columns, out, fills, protect=True)


def watchlist_sheet(rows: Iterable[WatchRow], indicator_order: Sequence[str] | None = None) -> SheetOut:
    """创始人关注: one row per 重点 customer; 降 (or 反对) red, 升 green, a triangle or coverage gap amber."""
    out: list[list[Any]] = []
    fills: list[str | None] = []
    joined = _Joiner(indicator_order)
    for w in rows:
        out.append([w.code, w.name, w.account_manager, w.score, w.tier.value, w.last_month_tier.value, w.change,
                    joined(w.missing), JOIN.join(w.missing_roles) or None,
                    JOIN.join(w.uncovered) or None, w.open_text, w.last_contact, w.hint])
        fills.append("red" if w.change == DOWN or w.tier is Tier.AGAINST else "green" if w.change == UP
                     else "amber" if w.missing_roles or w.uncovered else None)
    columns = [Column(h, k) for h, k in EXTRA_OUTPUT_COLUMNS[WATCH_SHEET]]  # type: ignore[arg-type]
    return SheetOut(WATCH_SHEET, columns, out, fills, protect=True)


def no_cell(problem: Problem) -> str:
    return ""


def cell_lookup(columns: Mapping[str, Mapping[str, int | str]]) -> Callable[[Problem], str]:
    """A `cell_of` from sheet -> header -> column (0-based index or letters): 订单, 第 14 行, 合同金额 -> E14.
    A finding on a whole column (no row) points at its header cell (C1); a column that is missing, at
    the first free cell of the header row, where it is to be added; a finding on a whole sheet, at A1.
    Only a sheet that is not there (nor was read) gets "" : it has no cell."""

    def cell_of(problem: Problem) -> str:
        mine = columns.get(problem.sheet)
        if mine is None:
            return ""
        column = mine.get(problem.field) if problem.field is not None else None
        if column is None:
            if problem.field is None or problem.row in (None, 1):
                return "A1" if problem.field is None or not mine else f"{_next_free(mine)}1"
            return ""
        letters = column_letter(column) if isinstance(column, int) else column
        return f"{letters}{problem.row if problem.row is not None else 1}"

    return cell_of


def _next_free(columns: Mapping[str, int | str]) -> str:
    """The column right after the last header of a sheet."""
    return column_letter(max(c if isinstance(c, int) else column_index(c) for c in columns.values()) + 1)


def problems_sheet(problems: Iterable[Problem], cell_of: Callable[[Problem], str] = no_cell) -> SheetOut:
    """校验结果: 错误 red, 警告 amber. Made column by column (a big log can give tens of thousands)."""
    problems = list(problems)
    data = [[p.level._value_ for p in problems], [p.sheet for p in problems], [cell_of(p) or None for p in problems],
            [p.value or None for p in problems], [p.message for p in problems]]
    fills = [_LEVEL_FILLS.get(p.level) for p in problems]
    return SheetOut(PROBLEM_SHEET, _columns(PROBLEM_SHEET), ColumnRows(data), fills, protect=True)  # tool only


def result_sheets(results: Results, problems: Iterable[Problem], cell_of: Callable[[Problem], str] = no_cell,
                  prepared: PreparedPayouts | None = None, payouts: SheetOut | None = None) -> list[OutSheet]:
    """Every output sheet of the contract, in the contract's order, then the extra ones (铁三角与覆盖,
    5词汇总, 创始人关注, 看板). `prepared`: the order side's payout cells, made while the log loaded.
    `payouts`: 提成发放表 already made by payouts_sheet from results.payouts (a file run makes it as
    soon as the ledger is known, and starts writing it)."""
    if payouts is None:
        payouts = payouts_sheet(results.payouts, prepared=prepared)
    indicators: list[str] = []
    for action in results.book.actions.values():
        if action.indicator and action.indicator not in indicators:
            indicators.append(action.indicator)
    sheets: list[OutSheet] = [
        ratings_sheet(results.ratings, indicators),
        ranking_sheet(results.ranking, RANKING_SHEET),
        ranking_sheet(results.history, HISTORY_SHEET),
        payouts,
        summary_sheet(results.summary),
        forecast_sheet(results.forecast),
        problems_sheet(problems, cell_of),
        accounts_sheet(results.accounts, list(results.book.roles)),
        five_word_sheet(results.five_words),
        watchlist_sheet(results.watchlist, indicators),
        board_sheet(dashboard(results)),
    ]
    for sheet in sheets:  # results are computed, not typed: only 实发日期 stays open (payouts_sheet)
        if sheet is not payouts:
            sheet.protect = True
    return sheets


def empty_output_sheets() -> list[OutSheet]:
    """Every output sheet with its headers and no rows (what `init_workbook` adds), and an empty 看板."""
    sheets: list[OutSheet] = [
        SheetOut(name, _columns(name), [], editable={"实发日期"} if name == PAYOUT_SHEET else set())
        for name in OUTPUT_SHEETS]
    sheets += [SheetOut(name, [Column(h, k) for h, k in cols], [], protect=True)  # type: ignore[arg-type]
               for name, cols in EXTRA_OUTPUT_COLUMNS.items()]
    sheets.append(BoardOut(BOARD_SHEET, {(0, 0): BoardCell("看板", bold=True),
                                         (1, 0): BoardCell("运行“计算排名”（或 xlsales compute）后，这里显示本月的图表")}))
    return sheets


# --- new workbooks (XlsxWriter) -----------------------------------------------------------------

_FORMATS = {"money": "#,##0.00", "percent": "0.00%", "date": "yyyy-mm-dd", "int": "0", "text": "@", "number": "0.00"}


def parameter_rows() -> list[dict[str, Any]]:
    """参数 as rows: every parameter by its Chinese name, its default and its help text."""
    rows = []
    for info in Parameters.model_fields.values():
        default = info.default
        rows.append({"参数": info.alias, "值": default, "说明": info.description})
    return rows


def init_workbook(path: str | Path, *, overwrite: bool = False, outputs: bool = True,
                  vba_project: str | Path | None = None) -> None:
    """A new contract workbook: every input sheet with its headers, the default rule tables, 参数
    listing every parameter (name, default, 说明), and (outputs=True) the empty output sheets.
    A .xlsm needs `vba_project` (a vbaProject.bin)."""
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in INPUT_HEADERS}
    tables.update({k: list(v) for k, v in default_tables().items()})
    tables[PARAM_SHEET] = parameter_rows()
    _new_workbook(path, tables, overwrite=overwrite, vba_project=vba_project,
                  outputs=empty_output_sheets() if outputs else [])


def write_tables(path: str | Path, tables: Mapping[str, Sequence[Mapping[str, Any]]], *, overwrite: bool = False,
                 vba_project: str | Path | None = None) -> None:
    """Raw rows (header -> value, plus "row", the sheet row to write to) into a new workbook, one sheet
    per table. Contract sheets get the contract headers first (also when empty), then any other keys."""
    _new_workbook(path, tables, overwrite=overwrite, vba_project=vba_project, outputs=[])


def _headers(sheet: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    headers = [h for h, _ in OUTPUT_COLUMNS[sheet]] if sheet in OUTPUT_COLUMNS else list(INPUT_HEADERS.get(sheet, ()))
    seen = set(headers)
    for row in rows:
        for key in row:
            if key != "row" and key not in seen:
                seen.add(key)
                headers.append(key)
    return headers


def _kind(sheet: str, header: str) -> str:
    if sheet in OUTPUT_COLUMNS:
        return dict(OUTPUT_COLUMNS[sheet]).get(header, "text")
    if sheet == PARAM_SHEET:
        return "text" if header in ("参数", "说明") else "general"
    return INPUT_KINDS.get(header, "general")


def _as_number(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _new_workbook(path: str | Path, tables: Mapping[str, Sequence[Mapping[str, Any]]], *, overwrite: bool,
                  vba_project: str | Path | None, outputs: Sequence[OutSheet]) -> None:
    import xlsxwriter  # a new file only; existing workbooks are written by xlsx_writer

    path = Path(path)
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise ValueError(f"工作簿文件名应以 .xlsx 或 .xlsm 结尾：{path.name}")
    if path.suffix.lower() == ".xlsm" and vba_project is None:
        raise ValueError(f"{path.name}：.xlsm 工作簿需要宏工程（vbaProject.bin）；不需要宏请用 .xlsx")
    if path.exists() and not overwrite:
        raise ValueError(f"工作簿“{path.name}”已存在：不会覆盖，请换一个文件名或先删除它")
    if path.exists() and any(lock.exists() for lock in lock_files(path)):
        raise WorkbookLocked(f"工作簿“{path.name}”正在被其他程序打开：请先关闭它再运行")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.xlsales-", suffix=path.suffix, dir=path.parent)
    except PermissionError:
        raise WorkbookLocked(f"无法在“{path.parent}”里新建工作簿：请检查文件夹的写入权限") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_numbers": False,
                                              "strings_to_urls": False})
        if vba_project is not None:
            book.add_vba_project(str(vba_project))
            book.set_vba_name("ThisWorkbook")
        formats = _Formats(book)
        for sheet, rows in tables.items():
            _write_table(book, formats, sheet, rows)
        book.close()
        if outputs:
            write_sheets(tmp, outputs)
        try:
            os.replace(tmp, path)
        except PermissionError:
            raise WorkbookLocked(f"无法写入工作簿“{path.name}”：文件正在被其他程序打开，或没有写入权限") from None
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


class _Formats:
    def __init__(self, book: Any) -> None:
        self.book = book
        self.cache: dict[tuple[str, bool], Any] = {}

    def get(self, kind: str, header: bool = False) -> Any:
        key = (kind, header)
        if key not in self.cache:
            props: dict[str, Any] = {}
            if kind in _FORMATS:
                props["num_format"] = _FORMATS[kind]
            if header:
                props.update({"bold": True, "bg_color": "#DDEBF7", "valign": "vcenter"})
            self.cache[key] = self.book.add_format(props) if props else None
        return self.cache[key]


def _write_table(book: Any, formats: _Formats, sheet: str, rows: Sequence[Mapping[str, Any]]) -> None:
    ws = book.add_worksheet(sheet)
    ws.set_landscape()  # printed as wide as one page, like the result sheets
    ws.fit_to_pages(1, 0)
    headers = _headers(sheet, rows)
    kinds = [_kind(sheet, h) for h in headers]
    numbers = _RULE_NUMBERS.get(sheet, set())
    header_format = formats.get("text", header=True)
    for j, header in enumerate(headers):
        ws.write_string(0, j, header, header_format)
    next_row = last_row = 1
    grid: list[list[Any]] = []
    for raw in rows:
        r = raw.get("row")
        r = r - 1 if isinstance(r, int) and r >= 2 else next_row
        next_row = r + 1
        last_row = max(last_row, r)
        values = []
        for j, header in enumerate(headers):
            value = raw.get(header)
            if isinstance(value, str) and header in numbers:
                value = _as_number(value) if _as_number(value) is not None else value
            values.append(value)
            _write_value(ws, formats, r, j, value, kinds[j])
        grid.append(values)
    sample = SheetOut(sheet, [Column(h, k if k != "general" else "text") for h, k in zip(headers, kinds, strict=True)],
                      grid[:1000])
    for j, width in enumerate(column_widths(sample)):
        kind = kinds[j]
        ws.set_column(j, j, width, formats.get(kind) if kind in ("text", "date", "money", "percent") else None)
    ws.freeze_panes(1, 0)
    if headers:
        ws.autofilter(0, 0, last_row, len(headers) - 1)
    for j, header in enumerate(headers):
        choices = _CHOICES.get((sheet, header))
        if choices:
            ws.data_validation(1, j, 10_000, j, {"validate": "list", "source": choices, "ignore_blank": True,
                                                 "error_title": header, "error_message": f"请从列表中选择：{'、'.join(choices)}"})
    if sheet == "客户关系记录" and "动作编码" in headers:
        j = headers.index("动作编码")
        ws.data_validation(1, j, 100_000, j, {"validate": "list", "source": f"={CATALOG_SHEET}!$A$2:$A$500",
                                              "ignore_blank": True, "error_type": "warning",
                                              "error_message": "动作库里没有这个动作编码"})


def _write_value(ws: Any, formats: _Formats, r: int, c: int, value: Any, kind: str) -> None:
    fmt = formats.get(kind)
    if value is None:
        return
    if isinstance(value, str):
        ws.write_string(r, c, clean_text(value), fmt)
    elif isinstance(value, bool):
        ws.write_boolean(r, c, value, fmt)
    elif isinstance(value, (int, float, Decimal)):
        ws.write_number(r, c, float(value), fmt)
    elif isinstance(value, dt.datetime):
        ws.write_datetime(r, c, value, formats.get("date"))
    elif isinstance(value, dt.date):
        ws.write_datetime(r, c, dt.datetime(value.year, value.month, value.day), formats.get("date"))
    else:
        ws.write_string(r, c, clean_text(str(value)), fmt)
