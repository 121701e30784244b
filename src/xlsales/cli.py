"""The `xlsales` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from xlsales.core.intake import read_workbook_tables
from xlsales.core.pipeline import compute
from xlsales.core.problems import Problems
from xlsales.demo import demo_tables
from xlsales.report import print_results


def _demo(args: argparse.Namespace) -> int:
    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), dt.date.today(), problems)
    if book is None:
        for p in problems.items:
            print(p.message, file=sys.stderr)
        return 1
    results = compute(inputs, book, problems)
    print_results(results, problems.items)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xlsales", description="大客户销售：关系评分、提成发放与月度排名")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="在内置的演示团队上运行引擎，打印排名、等级与发放")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
