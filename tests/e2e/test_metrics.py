"""The worker's Prometheus endpoint, scraped from a real Celery worker process."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tenant_sync_demo.demo import background, wait_for
from tests.conftest import SyncEnv
from tests.support.world import TARGET
from worker.celery_app import create_celery
from worker.config import load_config

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_the_worker_serves_cycle_and_graph_metrics(sync_env: SyncEnv, tmp_path: Path) -> None:
    env = sync_env
    port = free_port()
    config = yaml.safe_load(env.config.read_text())
    config["metrics"] = {"port": port, "host": "127.0.0.1"}
    env.config.write_text(yaml.safe_dump(config))
    celery = create_celery(load_config(env.config))
    with background(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "-c",
            "2",
            "-n",
            f"m{os.getpid()}@%h",
        ],
        tmp_path / "worker.log",
        env={**os.environ, "TENANT_SYNC_CONFIG": str(env.config)},
    ):
        wait_for(lambda: celery.control.ping(timeout=0.5), "the worker")
        task_id = json.loads(env.cli("trigger", "sync", "--full", "--json", check=True).stdout)[
            "task_id"
        ]
        result = celery.AsyncResult(task_id).get(timeout=120)
        assert result["status"] == "success"
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> str | None:
            body = httpx.get(url).text
            return body if "tenant_sync_objects_total" in body else None

        text = wait_for(scraped, "the metrics")

    creates = result["counts"]["create"]
    assert (
        sample(text, "tenant_sync_objects_total", job="sync", action="create", status="success")
        == creates
    )
    assert (
        sample(
            text,
            "tenant_sync_cycle_duration_seconds_count",
            job="sync",
            mode="full",
            status="success",
        )
        == 1
    )
    assert sample(text, "tenant_sync_job_state", job="sync", code="Active") == 1
    assert sample(text, "tenant_sync_escrows", job="sync") == 0
    invited = sample(
        text, "tenant_sync_graph_responses_total", tenant=TARGET.name, method="POST", status="201"
    )
    assert invited == creates  # one invitation answered 201 per created user
    assert sample(text, "tenant_sync_write_quota_per_second", tenant=TARGET.name) > 0
