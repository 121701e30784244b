"""The `xlsales` command line.

    xlsales demo [PATH]          the engine on a built-in demo team (PATH: also write it as a workbook and compute it)
    xlsales init PATH            a new, empty workbook with every input sheet, the default catalog and defaults
    xlsales validate WORKBOOK    check every cell; writes only 校验结果
    xlsales compute WORKBOOK     validate, compute, write every output sheet into WORKBOOK itself
    xlsales import BOOK FILES... append reps' filled scorecards to 客户关系记录 (each entry once)
    xlsales statements BOOK DIR  one statement workbook (and PDF) per rep, with only that rep's numbers

Exit status: 0 no 错误 (警告 are fine), 1 校验结果 holds an 错误, 2 the file cannot be used at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from xlsales.adapters.log_prefetch import LogChild, prefetch_log

FILE_COMMANDS = ("compute", "validate")
# Set by entry(): this process ends right after the command, so what a run made is left here
# rather than freed one object at a time (see entry).
_LEFT_FOR_EXIT: list[object] | None = None


def _progress(quiet: bool) -> object:
    start = time.perf_counter()

    def status(text: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:5.1f}s] {text}", file=sys.stderr, flush=True)
    return status


def _run(args: argparse.Namespace, command: str, prefetched: LogChild | None) -> int:
    from xlsales.adapters.filerun import emit, run_workbook  # file adapters load only when a file is used

    today = dt.date.fromisoformat(args.today) if args.today else None
    report, _, _ = run_workbook(args.workbook, command, today=today, status=_progress(args.json),  # type: ignore[arg-type]
                                prefetched=prefetched, keep=_LEFT_FOR_EXIT)
    return emit(report, args.json)


def _demo(args: argparse.Namespace) -> int:
    from xlsales.core.intake import read_workbook_tables
    from xlsales.core.pipeline import compute
    from xlsales.core.problems import Problems
    from xlsales.demo import demo_tables
    from xlsales.report import print_results

    if args.path:
        from xlsales.adapters.filerun import run_workbook
        from xlsales.adapters.sheets import write_tables

        path = Path(args.path)
        write_tables(path, demo_tables(), overwrite=True)
        report, results, problems = run_workbook(path, "compute", status=_progress(False))  # type: ignore[arg-type]
        if results is not None:
            print_results(results, problems)
        for line in report.lines():
            print(line)
        print(f"演示工作簿：{path.resolve()}")
        return 0 if report.exit_code != 2 else 2
    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), dt.date.today(), problems)
    if book is None:
        for p in problems.items:
            print(p.message, file=sys.stderr)
        return 1
    results = compute(inputs, book, problems)
    print_results(results, problems.items)
    return 0


def _init(args: argparse.Namespace) -> int:
    from xlsales.adapters.sheets import init_workbook

    try:
        init_workbook(args.path, overwrite=args.force)
    except ValueError as exc:  # exists already (without --force), or not .xlsx
        print(f"{exc}（覆盖请加 --force）", file=sys.stderr)
        return 2
    print(f"已创建空白工作簿：{Path(args.path).resolve()}（含全部输入表、默认动作库和参数）")
    return 0


def _early_log_read(argv: list[str]) -> LogChild | None:
    """`compute`/`validate` on a big workbook: start reading its log in a second process before the
    engine is imported (log_prefetch). The workbook is guessed from the raw arguments; a wrong guess
    costs nothing, since the reader only adopts a child started on its own file."""
    if len(argv) < 2 or argv[0] not in FILE_COMMANDS:
        return None
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--today":
            next(rest, None)  # its value
        elif not arg.startswith("-"):
            return prefetch_log(arg)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prefetched = _early_log_read(argv)
    try:
        return _main(argv, prefetched)
    finally:
        if prefetched is not None:
            prefetched.close()


def _main(argv: list[str], prefetched: LogChild | None) -> int:
    parser = argparse.ArgumentParser(prog="xlsales", description="大客户销售：关系评分、提成发放与月度排名")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="在内置的演示团队上运行引擎，打印排名、等级与发放；给出 PATH 时写成工作簿并计算")
    demo.add_argument("path", nargs="?", help="演示工作簿的路径（.xlsx），可省略")
    demo.set_defaults(run=_demo)

    init = commands.add_parser("init", help="新建空白工作簿：全部输入表、默认动作库、分级规则和参数")
    init.add_argument("path")
    init.add_argument("--force", action="store_true", help="覆盖已有文件")
    init.set_defaults(run=_init)

    for name, text in (("compute", "校验并计算，把全部结果工作表写回工作簿"), ("validate", "只校验，只写“校验结果”")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("workbook")
        sub.add_argument("--json", action="store_true", help="输出机器可读的 JSON 摘要")
        sub.add_argument("--today", help="把“今天”设为这个日期（YYYY-MM-DD），用于 参数 评估日期 留空时")
        sub.set_defaults(run=lambda a, n=name: _run(a, n, prefetched))

    from xlsales.adapters.scorecard import add_import_command
    from xlsales.adapters.statements import add_statements_command

    add_import_command(commands)  # xlsales import BOOK FILES...
    add_statements_command(commands)  # xlsales statements BOOK OUTDIR

    args = parser.parse_args(argv)
    return int(args.run(args))


def entry() -> NoReturn:
    """The `xlsales` command (main() is for callers in the same process, such as the tests).

    A command-line run is a process of its own: for compute and validate the cycle collector stays
    off for all of it (the run pauses it anyway), and once the workbook is written and the summary
    printed the process ends without freeing what it made: the run's rows, records and sheets are
    left in _LEFT_FOR_EXIT. On a 1M-row workbook freeing them one by one took 0.3 s, and the last
    full collection and the interpreter's own teardown 0.3–0.5 s more, for nothing: the written
    workbook is closed and synced by then, and the log's second process and its file are gone
    (main closes them)."""
    global _LEFT_FOR_EXIT
    if sys.argv[1:2] and sys.argv[1] in FILE_COMMANDS:
        gc.disable()
        _LEFT_FOR_EXIT = []
    try:
        code = main()
    except SystemExit as stop:  # argparse's --help and usage errors
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
