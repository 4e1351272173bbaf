"""A process's peak memory, as the benchmarks report it."""

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
