"""Reading the relationship log (客户关系记录) in a second process, started as early as possible.

On a 1M-row workbook reading the log alone takes 2–4 s, and the rest of a run waits for it. A child
process reads the log's columns as text into an Arrow file while this process reads and validates
everything else. The command line starts the child before it imports polars, pydantic and
the engine (about 0.45 s), so this module uses the standard library only.

xlsx_reader decides whether the child's frame is the log it expects (the headers it checked); if it
is not, or the child fails, the log is read in this process instead: the child only ever saves time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LOG_SHEET = "客户关系记录"
# the log's columns the engine reads, by header text (xlsx_reader checks they are its LOG_COLUMNS)
LOG_HEADERS = ("日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态")

# A sheet this big (uncompressed XML; 1M log rows are about 260 MB) makes a second process pay.
PARALLEL_MIN_BYTES = 32 << 20
_NAME_SEP = "\x1f"  # between header names on the child's command line (no header contains it)

# The child: the sheet is found by its name without edge spaces (as the reader does), the columns by
# 0-based index ("i:0,2,5") or by header text ("n:日期␟工号"); every cell as text. sheet_scan finds
# the cells in the XML with numpy (2.0–2.5 s for the 1M-row log against calamine's 3.6–4.2 s); XML
# it does not take is read by calamine, in a thread (it does not hold the GIL) while pyarrow, which
# only the end of the read needs, is imported beside it.
CHILD = """
import sys, threading
path, sheet, spec, out = sys.argv[1:5]
kind, _, listed = spec.partition(":")
columns = [int(c) for c in listed.split(",")] if kind == "i" else listed.split("\\x1f")
batch = None
try:
    from xlsales.adapters.sheet_scan import scan_text_columns
    batch = scan_text_columns(path, sheet, columns)
except Exception:  # NotPlain, or anything the scan could not read: calamine reads it
    batch = None
if batch is None:
    import fastexcel
    reader = fastexcel.read_excel(path)
    title = next(name for name in reader.sheet_names if name.strip() == sheet)
    read = []
    loader = threading.Thread(target=lambda: read.append(
        reader.load_sheet_eager(title, header_row=0, use_columns=columns, dtypes="string")))
    loader.start()
    import pyarrow
    loader.join()
    if not read:
        sys.exit(3)  # the read failed (its error was printed by the thread); the reader reads the log itself
    batch = read[0]
import pyarrow as pa, pyarrow.ipc as ipc
with pa.OSFile(out, "wb") as sink, ipc.new_file(sink, batch.schema) as writer:
    writer.write_table(batch) if isinstance(batch, pa.Table) else writer.write_batch(batch)
"""


def spare_core() -> bool:
    """Whether this process may use more than one core. No look at the load average: it lags (a
    run right after another looks busy), and even with one of two cores taken by another job the
    second process paid: 1M-row workbook, alternating runs on 2026-11-27, 9.5–10.2 s with it
    against 10.5–12.0 s without (the small sheets and the orders' side overlap the log's read)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # Windows and macOS have no affinity call
        cpus = os.cpu_count() or 1
    return cpus >= 2


def worth_a_process(sheet_bytes: int) -> bool:
    """Whether a sheet of this size (uncompressed XML) is read in a second process: big enough, a
    spare core, an interpreter to start, and the child's libraries installed."""
    return (sheet_bytes >= PARALLEL_MIN_BYTES and bool(sys.executable) and spare_core()
            and importlib.util.find_spec("fastexcel") is not None and importlib.util.find_spec("pyarrow") is not None)


# Where the child's Arrow file goes: memory (tmpfs) when there is room. Writing the 1M-row log's
# 90 MB took the child 0.03 s there against 0.14 s to /tmp on a disk (measured 2026-11-27); a small
# /dev/shm (a container's 64 MB) is not used, since a full one would fail the child.
SHM_DIR = "/dev/shm"


def scratch_dir(sheet_bytes: int) -> str | None:
    """A folder in memory with room for the Arrow file of a sheet this big (uncompressed XML: its
    text columns take about a third of that, twice the sheet's size is asked for), else None
    (the system's temporary folder)."""
    try:
        if not os.path.isdir(SHM_DIR) or not os.access(SHM_DIR, os.W_OK):
            return None
        free = os.statvfs(SHM_DIR)
        return SHM_DIR if free.f_bavail * free.f_frsize >= 2 * sheet_bytes else None
    except (AttributeError, OSError):  # no statvfs on Windows
        return None


