"""End to end: a manager chain across pages exported by several Celery workers (docs/manager.md).

With 600 users a full round has two pages, and about half the references point to a manager in
the other page: what a worker's page cannot resolve travels back in its outcome, and the cycle's
managers phase writes it once both users exist, in the same cycle.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tenant_sync_demo.demo import background, wait_for
from tests.conftest import sync_world
from tests.support.world import build_world_seed
from worker.celery_app import create_celery
from worker.config import load_config

pytestmark = pytest.mark.e2e

DEADLINE_S = 120.0
USERS = 600


def poll(check: Callable[[], Any], what: str) -> Any:
    return wait_for(check, what, DEADLINE_S)


def chain_seed() -> dict[str, Any]:
    """Members 0..595 in scope, each reporting to the next one (595 reports to nobody)."""
    seed = build_world_seed(users=USERS, prior_b2b=False)
    users = seed["tenants"][0]["users"]
    for i in range(USERS - 5):
        users[i]["manager"] = users[i + 1]["id"]
    return seed


def test_a_chain_across_fanned_out_pages_is_complete_after_one_cycle(tmp_path: Path) -> None:
    job = {"fan_out": 3, "mappings": [{"target": "manager", "source": "manager"}]}
    with sync_world(tmp_path, chain_seed(), job) as env:
        celery = create_celery(load_config(env.config))
        logs = [tmp_path / f"w{n}.log" for n in range(2)]
        environment = {**os.environ, "TENANT_SYNC_CONFIG": str(env.config)}
        command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-c", "2"]
        with (
            background([*command, "-n", "mgr0@%h", "-l", "INFO"], logs[0], env=environment),
            background([*command, "-n", "mgr1@%h", "-l", "INFO"], logs[1], env=environment),
        ):
            poll(lambda: len(celery.control.ping(timeout=0.5) or []) == 2, "two workers")
            triggered = env.cli("trigger", "sync", "--full", "--json", check=True)
            task = json.loads(triggered.stdout)["task_id"]
            result = celery.AsyncResult(task).get(timeout=DEADLINE_S)

        assert result["status"] == "success", logs[0].read_text()[-3000:]
        assert result["counts"]["failure"] == 0
        source = env.seed["tenants"][0]["users"]
        target = {u["mail"].lower(): u for u in env.target_users() if u.get("mail")}

        def target_of(index: int) -> dict[str, Any]:
            return target[str(source[index]["mail"] or source[index]["userPrincipalName"]).lower()]

        # user 1 has no mail: its invitation went to its UPN.
        wrong = [i for i in range(USERS - 5) if target_of(i)["manager"] != target_of(i + 1)["id"]]
        assert not wrong, f"{len(wrong)} references missing or wrong, e.g. user{wrong[0]}"
        assert target_of(USERS - 5)["manager"] is None
        rows = json.loads(env.cli("logs", "sync", "--json", "--all", check=True).stdout)
        rows = rows["value"] if isinstance(rows, dict) else rows
        mark = "manager reference of this cycle"  # the managers phase's step in a user's row
        phase = [r for r in rows if any(s["detail"] == mark for s in r["steps"])]
        assert phase, "no reference was left for the managers phase: the test proves nothing"
