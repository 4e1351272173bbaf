"""Kill -9 in the managers phase (docs/manager.md): the resumed cycle finishes the references.

A 600-user chain gives a full round two pages, so about half the references wait for the
managers phase. The cycle runs in its own process; the test watches its cursor in Redis and kills
it as soon as it is in that phase, then runs cycles until one succeeds: every reference is set,
with the same run id, and no reference was left behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tenant_sync_demo.demo import wait_for
from tests.conftest import sync_world
from tests.e2e.test_crash import FAST_LOCK, configure, run_to_success, start_run
from tests.e2e.test_manager_fan_out import USERS, chain_seed
from worker.adapters.state.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.e2e

JOB = {"mappings": [{"target": "manager", "source": "manager"}]}
CURSOR = "tenant-sync:job:sync:cursor"


def progress(client: redis.Redis) -> dict[str, Any] | None:
    raw = client.get(CURSOR)
    if raw is None:
        return None
    data: dict[str, Any] | None = json.loads(raw).get("progress")
    return data


def test_a_cycle_killed_in_the_managers_phase_finishes_it_on_resume(tmp_path: Path) -> None:
    with sync_world(tmp_path, chain_seed(), JOB) as env:
        configure(env, **FAST_LOCK)
        # Each Graph request slower, so the phase (several $batch rounds) lasts seconds: the
        # cursor, polled every 5 ms, cannot miss it.
        env.sandbox.set_faults(latency_ms=200)
        process = start_run(env, "--full")
        url = wait_for(lambda: EmbeddedRedis(env.state_dir).running_url(), "Redis", 60)
        client = redis.Redis.from_url(url)
        caught: dict[str, Any] | None = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            current = progress(client)
            if current is not None and current["phase"] == "managers" and current["managers"]:
                os.kill(process.pid, signal.SIGKILL)
                caught = current
                break
            time.sleep(0.005)
        process.wait()
        assert caught is not None, "the cycle passed the managers phase before it was caught"
        env.sandbox.set_faults(latency_ms=0)

        resumed = run_to_success(env)

        assert resumed["run_id"] == caught["run_id"]
        assert resumed["counts"]["failure"] == 0
        source = env.seed["tenants"][0]["users"]
        target = {u["mail"].lower(): u for u in env.target_users() if u.get("mail")}

        def target_of(index: int) -> dict[str, Any]:
            return target[str(source[index]["mail"] or source[index]["userPrincipalName"]).lower()]

        wrong = [i for i in range(USERS - 5) if target_of(i)["manager"] != target_of(i + 1)["id"]]
        assert not wrong, f"{len(wrong)} references missing or wrong after the resume"
        cursor = json.loads(client.get(CURSOR) or "{}")
        assert cursor.get("progress") is None
