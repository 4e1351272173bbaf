"""What the benchmarks read of a process in /proc: its stat fields, peak memory and start time."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb(pid: int) -> float:
    """The process's own high-water mark of resident memory (VmHWM), 0 once it is gone. Not
    wait4's ru_maxrss: that starts from the forking test process's size, which a large seed
    inflates."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name (which may hold spaces and parentheses):
    the state first, then the parent's id, ..., user and system time at 11 and 12, the start
    time at 19."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat's 22nd field): with
    its id, it names the process even after the id is given to another. None once it is gone or
    a zombie its parent has not reaped yet."""
    try:
        fields = proc_stat(pid)
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]
