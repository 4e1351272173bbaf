"""`check JOB` for a job with `groups.provision: true`: which roles let the target app write
groups (docs/groups.md)."""

from __future__ import annotations

import pytest

from worker.adapters.graph.checks import group_write_check

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
