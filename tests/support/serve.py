"""Test harness for `tenant-sync serve`: a config with static tokens, the service as a real
process, and httpx clients that carry a token.

    add_api_section(config_path)                      # reader + operator static tokens
    with running_service(config_path, tmp_path) as svc:
        svc.client(OPERATE_TOKEN).post(f"/v1.0/servicePrincipals/sync/...")
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

READ_TOKEN = "reader-token-for-tests-0123456789"
OPERATE_TOKEN = "operator-token-for-tests-0123456789"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 15.0
_LISTENING = re.compile(r"listening on (http://\S+?:\d+)")


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_api_section(config: Path, **auth: Any) -> Path:
    """Give the config an `api:` section: a Read and an Operate static token (plus `auth`)."""
    data = yaml.safe_load(config.read_text())
    data["api"] = {
        "auth": {
            "tokens": [
                {"name": "reader", "sha256": sha256(READ_TOKEN), "role": "TenantSync.Read"},
                {"name": "runbook", "sha256": sha256(OPERATE_TOKEN), "role": "TenantSync.Operate"},
            ],
            **auth,
        }
    }
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@dataclass
class ServiceHandle:
    url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = OPERATE_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=60.0, trust_env=False)
        self._clients.append(client)
        return client

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")


@contextmanager
def running_service(config: Path, workdir: Path) -> Iterator[ServiceHandle]:
    """`tenant-sync serve --port 0` for `config`, until the block ends (then SIGTERM)."""
    workdir.mkdir(parents=True, exist_ok=True)
    stderr_path = workdir / "serve.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve", "--port", "0", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    handle: ServiceHandle | None = None
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        url = None
        while url is None:
            found = _LISTENING.search(stderr_path.read_text("utf-8", errors="replace"))
            if found:
                url = found.group(1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"tenant-sync serve did not start:\n{stderr_path.read_text(errors='replace')}"
                )
            time.sleep(0.05)
        handle = ServiceHandle(url=url, process=process, stderr_path=stderr_path)
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2.0, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tenant-sync serve is not healthy:\n{handle.stderr()}")
            time.sleep(0.05)
        yield handle
    finally:
        if handle is not None:
            for client in handle._clients:
                client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# A world worth looking at through the API ------------------------------------------------------

AMBIGUOUS_USER = 5  # two target users already carry this source user's mail
RENAMED_USER = 7
REMOVED_USERS = (10, 11, 12, 13)  # taken out of the group: four deletions over a threshold of 3


@dataclass
class Served:
    env: Any  # tests.conftest.SyncEnv
    service: ServiceHandle

    def operator(self) -> httpx.Client:
        return self.service.client(OPERATE_TOKEN)

    def reader(self) -> httpx.Client:
        return self.service.client(READ_TOKEN)

    def source_user(self, index: int) -> dict[str, Any]:
        user: dict[str, Any] = self.env.seed["tenants"][0]["users"][index]
        return user


@contextmanager
def served_world(tmp: Path) -> Iterator[Served]:
    """The sandbox world of the sync tests after two cycles, and `serve` on it.

    Cycle 1 (full) invites the group's members; one of them fails with AmbiguousMatch (two target
    users have its mail) and waits in escrow. Then a user is renamed and four leave the group;
    cycle 2 (incremental) updates the one and holds the four deletions (threshold 3): the job is
    in Quarantine / TooManyDeletes with 4 staged deletions and 1 escrow.
    """
    from tests.conftest import sync_world
    from tests.support.world import GROUP, TARGET, build_world_seed

    seed = build_world_seed()
    members = seed["tenants"][0]["users"]
    twin = members[AMBIGUOUS_USER]
    for n in (1, 2):
        seed["tenants"][1]["users"].append(
            {
                "id": f"00000000-0000-4000-8000-00000000000{n}",
                "userPrincipalName": f"twin{n}@{TARGET.domain}",
                "mail": twin["mail"],
                "displayName": f"Twin {n}",
                "accountEnabled": True,
            }
        )
    with sync_world(tmp, seed, {"deletion_threshold": {"count": 3}}) as env:
        add_api_section(env.config)
        env.run_json("--full")
        graph = env.source()
        graph.patch(
            f"/users/{members[RENAMED_USER]['id']}", json={"displayName": "Renamed Seven"}
        ).raise_for_status()
        for index in REMOVED_USERS:
            graph.delete(f"/groups/{GROUP}/members/{members[index]['id']}/$ref").raise_for_status()
        env.run_json()
        with running_service(env.config, tmp / "serve") as service:
            yield Served(env, service)
