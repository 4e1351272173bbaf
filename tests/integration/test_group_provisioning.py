"""Group provisioning through the CLI against the sandbox over HTTPS (docs/groups.md): groups
created as static security groups, renamed, members added and removed (nested groups flattened),
a name taken by someone else's group skipped, deletions held by the threshold; read back through
Graph as a user would, once with Microsoft's Graph SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SyncEnv, sync_world
from tests.support.sdk import SdkClient
from tests.support.serve import READ_TOKEN, add_api_section, running_service
from tests.support.world import GROUP, TARGET, build_world_seed
from worker.domain.groups import unique_name

pytestmark = pytest.mark.integration

SALES = "55555555-5555-4555-8555-555555555555"
LEGAL = "66666666-6666-4666-8666-666666666666"
INNER = "44444444-4444-4444-8444-444444444444"
FOREIGN_LEGAL = "77777777-7777-4777-8777-777777777777"


def seed_with_groups() -> dict[str, Any]:
    """Sync: users 0-5 (and the guest) and the group Inner (user 8); Sales: users 0 and 1, a
    Microsoft 365 group in the source; Legal: user 3, whose name the target already uses for a
    group of its own."""
    seed = build_world_seed(users=10, prior_b2b=False)
    source, target = seed["tenants"]
    users = source["users"]
    source["groups"][0]["members"] = [u["id"] for u in users[:6]] + [users[-1]["id"], INNER]
    source["groups"][0]["description"] = "Everyone synced"
    source["groups"] += [
        {"id": INNER, "displayName": "Inner", "members": [users[8]["id"]]},
        {
            "id": SALES,
            "displayName": "Sales",
            "groupTypes": ["Unified"],
            "members": [users[0]["id"], users[1]["id"]],
        },
        {"id": LEGAL, "displayName": "Legal", "members": [users[3]["id"]]},
    ]
    target["groups"] = [{"id": FOREIGN_LEGAL, "displayName": "Legal", "members": []}]
    return seed


JOB = {
    "scope": {"users": "assigned", "groups": [GROUP, SALES, LEGAL], "nested_groups": True},
    "groups": {"provision": True},
}


def target_graph(env: SyncEnv) -> Any:
    return env.sandbox.graph(TARGET.tenant_id, TARGET.client_id, TARGET.secret)


def target_groups(env: SyncEnv) -> dict[str, list[dict[str, Any]]]:
    """The target's groups by displayName."""
    answer = target_graph(env).get(
        "/groups",
        params={"$select": "id,displayName,description,securityEnabled,mailEnabled,groupTypes"},
    )
    answer.raise_for_status()
    found: dict[str, list[dict[str, Any]]] = {}
    for group in answer.json()["value"]:
        found.setdefault(group["displayName"], []).append(group)
    return found


def member_names(env: SyncEnv, group_id: str) -> set[str]:
    answer = target_graph(env).get(f"/groups/{group_id}/members", params={"$select": "displayName"})
    answer.raise_for_status()
    return {m["displayName"] for m in answer.json()["value"]}


def group_rows(env: SyncEnv) -> list[dict[str, Any]]:
    result = env.cli("logs", "sync", "--json", "--all", check=True)
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return [r for r in rows if r["objectType"] == "Group"]


