"""Time reading a big workbook: the floor (unzip + XML parse), read_workbook, and the core's compute.

    python benchmarks/bench_reader.py big.xlsx                # floor, read_workbook, read + core
    python benchmarks/bench_reader.py big.xlsx --candidates   # also the log readers that were weighed
    python benchmarks/bench_reader.py --make 1000000 big.xlsx # write the workbook first

Each measurement runs in a fresh process (so its peak memory is its own) `--repeat` times; the
best wall time is shown with its CPU time and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from xml.parsers import expat

LOG = "客户关系记录"


def _log_part(path: str) -> str:
    from xlsales.adapters.xlsx_reader import _Package

    package = _Package(Path(path))
    part = package.sheet_part(LOG)
    package.close()
    assert part is not None
    return part


def floor(path: str) -> dict[str, object]:
    """Unzip every sheet and the shared strings and parse them with expat, doing nothing else."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/") or name.endswith("sharedStrings.xml"):
                with z.open(name) as stream:
                    parser = expat.ParserCreate()
                    while chunk := stream.read(1 << 20):
                        parser.Parse(chunk, False)
                    parser.Parse(b"", True)
    return {}


def unzip_only(path: str) -> dict[str, object]:
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as stream:
                while stream.read(1 << 20):
                    pass
    return {}


def read(path: str) -> dict[str, object]:
    from xlsales.adapters.xlsx_reader import read_workbook

    data = read_workbook(path)
    return {"log_rows": len(data.log) if data.log is not None else None, "problems": len(data.problems),
            "rows": sum(len(v) for v in data.tables.values())}


def read_in_one_process(path: str) -> dict[str, object]:
    """read_workbook without the second process for the log (what one core gets)."""
    from xlsales.adapters import log_prefetch

    log_prefetch.PARALLEL_MIN_BYTES = 1 << 62
    return read(path)


def read_two_processes(path: str) -> dict[str, object]:
    """read_workbook with the log read in a second process even for a small log."""
    from xlsales.adapters import log_prefetch

    log_prefetch.PARALLEL_MIN_BYTES = 0
    return read(path)


def read_and_compute(path: str) -> dict[str, object]:
    from xlsales.adapters.xlsx_reader import read_workbook
    from xlsales.core.intake import read_workbook_tables
    from xlsales.core.pipeline import compute
    from xlsales.core.problems import Problems

    start = time.perf_counter()
    data = read_workbook(path)
    read_s = time.perf_counter() - start
    problems = Problems()
    problems.extend(data.problems)
    book, inputs = read_workbook_tables(data.tables, dt.date.today(), problems, log=data.log)
    intake_s = time.perf_counter() - start - read_s
    assert book is not None, [p.message for p in problems.items if p.is_error][:5]
    results = compute(inputs, book, problems)
    compute_s = time.perf_counter() - start - read_s - intake_s
    return {"read_s": round(read_s, 2), "intake_s": round(intake_s, 2), "compute_s": round(compute_s, 2),
            "payout_lines": len(results.payouts), "problems": len(problems)}


# --- candidates for the log (客户关系记录 only) -------------------------------------------------

def fastexcel_string(path: str) -> dict[str, object]:
    """What read_workbook uses for the log: calamine via fastexcel, every column as text, eager (pyarrow)."""
    import fastexcel
    import polars as pl

    frame = pl.from_arrow(fastexcel.read_excel(path).load_sheet_eager(LOG, dtypes="string", use_columns=list(range(8))))
    return {"rows": frame.height}


def fastexcel_inferred(path: str) -> dict[str, object]:
    """fastexcel with its own type inference (first 1,000 rows): fast, but loses bad cells."""
    import fastexcel
    import polars as pl

    frame = pl.from_arrow(fastexcel.read_excel(path).load_sheet_eager(LOG, use_columns=list(range(8))))
    return {"rows": frame.height}


def calamine_to_python(path: str) -> dict[str, object]:
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(path).get_sheet_by_name(LOG).to_python()
    return {"rows": len(rows) - 1}


def expat_handlers(path: str) -> dict[str, object]:
    """expat with the least a Python reader must do: a callback per element."""
    cells = 0
    values: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal cells
        if name == "c":
            cells += 1

    with zipfile.ZipFile(path) as z, z.open(_log_part(path)) as stream:
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.StartElementHandler = start
        parser.CharacterDataHandler = values.append
        while chunk := stream.read(1 << 20):
            parser.Parse(chunk, False)
            values.clear()
        parser.Parse(b"", True)
    return {"cells": cells}


def exact_reader(path: str) -> dict[str, object]:
    """read_workbook with the log read by this module's exact (regex / expat) reader instead of calamine."""
    from xlsales.adapters import xlsx_reader

    xlsx_reader._log_frame_fast = lambda *a, **k: None  # type: ignore[assignment]
    data = xlsx_reader.read_workbook(path)
    return {"log_rows": len(data.log) if data.log is not None else None}


def openpyxl_read_only(path: str) -> dict[str, object]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    n = sum(1 for _ in book[LOG].iter_rows(values_only=True))
    return {"rows": n}


MEASURES = {f.__name__: f for f in (unzip_only, floor, read, read_in_one_process, read_two_processes,
                                      read_and_compute, fastexcel_string, fastexcel_inferred,
                                      calamine_to_python, expat_handlers, exact_reader, openpyxl_read_only)}


def _one(name: str, path: str) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    extra = MEASURES[name](path)
    result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
              "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}
    print(json.dumps(result, ensure_ascii=False))


def _measure(name: str, path: str, repeat: int) -> dict[str, object]:
    best: dict[str, object] | None = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--one", name, path], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or result["wall"] < best["wall"]:  # type: ignore[operator]
            best = result
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--make", type=int, metavar="LOG_ROWS", help="write the workbook first (50,000 orders)")
    parser.add_argument("--candidates", action="store_true", help="also time the log readers that were weighed")
    parser.add_argument("--slow", action="store_true", help="with --candidates: openpyxl too (about a minute)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.one, args.path)
        return
    if args.make:
        sys.path.insert(0, str(Path(__file__).parent))
        from make_big_workbook import make_workbook

        make_workbook(args.path, args.make)
    names = ["unzip_only", "floor", "read", "read_in_one_process", "read_two_processes", "read_and_compute"]
    if args.candidates:
        names += ["fastexcel_string", "fastexcel_inferred", "calamine_to_python", "expat_handlers", "exact_reader"]
        if args.slow:
            names.append("openpyxl_read_only")
    print(f"{args.path}: {Path(args.path).stat().st_size / 1e6:.1f} MB, best of {args.repeat}")
    results = {}
    for name in names:
        results[name] = r = _measure(name, args.path, args.repeat)
        extra = {k: v for k, v in r.items() if k not in ("wall", "cpu", "rss_mb")}
        print(f"  {name:20s} {r['wall']:6.2f} s wall {r['cpu']:6.2f} s cpu {r['rss_mb']:7.0f} MB peak  {extra}", flush=True)
    base = results["floor"]["wall"]
    total = results["read_and_compute"]["wall"]
    print(f"read_workbook / floor = {results['read']['wall'] / base:.2f}; read + core / floor = {total / base:.2f} "  # type: ignore[operator]
          "(target: whole compute incl. writing <= 2)")


if __name__ == "__main__":
    main()
