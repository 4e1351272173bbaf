"""Benchmark (make bench-scale): the engine's own ceiling, with Graph's quotas out of the way.

The sandbox adds 30 ms to every Graph request, as in `make bench`, but its quotas are lifted and so
are the worker's pacing limits: what is left to limit the rate is the worker itself (mapping,
batching, state) and the round trips. Measured twice over the same generated source
(TENANT_SYNC_CEILING_USERS users, default 6,000; a dry run counts those in scope): a creating full cycle in one worker process
(`tenant-sync run --full`), and the same cycle triggered on Celery with its pages fanned out to
three page-processing worker processes (`fan_out: 3`; the cycle's own process waits for them).
Each run verifies one target user per source user. Figures only, written to
bench-results/ceiling.json; the assertion is that the engine is well above the 10 users per
second a real tenant's invitation quota allows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bench.test_scale import configure as lift_config_limits
from tests.bench.test_speed import bench_seed
from tests.conftest import SyncEnv, sync_world

pytestmark = [pytest.mark.bench_scale, pytest.mark.timeout(3600)]

USERS = int(os.environ.get("TENANT_SYNC_CEILING_USERS", "6000"))
UNLIMITED = 10**9
REAL_TENANT_USERS_PER_S = 10
RESULTS: dict[str, Any] = {}


def lifted_seed() -> dict[str, Any]:
    seed = bench_seed(USERS)  # 30 ms per request
    seed["limits"] = {
        "write_per_150s": UNLIMITED,
        "invitations_per_5s": UNLIMITED,
        "resource_units_per_10s": UNLIMITED,
    }
    return seed


def lift_worker_limits(env: SyncEnv, **job: Any) -> None:
    lift_config_limits(env)
    config = yaml.safe_load(env.config.read_text())
    config["logging"] = {"format": "json", "level": "WARNING"}
    config["jobs"]["sync"].update(job)
    env.config.write_text(yaml.safe_dump(config))


def invited(env: SyncEnv) -> int:
    """The target's B2B users: one per source user the cycle created, and no others."""
    return len([u for u in env.target_users() if "#EXT#" in u["userPrincipalName"]])


def in_scope(env: SyncEnv) -> int:
    """How many users the cycle should create: a dry run's count (it reads, writes nothing)."""
    return int(env.run_json("--full", "--dry-run")["counts"]["create"])


def record(name: str, expected: int, created: int, seconds: float, env: SyncEnv) -> None:
    guests = invited(env)
    RESULTS[name] = {
        "users": USERS,
        "in_scope": expected,
        "created": created,
        "seconds": round(seconds, 1),
        "users_per_s": round(created / seconds, 1),
        "guests_in_target": guests,
    }
    print(
        f"\nceiling, {name}: {created} users in {seconds:.1f} s = {created / seconds:.1f} users/s"
    )
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "ceiling.json").write_text(json.dumps(RESULTS, indent=2) + "\n")
    assert created == expected
    assert guests == expected  # one target user per source user, no more
    assert created / seconds > 5 * REAL_TENANT_USERS_PER_S


def test_one_worker_process(tmp_path: Path) -> None:
    with sync_world(tmp_path, lifted_seed()) as env:
        lift_worker_limits(env)
        env.cli("db", "upgrade", check=True)
        expected = in_scope(env)
        started = time.monotonic()
        result = env.run_json("--full")
        seconds = time.monotonic() - started
        record("one worker process", expected, result["counts"]["create"], seconds, env)


def test_three_page_processes(tmp_path: Path) -> None:
    from tenant_sync_demo.demo import background, wait_for
    from worker.celery_app import create_celery
    from worker.config import load_config

    with sync_world(tmp_path, lifted_seed()) as env:
        lift_worker_limits(env, fan_out=3)
        env.cli("db", "upgrade", check=True)
        expected = in_scope(env)
        celery = create_celery(load_config(env.config))
        environment = {**os.environ, "TENANT_SYNC_CONFIG": str(env.config)}
        # Four processes: the cycle's, which waits for its pages, and three that take them.
        command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-c", "4"]
        with background(command, tmp_path / "worker.log", env=environment):
            wait_for(lambda: len(celery.control.ping(timeout=0.5) or []) == 1, "the worker")
            started = time.monotonic()
            triggered = env.cli("trigger", "sync", "--full", "--json", check=True)
            task = json.loads(triggered.stdout)["task_id"]
            result = celery.AsyncResult(task).get(timeout=1800)
            seconds = time.monotonic() - started
        assert result["status"] == "success"
        created = result["counts"]["create"]
        record("three page processes (fan_out: 3)", expected, created, seconds, env)
