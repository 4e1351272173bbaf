"""Crash safety with real processes: kill -9 mid-cycle, Redis and SQL going away, lost answers
after committed writes, and several workers and beats at once.

Every scenario ends by checking the target against the source: exactly one B2B user per in-scope
source user, with the right attributes; nobody lost, nobody duplicated.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_sync_demo.demo import background, wait_for
from tests.conftest import SyncEnv, sync_world
from tests.support.world import build_world_seed
from worker.adapters.state.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.e2e

FAST_LOCK = {"lock_ttl": "3s"}
ROOMY_LIMITS = {
    "invitations_per_5s": 100_000,
    "write_per_150s": 1_000_000,
    "resource_units_per_10s": 10_000_000,
}


def configure(env: SyncEnv, **state: Any) -> None:
    config = yaml.safe_load(env.config.read_text())
    config["state"].update(state)
    env.config.write_text(yaml.safe_dump(config))


def start_run(env: SyncEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "run",
            "sync",
            "--json",
            "--config",
            str(env.config),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_cycle(env: SyncEnv, *args: str) -> subprocess.Popen[str]:
    """A cycle in its own process, once it really runs: a killed cycle's lock takes lock_ttl to
    expire, and until then a new one reports "already running" and exits."""
    while True:
        writes = target_writes(env)
        process = start_run(env, *args)
        wait_for(
            lambda p=process, w=writes: p.poll() is not None or target_writes(env) > w, "a start"
        )
        if process.poll() is None:
            return process
        out, err = process.communicate()
        if '"already_running"' not in out:
            raise AssertionError(f"the cycle ended at once: {out} {err[-2000:]}")
        time.sleep(0.5)


def run_to_success(env: SyncEnv, *args: str, attempts: int = 40) -> dict[str, Any]:
    """Run cycles until one succeeds (a dead holder's lock takes lock_ttl to expire)."""
    last = ""
    for _ in range(attempts):
        result = env.cli("run", "sync", "--json", *args)
        last = result.stdout + result.stderr
        if result.returncode == 0:
            data: dict[str, Any] = json.loads(result.stdout)
            return data
        time.sleep(0.5)  # the lock of a killed run expires after lock_ttl (3 s here)
    raise AssertionError(f"no successful cycle: {last[-2000:]}")


def target_writes(env: SyncEnv) -> int:
    return int(env.sandbox.stats()["writes"].get(env.seed["tenants"][1]["tenant_id"], 0))


def assert_exact(env: SyncEnv, in_scope: list[dict[str, Any]]) -> dict[str, int]:
    live = [u for u in env.target_users() if not u.get("deletedDateTime")]
    per_address = Counter((u.get("mail") or "").lower() for u in live)
    duplicates = sum(n - 1 for n in per_address.values() if n > 1)
    expected = {(u.get("mail") or u["userPrincipalName"]).lower(): u for u in in_scope}
    lost = [a for a in expected if a not in per_address]
    assert duplicates == 0, f"{duplicates} duplicated B2B users"
    assert not lost, f"{len(lost)} in-scope users missing from the target"
    assert set(per_address) == set(expected)
    for user in live:
        assert user["displayName"] == expected[user["mail"].lower()]["displayName"]
    return {"lost": len(lost), "duplicates": duplicates}


def in_scope_of(seed: dict[str, Any]) -> list[dict[str, Any]]:
    members = [u for u in seed["tenants"][0]["users"] if u.get("userType") == "Member"]
    return members[:-4]


def test_kill_9_at_five_points_of_a_full_cycle_loses_and_duplicates_nothing(
    tmp_path: Path, fault_summary: dict[str, int]
) -> None:
    seed = build_world_seed(users=2000, prior_b2b=True)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {"latency_ms": 3}
    with sync_world(tmp_path, seed) as env:
        configure(env, **FAST_LOCK)
        kills = 0
        for threshold in (150, 900, 1700, 2600, 3400):  # target writes seen before the kill
            process = start_cycle(env, "--full") if kills == 0 else start_cycle(env)
            reached = wait_for(
                lambda t=threshold, p=process: target_writes(env) >= t or p.poll() is not None,
                f"{threshold} target writes",
            )
            assert reached
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
        assert kills >= 5, "the cycle finished before every kill point was reached"

        final = run_to_success(env)

        assert final["status"] == "success"
        result = assert_exact(env, in_scope_of(seed))
        assert (
            sum(v for k, v in run_to_success(env, "--full")["counts"].items() if k != "skip") == 0
        )
        fault_summary["kills"] += kills
        fault_summary["cycles"] += kills + 2
        fault_summary["lost"] += result["lost"]
        fault_summary["duplicates"] += result["duplicates"]


def test_redis_restarted_mid_cycle(tmp_path: Path, fault_summary: dict[str, int]) -> None:
    seed = build_world_seed(users=600, prior_b2b=False)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {"latency_ms": 3}
    with sync_world(tmp_path, seed) as env:
        configure(env, **FAST_LOCK)
        process = start_run(env, "--full")
        wait_for(lambda: target_writes(env) >= 300 or process.poll() is not None, "writes")
        redis = EmbeddedRedis(env.state_dir)
        os.kill(int((redis.dir / "valkey.pid").read_text()), signal.SIGKILL)  # Redis dies
        out, _ = process.communicate(timeout=120)

        # The cycle fails cleanly (no traceback, a failed status) or had just finished.
        summary = json.loads(out)
        assert summary["status"] in ("failed", "success")
        final = run_to_success(env)  # the next command starts Redis again from its files

        assert final["status"] == "success"
        result = assert_exact(env, in_scope_of(seed))
        fault_summary["cycles"] += 2
        fault_summary["restarts"] += 1
        fault_summary["lost"] += result["lost"]
        fault_summary["duplicates"] += result["duplicates"]


def test_sql_unavailable_mid_cycle(tmp_path: Path, fault_summary: dict[str, int]) -> None:
    seed = build_world_seed(users=600, prior_b2b=False)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {"latency_ms": 3}
    with sync_world(tmp_path, seed) as env:
        database = env.state_dir / "state.db"
        configure(env, database_url=f"sqlite:///{database}?timeout=1", **FAST_LOCK)
        env.run_json("--dry-run")  # creates and migrates the database
        process = start_run(env, "--full")
        wait_for(lambda: target_writes(env) >= 300 or process.poll() is not None, "writes")
        blocker = sqlite3.connect(database, timeout=10, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # nobody else can write for a while
        out, err = process.communicate(timeout=120)
        blocker.execute("ROLLBACK")
        blocker.close()

        assert out, err[-3000:]
        summary = json.loads(out)
        assert summary["status"] == "failed"
        assert "state database" in summary["error"]
        # If the cursor had moved past uncommitted pages, their users would be missing now.
        final = run_to_success(env)

        assert final["status"] == "success"
        result = assert_exact(env, in_scope_of(seed))
        fault_summary["cycles"] += 2
        fault_summary["lost"] += result["lost"]
        fault_summary["duplicates"] += result["duplicates"]


def test_answers_lost_after_committed_writes_never_duplicate(
    tmp_path: Path, fault_summary: dict[str, int]
) -> None:
    seed = build_world_seed(users=120, prior_b2b=True)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {
        "commit_then_drop_rate": 0.5,
        "commit_then_drop_paths": ["POST /v1.0/$batch"],  # invitations and writes go in batches
        "seed": 7,
    }
    with sync_world(tmp_path, seed) as env:
        configure(env, **FAST_LOCK)
        cycles = 0
        for _ in range(12):
            cycles += 1
            result = env.cli("run", "sync", "--json", "--full")
            summary = json.loads(result.stdout)
            if summary["status"] == "success" and summary["counts"]["failure"] == 0:
                break
        injected = env.sandbox.stats()["faults_by_kind"].get("commit_then_drop", 0)
        assert injected > 0
        result = assert_exact(env, in_scope_of(seed))
        fault_summary["faults"] += injected
        fault_summary["cycles"] += cycles
        fault_summary["lost"] += result["lost"]
        fault_summary["duplicates"] += result["duplicates"]


def test_a_killed_worker_is_replaced_and_the_cycle_resumes_without_a_trigger(
    tmp_path: Path, fault_summary: dict[str, int]
) -> None:
    # Enough users that the cycle is still far from done when the kill lands (300 writes are a
    # tenth of it): with 600, a fast worker finished the cycle between the poll and the kill.
    seed = build_world_seed(users=1500, prior_b2b=True)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {"latency_ms": 20}
    # The default lock_ttl (60 s): the dead cycle's lock must not make the new worker wait.
    with sync_world(tmp_path, seed) as env:
        environment = {**os.environ, "TENANT_SYNC_CONFIG": str(env.config)}

        def worker(name: str) -> Any:
            return background(
                [
                    *(sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"),
                    *("-c", "2", "-n", f"{name}@%h", "--without-mingle", "--without-gossip"),
                ],
                tmp_path / f"{name}.log",
                env=environment,
            )

        with worker("first") as first:
            env.cli("trigger", "sync", "--full", check=True)
            wait_for(lambda: target_writes(env) >= 300, "the cycle under way", 120)
            os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, mid-cycle
            first.wait()
        interrupted = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        assert interrupted["progress"] is not None
        assert interrupted["running"] is False  # its holder is dead, whatever the lock says

        # Nobody triggers anything: the next worker to start picks the cycle up.
        with worker("second"):

            def finished() -> bool:
                status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
                return status["progress"] is None and status["lastSuccessfulExecution"] is not None

            wait_for(finished, "the interrupted cycle to finish", 240)
        # within the dead cycle's lock_ttl: its lock was taken over, not waited out
        assert "job lock taken over" in (tmp_path / "second.log").read_text()

        result = assert_exact(env, in_scope_of(seed))
        assert (
            sum(v for k, v in run_to_success(env, "--full")["counts"].items() if k != "skip") == 0
        )
        fault_summary["kills"] += 1
        fault_summary["cycles"] += 3
        fault_summary["lost"] += result["lost"]
        fault_summary["duplicates"] += result["duplicates"]


def test_two_workers_and_two_beats_never_run_a_job_twice_at_once(tmp_path: Path) -> None:
    seed = build_world_seed(users=300, prior_b2b=False)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {"latency_ms": 20}  # cycles long enough to overlap if they could
    with sync_world(tmp_path, seed, job={"schedule": {"interval": "10s"}}) as env:
        configure(env, **FAST_LOCK)
        environment = {**os.environ, "TENANT_SYNC_CONFIG": str(env.config)}

        def celery(*args: str, log: str) -> Any:
            return background(
                [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args],
                tmp_path / log,
                env=environment,
            )

        beat_args = ("beat", "--loglevel", "INFO")
        with (
            celery("worker", "-c", "2", "-n", "w1@%h", "--without-mingle", log="w1.log"),
            celery("worker", "-c", "2", "-n", "w2@%h", "--without-mingle", log="w2.log"),
            celery(*beat_args, "--schedule", str(tmp_path / "beat1"), log="beat1.log"),
            celery(*beat_args, "--schedule", str(tmp_path / "beat2"), log="beat2.log"),
        ):
            started = time.monotonic()
            wait_for(lambda: _runs(env, finished_only=True) >= 3, "three scheduled cycles", 120)
            elapsed = time.monotonic() - started

        runs = _run_rows(env)
        overlaps = [
            (a["run_id"], b["run_id"])
            for i, a in enumerate(runs)
            for b in runs[i + 1 :]
            if a["started_at"] < (b["finished_at"] or "9999")
            and b["started_at"] < (a["finished_at"] or "9999")
        ]
        assert not overlaps, f"cycles ran at the same time: {overlaps}"
        # two beats, but about one cycle per 10 s interval, not two
        assert len(runs) <= elapsed / 10 + 2
        assert_exact(env, in_scope_of(seed))


def _run_rows(env: SyncEnv) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from worker.adapters.state.sql import make_engine

    engine = make_engine(f"sqlite:///{env.state_dir / 'state.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT run_id, started_at, finished_at FROM runs WHERE dry_run = 0 ORDER BY started_at"
                )
            ).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def _runs(env: SyncEnv, *, finished_only: bool) -> int:
    if not (env.state_dir / "state.db").exists():
        return 0
    try:
        rows = _run_rows(env)
    except Exception:  # the database is being created
        return 0
    return sum(1 for r in rows if r["finished_at"] or not finished_only)