def test_groups_are_created_filled_renamed_and_kept_equal_to_the_source(tmp_path: Path) -> None:
    seed = seed_with_groups()
    users = seed["tenants"][0]["users"]
    with sync_world(tmp_path, seed, JOB) as env:
        env.run_json("--full")

        groups = target_groups(env)
        # every group provisioned is a static security group, whatever it was in the source
        for name in ("Sync", "Sales"):
            (group,) = groups[name]
            assert (group["securityEnabled"], group["mailEnabled"], group["groupTypes"]) == (
                True,
                False,
                [],
            )
        sync = groups["Sync"][0]
        assert sync["description"] == "Everyone synced"
        # members: the synced users (Inner's member flattened in; the guest is never synced)
        assert member_names(env, sync["id"]) == {f"User {i}" for i in (0, 1, 2, 3, 4, 5, 8)}
        assert member_names(env, groups["Sales"][0]["id"]) == {"User 0", "User 1"}
        # Legal's name belongs to a group tenant-sync did not create: never taken over, no twin
        assert [g["id"] for g in groups["Legal"]] == [FOREIGN_LEGAL]
        assert member_names(env, FOREIGN_LEGAL) == set()
        rows = {r["sourceId"]: r for r in group_rows(env)}
        assert (rows[GROUP]["action"], rows[SALES]["action"]) == ("create", "create")
        assert (rows[LEGAL]["action"], rows[LEGAL]["status"]) == ("skip", "warning")
        assert (
            "already has a group named 'Legal' that tenant-sync did not create"
            in (rows[LEGAL]["reason"])
        )
        status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        assert status["groups"]["provisioned"] == 2
        assert [s["sourceId"] for s in status["groups"]["skipped"]] == [LEGAL]

        # In the source: Sales renamed, user 6 added to Sync, user 2 removed, Inner's user 8
        # replaced by user 9; the foreign Legal renamed, freeing the name.
        source = env.source()
        source.patch(f"/groups/{SALES}", json={"displayName": "Sales EU"}).raise_for_status()
        for group, user in ((GROUP, users[6]), (INNER, users[9])):
            source.post(
                f"/groups/{group}/members/$ref",
                json={
                    "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user['id']}"
                },
            ).raise_for_status()
        source.delete(f"/groups/{GROUP}/members/{users[2]['id']}/$ref").raise_for_status()
        source.delete(f"/groups/{INNER}/members/{users[8]['id']}/$ref").raise_for_status()
        target_graph(env).patch(
            f"/groups/{FOREIGN_LEGAL}", json={"displayName": "Legal (old)"}
        ).raise_for_status()

        second = env.run_json()

        assert second["mode"] == "incremental"
        groups = target_groups(env)
        assert "Sales" not in groups
        assert groups["Sales EU"][0]["id"] == sync_id_of(groups, "Sales EU")
        assert member_names(env, groups["Sync"][0]["id"]) == {
            f"User {i}" for i in (0, 1, 3, 4, 5, 6, 9)
        }
        (legal,) = groups["Legal"]
        assert legal["id"] != FOREIGN_LEGAL
        assert member_names(env, legal["id"]) == {"User 3"}

        # Microsoft's Graph SDK reads the provisioned group as any client would.
        sdk = SdkClient.connect(env.sandbox, TARGET.tenant_id, TARGET.client_id, TARGET.secret)
        try:
            group = sdk.run(sdk.graph.groups.by_group_id(groups["Sales EU"][0]["id"]).get())
            members = sdk.run(
                sdk.graph.groups.by_group_id(groups["Sales EU"][0]["id"]).members.get()
            )
        finally:
            sdk.close()
        assert group is not None
        assert (group.display_name, group.security_enabled, group.mail_enabled) == (
            "Sales EU",
            True,
            False,
        )
        assert members is not None
        assert len(members.value or []) == 2


def sync_id_of(groups: dict[str, list[dict[str, Any]]], name: str) -> str:
    (group,) = groups[name]
    return str(group["id"])


def test_nested_skip_leaves_members_of_nested_groups_out(tmp_path: Path) -> None:
    job = {
        **JOB,
        "scope": {**JOB["scope"], "groups": [GROUP]},
        "groups": {"provision": True, "nested": "skip"},
    }
    with sync_world(tmp_path, seed_with_groups(), job) as env:
        env.run_json("--full")
        (sync,) = target_groups(env)["Sync"]
        assert member_names(env, sync["id"]) == {f"User {i}" for i in (0, 1, 2, 3, 4, 5)}


