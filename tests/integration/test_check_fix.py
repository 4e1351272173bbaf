"""`tenant-sync check --fix`: onboarding a tenant pair through Graph's cross-tenant access policy,
against the sandbox over HTTPS (docs/onboarding.md)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_sync_sandbox.seed_apps import DEFAULT_ROLES
from tests.conftest import SyncEnv, sync_world
from tests.support.sdk import SdkClient
from tests.support.world import SOURCE, TARGET, TenantInfo, build_world_seed

pytestmark = pytest.mark.integration

WORKER = (sys.executable, "-m", "worker")
PARTNERS = "/policies/crossTenantAccessPolicy/partners"


def fix(env: SyncEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """`check ... --fix` as a script runs it: no terminal on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "worker", "check", *args, "--fix", "--config", str(env.config)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "PYTHONUNBUFFERED": "1"},
    )


def policy(env: SyncEnv, tenant: TenantInfo, partner: TenantInfo, sync: bool = False) -> Any:
    """The tenant's partner entry for `partner` (or its identitySynchronization), None if 404."""
    graph = env.sandbox.graph(tenant.tenant_id, tenant.client_id, tenant.secret)
    path = f"{PARTNERS}/{partner.tenant_id}" + ("/identitySynchronization" if sync else "")
    answer = graph.get(path)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.json()


def writes(env: SyncEnv) -> dict[str, int]:
    return dict(env.sandbox.stats()["writes"])


