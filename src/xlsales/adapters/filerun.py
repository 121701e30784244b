"""A run on a workbook file: read it, validate, compute, and write the owned sheets back.

The same steps the buttons take in live Excel, headless: `xlsales compute` and `xlsales validate`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from xlsales.adapters.board import BOARD_SHEET
from xlsales.adapters.log_prefetch import LogChild
from xlsales.adapters.sheets import (
    OUTPUT_SHEETS,
    PROBLEM_SHEET,
    SUMMARY_SHEET,
    PreparedPayouts,
    cell_lookup,
    payouts_sheet,
    problems_sheet,
    result_sheets,
)
from xlsales.adapters.xlsx_reader import WorkbookData, WorkbookUnusable, read_workbook
from xlsales.adapters.xlsx_writer import (
    NotAWorkbook,
    OutSheet,
    SheetOut,
    SheetsWrite,
    WorkbookLocked,
    check_writable,
    write_sheets,
)
from xlsales.core.activity import ActivityLog
from xlsales.core.intake import read_workbook_tables
from xlsales.core.money import pct
from xlsales.core.payouts import PAYOUT_SHEET, PayoutLine, format_texts
from xlsales.core.pipeline import Inputs, OrderSide, Results, check_without_rules, collector_paused, compute, prepare
from xlsales.core.problems import Level, Problem, Problems
from xlsales.core.ranking import HISTORY_SHEET
from xlsales.core.rulebook import Rulebook

# Sheets whose rows carry what finance and earlier months left behind: if they cannot be read
# whole, rewriting them would lose a 实发日期 or a month of history, so the run stops instead.
CARRIED_SHEETS = (PAYOUT_SHEET, HISTORY_SHEET)

OK, HAS_ERRORS, UNUSABLE = 0, 1, 2
MOST_COMMON_KINDS = 3  # problem kinds the summary names
PAYOUT_SHEETS = (PAYOUT_SHEET, SUMMARY_SHEET, PROBLEM_SHEET)  # what 生成发放表 writes
LOOK_AHEAD = {"validate": (PROBLEM_SHEET,), "payouts": PAYOUT_SHEETS}  # the sheets a command replaces (else all)


@dataclass
class RunReport:
    """What a run did, for people (summary lines) and machines (--json)."""

    workbook: str
    command: str
    exit_code: int
    message: str
    rows_read: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    warnings: int = 0
    reps_ranked: int = 0
    payout_lines: int = 0
    sheets_written: list[str] = field(default_factory=list)
    seconds: float = 0.0
    on_time: dict[str, dict[str, Any]] = field(default_factory=dict)  # 及时率 by month of 应发日期
    target_gap: str | None = None  # Σ 保底/自报 against 公司年度目标 (rules §3), when that is set
    # "警告 客户关系记录·次数" -> how many: which kinds of problem there are, errors first, then the most
    # frequent (a big log can give tens of thousands of 校验结果 rows; this says what they mostly are)
    problem_kinds: dict[str, int] = field(default_factory=dict)

    def count_problems(self, problems: Sequence[Problem]) -> None:
        # counted by (level, sheet, field) first: a big log gives tens of thousands of problems of a
        # handful of kinds, and the text of each kind is made once
        counts = Counter((p.level, p.sheet, p.field) for p in problems)
        self.errors = sum(n for (level, _, _), n in counts.items() if level is Level.ERROR)
        self.warnings = len(problems) - self.errors
        kinds: Counter[str] = Counter()
        for (level, sheet, field_), n in counts.items():
            kinds[f"{level.value} {sheet}·{field_}" if field_ else f"{level.value} {sheet}"] += n
        error = Level.ERROR.value
        self.problem_kinds = dict(sorted(kinds.items(), key=lambda kv: (not kv[0].startswith(error), -kv[1], kv[0])))

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = self.errors + self.warnings  # the contract's "problems": 校验结果's rows
        return out

    def lines(self) -> list[str]:
        read = "，".join(f"{k} {v:,}" for k, v in self.rows_read.items() if v)
        out = [self.message]
        if read:
            out.append(f"读取：{read}")
        if self.exit_code != UNUSABLE:
            out.append(f"校验：{self.errors} 个错误，{self.warnings} 个警告（详见“校验结果”工作表）")
            if len(self.problem_kinds) > 1:
                top = list(self.problem_kinds.items())[:MOST_COMMON_KINDS]
                out.append("主要问题（错误在前）：" + "；".join(f"{kind} {n:,} 条" for kind, n in top))
        if self.reps_ranked or self.payout_lines:
            out.append(f"排名 {self.reps_ranked} 人；提成发放表 {self.payout_lines:,} 行")
        if self.target_gap:
            out.append(f"目标对比：{self.target_gap}")
        if self.on_time:
            recent = list(self.on_time.items())[-3:]
            out.append("发放及时率：" + "，".join(f"{m} {v['按时发放']}/{v['应发行数']}（{v['及时率']}）" for m, v in recent))
        if self.sheets_written:
            out.append(f"已写入：{'、'.join(self.sheets_written)}（用时 {self.seconds:.1f} 秒）")
        return out


class Report(Protocol):
    exit_code: int

    def lines(self) -> list[str]: ...
    def as_json(self) -> dict[str, Any]: ...


def emit(report: Report, as_json: bool) -> int:
    """Print a command's report (JSON, or its summary lines; to stderr when the file was unusable)."""
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2, default=str))
    else:
        stream = sys.stderr if report.exit_code == UNUSABLE else sys.stdout
        for line in report.lines():
            print(line, file=stream)
    return report.exit_code


