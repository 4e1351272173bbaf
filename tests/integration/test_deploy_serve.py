"""The deployments' health checks of the operator service, against a real `tenant-sync serve`.

tests/unit/test_deploy.py reads deploy/ offline; this runs what the files say: the compose
healthcheck's Python program and the Kubernetes probes' request, against `tenant-sync serve`
started from the compose example config (with local state instead of the compose services, and a
static token of its own), and checks that a container would read healthy while it serves and
unhealthy once it is gone.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.config import ENV_RE

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
START_DEADLINE_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _compose_serve() -> dict[str, Any]:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    serve: dict[str, Any] = compose["services"]["serve"]
    return serve


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The compose healthcheck, as Docker runs it in the container, aimed at `port`."""
    test = _compose_serve()["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    program = test[3].replace(":8080/", f":{port}/")
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
    )


def _probe_paths() -> set[str]:
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "serve-deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }


@pytest.fixture
def example_config(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """deploy/config/tenant-sync.yaml.example with local state, and the environment it needs."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "config" / "tenant-sync.yaml.example").read_text()
    )
    state_dir = tmp_path / "state"
    config["state"] = {
        "redis_url": "embedded",
        "database_url": f"sqlite:///{tmp_path / 'state.db'}",
        "state_dir": str(state_dir),
    }
    for tenant in config["tenants"].values():
        if tenant.get("certificate_path"):
            (tmp_path / "cert.pem").write_text("placeholder: never used, no token is requested")
            tenant["certificate_path"] = str(tmp_path / "cert.pem")
    token = secrets.token_urlsafe(32)
    config["api"]["auth"]["tokens"][0]["sha256"] = hashlib.sha256(token.encode()).hexdigest()
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(yaml.safe_dump(config))
    names = {m.group(1) for m in ENV_RE.finditer(path.read_text())}
    env = {**os.environ, **{name: "placeholder" for name in names}, "TENANT_SYNC_CONFIG": str(path)}
    try:
        yield path, env
    finally:
        EmbeddedRedis(state_dir).stop()


def test_compose_healthcheck_and_kubernetes_probes_follow_serve(
    example_config: tuple[Path, dict[str, str]],
) -> None:
    _, env = example_config
    port = _free_port()
    before = _healthcheck(port)
    # Docker's "unhealthy" is exit status 1; one line saying why, no traceback.
    assert before.returncode == 1
    assert before.stderr.startswith("GET /healthz: ")
    assert "Traceback" not in before.stderr

    serve = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while (check := _healthcheck(port)).returncode != 0:
            if serve.poll() is not None:
                pytest.fail(f"serve exited with {serve.returncode}: {serve.communicate()[1]}")
            assert time.monotonic() < deadline, f"never healthy: {check.stderr}"
            time.sleep(0.2)
        assert check.stdout == check.stderr == ""
        # What the kubelet sends: a plain GET, no credentials.
        for path in _probe_paths():
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert response.status_code == 200, path
            assert response.json() == {"status": "ok"}
    finally:
        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=30)
    # docker stop / a pod's termination: a graceful stop with status 0, and the check sees it gone.
    assert serve.returncode == 0, stderr
    assert f"listening on http://127.0.0.1:{port}" in stderr
    after = _healthcheck(port)
    assert after.returncode == 1
    assert "Traceback" not in after.stderr
