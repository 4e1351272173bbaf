"""`check JOB` for a job with `groups.provision: true`: which roles let the target app write
groups (docs/groups.md)."""

from __future__ import annotations

import pytest

from worker.adapters.graph.checks import group_checks, group_write_check

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "roles",
    [
        {"Group.ReadWrite.All"},
        {"Directory.ReadWrite.All"},
        {"Group.Create", "GroupMember.ReadWrite.All"},
    ],
)
def test_these_roles_let_the_target_app_provision_groups(roles: set[str]) -> None:
    assert group_write_check(roles).status == "ok"


@pytest.mark.parametrize(
    "roles",
    [
        {"User.ReadWrite.All", "User.Invite.All", "Policy.Read.All"},
        {"Group.Create"},  # creates, but cannot fill the group
        {"GroupMember.ReadWrite.All", "Group.Read.All"},  # fills, but cannot create
    ],
)
def test_without_them_the_check_fails_naming_the_permission_and_how_to_grant_it(
    roles: set[str],
) -> None:
    check = group_write_check(roles)
    assert check.status == "fail"
    assert check.mark == "✗"
    assert "Group.ReadWrite.All" in check.name
    assert check.fix.startswith("add the application permission Group.ReadWrite.All")
    assert "grant admin consent" in check.fix


def test_a_token_without_roles_cannot_tell() -> None:
    assert group_write_check(None).status == "unknown"


@pytest.mark.parametrize(
    "roles",
    [{"Group.Create", "GroupMember.ReadWrite.All"}, {"Directory.ReadWrite.All"}],
)
def test_a_set_that_cannot_delete_groups_says_deletions_will_fail(roles: set[str]) -> None:
    """Graph deletes a group only with Group.ReadWrite.All (application permissions): with these
    sets creating and filling groups works, but every deletion of a provisioned group fails."""
    write, delete = group_checks(roles)
    assert write.status == "ok"
    assert delete.status == "fail"
    assert delete.name == "target: permission Group.ReadWrite.All, to delete provisioned groups"
    assert "fails in every cycle" in delete.detail
    assert delete.fix.startswith("add the application permission Group.ReadWrite.All")


def test_group_readwrite_all_needs_no_second_line() -> None:
    [write] = group_checks({"Group.ReadWrite.All", "User.ReadWrite.All"})
    assert write.status == "ok"
    assert [c.status for c in group_checks({"Group.Create"})] == ["fail"]
    assert [c.status for c in group_checks(None)] == ["unknown"]
