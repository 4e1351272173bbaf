"""`tenant-sync provision JOB USER` takes the source user's object id, UPN or mail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sync_world
from tests.support.world import build_world_seed

pytestmark = pytest.mark.integration


def test_provision_accepts_a_upn_or_a_mail_and_refuses_an_unknown_or_ambiguous_one(
    tmp_path: Path,
) -> None:
    seed = build_world_seed()
    users = seed["tenants"][0]["users"]
    by_upn, by_mail, clash = users[2], users[3], users[5]
    clash["mail"] = users[4]["userPrincipalName"]  # one user's mail is another's UPN
    with sync_world(tmp_path, seed) as env:
        upn = env.cli("provision", "sync", by_upn["userPrincipalName"].upper(), "--json")
        assert upn.returncode == 0, upn.stderr
        assert json.loads(upn.stdout)["sourceId"] == by_upn["id"]
        assert json.loads(upn.stdout)["action"] == "create"
        mail = env.cli("provision", "sync", by_mail["mail"], "--json")
        assert mail.returncode == 0, mail.stderr
        assert json.loads(mail.stdout)["sourceId"] == by_mail["id"]

        unknown = env.cli("provision", "sync", "nobody@contoso.com")
        assert unknown.returncode == 2
        assert unknown.stderr.strip() == (
            "tenant-sync: no user with the UPN or mail 'nobody@contoso.com' in the source "
            "tenant of sync"
        )
        ambiguous = env.cli("provision", "sync", users[4]["userPrincipalName"])
        assert ambiguous.returncode == 2
        line = ambiguous.stderr.strip()
        assert "names 2 source users" in line
        assert users[4]["id"] in line
        assert clash["id"] in line
        assert "give the object id" in line
        assert "Traceback" not in unknown.stderr + ambiguous.stderr
        # A group's name on a job that does not provision groups: say so, not only "no user".
        group = env.cli("provision", "sync", "Sync")
        assert group.returncode == 2
        assert group.stderr.strip().endswith(
            "sync does not provision groups (groups.provision is off), so USER names a user: "
            "its object id, UPN or mail"
        )


def test_provision_a_group_now_sets_its_linked_members_and_reports_the_others(
    tmp_path: Path,
) -> None:
    from tests.integration.test_group_provisioning import (
        INNER,
        JOB,
        SALES,
        member_names,
        seed_with_groups,
        target_groups,
    )

    seed = seed_with_groups()
    users = seed["tenants"][0]["users"]
    with sync_world(tmp_path, seed, JOB) as env:
        # By its displayName, before any cycle: made, empty; its two members are reported.
        first = env.cli("provision", "sync", "sales", "--json")
        assert first.returncode == 0, first.stderr
        made = json.loads(first.stdout)
        # made, with its two members left out: a warning
        assert (made["objectType"], made["action"], made["status"]) == (
            "Group",
            "create",
            "warning",
        )
        assert made["sourceId"] == SALES
        assert sorted(made["unlinkedMembers"]) == sorted([users[0]["id"], users[1]["id"]])
        (sales,) = target_groups(env)["Sales"]
        assert sales["id"] == made["targetId"]
        assert member_names(env, sales["id"]) == set()

        # User 0 provisioned, then the group again by its id: User 0 is a member now.
        env.cli("provision", "sync", users[0]["id"], check=True)
        again = env.cli("provision", "sync", SALES.upper())
        assert again.returncode == 0, again.stderr
        assert "result: update warning" in again.stdout  # a member left out
        assert f"(target group {sales['id']})" in again.stdout
        assert "1 source member(s) not provisioned yet" in again.stdout
        assert member_names(env, sales["id"]) == {"User 0"}
        assert [g["id"] for g in target_groups(env)["Sales"]] == [sales["id"]]

        # A group of the source that is not in scope.groups, and a name no scoped group has.
        outside = env.cli("provision", "sync", INNER)
        assert outside.returncode == 2
        assert outside.stderr.strip() == (
            f"tenant-sync: group {INNER} is not in scope.groups of sync: only the groups in "
            "scope.groups are provisioned"
        )
        unknown = env.cli("provision", "sync", "Nobody")
        assert unknown.returncode == 2
        assert "no group named 'Nobody' in scope.groups of sync" in unknown.stderr
        assert "Traceback" not in outside.stderr + unknown.stderr
        assert "Inner" not in target_groups(env)