# The sheets besides the log that grow with a team (by their contract names): loaded by calamine in a
# thread of this process from the start (SheetLoader), while the engine is imported. xlsx_reader
# decides which of them it takes (tests/test_reader.py checks these are contract sheets).
BIG_SHEETS = ("客户", "商机", "订单", "回款", "进度", "提成发放表", "排名历史", "5词评价", "3C清单")


class SheetLoader:
    """Some sheets' cells, loaded by python-calamine in a thread, one sheet after another: calamine
    parses without holding the GIL, so this process goes on meanwhile. `grid(name)` waits for that
    sheet (rows from row 1, columns from A, "" where empty) or gives None (no such sheet, calamine
    missing or failing); `close()` stops after the sheet being loaded and waits for the thread."""

    def __init__(self, path: str | Path, names: Iterable[str]) -> None:
        self.path = Path(path)
        self._names = list(names)
        self._grids: dict[str, list[list[Any]] | None] = {}
        self._ready = {name: threading.Event() for name in self._names}
        self._stop = False
        self._thread = threading.Thread(target=self._load, daemon=True, name="xlsales-sheets")
        self._thread.start()

    def _load(self) -> None:
        book = None
        try:
            import python_calamine

            book = python_calamine.CalamineWorkbook.from_path(str(self.path))
            titles = {title.strip(): title for title in book.sheet_names}
            for name in self._names:
                if self._stop:
                    break
                title = titles.get(name)
                try:
                    self._grids[name] = None if title is None else book.get_sheet_by_name(title).to_python(
                        skip_empty_area=False)
                except Exception:  # calamine's own error types: that sheet is read exactly
                    self._grids[name] = None
                self._ready[name].set()
        except Exception:  # no python-calamine, or a file it cannot open: every sheet is read exactly
            pass
        finally:
            for event in self._ready.values():
                event.set()
            if book is not None:
                with contextlib.suppress(Exception):
                    book.close()

    def grid(self, name: str) -> list[list[Any]] | None:
        event = self._ready.get(name)
        if event is None:
            return None
        event.wait()
        return self._grids.pop(name, None)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self._grids.clear()


class LogChild:
    """A child process writing some columns of the log sheet, as text, to an Arrow file.
    `wait()` gives the file (None if the child failed); `close()` never leaves a process or a file.
    `sheet_bytes`: the sheet's uncompressed size, to choose where the file goes (scratch_dir).
    `sheets`: the big sheets' loader that prefetch_log started beside it (the reader takes it over)."""

    def __init__(self, path: str | Path, sheet: str, columns: list[int] | list[str], sheet_bytes: int = 0) -> None:
        self.path = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: str | None = None
        self.sheets: SheetLoader | None = None
        if all(isinstance(c, int) for c in columns):
            spec = "i:" + ",".join(str(c) for c in columns)
        else:
            spec = "n:" + _NAME_SEP.join(str(c) for c in columns)
        try:
            handle, self.out = tempfile.mkstemp(prefix="xlsales-log-", suffix=".arrow", dir=scratch_dir(sheet_bytes))
            os.close(handle)
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(self.path), sheet, spec, self.out],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError:
            self.close()

    def is_for(self, path: str | Path) -> bool:
        try:
            return self.proc is not None and os.path.samefile(self.path, path)
        except OSError:
            return False

    def running(self) -> bool:
        """Whether the child is still reading (the caller has time for something else)."""
        return self.proc is not None and self.proc.poll() is None

    def wait(self) -> str | None:
        if self.proc is None or self.out is None:
            return None
        try:
            return self.out if self.proc.wait() == 0 else None
        except OSError:
            return None

    def close(self) -> None:
        if self.sheets is not None:
            self.sheets.close()
            self.sheets = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self.out is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.out)
            self.out = None


def prefetch_log(path: str | Path) -> LogChild | None:
    """Start reading the log of the workbook at `path` now, by header text, if the workbook has a
    sheet big enough to be worth a second process and a core is spare. Only the zip's directory is
    read here; anything odd (no such file, not a zip) gives None and is left to the real reader."""
    try:
        with zipfile.ZipFile(path) as package:
            biggest = max((info.file_size for info in package.infolist()
                           if info.filename.startswith("xl/worksheets/")), default=0)
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if not worth_a_process(biggest):
        return None
    child = LogChild(path, LOG_SHEET, list(LOG_HEADERS), biggest)
    if child.proc is None:
        return None
    if importlib.util.find_spec("python_calamine") is not None:
        child.sheets = SheetLoader(path, BIG_SHEETS)
    return child
