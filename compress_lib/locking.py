"""One run per output folder: a lock file naming the process that works in it.

    with folder_lock(out_dir, what="compress heads"):
        ...  # only this process writes into out_dir

The lock is a small JSON file in the folder (`.lock` unless named otherwise) holding the pid, host, start time
and what the run does. A second run into the same folder fails at once with one line naming the other run's
pid and the folder. A lock whose process is gone (killed with kill -9, a crashed machine) is stale: the next run
takes it over with a one-line note on stderr. A process counts as gone when no process of that pid exists on
this host, or when the process holding that pid now started after the lock was written (the pid was reused).
A lock written on another host cannot be checked from here and is always respected.

Reading, judging and replacing the lock file happen under an `flock` of the folder itself, so two runs that
start at the same instant never both take it. On entry the lock also deletes the temporary files a killed
run left behind (`remove_stale_temp_files`): only names of our own temp pattern, only files older than the
moment the lock was taken.

Under torchrun only the first process (RANK 0) takes the lock; the others run under its protection. Within a
process, the thread holding a lock may take it again (nested use, e.g. a command that locks its --out before
loading data, then calls a `run_<method>` that locks it too); any other thread is refused like another process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from compress_lib.errors import CompressLibError
from compress_lib.files import write_text_atomic

LOCK_NAME = ".lock"
TEMP_PATTERN = ".*.tmp"  # what atomic writes of compress_lib leave behind when killed: .<name>[.<random>].tmp
PID_REUSE_SLACK_S = 2.0  # a process that started this much after the lock was written is not its holder
# A temp file of a folder shared without a lock (a cache) that nobody wrote to for this long belongs to a dead
# writer: a live one writes continuously and renames the file as soon as it is complete.
ABANDONED_TEMP_AGE_S = 600.0


# -- the lock file --------------------------------------------------------------------------------------------------
def lock_record(what: str) -> dict:
    """What this process writes into a lock file it takes."""
    now = time.time()
    return {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "started": now,
            "started_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")}


def read_lock(path: Path) -> dict | None:
    """The record of a lock file; None when it is absent or unreadable (a lock half written by a killed run)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    return record


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from /proc; None where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (command) ": field 3 (state) onwards
    ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
    return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Does a process with this pid exist on this host (ours or another user's)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_alive(record: dict) -> bool:
    """Is the run that wrote this lock record still working? (Unknowable for another host: assumed so.)"""
    if record.get("host", socket.gethostname()) != socket.gethostname():
        return True
    pid = record["pid"]
    if not pid_alive(pid):
        return False
    started, written = process_start_time(pid), record.get("started")
    if started is not None and isinstance(written, (int, float)) and started > written + PID_REUSE_SLACK_S:
        return False  # the pid now belongs to a younger process
    return True


def describe_holder(record: dict) -> str:
    """`compress heads, pid 123 on host-a, started 2024-05-01T10:00:00+00:00` (what the record knows)."""
    parts = [f"pid {record['pid']}"]
    if record.get("host"):
        parts[0] += f" on {record['host']}"
    if record.get("started_at"):
        parts.append(f"started {record['started_at']}")
    return ", ".join(([str(record["what"])] if record.get("what") else []) + parts)


# -- taking and releasing -------------------------------------------------------------------------------------------
def is_secondary_rank() -> bool:
    """True in the processes of a torchrun job other than the first (they leave the lock to RANK 0)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0"


@contextmanager
def _folder_guard(folder: Path):
    """An exclusive flock of the folder itself, for the few steps that read and replace its lock file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def acquire_lock(folder: Path, what: str, lock_name: str = LOCK_NAME) -> dict:
    """Write this process's lock record into folder/lock_name; an error if a live run holds it, a note if a dead
    one did. Returns the record written."""
    path = folder / lock_name
    with _folder_guard(folder):
        old = read_lock(path) if path.exists() else None
        if old is not None and holder_alive(old):
            mine = old["pid"] == os.getpid() and old.get("host") in (None, socket.gethostname())
            who = "this very process" if mine else describe_holder(old)
            raise CompressLibError(
                f"{folder} is in use by another run ({who}); wait for it to finish or use another output folder "
                f"(if no such run is going on, delete {path})"
            )
        if path.exists():
            gone = describe_holder(old) if old is not None else "an unreadable lock"
            print(f"note: {folder} was locked by a run that is no longer running ({gone}); taking it over",
                  file=sys.stderr)
        record = lock_record(what)
        write_text_atomic(path, json.dumps(record) + "\n")
    return record


def release_lock(folder: Path, record: dict, lock_name: str = LOCK_NAME) -> None:
    """Delete the lock file if it is still ours (it may have been deleted or taken over by hand)."""
    path = folder / lock_name
    with _folder_guard(folder):
        current = read_lock(path)
        if current is not None and (current["pid"], current.get("started")) == (record["pid"], record["started"]):
            path.unlink(missing_ok=True)


@contextmanager
def folder_lock(folder, what: str, lock_name: str = LOCK_NAME, temp_files: tuple[str, ...] = (TEMP_PATTERN,)):
    """Hold `folder` (created if needed) for one run: see the module docstring.

    what: the run, as the error of a refused second run shows it (e.g. "compress heads").
    lock_name: several kinds of run may share a folder with one lock each (e.g. ".pr.lock", ".sid.lock").
    temp_files: glob patterns, relative to the folder (e.g. "points/*/.*.tmp"), of the run's temporary files:
        those older than the lock are deleted on entry. Name only files that no other run writes.
    """
    folder = Path(folder)
    if is_secondary_rank():  # torchrun's other ranks write nothing, not even the folder
        yield folder
        return
    folder.mkdir(parents=True, exist_ok=True)
    held = folder.resolve() / lock_name
    if _HELD.get(held) == threading.get_ident():  # nested use by the thread that holds it
        yield folder
        return
    record = acquire_lock(folder, what, lock_name)
    _HELD[held] = threading.get_ident()
    try:
        for pattern in temp_files:
            remove_stale_temp_files(folder, pattern, older_than=record["started"])
        yield folder
    finally:
        del _HELD[held]
        release_lock(folder, record, lock_name)


_HELD: dict[Path, int] = {}  # lock file -> the thread of this process that holds it (nested use passes through)


# -- leftovers of killed runs ---------------------------------------------------------------------------------------
def remove_stale_temp_files(folder, pattern: str = TEMP_PATTERN, older_than: float | None = None) -> list[Path]:
    """Delete the files of `folder` matching the glob `pattern` (it may reach into subfolders: "points/*/.*.tmp")
    last modified before `older_than` (seconds since the epoch); returns them. Only call it where no live
    process writes such files: under the folder's lock, or with the default `older_than` (ABANDONED_TEMP_AGE_S
    ago) in a folder shared without a lock."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - ABANDONED_TEMP_AGE_S if older_than is None else older_than
    removed = []
    for path in folder.glob(pattern):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # gone in the meantime
            continue
    return removed
