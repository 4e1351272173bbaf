"""Notifications from real Celery worker and beat processes: a cycle's events are delivered at
once by the task it kicks, and one that failed is delivered again by beat's periodic round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import SyncEnv
from tests.e2e.test_celery import celery_process, poll, worker
from tests.support.receivers import http_receiver
from tests.support.world import TARGET
from worker.celery_app import create_celery
from worker.config import load_config

pytestmark = pytest.mark.e2e

TOKEN = "sig=e2e-webhook-token-1234"


def test_a_quarantine_in_a_worker_reaches_the_webhook_and_a_500_is_retried_by_beat(
    sync_env: SyncEnv, tmp_path: Path
) -> None:
    env = sync_env
    with http_receiver() as http:
        http.statuses = [500]  # the first delivery fails: beat's round must send it again
        config = yaml.safe_load(env.config.read_text())
        config["notifications"] = [{"kind": "webhook", "url": f"{http.url}/hook?{TOKEN}"}]
        config["logging"]["level"] = "INFO"
        config["tenants"][TARGET.name]["client_secret"] = "wrong-secret"
        env.config.write_text(yaml.safe_dump(config, sort_keys=False))
        celery = create_celery(load_config(env.config))
        logs = tmp_path / "worker.log", tmp_path / "beat.log"
        with (
            worker(env, logs[0]),
            celery_process(env, "beat", "--loglevel", "INFO", log=logs[1]),
        ):
            poll(lambda: celery.control.ping(timeout=0.5), "the worker to answer")
            triggered = env.cli("trigger", "sync", "--json", check=True)
            result = celery.AsyncResult(json.loads(triggered.stdout)["task_id"]).get(timeout=90)
            assert result["status"] == "failed"

            # Delivered by the task the cycle kicked: cycle_failed got the 500, quarantine went.
            poll(lambda: len(http.requests) >= 2, "the kicked delivery")
            # Beat's round, 10 s or more later, sends cycle_failed again.
            poll(lambda: len(http.requests) >= 3, "beat's retry of the failed delivery")

        bodies = http.bodies()
        assert sorted(b["event"] for b in bodies) == ["cycle_failed", "cycle_failed", "quarantine"]
        assert len({b["id"] for b in bodies}) == 2
        worker_log = logs[0].read_text()
        assert "tenant_sync.deliver_notifications" in worker_log
        for text in (worker_log, logs[1].read_text(), *(r.raw for r in http.requests)):
            assert TOKEN not in text
            assert "wrong-secret" not in text
