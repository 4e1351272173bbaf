"""`tenant-sync sandbox seed`: the file it writes is served by the sandbox, and the shipped
config/tenant-sync.yaml syncs it unchanged (only the sandbox's address and CA differ)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.sandbox import REPO_ROOT, running_sandbox
from worker.adapters.state.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration

CONTOSO = "11111111-1111-4111-8111-111111111111"
CONTOSO_CLIENT = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
SYNC_SCOPE = "c1000000-0000-4000-8000-000000000001"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def shipped_config(path: Path, url: str, ca: Path, state_dir: Path) -> Path:
    config: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config" / "tenant-sync.yaml").read_text())
    config["state"] |= {
        "state_dir": str(state_dir),
        "database_url": f"sqlite:///{state_dir}/state.db",
    }
    config["logging"] = {"format": "json", "level": "WARNING"}
    for tenant in config["tenants"].values():
        tenant |= {"authority_host": url, "graph_url": url, "ca_bundle": str(ca)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_generated_seed_runs_with_the_shipped_config(tmp_path: Path) -> None:
    out = tmp_path / "seed.json"
    made = cli(
        "sandbox", "seed", "--users", "30", "--groups", "2", "--nested", "2", "--guests", "3",
        "--m365-groups", "1", "--dynamic-groups", "1", "--unicode", "--out", str(out),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stderr.startswith(f"wrote {out}: contoso: 30 members, 3 guests")
    assert made.stdout == ""
    seed = json.loads(out.read_text("utf-8"))
    scope = next(g for g in seed["tenants"][0]["groups"] if g["id"] == SYNC_SCOPE)
    users = {u["id"]: u for u in seed["tenants"][0]["users"]}
    direct_users = [m for m in scope["members"] if m in users]

    with running_sandbox(seed, tmp_path / "sandbox") as sb:
        graph = sb.graph(CONTOSO, CONTOSO_CLIENT, "contoso-secret")
        nested = graph.get(f"/groups/{SYNC_SCOPE}/members/graph.group").json()["value"]
        assert len(nested) == 1
        names = graph.get("/users", params={"$select": "displayName", "$top": "999"}).json()
        assert any(not u["displayName"].isascii() for u in names["value"])

        state_dir = tmp_path / "state"
        config = shipped_config(tmp_path / "tenant-sync.yaml", sb.url, sb.ca_path, state_dir)
        try:
            ran = cli("run", "contoso-to-fabrikam", "--json", "--config", str(config))
        finally:
            EmbeddedRedis(state_dir).stop()
        assert ran.returncode == 0, ran.stdout + ran.stderr
        result = json.loads(ran.stdout)
        # Direct members of Sync scope are synced (nested_groups is false in the shipped config).
        assert result["counts"]["create"] == len(direct_users)
        assert result["counts"]["failure"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--groups", "0"], "--groups must be at least 1"),
        (["--users", "-3"], "--users must be 0 or more"),
        (["--out", "/nonexistent-dir/seed.json"], "the directory /nonexistent-dir does not exist"),
        (["--users", "many"], "Invalid value for '--users'"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    result = cli("sandbox", "seed", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_without_out_the_seed_goes_to_stdout() -> None:
    result = cli("sandbox", "seed", "--users", "2")
    assert result.returncode == 0
    assert len(json.loads(result.stdout)["tenants"][0]["users"]) == 2
