"""Per-rep statements (对账单): one workbook per rep holding only that rep's numbers, and a PDF of it.

`xlsales statements BOOK OUTDIR` reads BOOK, computes fresh results (the result sheets in BOOK are not
trusted: they may be stale) and writes OUTDIR/<工号>-<姓名>-<YYYY-MM>.xlsx for every rep of 提成汇总:
封面 (rep, month, evaluation date, the plan year's totals), 提成发放表 (the rep's lines with their
计算说明), 提成汇总, 月度排名 and 排名历史 (the rep's own rows: rank and group, no other rep's name
or score) and 关系评分 (customers whose 客户经理 is the rep). With LibreOffice installed (`soffice`)
every statement is also converted to PDF. BOOK itself is never written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xlsales.adapters.filerun import OK, UNUSABLE, RunReport, emit, sheets_to_write
from xlsales.adapters.sheets import (
    HISTORY_SHEET,
    RANKING_SHEET,
    _new_workbook,
    payouts_sheet,
    ranking_sheet,
    ratings_sheet,
    summary_sheet,
)
from xlsales.adapters.xlsx_reader import WorkbookUnusable, read_workbook
from xlsales.adapters.xlsx_writer import NotAWorkbook, SheetOut, WorkbookLocked
from xlsales.core.money import fen
from xlsales.core.pipeline import Results, SummaryRow

HAS_ERRORS = 1
COVER_SHEET = "封面"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


@dataclass
class StatementsReport:
    """What a statements run did, for people (lines) and machines (--json)."""

    workbook: str
    outdir: str
    exit_code: int
    message: str
    month: str = ""
    files: list[str] = field(default_factory=list)
    pdfs: list[str] = field(default_factory=list)
    pdf_note: str = ""
    errors: int = 0
    warnings: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [self.message]
        if self.exit_code != UNUSABLE and (self.errors or self.warnings):
            out.append(f"校验：{self.errors} 个错误，{self.warnings} 个警告（对账单按能读取的数据计算；"
                       "请运行 xlsales validate 查看校验结果）")
        if self.files:
            out.append(f"对账单 {len(self.files)} 份（Excel），写入 {self.outdir}（用时 {self.seconds:.1f} 秒）")
        if self.pdf_note:
            out.append(self.pdf_note)
        return out


def statement_filename(rep_id: str, name: str, month: str) -> str:
    """E001-王建国-2026-11.xlsx (characters a file name cannot hold become _)."""
    return _UNSAFE.sub("_", f"{rep_id}-{name}-{month}") + ".xlsx"


def _indicator_order(results: Results) -> list[str]:
    order: list[str] = []
    for action in results.book.actions.values():
        if action.indicator and action.indicator not in order:
            order.append(action.indicator)
    return order


def _cover_rows(s: SummaryRow, results: Results, month: str) -> list[dict[str, Any]]:
    book = results.book
    own = [r for r in results.ranking if r.rep_id == s.rep_id]
    rank = f"第 {own[0].rank} 名（{own[0].group.value}）" if own else "本月未参加排名"
    rows: list[dict[str, Any]] = [
        {"项目": "工号", "值": s.rep_id},
        {"项目": "姓名", "值": s.name},
        {"项目": "月份", "值": month},
        {"项目": "评估日期", "值": book.evaluation_date},
        {"项目": "年度", "值": str(book.year)},
        {"项目": "本月排名", "值": rank},
        {"项目": "年度订单额", "金额": fen(s.orders_total)},
        {"项目": "保底目标", "金额": fen(s.floor)},
        {"项目": "挑战目标", "金额": fen(s.challenge)},
        {"项目": "完成率", "值": f"{s.attainment:.2%}" if s.attainment is not None else None},
        {"项目": "应发合计", "金额": fen(s.due_total)},
        {"项目": "已发合计", "金额": fen(s.paid_total)},
        {"项目": "未发合计", "金额": fen(s.unpaid_total)},
        {"项目": "追回合计", "金额": fen(s.clawback_total)},
        {"项目": "说明", "值": f"本对账单只含本人的数据；合计为 {book.year} 年（不含已取消的行），"
                               "每一行的算法见“提成发放表”的“计算说明”。"},
    ]
    return rows


def statement_sheets(s: SummaryRow, results: Results) -> list[SheetOut]:
    """The result sheets of one rep: every row filtered to the rep before the sheet is built."""
    rep = s.rep_id
    sheets = [
        payouts_sheet([x for x in results.payouts if x.rep_id == rep], protect=False),
        summary_sheet([s]),
        ranking_sheet([r for r in results.ranking if r.rep_id == rep], RANKING_SHEET),
        ranking_sheet([r for r in results.history if r.rep_id == rep], HISTORY_SHEET),
        ratings_sheet([r for r in results.ratings if r.account_manager == rep], _indicator_order(results)),
    ]
    for sheet in sheets:  # a statement is for reading: nothing stays editable
        sheet.editable = set()
        sheet.protect = True
    return sheets


def write_statement(path: Path, s: SummaryRow, results: Results, month: str) -> None:
    _new_workbook(path, {COVER_SHEET: _cover_rows(s, results, month)}, overwrite=True, vba_project=None,
                  outputs=statement_sheets(s, results))


def convert_to_pdf(files: list[Path], outdir: Path, timeout: float = 300) -> tuple[list[Path], str]:
    """Every file to PDF with LibreOffice headless; ([], why) when soffice is missing or fails."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        return [], "未安装 LibreOffice（soffice），未生成 PDF"
    if not files:
        return [], ""
    with tempfile.TemporaryDirectory(prefix="xlsales-soffice-") as profile:
        command = [soffice, f"-env:UserInstallation={Path(profile).as_uri()}", "--headless", "--convert-to", "pdf",
                   "--outdir", str(outdir), *map(str, files)]
        try:
            subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], f"LibreOffice 转换 PDF 失败：{exc}"
    pdfs = [outdir / f"{f.stem}.pdf" for f in files]
    made = [p for p in pdfs if p.exists()]
    missing = len(pdfs) - len(made)
    note = f"PDF {len(made)} 份" + (f"；{missing} 份转换失败" if missing else "")
    return made, note


