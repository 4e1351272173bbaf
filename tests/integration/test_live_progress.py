"""Live progress: a running cycle's status moves with its work, before any page is committed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import SyncEnv
from worker.bootstrap import open_runtime
from worker.config import load_config
from worker.service.status import job_status

pytestmark = pytest.mark.integration


def _status(env: SyncEnv) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    return data


def _live_status(runtime: Any) -> dict[str, Any]:
    """What `status --json` prints, read in this process: fast enough to watch one round."""
    return job_status(
        "sync",
        runtime.ledger,
        runtime.cursors.load("sync"),
        running=runtime.job_lock().is_held("sync"),
        live=runtime.live.load("sync"),
    )


@pytest.mark.world(users=120)
def test_status_shows_the_writes_of_a_page_while_it_is_exported(sync_env: SyncEnv) -> None:
    env = sync_env
    # Slow answers, so that one page's export takes seconds and can be watched.
    env.sandbox.set_faults(latency_ms=300)
    runtime = open_runtime(load_config(env.config))
    cycle = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "sync", "--json", "--config", str(env.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while cycle.poll() is None and time.monotonic() < deadline:
            progress = _live_status(runtime)["progress"]
            if progress and progress.get("writes"):
                seen.append(progress)
            if len(seen) >= 2:
                break
            time.sleep(0.02)  # a polling interval, not a wait for luck: the loop has a deadline
    finally:
        out, err = cycle.communicate(timeout=300)
        runtime.close()
    assert cycle.returncode == 0, err
    result = json.loads(out)
    assert seen, "the status never showed the running cycle's writes"
    first = seen[0]
    # The whole group fits one page: nothing is committed until it ends, yet the numbers move.
    assert first["running"] is True
    assert first["usersRead"] >= 115
    assert first["writes"] > 0
    assert first["exported"] <= first["planned"]
    assert first["planned"] >= result["counts"]["create"]
    assert sum(first["counts"].values()) == 0
    # Once the cycle has ended there is no progress left to show.
    after = _status(env)
    assert after["progress"] is None
    assert (
        after["lastExecution"]["countExported"]
        == result["counts"]["create"] + result["counts"]["update"]
    )
