"""Extension attributes end to end: a scoping filter on extensionAttribute1, an extension attribute
and a directory extension mapped into the target, changes flowing in incremental cycles, read
back over HTTPS as Graph shows them (and once through Microsoft's Graph SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

from tests.conftest import SyncEnv, sync_world
from tests.support.sdk import SdkClient
from tests.support.world import TARGET, build_world_seed

pytestmark = pytest.mark.integration

COST_CENTER = "extension_0123456789abcdef0123456789abcdef_costCenter"
BADGE = "extension_fedcba9876543210fedcba9876543210_badge"
EXT = "onPremisesExtensionAttributes"
SYNCED = (0, 2, 3, 4, 5)  # source members with extensionAttribute1 = Sync (all in the group)

JOB = {
    "scope": {
        "users": "all",
        "filters": [[{"attribute": "extensionAttribute1", "operator": "EQUALS", "value": "Sync"}]],
    },
    "mappings": [
        {"target": "displayName", "source": "displayName"},
        {"target": "mail", "source": "mail"},
        {
            "target": "onPremisesExtensionAttributes.extensionAttribute5",
            "source": "onPremisesExtensionAttributes.extensionAttribute2",
        },
        {
            "target": "extensionAttribute6",
            "expression": f'Join("/", [extensionAttribute2], [{COST_CENTER}])',
        },
        {"target": "department", "source": COST_CENTER},
        {"target": BADGE, "source": "employeeId"},
    ],
}


def seed() -> dict[str, Any]:
    world = build_world_seed(users=8)
    for i, user in enumerate(world["tenants"][0]["users"][:8]):
        user[EXT] = {
            "extensionAttribute1": "Sync" if i in SYNCED else "Other",
            "extensionAttribute2": f"E2-{i}",
        }
        user[COST_CENTER] = f"CC-{i}"
    return world


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SyncEnv]:
    with sync_world(tmp_path, seed(), JOB) as world:
        yield world


def target_by_mail(env: SyncEnv) -> dict[str, dict[str, Any]]:
    """The target's users as Graph shows them, by mail (read over HTTPS by the target's app)."""
    graph = env.sandbox.graph(TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    select = f"id,mail,department,{EXT},{BADGE}"
    users = graph.get("/users", params={"$select": select, "$top": "999"}).json()["value"]
    return {u["mail"]: u for u in users if u.get("mail")}


def test_extension_attributes_scope_map_and_flow(env: SyncEnv) -> None:
    source_users = env.seed["tenants"][0]["users"]
    first = env.run_json("--full")
    assert first["counts"]["failure"] == 0
    target = target_by_mail(env)
    # user 1 has no mail and is not invited; users 6 and 7 are filtered out; user 0 matched.
    in_scope = {f"user{i}@contoso.com" for i in SYNCED}
    assert set(target) == in_scope
    for i in SYNCED:
        user = target[f"user{i}@contoso.com"]
        attributes = user[EXT]
        assert attributes["extensionAttribute5"] == f"E2-{i}"
        assert attributes["extensionAttribute6"] == f"E2-{i}/CC-{i}"
        assert attributes["extensionAttribute1"] is None  # not mapped: not written
        assert user["department"] == f"CC-{i}"
        assert user[BADGE] == f"E{i:04d}"

    writes = env.writes()
    assert sum(env.run_json()["counts"].values()) == 0
    assert env.writes() == writes, "an unchanged source wrote to the target"

    graph = env.source()
    ids = [u["id"] for u in source_users]
    # a change of a mapped extension attribute and of a directory extension...
    graph.patch(
        f"/users/{ids[2]}", json={EXT: {"extensionAttribute2": "E2-new"}}
    ).raise_for_status()
    graph.patch(f"/users/{ids[3]}", json={COST_CENTER: "CC-moved"}).raise_for_status()
    # ...one user filtered out, another filtered in.
    graph.patch(f"/users/{ids[4]}", json={EXT: {"extensionAttribute1": "Left"}}).raise_for_status()
    graph.patch(f"/users/{ids[6]}", json={EXT: {"extensionAttribute1": "Sync"}}).raise_for_status()

    changed = env.run_json()
    assert changed["mode"] == "incremental"
    counts = changed["counts"]
    assert (counts["create"], counts["update"], counts["delete"], counts["failure"]) == (
        1,
        2,
        1,
        0,
    )
    target = target_by_mail(env)
    assert set(target) == in_scope - {"user4@contoso.com"} | {"user6@contoso.com"}
    two = target["user2@contoso.com"][EXT]
    assert (two["extensionAttribute5"], two["extensionAttribute6"]) == ("E2-new", "E2-new/CC-2")
    three = target["user3@contoso.com"]
    assert three["department"] == "CC-moved"
    assert three[EXT]["extensionAttribute6"] == "E2-3/CC-moved"
    assert three[EXT]["extensionAttribute5"] == "E2-3"  # kept: Graph merges a partial update
    assert target["user6@contoso.com"][EXT]["extensionAttribute5"] == "E2-6"

    # Microsoft's SDK reads what a user of the target tenant would see.
    sdk = SdkClient.connect(env.sandbox, TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    try:
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["department", EXT, BADGE]
        )
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        conf: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
        got = sdk.run(sdk.graph.users.by_user_id(three["id"]).get(conf))
    finally:
        sdk.close()
    assert got is not None
    assert got.department == "CC-moved"
    assert got.on_premises_extension_attributes is not None
    assert got.on_premises_extension_attributes.extension_attribute5 == "E2-3"
    assert got.on_premises_extension_attributes.extension_attribute6 == "E2-3/CC-moved"
    assert got.additional_data[BADGE] == "E0003"
