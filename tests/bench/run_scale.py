"""`make bench-scale`: the four scale benchmarks, in an order that fits 30 minutes on 2 cores.

1. `test_cli_startup.py` and `test_ceiling.py`, alone: one measures wall time per command, the
   other users per second, and any other load on the machine would be in their figures.
2. `test_scale.py` and `test_many_jobs.py` at the same time. The hundred jobs are idle most of
   their 10-minute window (a few per cent of a core), and run beside the scale test's
   1,000,000-user main run. That makes neither benchmark easier to pass: the hundred jobs' worker
   CPU is its own processes' (from /proc), their intervals and change latency are judged on a
   machine the scale test keeps busy, and the main run, slowed by them, is judged against a
   reference run that waits until they are done (TENANT_SYNC_SCALE_QUIET_AFTER: their process).

The scale test's output goes to the terminal, the hundred jobs' to `bench-results/jobs.log`
(its last lines are printed when it ends). Every part runs even if one before it failed; the exit
status is 1 if any failed or the whole run took over 30 minutes. Each part's wall time, its exit
status and the whole run's minutes go to `bench-results/bench-scale.json`.

The benchmarks run in sessions of their own, so that an interrupt (Ctrl-C, or SIGINT or SIGTERM
to this process) reaches each of them once, as one SIGINT: pytest then stops and its fixtures
stop the servers they started (the embedded Redis is a daemon, beyond the terminal's reach), and
this process waits for them.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from tests.support.memory import process_start

RESULTS = Path("bench-results")
PYTEST = [sys.executable, "-m", "pytest", "-m", "bench_scale", "-q", "-s", "-p", "no:cacheprovider"]
ALONE = ["tests/bench/test_cli_startup.py", "tests/bench/test_ceiling.py"]
SCALE = "tests/bench/test_scale.py"
JOBS = "tests/bench/test_many_jobs.py"
TARGET_MINUTES = 30

_children: list[subprocess.Popen[bytes]] = []


def start(args: list[str], **options: Any) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, start_new_session=True, **options)
    _children.append(process)
    return process


def interrupted(signum: int, frame: FrameType | None) -> None:
    """Each benchmark still running gets one SIGINT; a second interrupt changes nothing (a
    second SIGINT would cut pytest's clean-up short)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(
        "\nbench-scale: interrupted; waiting for the benchmarks to stop their servers", flush=True
    )
    for process in _children:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    raise KeyboardInterrupt


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    parts: dict[str, dict[str, object]] = {}

    print(f"bench-scale: {' and '.join(ALONE)}, alone", flush=True)
    alone = start([*PYTEST, *ALONE])
    parts["startup_and_ceiling"] = {
        "exit": alone.wait(),
        "seconds": round(time.monotonic() - started, 1),
    }

    together = time.monotonic()
    log_path = RESULTS / "jobs.log"
    print(f"bench-scale: {SCALE} here, {JOBS} beside it (output in {log_path})", flush=True)
    with log_path.open("w") as log:
        jobs = start(
            [*PYTEST, JOBS],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TENANT_SYNC_JOBS_BESIDE": SCALE},
        )
        quiet_after = f"{jobs.pid}:{process_start(jobs.pid)}"
        scale = start(
            [*PYTEST, SCALE], env={**os.environ, "TENANT_SYNC_SCALE_QUIET_AFTER": quiet_after}
        )
        ended = reap(jobs, scale, together, log_path)
    parts["scale"] = {"exit": scale.returncode, "seconds": round(ended["scale"], 1)}
    parts["jobs_beside_scale"] = {"exit": jobs.returncode, "seconds": round(ended["jobs"], 1)}

    total = time.monotonic() - started
    failed = [name for name, part in parts.items() if part["exit"] != 0]
    if total > TARGET_MINUTES * 60:
        failed.append(f"the whole run took {minutes(total)}, over {TARGET_MINUTES} min")
    summary = {
        "minutes": round(total / 60, 1),
        "target_minutes": TARGET_MINUTES,
        "parts": parts,
        "failed": failed,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    (RESULTS / "bench-scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"\nbench-scale: {minutes(total)} in all (target {TARGET_MINUTES} min); "
        + (f"failed: {'; '.join(failed)}" if failed else "every part passed"),
        flush=True,
    )
    return 1 if failed else 0


def reap(
    jobs: subprocess.Popen[bytes], scale: subprocess.Popen[bytes], since: float, log_path: Path
) -> dict[str, float]:
    """When each ended, in seconds since `since`. The hundred jobs' process is reaped as soon as
    it ends: the scale test's reference run is waiting for it to be gone."""
    ended: dict[str, float] = {}
    while len(ended) < 2:
        for name, process in (("jobs", jobs), ("scale", scale)):
            if name not in ended and process.poll() is not None:
                ended[name] = time.monotonic() - since
                if name == "jobs":
                    print(
                        f"\nbench-scale: {JOBS} ended ({minutes(ended[name])}, exit "
                        f"{jobs.returncode}):\n" + tail(log_path),
                        flush=True,
                    )
        time.sleep(0.5)
    return ended


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        for child in _children:
            child.wait()
        sys.exit(130)
