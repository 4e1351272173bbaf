"""Processes a test left running: found by the directory they belong to, and stopped.

A test's servers (the embedded Redis daemon, the sandbox, `tenant-sync serve`, Celery workers,
PostgreSQL) all live in, are configured from, or run inside a directory under the test's
tmp_path. A process whose working directory, command line or environment names that directory
and is still running when the test has ended was started by the test and never stopped: on a
shared CI machine it keeps a port, memory and CPU for the rest of the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

STOP_DEADLINE_S = 5.0


@dataclass(frozen=True)
class Leftover:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"{self.pid} {self.command}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return b""


def _ancestors() -> set[int]:
    """This process and its parents: the runner itself may have been started from tmp_path."""
    found = set()
    pid = os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        stat = _read(Path(f"/proc/{pid}/stat"))
        try:
            pid = int(stat.rsplit(b")", 1)[1].split()[1])
        except (IndexError, ValueError):
            break
    return found


def processes_under(directory: Path) -> list[Leftover]:
    """Live processes of this user that run in, or name, `directory` (none off Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    # The directory itself or a path inside it, not a sibling it is a prefix of (test_x1/test_x10).
    needle = re.compile(re.escape(str(directory).encode()) + rb"(?=[/\0\s\"':,;=]|$)")
    uid = os.getuid()
    skip = _ancestors()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            cwd = os.readlink(entry / "cwd").encode()
        except OSError:
            continue  # gone, or a zombie: nothing left running
        cmdline = _read(entry / "cmdline")
        if not cmdline:
            continue
        if needle.search(cwd) or needle.search(cmdline) or needle.search(_read(entry / "environ")):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(Leftover(int(entry.name), command[:200]))
    return found


def still_running_under(directory: Path, grace_s: float = 3.0) -> list[Leftover]:
    """`processes_under`, after up to `grace_s` for what is found to finish exiting (a process
    group the test has just signalled)."""
    found = processes_under(directory)
    deadline = time.monotonic() + grace_s
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = processes_under(directory)
    return found


def stop(leftovers: list[Leftover]) -> None:
    """SIGTERM, then SIGKILL what is still there after STOP_DEADLINE_S."""
    for item in leftovers:
        _signal(item.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE_S
    pending = [item.pid for item in leftovers]
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if _running(pid)]
        if pending:
            time.sleep(0.05)
    for pid in pending:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _running(pid: int) -> bool:
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return False
    try:
        return stat.rsplit(b")", 1)[1].split()[0] != b"Z"
    except IndexError:
        return False
