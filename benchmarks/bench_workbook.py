"""Time `xlsales compute` on a workbook stage by stage: read, validate + compute, build the result
sheets, write them back. Works on a copy, so the workbook itself is not changed.

    python benchmarks/make_big_workbook.py big.xlsx --log-rows 1000000 --orders 50000
    python benchmarks/bench_workbook.py big.xlsx [--repeat 3] [--profile out.prof]

Per stage: wall and CPU seconds (CPU is the steadier figure on a shared machine; the 1-minute load
average is printed). Also the end-to-end total, the peak RSS of the process, the rows written per
sheet, and for reference the floor the issue compares against: unzip + expat parse of the sheets.
This is a script, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_reader import floor

from xlsales.adapters.filerun import RunReport, early_intake, sheets_to_write
from xlsales.adapters.xlsx_reader import read_workbook
from xlsales.adapters.xlsx_writer import SheetOut, write_sheets
from xlsales.core.pipeline import collector_paused


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def once(path: Path, today: dt.date | None) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as folder, collector_paused():  # as run_workbook does
        copy = Path(folder) / path.name
        shutil.copyfile(path, copy)
        stages: dict[str, tuple[float, float]] = {}
        hook, early = early_intake(today, "compute")  # as run_workbook: small sheets and order side while the log loads
        data, *stages["read_workbook (+ small sheets' intake)"] = timed(  # type: ignore[misc]
            lambda: read_workbook(copy, while_log_loads=hook))
        report = RunReport(workbook=str(copy), command="compute", exit_code=0, message="")
        (sheets, _, _), *stages["validate + compute + result sheets"] = timed(  # type: ignore[misc]
            lambda: sheets_to_write(data, "compute", today, lambda _: None, report, early[0]))
        _, *stages["write_sheets"] = timed(lambda: write_sheets(copy, sheets))  # type: ignore[misc]
        once.rows = {s.name: len(s.rows) for s in sheets if isinstance(s, SheetOut)}  # type: ignore[attr-defined]
        return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workbook", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of one run here")
    args = parser.parse_args()

    print(f"xlsales from {sys.modules['xlsales'].__file__}; load average {os.getloadavg()[0]:.2f}")
    _, floor_wall, floor_cpu = timed(lambda: floor(str(args.workbook)))
    print(f"floor (unzip + expat parse of every sheet): {floor_wall:.2f} s wall, {floor_cpu:.2f} s CPU")
    if args.profile:
        cProfile.runctx("once(args.workbook, args.today)", globals(), {"args": args, "once": once}, str(args.profile))
        print(f"profile written to {args.profile}")
        return
    runs = [once(args.workbook, args.today) for _ in range(args.repeat)]
    for stage in runs[0]:
        walls = [r[stage][0] for r in runs]
        cpus = [r[stage][1] for r in runs]
        print(f"{stage:44s} {statistics.median(walls):6.2f} s wall  {statistics.median(cpus):6.2f} s CPU"
              f"  (runs: {', '.join(f'{w:.2f}' for w in walls)})")
    totals = [sum(w for w, _ in r.values()) for r in runs]
    total = statistics.median(totals)
    print(f"{'total':44s} {total:6.2f} s wall = {total / floor_wall:.2f}× the floor;"
          f" peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("rows written:", ", ".join(f"{k} {v:,}" for k, v in once.rows.items()))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
