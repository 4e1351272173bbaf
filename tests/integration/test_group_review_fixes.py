"""Group provisioning against the sandbox over HTTPS (docs/groups.md), the cases an outside
review found wrong: a deleted target user holding back the other members of its request, an
interrupted creation's orphan, another job's group named as such, two swapped names, a held
rename kept in `status`, members written by a cycle stopped before its commit, and one row per
group deletion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sync_world
from tests.integration.test_group_provisioning import (
    FOREIGN_LEGAL,
    JOB,
    SALES,
    group_rows,
    member_names,
    seed_with_groups,
    target_graph,
    target_groups,
)
from tests.support.world import GROUP
from worker.domain.groups import unique_name

pytestmark = pytest.mark.integration

JOB_TWO = {**JOB, "scope": {**JOB["scope"], "groups": [GROUP, SALES]}}


def _add_member(env: Any, group: str, user_id: str) -> None:
    env.source().post(
        f"/groups/{group}/members/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}"},
    ).raise_for_status()


def _target_user_id(env: Any, name: str) -> str:
    (user,) = [u for u in env.target_users() if u["displayName"] == name]
    return str(user["id"])


def _status(env: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    return data


def test_a_linked_user_deleted_in_the_target_holds_back_no_other_member(tmp_path: Path) -> None:
    seed = seed_with_groups()
    users = seed["tenants"][0]["users"]
    with sync_world(tmp_path, seed, JOB_TWO) as env:
        env.run_json("--full")
        (sync,) = target_groups(env)["Sync"]
        # An admin deletes User 0's B2B user in the target (Graph takes it out of Sync), and
        # User 6 joins Sync in the source: both travel in one members@odata.bind request.
        gone = _target_user_id(env, "User 0")
        target_graph(env).delete(f"/users/{gone}").raise_for_status()
        _add_member(env, GROUP, users[6]["id"])

        env.run_json()

        # User 6 is added all the same; User 0 is left out with its reason.
        assert member_names(env, sync["id"]) == {f"User {i}" for i in (1, 2, 3, 4, 5, 6, 8)}
        row = next(r for r in group_rows(env) if r["sourceId"] == GROUP)
        assert (row["action"], row["status"]) == ("update", "warning")
        assert gone in row["reason"]
        assert "no longer exist in the target" in row["reason"]
        assert users[0]["id"] in row["reason"]
        export = [s for s in row["steps"] if s["name"] == "export"][-1]
        assert "1 member(s) added" in export["detail"]
        assert "1 left out" in export["detail"]
        assert row["modifiedProperties"]["members"] == {"old": 6, "new": 7}

        # `provision` says so too: a warning naming the missing user, not "no change".
        again = env.cli("provision", "sync", GROUP, "--json")
        assert again.returncode == 0, again.stderr
        result = json.loads(again.stdout)
        assert (result["action"], result["status"]) == ("skip", "warning")
        assert gone in result["reason"]

        # The next full cycle creates User 0 again and adds it.
        env.run_json("--full")
        assert "User 0" in member_names(env, sync["id"])


def test_a_group_created_by_an_interrupted_cycle_is_deleted_when_its_source_group_is_gone(
    tmp_path: Path,
) -> None:
    job = {**JOB, "deletion_threshold": {"count": 5}}
    with sync_world(tmp_path, seed_with_groups(), job) as env:
        # A worker killed right after POST /groups for Sales: the group is in the target with
        # this job's uniqueName, its link never committed. Then Sales is deleted in the source.
        orphan = target_graph(env).post(
            "/groups",
            json={
                "displayName": "Sales",
                "mailEnabled": False,
                "mailNickname": "Sales",
                "securityEnabled": True,
                "uniqueName": unique_name("sync", SALES),
            },
        )
        orphan.raise_for_status()
        env.source().delete(f"/groups/{SALES}").raise_for_status()

        result = env.run_json("--full")

        assert "Sales" not in target_groups(env)
        assert result["counts"]["delete"] >= 1
        # one row for the group in the cycle: its deletion
        rows = [r for r in group_rows(env) if r["sourceId"] == SALES]
        assert [(r["action"], r["status"]) for r in rows] == [("delete", "success")]
        assert rows[0]["targetId"] == orphan.json()["id"]
        assert _status(env)["groups"]["provisioned"] == 1  # Sync only


def test_another_jobs_group_is_named_as_such_when_it_holds_the_name(tmp_path: Path) -> None:
    with sync_world(tmp_path, seed_with_groups(), JOB_TWO) as env:
        env.run_json("--full")
        other = unique_name("other-job", SALES)
        target_graph(env).post(
            "/groups",
            json={
                "displayName": "Team",
                "mailEnabled": False,
                "mailNickname": "Team",
                "securityEnabled": True,
                "uniqueName": other,
            },
        ).raise_for_status()
        env.source().patch(f"/groups/{SALES}", json={"displayName": "Team"}).raise_for_status()

        env.run_json()

        row = next(r for r in group_rows(env) if r["sourceId"] == SALES)
        assert row["status"] == "warning"
        assert "another tenant-sync job" in row["reason"]
        assert other in row["reason"]
        assert "did not create" not in row["reason"]


def test_two_groups_whose_names_are_swapped_in_the_source_are_swapped_in_one_cycle(
    tmp_path: Path,
) -> None:
    with sync_world(tmp_path, seed_with_groups(), JOB_TWO) as env:
        env.run_json("--full")
        before = target_groups(env)
        sync_id, sales_id = before["Sync"][0]["id"], before["Sales"][0]["id"]
        env.source().patch(f"/groups/{GROUP}", json={"displayName": "Sales"}).raise_for_status()
        env.source().patch(f"/groups/{SALES}", json={"displayName": "Sync"}).raise_for_status()

        env.run_json()

        after = target_groups(env)
        assert [g["id"] for g in after["Sales"]] == [sync_id]
        assert [g["id"] for g in after["Sync"]] == [sales_id]
        assert len(after) == len(before)  # no temporary name left behind
        assert _status(env)["groups"]["skipped"] == []  # nothing held
        rows = group_rows(env)  # newest first
        newest = rows[0]["cycleId"]
        renamed = [r for r in rows if r["cycleId"] == newest]
        # one row per group, with the whole rename
        assert sorted(r["modifiedProperties"]["displayName"]["new"] for r in renamed) == [
            "Sales",
            "Sync",
        ]
        assert {r["modifiedProperties"]["displayName"]["old"] for r in renamed} == {
            "Sales",
            "Sync",
        }


def test_a_held_rename_stays_listed_when_the_group_changes_otherwise(tmp_path: Path) -> None:
    with sync_world(tmp_path, seed_with_groups(), JOB_TWO) as env:
        env.run_json("--full")
        # Sales renamed to the name of the target's own Legal, and its description changed.
        env.source().patch(
            f"/groups/{SALES}", json={"displayName": "Legal", "description": "EU sales"}
        ).raise_for_status()

        env.run_json()

        row = next(r for r in group_rows(env) if r["sourceId"] == SALES)
        assert (row["action"], row["status"]) == ("update", "warning")
        assert row["reason"].startswith("rename held")
        skipped = {s["sourceId"]: s["reason"] for s in _status(env)["groups"]["skipped"]}
        assert skipped[SALES].startswith("rename held")
        table = " ".join(env.cli("logs", "sync", check=True).stdout.split())
        assert "rename held" in table
        assert [g["id"] for g in target_groups(env)["Legal"]] == [FOREIGN_LEGAL]


def test_members_written_by_a_cycle_stopped_before_its_commit_are_logged_by_the_next(
    tmp_path: Path,
) -> None:
    seed = seed_with_groups()
    users = seed["tenants"][0]["users"]
    with sync_world(tmp_path, seed, JOB_TWO) as env:
        env.run_json("--full")
        (sales,) = target_groups(env)["Sales"]
        # What a killed cycle leaves: User 1 removed from Sales in the source and in the
        # target (its write made), with no log row and the link's record unchanged.
        env.source().delete(f"/groups/{SALES}/members/{users[1]['id']}/$ref").raise_for_status()
        target_graph(env).delete(
            f"/groups/{sales['id']}/members/{_target_user_id(env, 'User 1')}/$ref"
        ).raise_for_status()

        env.run_json()

        row = next(r for r in group_rows(env) if r["sourceId"] == SALES)
        assert (row["action"], row["status"]) == ("update", "success")
        assert row["modifiedProperties"]["members"] == {"old": 2, "new": 1}
        assert member_names(env, sales["id"]) == {"User 0"}
