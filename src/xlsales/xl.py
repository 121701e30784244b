"""What the workbook's buttons run (VBA: RunPython "import xlsales.xl; xlsales.xl.compute_all()").

    validate()          校验数据: check every cell, write only 校验结果
    compute_all()       计算排名: validate, compute, write every output sheet
    generate_payouts()  生成发放表: validate, compute, write 提成发放表, 提成汇总 and 校验结果
    import_scorecards() 导入评分表: add reps' filled scorecards to 客户关系记录 (each entry once)

Each entry point takes the calling workbook (`xw.Book.caller()`) and hands an XlwingsPort to a plain
function of this module; the logic lives in those functions (`run_on_port`, `import_on_port`), which
the tests drive through FakePort. They follow the file workflow (adapters.filerun) step for step,
with the same messages: problems go to 校验结果, a bad rulebook writes only 校验结果 and leaves the
other result sheets as they were, the status bar shows progress and an alert sums up the run.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xlsales.adapters.filerun import HAS_ERRORS, OK, UNUSABLE, RunReport, sheets_to_write
from xlsales.adapters.port import WorkbookPort, read_port, sheet_title
from xlsales.adapters.xlsx_writer import BoardOut, OutSheet
from xlsales.core.pipeline import collector_paused
from xlsales.core.problems import Problem

COMMANDS = ("validate", "compute", "payouts")
IMPORT_LIST_SHEET = "导入文件"  # fallback without a file dialog: one path per row under the header 文件
IMPORT_LIST_HEADER = "文件"
IMPORT_FOLDER = "评分表"  # second fallback: every .xlsx/.xlsm in this folder beside the workbook
MAX_ALERT_PROBLEMS = 5


# --- the logic, on any port ---------------------------------------------------------------------

def run_on_port(port: WorkbookPort, command: str = "compute", today: dt.date | None = None) -> RunReport:
    """Validate the workbook behind `port` and (command "compute" or "payouts") compute it, writing the
    results back through the port. Mirrors filerun.run_workbook; ends with an alert summing up."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}: one of {', '.join(COMMANDS)}")
    start = time.perf_counter()
    report = RunReport(workbook=str(getattr(port, "name", "")), command=command, exit_code=OK, message="")
    try:
        port.status("读取工作簿…")
        with collector_paused():  # as in the file run: a record per row, no cycles
            data = read_port(port)
            sheets, _, problems = sheets_to_write(data, command, today, port.status, report)
        if not _write_all(port, sheets, report):
            port.alert(report.message)
            return report
        report.count_problems(problems.items)
        if report.errors:
            report.exit_code = HAS_ERRORS
        report.seconds = round(time.perf_counter() - start, 2)
        port.alert(summary_text(report, problems.items))
        return report
    finally:
        port.status(None)


def _write_all(port: WorkbookPort, sheets: Sequence[OutSheet], report: RunReport) -> bool:
    for i, sheet in enumerate(sheets, 1):
        port.status(f"写入“{sheet.name}”（{i}/{len(sheets)}）…")
        try:
            if isinstance(sheet, BoardOut):
                port.write_board(sheet)
            else:
                port.write_sheet(sheet)
        except Exception as exc:
            report.exit_code = UNUSABLE
            report.message = f"写入工作表“{sheet.name}”失败：{exc}"
            return False
        report.sheets_written.append(sheet.name)
    return True


def summary_text(report: RunReport, problems: Sequence[Problem]) -> str:
    """The alert at the end of a run: the report's lines and, with errors, the first few of them."""
    lines = report.lines()
    errors = [p for p in problems if p.is_error]
    if errors:
        lines.append("")
        lines.append("前几个错误：" if len(errors) > MAX_ALERT_PROBLEMS else "错误：")
        lines.extend(f"· {p.sheet}{' 第 ' + str(p.row) + ' 行' if p.row else ''}：{p.message}" for p in errors[:MAX_ALERT_PROBLEMS])
    return "\n".join(lines)


def import_on_port(port: WorkbookPort, files: Sequence[str | Path]) -> Any:
    """Add the scorecards' entries to the log behind `port` (see scorecard.import_into_port) and alert the result."""
    from xlsales.adapters.scorecard import import_into_port

    try:
        if not files:
            port.alert("没有选择评分表：请选择销售填好的“客户关系评价表”文件后再导入")
            return None
        port.status(f"导入 {len(files)} 个评分表…")
        report = import_into_port(port, files)
        port.alert("\n".join(report.lines()))
        return report
    finally:
        port.status(None)


