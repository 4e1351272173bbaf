"""Operating a job through the CLI: threshold, allow-deletes, pause, restart, provision, status."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SyncEnv

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


def test_pause_resume_and_provision_on_demand(sync_env: SyncEnv) -> None:
    env = sync_env
    env.cli("pause", "sync", check=True)
    paused = env.cli("run", "sync", "--json")
    assert paused.returncode == 1
    assert json.loads(paused.stdout)["status"] == "paused"
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


def test_trigger_refuses_to_queue_a_job_twice(sync_env: SyncEnv) -> None:
    env = sync_env
    first = env.cli("trigger", "sync", "--json", check=True)
    task_id = json.loads(first.stdout)["task_id"]
    second = env.cli("trigger", "sync", "--json")  # no worker is running: the first still waits
    assert second.returncode == 1
    assert json.loads(second.stdout)["status"] == "already_queued"
    assert task_id in json.loads(second.stdout)["error"]
