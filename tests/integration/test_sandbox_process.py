"""The sandbox as a process: banner, sandbox.json, bad seeds (exit 2), SIGTERM (exit 0)."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
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


def test_a_restart_keeps_the_ca_clients_trust_and_serves_localhost_and_127_0_0_1(
    tmp_path: Path,
) -> None:
    seed = make_seed(make_tenant("a.onmicrosoft.com"))
    with running_sandbox(seed, tmp_path) as first:
        ca_pem = first.ca_path.read_bytes()
    assert (tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o077 == 0
    with running_sandbox(seed, tmp_path) as again:
        assert again.ca_path.read_bytes() == ca_pem
        # A client configured with the CA file of the first start trusts the second one, by
        # address and by name (the certificate is checked against the host asked for).
        (tmp_path / "ca-first.pem").write_bytes(ca_pem)
        trusted = ssl.create_default_context(cafile=str(tmp_path / "ca-first.pem"))
        port = urlsplit(again.url).port
        for host in ("127.0.0.1", "localhost"):
            answer = httpx.get(
                f"https://{host}:{port}/_sandbox/health", verify=trusted, trust_env=False
            )
            assert answer.status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{again.url}/_sandbox/health", trust_env=False)