def test_an_unconfigured_pair_is_planned_then_written_then_checks_pass_and_stays_put(
    sync_env: SyncEnv,
) -> None:
    before = writes(sync_env)

    # Without a terminal and without --yes: the plan, a refusal, nothing written.
    refused = fix(sync_env, "sync")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "plan: 3 write(s) in 2 tenant(s)" in refused.stdout
    assert "tenant contoso: partner entry for " + TARGET.tenant_id in refused.stdout
    assert "automaticUserConsentSettings.outboundAllowed: (not set) -> true" in refused.stdout
    assert "automaticUserConsentSettings.inboundAllowed: (not set) -> true" in refused.stdout
    assert "userSyncInbound.isSyncAllowed: (not set) -> true" in refused.stdout
    assert "--yes" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert policy(sync_env, SOURCE, TARGET) is None
    assert policy(sync_env, TARGET, SOURCE) is None
    assert writes(sync_env) == before

    done = fix(sync_env, "sync", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("✓ written:") == 3
    assert "✓ target: user sync allowed from " + SOURCE.tenant_id in done.stdout
    assert "✓ source: automatic redemption (outbound)" in done.stdout
    assert "✗" not in done.stdout
    assert policy(sync_env, SOURCE, TARGET)["automaticUserConsentSettings"] == {
        "inboundAllowed": False,
        "outboundAllowed": True,
    }
    assert policy(sync_env, TARGET, SOURCE, sync=True)["userSyncInbound"] == {"isSyncAllowed": True}
    assert sync_env.cli("check", "sync").returncode == 0

    # Idempotent: nothing to change, nothing written.
    after = writes(sync_env)
    again = fix(sync_env, "sync", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to change" in again.stdout
    assert "written" not in again.stdout
    assert writes(sync_env) == after

    # The official Graph SDK reads what was written, as an admin's script would.
    sdk = SdkClient.connect(sync_env.sandbox, TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    try:
        partners = sdk.graph.policies.cross_tenant_access_policy.partners
        item = partners.by_cross_tenant_access_policy_configuration_partner_tenant_id(
            SOURCE.tenant_id
        )
        entry = sdk.run(item.get())
        assert entry is not None
        assert entry.automatic_user_consent_settings is not None
        assert entry.automatic_user_consent_settings.inbound_allowed is True
        sync = sdk.run(item.identity_synchronization.get())
        assert sync is not None
        assert sync.user_sync_inbound is not None
        assert sync.user_sync_inbound.is_sync_allowed is True
    finally:
        sdk.close()


@pytest.mark.world(partners=True)
def test_a_partly_configured_pair_gets_only_the_missing_properties(sync_env: SyncEnv) -> None:
    # The world's target allows sync inbound, but its source has sync policy off: irrelevant
    # (sync is allowed in the target); turn the source's outbound redemption off.
    graph = sync_env.sandbox.graph(SOURCE.tenant_id, SOURCE.client_id, SOURCE.secret)
    off = {"automaticUserConsentSettings": {"inboundAllowed": True, "outboundAllowed": False}}
    assert graph.patch(f"{PARTNERS}/{TARGET.tenant_id}", json=off).status_code == 204

    result = fix(sync_env, "sync", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [write] = report["plan"]
    assert (write["tenant"], write["method"], write["object"]) == ("contoso", "PATCH", "partner")
    assert write["changes"] == [
        {"property": "automaticUserConsentSettings.outboundAllowed", "current": False, "new": True}
    ]
    assert [r["status"] for r in report["results"]] == ["written"]
    assert report["ok"] is True
    assert all(c["status"] == "ok" for c in report["checks"]["sync"])
    # The flag the pair does not need was kept as it was.
    assert policy(sync_env, SOURCE, TARGET)["automaticUserConsentSettings"] == {
        "inboundAllowed": True,
        "outboundAllowed": True,
    }


def test_an_app_without_the_permission_is_named_and_its_tenant_left_untouched(
    tmp_path: Path,
) -> None:
    seed = build_world_seed()
    roles = [r for r in DEFAULT_ROLES if r != "Policy.ReadWrite.CrossTenantAccess"]
    seed["tenants"][1]["clients"][0]["roles"] = roles
    with sync_world(tmp_path, seed) as env:
        result = fix(env, "sync", "--yes")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        line = (
            f"tenant fabrikam's app ({TARGET.client_id}) lacks Policy.ReadWrite.CrossTenantAccess"
        )
        assert line in result.stdout
        assert "grant admin consent" in result.stdout
        # What was written before the failure is reported, not hidden.
        assert (
            f"✓ written: tenant contoso: partner entry for fabrikam ({TARGET.tenant_id}) — POST"
        ) in result.stdout
        assert (
            "- not attempted: tenant fabrikam: identity synchronization for contoso "
            f"({SOURCE.tenant_id}) — PUT"
        ) in result.stdout
        assert policy(env, SOURCE, TARGET) is not None
        assert policy(env, TARGET, SOURCE) is None
        assert writes(env).get(TARGET.tenant_id, 0) == 0


def test_every_job_of_the_configuration_writes_each_tenant_pair_once(sync_env: SyncEnv) -> None:
    config = yaml.safe_load(sync_env.config.read_text())
    config["jobs"]["back"] = {
        "source": TARGET.name,
        "target": SOURCE.name,
        "schedule": {"interval": "40m"},
        "scope": {"users": "all"},
    }
    sync_env.config.write_text(yaml.safe_dump(config))

    result = subprocess.run(
        [*WORKER, "check", "--fix", "--yes", "--json", "--config", str(sync_env.config)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["jobs"] == ["back", "sync"]
    # Two tenants, each with one partner entry (both directions in one) and one sync policy.
    assert sorted((w["tenant"], w["method"]) for w in report["plan"]) == [
        ("contoso", "POST"),
        ("contoso", "PUT"),
        ("fabrikam", "POST"),
        ("fabrikam", "PUT"),
    ]
    for w in report["plan"]:
        if w["method"] == "POST":
            assert w["body"]["automaticUserConsentSettings"] == {
                "inboundAllowed": True,
                "outboundAllowed": True,
            }
    assert {name: all(c["status"] == "ok" for c in cs) for name, cs in report["checks"].items()}
    assert report["ok"] is True


def test_check_without_job_or_yes_without_fix_is_bad_input(sync_env: SyncEnv) -> None:
    alone = sync_env.cli("check")
    assert alone.returncode == 2
    assert "give JOB" in alone.stderr
    yes = sync_env.cli("check", "sync", "--yes")
    assert yes.returncode == 2
    assert "--yes goes with --fix" in yes.stderr


def answered(env: SyncEnv, answer: str) -> subprocess.CompletedProcess[str]:
    """`check sync --fix` with a terminal on stdin, answering its question with `answer`."""
    primary, replica = pty.openpty()
    try:
        os.write(primary, answer.encode() + b"\n")
        return subprocess.run(
            [*WORKER, "check", "sync", "--fix", "--config", str(env.config)],
            capture_output=True,
            stdin=replica,
            text=True,
            timeout=300,
        )
    finally:
        os.close(replica)
        os.close(primary)


def test_on_a_terminal_it_asks_and_a_no_changes_nothing(sync_env: SyncEnv) -> None:
    declined = answered(sync_env, "n")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert "Make these changes?" in declined.stdout
    assert "declined; nothing was changed" in declined.stderr
    assert policy(sync_env, SOURCE, TARGET) is None

    accepted = answered(sync_env, "y")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.count("✓ written:") == 3
    assert policy(sync_env, TARGET, SOURCE, sync=True)["userSyncInbound"]["isSyncAllowed"]


def test_a_policy_that_cannot_be_read_stops_before_any_write(tmp_path: Path) -> None:
    seed = build_world_seed()
    policy_roles = ("Policy.Read.All", "Policy.ReadWrite.CrossTenantAccess")
    seed["tenants"][1]["clients"][0]["roles"] = [r for r in DEFAULT_ROLES if r not in policy_roles]
    with sync_world(tmp_path, seed) as env:
        result = fix(env, "sync", "--yes", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        error = json.loads(result.stdout)["error"]
        assert "cannot read tenant fabrikam's cross-tenant access policy" in error
        assert "nothing was changed" in error
        assert writes(env) == {}
        assert policy(env, SOURCE, TARGET) is None


def test_a_job_that_provisions_groups_gets_the_groups_note_and_each_write_names_its_partner(
    sync_env: SyncEnv,
) -> None:
    config = yaml.safe_load(sync_env.config.read_text())
    config["jobs"]["sync"]["groups"] = {"provision": True}
    config["jobs"]["back"] = {
        "source": TARGET.name,
        "target": SOURCE.name,
        "schedule": {"interval": "40m"},
        "scope": {"users": "all"},
    }
    sync_env.config.write_text(yaml.safe_dump(config))

    shown = fix(sync_env, "sync", "--yes")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "note: sync: group provisioning needs no cross-tenant setting of its own" in shown.stdout
    # One line per write, each naming the partner tenant, none the same as another.
    written = [line for line in shown.stdout.splitlines() if line.startswith("✓ written:")]
    assert written == [
        f"✓ written: tenant contoso: partner entry for fabrikam ({TARGET.tenant_id}) — POST "
        f"{PARTNERS}",
        f"✓ written: tenant fabrikam: partner entry for contoso ({SOURCE.tenant_id}) — POST "
        f"{PARTNERS}",
        f"✓ written: tenant fabrikam: identity synchronization for contoso ({SOURCE.tenant_id}) "
        f"— PUT {PARTNERS}/{SOURCE.tenant_id}/identitySynchronization",
    ]

    # Every job: the note names only the job that provisions groups, in --json too.
    report = json.loads(
        subprocess.run(
            [*WORKER, "check", "--fix", "--yes", "--json", "--config", str(sync_env.config)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=300,
        ).stdout
    )
    [note] = report["notes"]
    assert note.startswith("sync: group provisioning needs no cross-tenant setting")
    assert {(r["tenant"], r["partner"]) for r in report["results"]} == {
        ("contoso", "fabrikam"),
        ("fabrikam", "contoso"),
    }