@dataclass
class EarlyIntake:
    """What is done while the log is still loading (see read_workbook): the small sheets validated
    (the rulebook, the records with an empty log, and their problems, kept apart to be added after
    the reader's) and the part of the run that needs no log (OrderSide); when the run writes
    提成发放表, also its lines' 计算说明 and their cells (PreparedPayouts)."""

    book: Rulebook | None
    inputs: Inputs
    problems: Problems
    side: OrderSide | None = None
    payouts_made: Future[PreparedPayouts] | None = None  # the side's 提成发放表 cells (compute only)
    thread: ThreadPoolExecutor | None = None  # where they are made

    @property
    def payouts(self) -> PreparedPayouts | None:
        """The side's 提成发放表 cells, once their thread has made them (None for validate)."""
        return None if self.payouts_made is None else self.payouts_made.result()

    def start_payouts(self, lines: list[PayoutLine]) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlsales-payouts")
        self.payouts_made = self.thread.submit(_prepared_payouts, lines)

    def settle(self) -> None:
        """Wait for that thread to end (nothing is left running after a run); its error, if any,
        stays in the future for whoever asks for the cells."""
        if self.thread is not None:
            self.thread.shutdown(wait=True)


def _prepared_payouts(lines: list[PayoutLine]) -> PreparedPayouts:
    """The lines' 计算说明 and 提成发放表 cells (0.7–0.8 s of Python on a 1M-row workbook), made in a
    thread from the moment the order side is known: while this process waits for the log, then
    validates and scores it, mostly inside polars, which lets go of the GIL. The cells are first
    needed once the ledger is known. Nothing else changes the lines meanwhile: compute only reads
    them, and reconcile copies the ones it changes."""
    format_texts(lines)
    prepared = PreparedPayouts(lines)
    # the board's charts need XlsxWriter at the very end: imported now, not after the log
    importlib.import_module("xlsxwriter")
    return prepared


def early_intake(today: dt.date | None, command: str = "compute") -> tuple[
        Callable[[dict[str, list[dict[str, Any]]]], None], list[EarlyIntake]]:
    """A `while_log_loads` hook for read_workbook, and where its result will be."""
    done: list[EarlyIntake] = []

    def intake(tables: dict[str, list[dict[str, Any]]]) -> None:
        problems = Problems()
        book, inputs = read_workbook_tables(tables, today or dt.date.today(), problems, log=ActivityLog.empty())
        early = EarlyIntake(book, inputs, problems)
        if book is not None:
            early.side = prepare(inputs, book)
            if command != "validate":
                early.start_payouts(early.side.fresh)
        done.append(early)

    return intake, done


def sheets_to_write(data: WorkbookData, command: str, today: dt.date | None, status: Callable[[str], None],
                    report: RunReport, early: EarlyIntake | None = None,
                    begin: Callable[[SheetOut], None] | None = None) -> tuple[list[OutSheet], Results | None, Problems]:
    """Validate and compute what was read, and decide which sheets to write (shared by the file run
    and the buttons in live Excel). command: "validate", "compute" or "payouts" (the payout sheets).
    `early`: the small sheets' intake, done while the log loaded (the same problems, in the same order).
    `begin`: given 提成发放表 as soon as the ledger is known (compute only; see compute's on_ledger)."""
    problems = Problems()
    problems.extend(data.problems)
    if early is None:
        book, inputs = read_workbook_tables(data.tables, today or dt.date.today(), problems, log=data.log)
    else:
        problems.extend(early.problems.items)
        book, inputs = early.book, replace(early.inputs, log=data.log if data.log is not None else ActivityLog.empty())
    report.rows_read = {sheet: len(rows) for sheet, rows in data.tables.items()}
    if data.log is not None:
        report.rows_read["客户关系记录"] = len(data.log)
    cell_of = cell_lookup(data.columns)

    blocked = sorted(data.broken_sheets | {p.sheet for p in problems.items if p.is_error and p.sheet in CARRIED_SHEETS})
    if book is None or blocked:
        check_without_rules(inputs, problems)  # the rest of the checks, so that every problem shows now
        why = "规则表或参数有错误" if book is None else f"{'、'.join(blocked)} 无法完整读取"
        report.message = f"{why}：只写入了“校验结果”，其他结果工作表保持不变。请按校验结果修正后重新运行"
        return [problems_sheet(problems.items, cell_of)], None, problems
    status("计算…")
    payouts: list[SheetOut] = []
    on_ledger: Callable[[list[PayoutLine]], None] | None = None
    if begin is not None and command == "compute":
        start = begin

        def on_ledger(lines: list[PayoutLine]) -> None:
            """提成发放表 made (and begun) as soon as the ledger is known, before the summaries."""
            payouts.append(payouts_sheet(lines, prepared=early.payouts if early is not None else None))
            start(payouts[0])

    results = compute(inputs, book, problems, prepared=early.side if early is not None else None, on_ledger=on_ledger)
    report.reps_ranked, report.payout_lines = len(results.ranking), len(results.payouts)
    report.target_gap = results.target_gap.summary()
    report.on_time = {r.month: {"应发行数": r.due, "按时发放": r.on_time, "及时率": pct(r.rate, 1)} for r in results.on_time}
    as_of = f"{book.year} 年，评估日期 {book.evaluation_date.isoformat()}"
    if command == "validate":
        report.message = "校验完成"
        return [problems_sheet(problems.items, cell_of)], results, problems
    sheets = result_sheets(results, problems.items, cell_of, prepared=early.payouts if early is not None else None,
                           payouts=payouts[0] if payouts else None)
    if command == "payouts":
        report.message = f"发放表已生成：{as_of}"
        return [s for s in sheets if s.name in PAYOUT_SHEETS], results, problems
    report.message = f"计算完成：{as_of}"
    return sheets, results, problems