def write_statements(book_path: str | Path, outdir: str | Path, today: dt.date | None = None, *, pdf: bool = True,
                     status: Callable[[str], None] = lambda _: None) -> StatementsReport:
    """One statement workbook (and PDF, when soffice exists and pdf=True) per rep of 提成汇总.

    Exit codes: 0 written (data 错误 only leave rows out, as in compute), 1 the rulebook/parameters
    have 错误 (or the carried sheets cannot be read whole) and nothing was written, 2 BOOK is unusable."""
    start = time.perf_counter()
    out = Path(outdir)
    report = StatementsReport(workbook=str(book_path), outdir=str(out), exit_code=OK, message="")
    status("读取工作簿…")
    try:
        data = read_workbook(book_path)
    except (WorkbookUnusable, NotAWorkbook, WorkbookLocked) as exc:
        report.exit_code, report.message = UNUSABLE, str(exc)
        return report
    # "validate" computes the results without building the workbook's result sheets, which would be
    # thrown away here (on a 1M-row book that formatting costs more than a second)
    run = RunReport(workbook=str(book_path), command="validate", exit_code=OK, message="")
    _, results, problems = sheets_to_write(data, "validate", today, status, run)
    report.errors = sum(p.is_error for p in problems.items)
    report.warnings = len(problems.items) - report.errors
    if results is None:
        why = run.message.split("：")[0]
        report.exit_code = HAS_ERRORS
        report.message = f"{why}：未生成对账单。请运行 xlsales validate 并按“校验结果”修正后重新运行"
        return report
    book = results.book
    report.month = f"{book.evaluation_date:%Y-%m}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        report.exit_code, report.message = UNUSABLE, f"无法创建输出文件夹“{out}”：{exc}"
        return report
    written: list[Path] = []
    for s in results.summary:
        path = out / statement_filename(s.rep_id, s.name, report.month)
        status(f"写入 {path.name}…")
        try:
            write_statement(path, s, results, report.month)
        except (WorkbookLocked, NotAWorkbook, ValueError, OSError) as exc:
            report.exit_code, report.message = UNUSABLE, f"无法写入“{path.name}”：{exc}"
            report.files = [str(p) for p in written]
            return report
        written.append(path)
    report.files = [str(p) for p in written]
    if pdf:
        status("转换 PDF…")
        pdfs, report.pdf_note = convert_to_pdf(written, out)
        report.pdfs = [str(p) for p in pdfs]
    else:
        report.pdf_note = "未生成 PDF（--no-pdf）"
    report.message = f"对账单已生成：{book.year} 年，评估日期 {book.evaluation_date.isoformat()}，{len(written)} 人"
    report.seconds = round(time.perf_counter() - start, 2)
    return report


# --- the command line ---------------------------------------------------------------------------

def add_statements_command(subparsers: Any) -> argparse.ArgumentParser:
    """`xlsales statements BOOK OUTDIR` on an argparse subparsers object (dispatch: args.run(args) -> exit code)."""
    sub: argparse.ArgumentParser = subparsers.add_parser(
        "statements", help="给每位销售生成只含本人数据的对账单（Excel，装有 LibreOffice 时另有 PDF）")
    sub.add_argument("book", help="工作簿（.xlsx/.xlsm），只读取，不写入")
    sub.add_argument("outdir", help="对账单写入的文件夹")
    sub.add_argument("--today", help="把“今天”设为这个日期（YYYY-MM-DD），用于 参数 评估日期 留空时")
    sub.add_argument("--no-pdf", action="store_true", help="不生成 PDF")
    sub.add_argument("--json", action="store_true", help="输出机器可读的 JSON 摘要")
    sub.set_defaults(run=run_statements_command)
    return sub


def run_statements_command(args: argparse.Namespace) -> int:
    try:
        today = dt.date.fromisoformat(args.today) if args.today else None
    except ValueError:
        print(f"--today 应为 YYYY-MM-DD 日期：{args.today}", file=sys.stderr)
        return UNUSABLE
    return emit(write_statements(args.book, args.outdir, today, pdf=not args.no_pdf), getattr(args, "json", False))
