"""The sandbox as a process: banner, sandbox.json, bad seeds (exit 2), SIGTERM (exit 0)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.sandbox import (
    make_seed,
    make_tenant,
    running_sandbox,
    start_sandbox_process,
    wait_until_ready,
)

pytestmark = pytest.mark.integration


def test_banner_sandbox_json_and_clean_sigterm(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(make_seed(make_tenant("a.onmicrosoft.com"))))
    process, stdout, stderr = start_sandbox_process(seed, tmp_path)
    try:
        url, ca = wait_until_ready(process, tmp_path / "tls", stderr)
        info = json.loads((tmp_path / "tls" / "sandbox.json").read_text())
        assert info == {"url": url, "ca": str(ca), "pid": process.pid}
        assert ca.is_absolute()
        assert (tmp_path / "tls" / "server.pem").is_file()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = stdout.read_text().splitlines()
    assert lines == [f"tenant-sync sandbox listening on {url} (CA: {ca})"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{oops", "not valid JSON"),
        (json.dumps({"tenants": [{"domain": "x.onmicrosoft.com"}]}), "missing 'tenant_id'"),
        (
            json.dumps(
                make_seed(
                    make_tenant(
                        "x.onmicrosoft.com",
                        users=[
                            {"id": "dup", "userPrincipalName": "a@x.com"},
                            {"id": "dup", "userPrincipalName": "b@x.com"},
                        ],
                    )
                )
            ),
            "duplicate id dup",
        ),
        (None, "cannot be read"),
    ],
)
def test_bad_seed_exits_2(tmp_path: Path, content: str | None, fragment: str) -> None:
    seed = tmp_path / "seed.json"
    if content is not None:
        seed.write_text(content)
    process, stdout, stderr = start_sandbox_process(seed, tmp_path)
    assert process.wait(timeout=30) == 2
    message = stderr.read_text()
    assert str(seed) in message
    assert fragment in message
    assert len(message.strip().splitlines()) == 1
    assert stdout.read_text() == ""
    assert not (tmp_path / "tls" / "sandbox.json").exists()


def test_sigint_also_exits_cleanly(tmp_path: Path) -> None:
    with running_sandbox(make_seed(make_tenant("a.onmicrosoft.com")), tmp_path) as sb:
        sb.process.send_signal(signal.SIGINT)
        assert sb.process.wait(timeout=10) == 0
    assert not (tmp_path / "tls" / "sandbox.json").exists()


def test_default_seed_without_seed_file(tmp_path: Path) -> None:
    process, _, stderr = start_sandbox_process(None, tmp_path)
    try:
        url, _ = wait_until_ready(process, tmp_path / "tls", stderr)
        assert url.startswith("https://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=10) == 0
        except subprocess.TimeoutExpired:
            process.kill()
            raise
