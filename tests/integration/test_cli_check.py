"""`tenant-sync check`: the advice matches the failure (network, TLS, credentials, permissions)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SyncEnv, sync_world
from tests.support.world import GROUP, build_world_seed

pytestmark = pytest.mark.integration


def edit_tenant(env: SyncEnv, name: str, **changes: Any) -> None:
    config = yaml.safe_load(env.config.read_text())
    tenant = config["tenants"][name]
    for key, value in changes.items():
        if value is None:
            tenant.pop(key, None)
        else:
            tenant[key] = value
    env.config.write_text(yaml.safe_dump(config))


def failed(env: SyncEnv) -> dict[str, dict[str, Any]]:
    result = env.cli("check", "sync", "--json")
    assert result.returncode == 1, result.stderr
    checks = json.loads(result.stdout)["checks"]
    return {c["name"]: c for c in checks if c["status"] != "ok"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.world(partners=True)
def test_a_refused_connection_is_a_network_problem_not_a_secret(sync_env: SyncEnv) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    edit_tenant(sync_env, "fabrikam", authority_host=url, graph_url=url)
    fix = failed(sync_env)["target: sign in"]["fix"]
    assert "cannot reach" in fix
    assert "tenants.fabrikam.authority_host" in fix
    assert "client_secret" not in fix


@pytest.mark.world(partners=True)
def test_an_untrusted_certificate_points_at_ca_bundle(sync_env: SyncEnv) -> None:
    edit_tenant(sync_env, "contoso", ca_bundle=None)
    text = sync_env.cli("check", "sync").stdout
    fix = failed(sync_env)["source: sign in"]["fix"]
    assert "TLS certificate is not trusted" in fix
    assert "tenants.contoso.ca_bundle" in fix
    assert "client_secret" not in fix
    assert "fix: the source endpoint's TLS certificate" in text


@pytest.mark.world(partners=True)
def test_a_wrong_secret_points_at_the_credential(sync_env: SyncEnv) -> None:
    edit_tenant(sync_env, "contoso", client_secret="not-the-secret")
    check = failed(sync_env)["source: sign in"]
    assert "AADSTS" in check["detail"]
    assert "tenants.contoso.client_secret" in check["fix"]


@pytest.mark.world(partners=True)
def test_an_unreachable_graph_url_is_reported_within_seconds_not_ridden_out(
    sync_env: SyncEnv,
) -> None:
    # Only graph_url is wrong: sign-in works, then every Graph request meets a closed port.
    edit_tenant(sync_env, "fabrikam", graph_url=f"https://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    checks = failed(sync_env)
    elapsed = time.monotonic() - started

    assert "target: sign in" not in checks
    assert "gave up after 2 attempts" in checks["target: read users"]["detail"]
    assert "cannot reach" in checks["target: read users"]["fix"]
    assert elapsed < 20, f"check took {elapsed:.0f} s"  # was 143 s: 8 attempts per request


# A target app that may invite and write users and read policies, but not touch groups.
NO_GROUP_ROLES = [
    "User.ReadWrite.All",
    "User.Invite.All",
    "Policy.Read.All",
    "Policy.ReadWrite.CrossTenantAccess",
    "User.Read.All",
]
PROVISION = {
    "scope": {"users": "assigned", "groups": [GROUP], "nested_groups": True},
    "groups": {"provision": True},
}


def test_a_job_that_provisions_groups_checks_the_group_permissions(tmp_path: Path) -> None:
    seed = build_world_seed(users=6, prior_b2b=False, partners=True)
    seed["tenants"][0]["clients"][0]["roles"] = ["User.Read.All", "Policy.Read.All"]
    seed["tenants"][1]["clients"][0]["roles"] = NO_GROUP_ROLES
    with sync_world(tmp_path, seed, PROVISION) as env:
        result = env.cli("check", "sync")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        out = result.stdout
        assert "✗ source: permission Group.Read.All (or GroupMember.Read.All)" in out
        assert (
            "✗ target: permission Group.ReadWrite.All (or Group.Create + GroupMember.ReadWrite.All)"
        ) in out
        assert (
            "fix: add the application permission Group.ReadWrite.All (or both Group.Create and "
            "GroupMember.ReadWrite.All) to the target app registration and grant admin consent"
        ) in out

        # Without groups.provision the same apps pass the group checks (none are made).
        config = yaml.safe_load(env.config.read_text())
        del config["jobs"]["sync"]["groups"]
        config["jobs"]["sync"]["scope"]["users"] = "all"
        env.config.write_text(yaml.safe_dump(config))
        plain = env.cli("check", "sync")
        assert "Group.ReadWrite.All" not in plain.stdout
        assert "Group.Read.All" not in plain.stdout


def test_group_create_with_groupmember_readwrite_cannot_delete_groups(tmp_path: Path) -> None:
    """That set creates, renames and fills groups, but Graph deletes groups only with
    Group.ReadWrite.All: `check` says so (✗, exit 1) rather than a ✓ that is not true."""
    seed = build_world_seed(users=6, prior_b2b=False, partners=True)
    seed["tenants"][1]["clients"][0]["roles"] = [
        *NO_GROUP_ROLES,
        "Group.Create",
        "GroupMember.ReadWrite.All",
    ]
    with sync_world(tmp_path, seed, PROVISION) as env:
        result = env.cli("check", "sync", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        name = (
            "target: permission Group.ReadWrite.All (or Group.Create + GroupMember.ReadWrite.All)"
        )
        assert checks[name]["status"] == "ok"
        delete = checks["target: permission Group.ReadWrite.All, to delete provisioned groups"]
        assert delete["status"] == "fail"
        assert "fails in every cycle" in delete["detail"]
        failed = [n for n, c in checks.items() if c["status"] != "ok"]
        assert failed == ["target: permission Group.ReadWrite.All, to delete provisioned groups"]
        assert (
            checks["source: permission Group.Read.All (or GroupMember.Read.All)"]["status"] == "ok"
        )


def test_a_run_without_group_permission_logs_the_missing_permission(tmp_path: Path) -> None:
    seed = build_world_seed(users=6, prior_b2b=False, partners=True)
    seed["tenants"][1]["clients"][0]["roles"] = NO_GROUP_ROLES
    with sync_world(tmp_path, seed, PROVISION) as env:
        env.cli("run", "sync", "--json")
        logs = env.cli("logs", "sync", "--json", "--all", check=True)
        [row] = [r for r in json.loads(logs.stdout) if r.get("objectType") == "Group"]
        assert row["status"] == "failure"
        assert row["reason"].startswith("the target app lacks Group.ReadWrite.All"), row
        assert "grant admin consent" in row["reason"]
