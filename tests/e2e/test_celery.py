"""End to end: real Celery worker and beat processes, the embedded Redis, SQL and the sandbox."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tenant_sync_demo.demo import background, wait_for
from tests.conftest import SyncEnv
from worker.celery_app import create_celery
from worker.config import load_config

pytestmark = pytest.mark.e2e

DEADLINE_S = 90.0


def poll(check: Callable[[], Any], what: str) -> Any:
    return wait_for(check, what, DEADLINE_S)


def celery_process(env: SyncEnv, *args: str, log: Path) -> Any:
    return background(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args],
        log,
        env={**os.environ, "TENANT_SYNC_CONFIG": str(env.config)},
    )


def worker(env: SyncEnv, log: Path) -> Any:
    return celery_process(
        env,
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        "2",
        "-n",
        f"e2e-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        log=log,
    )


def test_trigger_runs_the_cycle_in_a_worker_process(sync_env: SyncEnv, tmp_path: Path) -> None:
    env = sync_env
    celery = create_celery(load_config(env.config))
    with worker(env, tmp_path / "worker.log"):
        poll(lambda: celery.control.ping(timeout=0.5), "the worker to answer")
        triggered = env.cli("trigger", "sync", "--full", "--json", check=True)
        task_id = json.loads(triggered.stdout)["task_id"]
        assert json.loads(triggered.stdout)["workers"] == 1
        assert "no Celery worker" not in triggered.stderr
        result = celery.AsyncResult(task_id).get(timeout=DEADLINE_S)

    assert result["status"] == "success", (tmp_path / "worker.log").read_text()[-3000:]
    assert result["mode"] == "full"
    in_scope = len(env.seed["tenants"][0]["users"][:-1]) - 4
    assert result["counts"]["create"] + result["counts"]["update"] == in_scope
    live = [u for u in env.target_users() if not u.get("deletedDateTime")]
    assert len(live) == in_scope
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["lastExecution"]["activityIdentifier"] == result["run_id"]
    assert status["lastExecution"]["trigger"] == "manual"


@pytest.mark.world(job={"schedule": {"interval": "10s"}})
def test_beat_schedules_cycles_that_pick_up_source_changes(
    sync_env: SyncEnv, tmp_path: Path
) -> None:
    env = sync_env
    with (
        worker(env, tmp_path / "worker.log"),
        celery_process(env, "beat", "--loglevel", "INFO", log=tmp_path / "beat.log"),
    ):
        poll(lambda: len(env.target_users()) > 10, "the first scheduled cycle")
        graph = env.source()
        newcomer = graph.post(
            "/users",
            json={
                "accountEnabled": True,
                "displayName": "Scheduled Newcomer",
                "mailNickname": "scheduled",
                "userPrincipalName": "scheduled@contoso.onmicrosoft.com",
                "mail": "scheduled@contoso.com",
                "passwordProfile": {"password": "Sandbox-Pass-1!"},
            },
        )
        newcomer.raise_for_status()
        graph.post(
            "/groups/33333333-3333-4333-8333-333333333333/members/$ref",
            json={
                "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{newcomer.json()['id']}"
            },
        ).raise_for_status()

        def arrived() -> bool:
            return any(u.get("mail") == "scheduled@contoso.com" for u in env.target_users())

        poll(arrived, "a scheduled incremental cycle to create the newcomer")
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["lastSuccessfulExecution"]["trigger"] == "schedule"


@pytest.mark.world(users=600, prior_b2b=False, job={"fan_out": 3})
def test_one_jobs_pages_fan_out_to_several_workers(sync_env: SyncEnv, tmp_path: Path) -> None:
    env = sync_env
    env.sandbox.set_faults(latency_ms=10)
    celery = create_celery(load_config(env.config))
    logs = [tmp_path / f"w{n}.log" for n in range(3)]
    with (
        celery_process(env, "worker", "-c", "2", "-n", "fan0@%h", "-l", "INFO", log=logs[0]),
        celery_process(env, "worker", "-c", "2", "-n", "fan1@%h", "-l", "INFO", log=logs[1]),
        celery_process(env, "worker", "-c", "2", "-n", "fan2@%h", "-l", "INFO", log=logs[2]),
    ):
        poll(lambda: len(celery.control.ping(timeout=0.5) or []) == 3, "three workers")
        triggered = env.cli("trigger", "sync", "--full", "--json", check=True)
        result = celery.AsyncResult(json.loads(triggered.stdout)["task_id"]).get(timeout=DEADLINE_S)

    assert result["status"] == "success", logs[0].read_text()[-3000:]
    in_scope = len(env.seed["tenants"][0]["users"][:-1]) - 4
    assert result["counts"]["create"] == in_scope
    live = [u for u in env.target_users() if not u.get("deletedDateTime")]
    assert len(live) == in_scope
    assert len({u["mail"] for u in live}) == in_scope  # no duplicates
    exported_by = [log.read_text().count("tenant_sync.export_page") for log in logs]
    assert sum(1 for n in exported_by if n) >= 2, exported_by  # pages went to several workers


def test_a_page_no_worker_started_in_time_is_never_exported_later(
    sync_env: SyncEnv, tmp_path: Path
) -> None:
    """A page sent to the workers that none starts in time is taken back by its cycle; the
    message itself must not run later (say, redelivered an hour on, with stale values)."""
    from worker.adapters.celery_dispatch import CeleryDispatcher
    from worker.domain.model import SourceUser
    from worker.service.page import PageRequest

    env = sync_env
    celery = create_celery(load_config(env.config))
    dispatcher = CeleryDispatcher(celery, window=1, start_timeout_s=2.0)
    user = env.seed["tenants"][0]["users"][0]
    page = PageRequest(items=[SourceUser(user["id"], user)], full=False, assigned=[user["id"]])
    before = env.target_users()
    handle: Any = dispatcher.submit("sync", "00000000-0000-4000-8000-000000000000", page)
    sent = time.monotonic()
    poll(lambda: time.monotonic() - sent > 2.0, "the page's start deadline to pass")

    with worker(env, tmp_path / "worker.log"):
        poll(lambda: handle.state == "REVOKED", "the late page to be refused")

    assert env.target_users() == before  # nobody was invited by the stale page
    assert env.sandbox.stats()["writes"].get(env.seed["tenants"][1]["tenant_id"], 0) == 0