def test_deleting_provisioned_groups_waits_for_allow_deletes_over_the_threshold(
    tmp_path: Path,
) -> None:
    job = {**JOB, "deletion_threshold": {"count": 1}}
    with sync_world(tmp_path, seed_with_groups(), job) as env:
        env.run_json("--full")
        before = target_groups(env)
        assert {"Sync", "Sales"} <= set(before)
        # Sales deleted in the source, Sync taken out of scope (its users stay, by user id)
        env.source().delete(f"/groups/{SALES}").raise_for_status()
        kept = {**job, "scope": {**job["scope"], "groups": [SALES, LEGAL]}}
        _rewrite_job(env, kept)

        held = env.cli("run", "sync", "--json")
        result = json.loads(held.stdout)
        assert result["counts"]["staged_delete"] >= 2
        assert {"Sync", "Sales"} <= set(target_groups(env))
        staged = [r for r in group_rows(env) if r["action"] == "stagedDelete"]
        assert {r["sourceId"] for r in staged} == {GROUP, SALES}
        # one row per group per cycle: Sales' held deletion replaced its "not found" skip
        assert [r["action"] for r in group_rows(env) if r["sourceId"] == SALES][0:2] == [
            "stagedDelete",
            "create",
        ]
        # the two held group deletions count with the users' held ones, in every place
        held_now = result["counts"]["staged_delete"]
        status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        window = status["deletionThreshold"]
        users_held = held_now - 2
        assert status["stagedDeletes"] == held_now
        assert window["staged"] == held_now
        assert window["counted"] == window["deletionsInWindow"] + held_now
        assert window["stagedGroups"] == 2
        assert result["deletions"]["counted"] == window["counted"]
        table = " ".join(env.cli("status", "sync", check=True).stdout.split())
        assert f"0 made + {held_now} held" in table
        assert [s["sourceId"] for s in status["groups"]["skipped"]] == [LEGAL]
        # what an operator reviews before approving lists the group deletions too
        add_api_section(env.config)
        with running_service(env.config, tmp_path / "serve") as service:
            staged_api = service.client(READ_TOKEN).get("/api/jobs/sync/staged").json()
        assert staged_api["count"] == held_now
        by_type: dict[str, set[str]] = {}
        for d in staged_api["deletions"]:
            by_type.setdefault(d["objectType"], set()).add(d["sourceId"])
        assert by_type["Group"] == {GROUP, SALES}
        assert len(by_type.get("User", set())) == users_held
        (sales,) = [d for d in staged_api["deletions"] if d["sourceId"] == SALES]
        assert (sales["sourceIdentity"], sales["sourceDeleted"]) == ("Sales", True)
        assert sales["targetId"] == before["Sales"][0]["id"]

        allowed = json.loads(env.cli("allow-deletes", "sync", "--json", check=True).stdout)
        assert allowed["held"] == users_held + 2
        env.run_json()

        groups = target_groups(env)
        assert "Sync" not in groups
        assert "Sales" not in groups
        deleted = [r for r in group_rows(env) if r["action"] == "delete"]
        assert {r["sourceId"] for r in deleted} == {GROUP, SALES}
        after = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        assert after["stagedDeletes"] == 0


def test_a_group_created_but_never_linked_is_found_by_its_unique_name_not_skipped(
    tmp_path: Path,
) -> None:
    # What a worker stopped between Graph's creation of Sync and the commit of its link leaves:
    # a group named Sync carrying the uniqueName tenant-sync gives it, and no link.
    with sync_world(tmp_path, seed_with_groups(), JOB) as env:
        orphan = target_graph(env).post(
            "/groups",
            json={
                "displayName": "Sync",
                "mailEnabled": False,
                "mailNickname": "Sync",
                "securityEnabled": True,
                "uniqueName": unique_name("sync", GROUP),
            },
        )
        orphan.raise_for_status()

        env.run_json("--full")

        groups = target_groups(env)
        assert [g["id"] for g in groups["Sync"]] == [orphan.json()["id"]]  # linked, no twin
        assert member_names(env, orphan.json()["id"]) == {
            f"User {i}" for i in (0, 1, 2, 3, 4, 5, 8)
        }
        rows = {r["sourceId"]: r for r in group_rows(env)}
        assert (rows[GROUP]["action"], rows[GROUP]["status"]) == ("create", "success")
        assert "uniqueName" in json.dumps(rows[GROUP]["steps"])
        # Legal's holder has no uniqueName of ours: still someone else's
        assert [g["id"] for g in groups["Legal"]] == [FOREIGN_LEGAL]
        status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        assert [s["sourceId"] for s in status["groups"]["skipped"]] == [LEGAL]


def test_group_creations_answered_with_an_error_after_graph_made_them_make_one_group(
    tmp_path: Path,
) -> None:
    # Every group's POST is carried out, then answered 5xx half of the time (a gateway that
    # timed out): the repeat is refused as "already exists" and resolves to the group made.
    with sync_world(tmp_path, seed_with_groups(), {**JOB, "groups": {"provision": False}}) as env:
        env.run_json("--full")  # the users first, without faults
        _rewrite_job(env, JOB)
        env.sandbox.set_faults(
            commit_then_error_rate=0.5, error_statuses=[504], error_retry_after_s=0, seed=3
        )
        env.run_json("--full")
        assert env.sandbox.stats()["faults_by_kind"].get("commit_then_error", 0) > 0
        env.sandbox.set_faults(commit_then_error_rate=0.0)
        env.run_json()

        groups = target_groups(env)
        assert len(groups["Sync"]) == 1
        assert len(groups["Sales"]) == 1
        assert member_names(env, groups["Sync"][0]["id"]) == {
            f"User {i}" for i in (0, 1, 2, 3, 4, 5, 8)
        }
        assert member_names(env, groups["Sales"][0]["id"]) == {"User 0", "User 1"}
        status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        assert status["groups"]["provisioned"] == 2
        assert [s["sourceId"] for s in status["groups"]["skipped"]] == [LEGAL]