def listed_files(port: WorkbookPort, folder: Path | None) -> list[Path]:
    """Scorecards to import without a file dialog: the paths under 文件 in a sheet 导入文件 (relative
    to the workbook's folder), else every .xlsx/.xlsm in the folder 评分表 beside the workbook."""
    title = sheet_title(port.sheet_names(), IMPORT_LIST_SHEET)
    if title is not None:
        grid = port.read_table(title)
        if grid:
            heads = [str(h).strip() if h is not None else "" for h in grid[0]]
            j = heads.index(IMPORT_LIST_HEADER) if IMPORT_LIST_HEADER in heads else 0
            paths = [str(r[j]).strip() for r in grid[1:] if j < len(r) and r[j] not in (None, "")]
            if paths:
                return [Path(p) if Path(p).is_absolute() or folder is None else folder / p for p in paths]
    if folder is not None and (folder / IMPORT_FOLDER).is_dir():
        return sorted(p for p in (folder / IMPORT_FOLDER).iterdir()
                      if p.suffix.lower() in (".xlsx", ".xlsm") and not p.name.startswith(("~$", ".~lock")))
    return []


# --- the entry points the buttons call (live Excel) ---------------------------------------------

def _caller(book: Any = None) -> Any:
    if book is not None:
        return book
    import xlwings as xw

    return xw.Book.caller()


def _live(book: Any, action: Callable[[Any], Any]) -> Any:
    """Run `action(port)` on the calling workbook; an unexpected failure becomes an alert, not a traceback."""
    from xlsales.adapters.xlwings_port import XlwingsPort

    port = XlwingsPort(_caller(book))
    try:
        return action(port)
    except Exception as exc:
        port.status(None)
        port.alert(f"运行失败：{exc}（{type(exc).__name__}）。工作簿没有写入不完整的结果；请把这条信息发给管理员")
        return None


def validate(book: Any = None) -> RunReport | None:
    """校验数据: check every input, write only 校验结果."""
    return _live(book, lambda port: run_on_port(port, "validate"))  # type: ignore[no-any-return]


def compute_all(book: Any = None) -> RunReport | None:
    """计算排名: validate, compute everything, write every output sheet."""
    return _live(book, lambda port: run_on_port(port, "compute"))  # type: ignore[no-any-return]


def generate_payouts(book: Any = None) -> RunReport | None:
    """生成发放表: validate, compute, write 提成发放表, 提成汇总 and 校验结果 only."""
    return _live(book, lambda port: run_on_port(port, "payouts"))  # type: ignore[no-any-return]


def import_scorecards(book: Any = None, files: Sequence[str | Path] | None = None) -> Any:
    """导入评分表: ask for the reps' scorecards (a file dialog where Excel offers one; else the list in
    导入文件 or the folder 评分表 beside the workbook) and add their entries to 客户关系记录."""

    def action(port: Any) -> Any:
        chosen: Sequence[str | Path] | None = list(files) if files is not None else ask_files(port.book)
        if chosen is None:
            return None  # the user cancelled the dialog
        if not chosen:
            folder = _folder(port.book)
            chosen = list(listed_files(port, folder))
        return import_on_port(port, chosen)

    return _live(book, action)


def _folder(book: Any) -> Path | None:
    try:
        full = Path(str(book.fullname))
    except Exception:
        return None
    return full.parent if full.parent != Path("") and full.is_absolute() else None


def ask_files(book: Any) -> list[str] | None:
    """Excel's own Open dialog (Windows: Application.GetOpenFilename with MultiSelect). Returns the
    chosen paths, None when the user cancelled, [] when there is no dialog on this platform."""
    try:
        chosen = book.app.api.GetOpenFilename(FileFilter="Excel 工作簿 (*.xlsx;*.xlsm),*.xlsx;*.xlsm",
                                              Title="选择要导入的客户关系评价表", MultiSelect=True)
    except Exception:
        return []
    if chosen is False or chosen is None:
        return None
    if isinstance(chosen, str):
        return [chosen]
    return [str(p) for p in chosen]
