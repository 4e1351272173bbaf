"""Operating a job through the CLI: threshold, allow-deletes, pause, restart, provision, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SyncEnv
from tests.support.world import RUN_JSON_COUNT_KEYS

pytestmark = pytest.mark.integration


def live(env: SyncEnv) -> list[dict[str, object]]:
    return [u for u in env.target_users() if not u.get("deletedDateTime")]


@pytest.mark.world(users=30, prior_b2b=False, job={"deletion_threshold": {"count": 10}})
def test_deleting_60_percent_of_the_source_waits_for_allow_deletes(sync_env: SyncEnv) -> None:
    env = sync_env
    first = env.run_json("--full")
    in_scope = first["counts"]["create"]
    assert in_scope == 26
    graph = env.source()
    members = env.seed["tenants"][0]["users"][:26]
    doomed = members[:16]  # about 60 % of what is synced
    for user in doomed:
        graph.delete(f"/users/{user['id']}").raise_for_status()
    graph.patch(f"/users/{members[20]['id']}", json={"jobTitle": "Survivor"}).raise_for_status()

    held = env.run_json()

    assert held["counts"]["staged_delete"] == 16
    assert held["counts"]["delete"] == 0
    assert held["counts"]["update"] == 1  # updates still flow
    assert held["deletions"]["exceeded"] is True
    assert len(live(env)) == in_scope
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["code"] == "Quarantine"
    assert status["quarantine"]["reason"] == "TooManyDeletes"
    assert status["stagedDeletes"] == 16
    window = status["deletionThreshold"]
    assert (window["count"], window["windowSeconds"]) == (10, 86400)
    assert (window["deletionsInWindow"], window["staged"], window["counted"]) == (0, 16, 16)
    assert window["exceeded"] is True
    table = env.cli("status", "sync", check=True).stdout
    assert "0 made + 16 held / 10 in 1d" in " ".join(table.split()), table
    held_rows = json.loads(
        env.cli("logs", "sync", "--action", "stagedDelete", "--json", check=True).stdout
    )
    assert len(held_rows) == 16
    assert {r["action"] for r in held_rows} == {"stagedDelete"}  # Entra's spelling in the log
    assert {r["sourceId"] for r in held_rows} == {u["id"] for u in doomed}
    preview = env.run_json("--dry-run")
    assert preview["deletions"]["deletions"] == 16
    assert preview["counts"]["delete"] == 0
    assert len(live(env)) == in_scope

    allowed = env.cli("allow-deletes", "sync", check=True)
    assert "16 held now" in allowed.stdout
    released = env.run_json()

    assert released["counts"]["delete"] == 16
    assert len(live(env)) == in_scope - 16
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["code"] == "Active"
    assert status["stagedDeletes"] == 0
    # the approved deletions are behind the window now: the next few are not held for them
    assert status["deletionThreshold"]["deletionsInWindow"] == 0
    assert status["deletionThreshold"]["approvedAt"] is not None


def test_pause_resume_and_provision_on_demand(sync_env: SyncEnv) -> None:
    env = sync_env
    assert json.loads(env.cli("pause", "sync", "--json", check=True).stdout) == {
        "job": "sync",
        "paused": True,
    }
    paused = env.cli("run", "sync", "--json")
    assert paused.returncode == 1
    refused = json.loads(paused.stdout)
    assert refused["status"] == "paused"
    assert set(refused["counts"].values()) == {0}  # run --json: every count present
    assert set(refused["counts"]) == RUN_JSON_COUNT_KEYS
    assert json.loads(env.cli("status", "sync", "--json", check=True).stdout)["code"] == "Paused"

    user = env.seed["tenants"][0]["users"][3]
    provisioned = env.cli("provision", "sync", user["id"], check=True)
    assert "✓ scoping" in provisioned.stdout
    assert "result: create success" in provisioned.stdout
    assert [u["mail"] for u in live(env) if u["mail"] == user["mail"]] == [user["mail"]]
    outside = env.seed["tenants"][0]["users"][-2]  # a member outside the Sync group
    skipped = json.loads(env.cli("provision", "sync", outside["id"], "--json").stdout)
    assert skipped["status"] == "skipped"
    assert "not assigned" in skipped["reason"]

    rows_before = env.cli("logs", "sync", "--json", check=True).stdout
    for bad_id, message in (
        ("not-a-guid", "no user with the UPN or mail 'not-a-guid'"),
        ("0b1c0000-dead-4000-8000-00000000beef", "no user 0b1c0000-dead-4000-8000-00000000beef"),
    ):
        refused = env.cli("provision", "sync", bad_id)
        assert refused.returncode == 2
        assert message in refused.stderr
    assert env.cli("logs", "sync", "--json", check=True).stdout == rows_before  # nothing recorded

    env.cli("resume", "sync", check=True)
    result = env.run_json()
    assert result["status"] == "success"
    # the user provisioned on demand is linked, not created twice
    assert sum(1 for u in live(env) if u["mail"] == user["mail"]) == 1


def test_restart_scopes(sync_env: SyncEnv) -> None:
    env = sync_env
    env.run_json()
    assert env.run_json()["mode"] == "incremental"
    cleared = env.cli("restart", "sync", "--scope", "watermark", check=True)
    assert "watermark cleared" in cleared.stdout
    assert env.run_json()["mode"] == "full"
    bad = env.cli("restart", "sync", "--scope", "everything")
    assert bad.returncode == 2
    assert (
        "--scope must be one of watermark, escrows, quarantine, full, force-deletes" in bad.stderr
    )
    full = env.cli("restart", "sync", "--scope", "full", check=True)
    assert "quarantine ended" in full.stdout
    escrows = json.loads(
        env.cli("restart", "sync", "--scope", "escrows", "--json", check=True).stdout
    )
    assert escrows == {"job": "sync", "scope": "escrows", "done": ["escrows cleared"]}


def test_trigger_refuses_to_queue_a_job_twice(sync_env: SyncEnv) -> None:
    env = sync_env
    first = env.cli("trigger", "sync", "--json", check=True)
    task_id = json.loads(first.stdout)["task_id"]
    assert json.loads(first.stdout)["workers"] == 0
    assert "no Celery worker answered" in first.stderr  # queued, but said plainly
    second = env.cli("trigger", "sync", "--json")  # no worker is running: the first still waits
    assert second.returncode == 1
    assert json.loads(second.stdout)["status"] == "already_queued"
    assert task_id in json.loads(second.stdout)["error"]


@pytest.mark.world(partners=True)
def test_check_passes_when_everything_is_in_place(sync_env: SyncEnv) -> None:
    result = sync_env.cli("check", "sync", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert "target: permission User.Invite.All" in names
    assert all(c["status"] == "ok" for c in report["checks"]), report


def test_check_names_what_is_missing_and_how_to_fix_it(tmp_path: Path) -> None:
    from tests.conftest import sync_world
    from tests.support.world import SOURCE, TARGET, build_world_seed, partner

    seed = build_world_seed(partners=True)
    # No invite, no write (reading the partner settings needs Policy.Read.All, as in Graph).
    seed["tenants"][1]["clients"][0]["roles"] = ["User.Read.All", "Policy.Read.All"]
    seed["tenants"][0]["cross_tenant_access"]["partners"] = [
        partner(TARGET, inbound=False, outbound=False, sync=False)
    ]
    seed["tenants"][1]["cross_tenant_access"]["partners"] = [
        partner(SOURCE, inbound=True, outbound=False, sync=False)
    ]
    with sync_world(tmp_path, seed) as env:
        result = env.cli("check", "sync")

    assert result.returncode == 1
    text = result.stdout
    assert "✓ source: sign in" in text
    assert "✗ target: permission User.Invite.All" in text
    assert "add the application permission User.Invite.All to the target app registration" in text
    assert f"✗ source: automatic redemption (outbound) with {TARGET.tenant_id}" in text
    assert f"✓ target: automatic redemption (inbound) with {SOURCE.tenant_id}" in text
    assert f"✗ target: user sync allowed from {SOURCE.tenant_id}" in text


def test_check_reports_bad_credentials(sync_env: SyncEnv) -> None:
    text = sync_env.config.read_text().replace("target-secret", "wrong-secret")
    sync_env.config.write_text(text)
    result = sync_env.cli("check", "sync")
    assert result.returncode == 1
    assert "✗ target: sign in" in result.stdout
    assert "invalid_client" in result.stdout
