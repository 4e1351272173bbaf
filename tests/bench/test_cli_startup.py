"""Benchmark (make bench-scale): how long `tenant-sync status` and `validate` take, start to
exit.

Against a small world (the sandbox, the embedded Redis, SQLite) after one cycle, so `status` has
a cycle, links and a deletion window to show. Each command runs RUNS times, interleaved, after a
warm-up; the median wall time must stay under TARGET_S. Python's bytecode cache is on (in a
directory of the test's own), as it is for an installed worker: without it every run would
recompile the worker's modules. Writes bench-results/cli.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SyncEnv

pytestmark = pytest.mark.bench_scale

RUNS = 11
TARGET_S = 0.5
COMMANDS = {"status": ["status"], "validate": ["validate"]}


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `python -m worker ARGS`, which must succeed."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    error = process.stderr.read().decode()
    process.stderr.close()
    assert process.returncode == 0, error
    return wall, usage.ru_utime + usage.ru_stime


def test_status_and_validate_start_quickly(sync_env: SyncEnv, tmp_path: Path) -> None:
    sync_env.run_json()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    commands = {name: [*args, "--config", str(sync_env.config)] for name, args in COMMANDS.items()}
    for args in commands.values():  # warm-up: bytecode cache, Redis already up
        timed(args, env)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(RUNS):
        for name, args in commands.items():
            samples[name].append(timed(args, env))

    result: dict[str, Any] = {
        name: {
            "median_s": round(statistics.median(w for w, _ in runs), 3),
            "min_s": round(min(w for w, _ in runs), 3),
            "median_cpu_s": round(statistics.median(c for _, c in runs), 3),
            "runs": RUNS,
            "target_s": TARGET_S,
        }
        for name, runs in samples.items()
    }
    slow = {n: r["median_s"] for n, r in result.items() if r["median_s"] >= TARGET_S}
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "cli.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ncli start-up: {json.dumps(result)}")
    assert not slow, f"median wall time over {TARGET_S} s: {slow}"