def _rewrite_job(env: SyncEnv, job: dict[str, Any]) -> None:
    import yaml

    config = yaml.safe_load(env.config.read_text())
    config["jobs"]["sync"].update(job)
    env.config.write_text(yaml.safe_dump(config, sort_keys=False))


def test_incremental_cycles_take_member_changes_from_groups_delta_and_dry_runs_plan_them(
    tmp_path: Path,
) -> None:
    seed = seed_with_groups()
    users = seed["tenants"][0]["users"]
    job = {"scope": {"users": "assigned", "groups": [GROUP, SALES]}, "groups": {"provision": True}}
    with sync_world(tmp_path, seed, job) as env:
        # A dry run plans the groups and creates nothing.
        preview = env.run_json("--full", "--dry-run")
        planned = {r["sourceId"]: r for r in preview["planned"] if r["objectType"] == "Group"}
        assert {k: r["action"] for k, r in planned.items()} == {GROUP: "create", SALES: "create"}
        assert planned[SALES]["modifiedProperties"]["displayName"]["new"] == "Sales"
        # Each user the preview would create counts as one member (the real run adds all six).
        assert planned[GROUP]["modifiedProperties"]["members"]["new"] == 6
        shown = " ".join(env.cli("run", "sync", "--full", "--dry-run", check=True).stdout.split())
        assert "(group) │ create │ success │ would create group" in shown
        assert "would invite" in shown  # the users, in their own words
        assert "Sync" not in target_groups(env)

        env.run_json("--full")
        groups = target_groups(env)
        # without nested groups in scope, Inner is not flattened (its member is out of scope)
        assert member_names(env, groups["Sync"][0]["id"]) == {f"User {i}" for i in range(6)}

        source = env.source()
        source.post(
            f"/groups/{GROUP}/members/$ref",
            json={
                "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{users[7]['id']}"
            },
        ).raise_for_status()
        source.delete(f"/groups/{SALES}/members/{users[0]['id']}/$ref").raise_for_status()
        writes_before = env.writes()
        preview = env.run_json("--dry-run")
        planned = {r["sourceId"]: r for r in preview["planned"] if r["objectType"] == "Group"}
        assert planned[SALES]["action"] == "update"
        assert env.writes() == writes_before  # nothing written by the preview

        second = env.run_json()

        assert second["mode"] == "incremental"
        assert member_names(env, groups["Sync"][0]["id"]) == {
            f"User {i}" for i in (0, 1, 2, 3, 4, 5, 7)
        }
        assert member_names(env, groups["Sales"][0]["id"]) == {"User 1"}
        # a cycle with nothing new changes no group
        writes_before = env.writes()
        env.run_json()
        assert env.writes() == writes_before


def test_a_group_deleted_by_hand_is_made_again_and_its_old_self_cannot_come_back_beside_it(
    tmp_path: Path,
) -> None:
    """The deleted group still carries its uniqueName in deletedItems: the next cycle creates
    the group again with that uniqueName (one group, filled), and restoring the old one is then
    refused by the sandbox (as Graph keeps uniqueName unique), so there is never a twin."""
    with sync_world(tmp_path, seed_with_groups(), JOB) as env:
        env.run_json("--full")
        (old,) = target_groups(env)["Sync"]
        graph = target_graph(env)
        graph.delete(f"/groups/{old['id']}").raise_for_status()

        env.run_json("--full")

        (new,) = target_groups(env)["Sync"]
        assert new["id"] != old["id"]
        assert member_names(env, new["id"]) == {f"User {i}" for i in (0, 1, 2, 3, 4, 5, 8)}
        key = unique_name("sync", GROUP)
        restore = graph.post(f"/directory/deletedItems/{old['id']}/restore")
        assert restore.status_code == 400, restore.text
        holders = graph.get("/groups", params={"$filter": f"uniqueName eq '{key}'"}).json()
        assert [g["id"] for g in holders["value"]] == [new["id"]]
        env.run_json()
        assert [g["id"] for g in target_groups(env)["Sync"]] == [new["id"]]
