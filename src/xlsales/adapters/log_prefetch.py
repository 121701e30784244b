"""Reading the relationship log (客户关系记录) in a second process, started as early as possible.

On a 1M-row workbook calamine needs about 3 s for the log alone, and the rest of a run waits for
it. A child process reads the log's columns as text into an Arrow file while this process reads and
validates everything else. The command line starts the child before it imports polars, pydantic and
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
import zipfile
from pathlib import Path

LOG_SHEET = "客户关系记录"
# the log's columns the engine reads, by header text (xlsx_reader checks they are its LOG_COLUMNS)
LOG_HEADERS = ("日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态")

# A sheet this big (uncompressed XML; 1M log rows are about 260 MB) makes a second process pay.
PARALLEL_MIN_BYTES = 32 << 20
_NAME_SEP = "\x1f"  # between header names on the child's command line (no header contains it)

# The child: the sheet is found by its name without edge spaces (as the reader does), the columns by
# 0-based index ("i:0,2,5") or by header text ("n:日期␟工号"); every cell as text. calamine parses in
# a thread (it does not hold the GIL) while pyarrow, which only the end of the read needs, is
# imported beside it: the child's 0.1 s import is no longer ahead of its 3 s read.
CHILD = """
import sys, threading
import fastexcel
path, sheet, spec, out = sys.argv[1:5]
reader = fastexcel.read_excel(path)
title = next(name for name in reader.sheet_names if name.strip() == sheet)
kind, _, listed = spec.partition(":")
columns = [int(c) for c in listed.split(",")] if kind == "i" else listed.split("\\x1f")
read = []
loader = threading.Thread(target=lambda: read.append(
    reader.load_sheet_eager(title, header_row=0, use_columns=columns, dtypes="string")))
loader.start()
import pyarrow as pa, pyarrow.ipc as ipc
loader.join()
if not read:
    sys.exit(3)  # the read failed (its error was printed by the thread); the reader reads the log itself
batch = read[0]
with pa.OSFile(out, "wb") as sink, ipc.new_file(sink, batch.schema) as writer:
    writer.write_batch(batch)
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


class LogChild:
    """A child process writing some columns of the log sheet, as text, to an Arrow file.
    `wait()` gives the file (None if the child failed); `close()` never leaves a process or a file.
    `sheet_bytes`: the sheet's uncompressed size, to choose where the file goes (scratch_dir)."""

    def __init__(self, path: str | Path, sheet: str, columns: list[int] | list[str], sheet_bytes: int = 0) -> None:
        self.path = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: str | None = None
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
    return child if child.proc is not None else None
