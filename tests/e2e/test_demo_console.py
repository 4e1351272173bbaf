"""`tenant-sync demo` runs end to end, and the command it prints last, which opens the console
on its state, works. One demo run serves both (it is the slowest thing the suite starts)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenant_sync_demo.demo import wait_for

pytestmark = pytest.mark.e2e

JOB = "contoso-to-fabrikam"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir, result.stdout


def test_the_demo_runs_end_to_end(demo: tuple[Path, str]) -> None:
    # Before the console below starts on the same state (it runs a Redis of its own there).
    workdir, stdout = demo
    assert "demo succeeded" in stdout
    assert "✗" not in stdout
    assert not (workdir / "state" / "redis" / "url").exists()
    # The organisation part ran its checks and stopped its own Redis.
    text = " ".join(stdout.split())  # rich wraps long lines
    for check in (
        "each tenant holds exactly one B2B user per member of the other two",
        "fabrikam: contoso's manager chain mirrored",
        "adatum: one Engineering security group",
        "adatum: Engineering's members are Bo and, flattened from Platform, Cy",
    ):
        assert f"✓ {check}" in text
    assert not (workdir / "organization" / "state" / "redis" / "url").exists()


def _console_command(stdout: str) -> list[str]:
    """The command the demo printed last, run with this interpreter on a free port."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("The console on this state"))
    words = shlex.split(lines[at + 1])
    assert words[1:3] == ["demo", "--console"], words
    return [sys.executable, "-m", "worker", *words[1:], "--port", "0"]


@pytest.fixture(scope="module")
def console(demo: tuple[Path, str]) -> Iterator[dict[str, Any]]:
    workdir, stdout = demo
    log = workdir / "console-test.out"
    with log.open("w") as out:
        process = subprocess.Popen(
            _console_command(stdout), stdout=out, stderr=subprocess.STDOUT, text=True
        )
    try:
        url = wait_for(
            lambda: (
                (m := re.search(r"open (http://127\.0\.0\.1:\d+)", log.read_text())) and m.group(1)
            ),
            "the console to say where it listens",
            120,
        )
        token = re.search(r"Bearer ([\w-]+)", log.read_text())
        assert token is not None
        wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, "/healthz", 60)
        yield {"url": url, "token": token.group(1), "process": process, "log": log}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def test_the_printed_command_serves_the_demos_state(console: dict[str, Any]) -> None:
    url, token = console["url"], console["token"]
    job = httpx.get(
        f"{url}/v1.0/servicePrincipals/{JOB}/synchronization/jobs/{JOB}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert job.status_code == 200, job.text
    body = job.json()
    assert body["id"] == JOB
    # The demo's three cycles are there: the console shows the demo's state, not a fresh one.
    assert body["status"]["lastSuccessfulExecution"]["countExported"] > 0
    refused = httpx.get(f"{url}/v1.0/servicePrincipals")
    assert refused.status_code == 401


def test_ctrl_c_leaves_nothing_running(demo: tuple[Path, str], console: dict[str, Any]) -> None:
    workdir, _ = demo
    process = console["process"]
    sandbox = json.loads((workdir / "sandbox-tls" / "sandbox.json").read_text())
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, console["log"].read_text()[-3000:]
    assert not (workdir / "state" / "redis" / "url").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sandbox['url']}/_sandbox/health", verify=False, timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{console['url']}/healthz", timeout=5)
