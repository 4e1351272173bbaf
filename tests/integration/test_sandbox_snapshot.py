"""`GET /_sandbox/snapshot`: a sandbox started from it serves the directory as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenant_sync_sandbox.default_seed import default_seed
from tests.support.sandbox import running_sandbox
from tests.support.world import GROUP, SOURCE, build_world_seed

pytestmark = pytest.mark.integration


def test_a_snapshot_restarts_the_directory_as_it_was_changed(tmp_path: Path) -> None:
    seed = build_world_seed(users=8)
    with running_sandbox(seed, tmp_path / "first") as sandbox:
        graph = sandbox.graph(SOURCE.tenant_id, SOURCE.client_id, SOURCE.secret)
        group = seed["tenants"][0]["groups"][0]["members"]
        renamed, deleted, unassigned = group[0], group[1], group[2]
        assert graph.patch(f"/users/{renamed}", json={"displayName": "Renamed"}).is_success
        assert graph.delete(f"/users/{deleted}").is_success
        assert graph.delete(f"/groups/{GROUP}/members/{unassigned}/$ref").is_success
        added = graph.post(
            "/users",
            json={
                "accountEnabled": True,
                "displayName": "Newcomer",
                "mailNickname": "newcomer",
                "userPrincipalName": f"newcomer@{SOURCE.domain}",
                "passwordProfile": {"password": "x-Y-z-123456"},
            },
        ).json()["id"]
        before_users = sandbox.users(SOURCE.tenant_id)
        before_groups = sandbox.groups(SOURCE.tenant_id)
        snapshot = sandbox.admin("GET", "/_sandbox/snapshot").json()

    with running_sandbox(snapshot, tmp_path / "second") as again:
        after_users = again.users(SOURCE.tenant_id)
        assert after_users == before_users
        assert again.groups(SOURCE.tenant_id) == before_groups
        ids = {u["id"] for u in after_users}
        assert added in ids
        assert renamed in ids
        assert deleted not in ids
        graph = again.graph(SOURCE.tenant_id, SOURCE.client_id, SOURCE.secret)
        members = {m["id"] for m in graph.get(f"/groups/{GROUP}/members").json()["value"]}
        assert unassigned not in members
        assert renamed in members


def test_managers_and_group_kinds_survive_a_snapshot(tmp_path: Path) -> None:
    seed = default_seed()
    contoso = seed["tenants"][0]["tenant_id"]
    with running_sandbox(seed, tmp_path / "first") as sandbox:
        before_users = sandbox.users(contoso)
        before_groups = sandbox.groups(contoso)
        snapshot = sandbox.admin("GET", "/_sandbox/snapshot").json()
    assert any(u.get("manager") for u in before_users)
    with running_sandbox(snapshot, tmp_path / "second") as again:
        assert again.users(contoso) == before_users
        assert again.groups(contoso) == before_groups