def run_workbook(path: str | Path, command: str = "compute", today: dt.date | None = None,
                 status: Callable[[str], None] = lambda _: None,
                 prefetched: LogChild | None = None, keep: list[object] | None = None,
                 ) -> tuple[RunReport, Results | None, list[Problem]]:
    """Validate (and with command="compute" compute) the workbook and write the results into it.
    The cycle collector is paused for the run, as in compute: reading makes a dict per row, pydantic
    a record per row and the result sheets a list per row, all freed by reference counting; the
    collector's passes over them cost 1–2 s of an 11–13 s run on a 1M-row workbook (alternating
    runs, 2026-11-27). Any cycle left is collected when it resumes.
    `prefetched`: the log's read, started by the command line before its imports (see log_prefetch);
    read_workbook closes it once read, and whoever started it closes it in any case (cli.main does).
    `keep`: where to leave what was read and made (rows, records, sheets), for a process that ends
    right after and need not free it all one object at a time (0.3 s on a 1M-row workbook)."""
    with collector_paused(), _switching_often():
        return _run_workbook(path, command, today, status, prefetched, keep)


# How long a thread may keep the GIL when another one asks for it, during a run (Python's default
# is 5 ms). The payout cells' thread (_prepared_payouts) runs Python while this one validates and
# scores the log in polars: each return from polars could wait up to 5 ms for the GIL. 1M-row
# workbook, eight alternating runs on 2026-11-27: median 4.92 s against 5.07 s with the default,
# faster in six of eight; 0.2 ms was no better than 0.5 ms.
GIL_SWITCH_SECONDS = 0.0005


@contextmanager
def _switching_often() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _run_workbook(path: str | Path, command: str, today: dt.date | None, status: Callable[[str], None],
                  prefetched: LogChild | None, keep: list[object] | None) -> tuple[RunReport, Results | None, list[Problem]]:
    start = time.perf_counter()
    report = RunReport(workbook=str(path), command=command, exit_code=OK, message="")
    status("读取工作簿…")
    early: list[EarlyIntake] = []
    try:
        check_writable(path)
        intake, early = early_intake(today, command)
        data = read_workbook(path, while_log_loads=intake, prefetched=prefetched)
    except BaseException as exc:
        for made in early:
            made.settle()
        if not isinstance(exc, (WorkbookUnusable, WorkbookLocked, NotAWorkbook)):
            raise
        report.exit_code, report.message = UNUSABLE, str(exc)
        return report, None, []
    begun: list[SheetsWrite] = []
    # the write opened now: what the result sheets of the last run keep when replaced (their XML
    # around the rows) is read in a thread while this one computes; if the workbook cannot be
    # written now, the write below says so
    with suppress(WorkbookLocked, NotAWorkbook):
        begun.append(SheetsWrite(path))
        begun[0].look_ahead(LOOK_AHEAD.get(command, (*OUTPUT_SHEETS, BOARD_SHEET)))

    def begin(sheet: SheetOut) -> None:
        """Start writing 提成发放表 while the other sheets are made."""
        if begun:
            begun[0].start(sheet)

    try:
        sheets, results, problems = sheets_to_write(data, command, today, status, report, early[0] if early else None,
                                                    begin=begin)  # used by compute only (sheets_to_write)
        if keep is not None:
            keep += [data, early, sheets, results, problems]
        status("写回工作簿…")
        try:
            # the names they got (see the board's)
            report.sheets_written = begun[0].finish(sheets) if begun else write_sheets(path, sheets)
        except (WorkbookLocked, NotAWorkbook) as exc:
            report.exit_code, report.message = UNUSABLE, str(exc)
            return report, results, problems.items
    finally:
        for write in begun:
            write.close()
        for made in early:
            made.settle()
    report.count_problems(problems.items)
    if report.errors:
        report.exit_code = HAS_ERRORS
    report.seconds = round(time.perf_counter() - start, 2)
    return report, results, problems.items
