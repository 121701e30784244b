"""Time `xlsales compute` end to end, as a user runs it, against the floor the issue compares with.

    python benchmarks/make_big_workbook.py big.xlsx --log-rows 1000000 --orders 50000
    python benchmarks/bench_cli.py big.xlsx [--repeat 5]
    python benchmarks/bench_cli.py big.xlsx --rerun    # a month's re-run: the workbook computed once first

Each run is a fresh process on a fresh copy of the workbook (the workbook itself is not changed):
wall seconds from start to exit, and the peak memory of the whole run, that is the command and
the second process that reads the log, summed while they run side by side (sampled every 10 ms
from /proc; Linux only). The floor is unzip + expat parse of every sheet (bench_reader.floor),
measured before each run, since this shared machine's speed drifts. Prints every run (with the
CPU seconds of both processes), the medians, their ratio and the median of each run's own ratio.
With --rerun the workbook is computed once first (not timed), and the runs are re-runs of that:
what users do every month, with 提成发放表, 排名历史 and 校验结果 to read back or replace (the floor then
parses those sheets too). Then the fastest run against the fastest floor, and each run against the
mean of the floors measured before and after it (one more floor at the end). A script, not a test:
it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_reader import floor


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, in kB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kb(p)
        todo += _children(p)
    return total


def run_once(workbook: Path, today: str | None) -> tuple[float, int, int, float, float]:
    """(wall seconds, peak tree RSS in kB, exit code, user and system CPU seconds) of one `xlsales
    compute` on a copy. The CPU is the command's and the log process's together (the command waits
    for its child, so wait4 counts both): a steady CPU figure with a wall time that moves says the
    machine, not the run, changed."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / workbook.name
        shutil.copyfile(workbook, copy)
        command = [sys.executable, "-m", "xlsales.cli", "compute", str(copy), "--json"]
        if today:
            command += ["--today", today]
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss_kb(proc.pid))
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so that Popen does not wait
        return wall, peak, proc.returncode, usage.ru_utime, usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workbook", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--today", help="passed on to xlsales compute")
    parser.add_argument("--rerun", action="store_true", help="time re-runs of the workbook computed once")
    args = parser.parse_args()

    print(f"{sys.executable}; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        if args.rerun:
            computed = Path(folder) / args.workbook.name
            shutil.copyfile(args.workbook, computed)
            command = [sys.executable, "-m", "xlsales.cli", "compute", str(computed), "--json"]
            done = subprocess.run(command + (["--today", args.today] if args.today else []), check=False,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if done.returncode not in (0, 1):  # 1: computed, with errors in the data
                sys.exit(f"the first compute failed (exit {done.returncode})")
            print(f"re-runs of {args.workbook.name} computed once ({computed.stat().st_size / 1e6:.1f} MB)")
            args.workbook = computed
        _runs(args)


def _runs(args: argparse.Namespace) -> None:
    floors, walls, peaks, cpus = [], [], [], []
    for i in range(args.repeat):
        start = time.perf_counter()
        floor(str(args.workbook))
        floors.append(time.perf_counter() - start)
        wall, peak, code, user, system = run_once(args.workbook, args.today)
        walls.append(wall)
        peaks.append(peak)
        cpus.append(user + system)
        print(f"run {i + 1}: floor {floors[-1]:.2f} s, xlsales compute {wall:.2f} s ({wall / floors[-1]:.2f}×, exit {code}), "
              f"CPU {user + system:.2f} s ({system:.2f} s system), peak memory {peak / 1024:.0f} MB, "
              f"load {os.getloadavg()[0]:.2f}")
    f, w = statistics.median(floors), statistics.median(walls)
    # each run against the floor measured just before it: steadier than the ratio of the medians
    # when the machine's speed drifts between runs
    ratio = statistics.median(wall / floor_ for wall, floor_ in zip(walls, floors, strict=True))
    print(f"median: floor {f:.2f} s, xlsales compute {w:.2f} s = {w / f:.2f}× the floor "
          f"(median of each run's ratio {ratio:.2f}×); CPU {statistics.median(cpus):.2f} s; "
          f"peak memory {max(peaks) / 1024:.0f} MB (highest run)")
    # the least each took: on a machine whose speed drifts, the nearest either came to its own cost
    print(f"fastest: floor {min(floors):.2f} s, xlsales compute {min(walls):.2f} s = {min(walls) / min(floors):.2f}×")
    # each run between the floors measured just before and just after it (one more floor at the end):
    # a drift during the run moves both halves of its floor, not only the one before
    start = time.perf_counter()
    floor(str(args.workbook))
    after = [*floors[1:], time.perf_counter() - start]
    bracketed = [wall / ((before + later) / 2) for wall, before, later in zip(walls, floors, after, strict=True)]
    print(f"bracketed: each run against the mean of the floors before and after it, median "
          f"{statistics.median(bracketed):.2f}× (single runs {min(bracketed):.2f}–{max(bracketed):.2f}×)")


if __name__ == "__main__":
    main()
