"""The manager reference through real cycles: the CLI, embedded Redis, SQLite, and the sandbox
over HTTPS (docs/manager.md). The official Graph SDK reads one result as an admin would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SyncEnv, sync_world
from tests.support.sdk import SdkClient
from tests.support.world import GROUP, TARGET, build_world_seed

pytestmark = pytest.mark.integration

MANAGER_JOB = {"mappings": [{"target": "manager", "source": "manager"}]}


def world_with_managers() -> dict[str, Any]:
    """Members 0..7 in scope, 8..11 not. A chain 2 → 3 → 4 → 5 (each reports to the next),
    all created in the first cycle; 6 reports to 9, who is out of scope."""
    seed = build_world_seed(users=12)
    users = seed["tenants"][0]["users"]
    for report, manager in ((2, 3), (3, 4), (4, 5), (6, 9)):
        users[report]["manager"] = users[manager]["id"]
    return seed


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SyncEnv]:
    with sync_world(tmp_path, world_with_managers(), MANAGER_JOB) as world:
        yield world


def source_id(env: SyncEnv, index: int) -> str:
    return str(env.seed["tenants"][0]["users"][index]["id"])


def target_id(env: SyncEnv, index: int) -> str:
    mail = f"user{index}@contoso.com"
    (user,) = [
        u
        for u in env.target_users()
        if (u.get("mail") or "").lower() == mail and not u.get("deletedDateTime")
    ]
    return str(user["id"])


def target_manager(env: SyncEnv, index: int) -> str | None:
    graph = env.sandbox.graph(TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    answer = graph.get(f"/users/{target_id(env, index)}/manager", params={"$select": "id"})
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return str(answer.json()["id"])


def log_rows(env: SyncEnv, *args: str) -> list[dict[str, Any]]:
    result = env.cli("logs", "sync", "--json", "--all", *args, check=True)
    data = json.loads(result.stdout)
    rows: list[dict[str, Any]] = data["value"] if isinstance(data, dict) else data
    return rows


def test_managers_are_set_changed_and_cleared(env: SyncEnv) -> None:
    first = env.run_json("--full")

    assert first["counts"]["failure"] == 0
    # The whole chain in one cycle, each reference to the manager's own target user.
    assert target_manager(env, 2) == target_id(env, 3)
    assert target_manager(env, 3) == target_id(env, 4)
    assert target_manager(env, 4) == target_id(env, 5)
    assert target_manager(env, 5) is None
    # Out of scope: unset, a warning in the user's row with the reason, not a failure.
    assert target_manager(env, 6) is None
    warnings = log_rows(env, "--status", "warning", "--user", source_id(env, 6))
    assert warnings, "no warning row for the user whose manager is out of scope"
    assert "not in scope" in warnings[0]["reason"]
    # One row per object per cycle: the warning joined the user's own create row.
    (row,) = log_rows(env, "--run", first["run_id"], "--user", source_id(env, 6))
    assert (row["action"], row["status"]) == ("create", "warning")
    assert "not in scope" in row["steps"][-1]["detail"]

    writes = env.writes()
    quiet = env.run_json()
    assert quiet["mode"] == "incremental"
    assert env.writes() == writes, "an unchanged manager was written again"

    graph = env.source()
    graph.put(
        f"/users/{source_id(env, 2)}/manager/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{source_id(env, 5)}"},
    ).raise_for_status()
    graph.delete(f"/users/{source_id(env, 3)}/manager/$ref").raise_for_status()

    changed = env.run_json()

    assert changed["mode"] == "incremental"
    assert changed["counts"]["failure"] == 0
    assert target_manager(env, 2) == target_id(env, 5)
    assert target_manager(env, 3) is None
    assert target_manager(env, 4) == target_id(env, 5)
    row = log_rows(env, "--run", changed["run_id"], "--user", source_id(env, 3))[0]
    assert row["modifiedProperties"]["manager"] == {"old": target_id(env, 4), "new": None}

    # As an admin's script would read it: Microsoft's own SDK.
    sdk = SdkClient.connect(env.sandbox, TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    try:
        manager = sdk.run(sdk.graph.users.by_user_id(target_id(env, 2)).manager.get())
    finally:
        sdk.close()
    assert manager is not None
    assert manager.id == target_id(env, 5)


def test_dry_run_and_provision_on_demand(env: SyncEnv) -> None:
    env.run_json("--full")
    graph = env.source()
    graph.put(
        f"/users/{source_id(env, 4)}/manager/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{source_id(env, 2)}"},
    ).raise_for_status()
    writes = env.writes()

    preview = json.loads(env.cli("run", "sync", "--dry-run", "--json", check=True).stdout)

    assert env.writes() == writes
    assert target_manager(env, 4) == target_id(env, 5)
    (row,) = [r for r in preview["planned"] if r["sourceId"] == source_id(env, 4)]
    assert row["reason"] == f"would set manager to target user {target_id(env, 2)}"
    assert row["modifiedProperties"]["manager"] == {
        "old": target_id(env, 5),
        "new": target_id(env, 2),
    }

    provisioned = env.cli("provision", "sync", source_id(env, 4), "--json", check=True)

    assert target_manager(env, 4) == target_id(env, 2)
    assert "set manager" in provisioned.stdout


def test_a_manager_entering_scope_in_the_same_cycle_is_referenced_in_that_cycle(
    env: SyncEnv,
) -> None:
    env.run_json("--full")
    graph = env.source()
    # User 9 is out of scope; user 2 now reports to them, and they join the synced group: the
    # users round meets the reference before the member reread creates the manager.
    graph.put(
        f"/users/{source_id(env, 2)}/manager/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{source_id(env, 9)}"},
    ).raise_for_status()
    graph.post(
        f"/groups/{GROUP}/members/$ref",
        json={
            "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{source_id(env, 9)}"
        },
    ).raise_for_status()

    changed = env.run_json()

    assert changed["mode"] == "incremental"
    assert changed["counts"]["create"] == 1
    assert changed["counts"]["failure"] == 0
    assert target_manager(env, 2) == target_id(env, 9)
    assert not log_rows(env, "--run", changed["run_id"], "--status", "warning")
    # Written by the managers phase, once the reread had linked the manager.
    # The user's one row of the cycle, which the managers phase's write joined.
    (row,) = log_rows(env, "--run", changed["run_id"], "--user", source_id(env, 2))
    assert row["action"] == "update"
    assert [s["detail"] for s in row["steps"][-2:]] == [
        "manager reference of this cycle",
        f"set manager to target user {target_id(env, 9)}",
    ]
    assert row["modifiedProperties"]["manager"]["new"] == target_id(env, 9)


def test_a_manager_leaving_scope_is_out_of_scope_for_its_reports(env: SyncEnv) -> None:
    env.run_json("--full")
    graph = env.source()
    # In one incremental cycle user 5 leaves the synced group and becomes user 2's manager;
    # user 4 already reports to them.
    graph.delete(f"/groups/{GROUP}/members/{source_id(env, 5)}/$ref").raise_for_status()
    graph.put(
        f"/users/{source_id(env, 2)}/manager/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{source_id(env, 5)}"},
    ).raise_for_status()

    changed = env.run_json()

    assert changed["mode"] == "incremental"
    assert changed["counts"]["delete"] == 1
    assert changed["counts"]["failure"] == 0
    # No reference to a user deleted in the same cycle: removed, with the warning, one row each.
    # (User 2's is set while user 5's deletion is only staged, as it might yet be held, and
    # removed once the deletion is made.)
    assert target_manager(env, 2) is None
    assert target_manager(env, 4) is None
    for index in (2, 4):
        (row,) = log_rows(env, "--run", changed["run_id"], "--user", source_id(env, index))
        assert row["status"] == "warning"
        assert f"manager {source_id(env, 5)} is not in scope" in row["reason"]
        assert "removed manager" in row["steps"][-1]["detail"]
        assert row["modifiedProperties"]["manager"]["new"] is None


def test_a_held_deletion_of_a_manager_leaves_its_reports_referenced(tmp_path: Path) -> None:
    """A deletion the threshold holds does no damage: the manager's reports keep their
    reference while it is held, and after it is dropped; made once approved, they lose it."""
    job = {**MANAGER_JOB, "deletion_threshold": {"count": 1}}
    with sync_world(tmp_path, world_with_managers(), job) as env:
        env.run_json("--full")
        graph = env.source()
        manager = target_id(env, 5)

        def leave() -> None:
            # Users 5 (user 4's manager) and 7 leave the synced group: two deletions, over 1.
            for index in (5, 7):
                graph.delete(f"/groups/{GROUP}/members/{source_id(env, index)}/$ref")

        leave()
        held = env.run_json()

        assert (held["counts"]["staged_delete"], held["counts"]["delete"]) == (2, 0)
        assert target_manager(env, 4) == manager
        assert not log_rows(
            env, "--run", held["run_id"], "--status", "warning", "--user", source_id(env, 4)
        )

        for index in (5, 7):
            graph.post(
                f"/groups/{GROUP}/members/$ref",
                json={
                    "@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/"
                    + source_id(env, index)
                },
            ).raise_for_status()
        dropped = env.run_json()

        assert dropped["counts"]["staged_delete"] == 0
        assert target_manager(env, 4) == manager

        leave()
        assert env.run_json()["counts"]["staged_delete"] == 2
        assert target_manager(env, 4) == manager
        env.cli("allow-deletes", "sync", check=True)
        made = env.run_json()

        assert made["counts"]["delete"] == 2
        assert target_manager(env, 4) is None
        (row,) = log_rows(env, "--run", made["run_id"], "--user", source_id(env, 4))
        assert row["status"] == "warning"
        assert f"manager {source_id(env, 5)} is not in scope" in row["reason"]
