"""The sandbox's directory kept lean for large tenants (docs/performance.md, "The sandbox"):
a seed read once and kept packed for reset, one id per address or group membership without a
set, ids kept sorted for paging. What a client sees must not change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenant_sync_sandbox import generate as gen
from tenant_sync_sandbox.seed import validate_seed
from tenant_sync_sandbox.state import SandboxState, Tenant

pytestmark = pytest.mark.unit


def fresh_seed() -> dict[str, Any]:
    seed = gen.generate(gen.Shape(users=30, groups=3, guests=2, nested=1, dynamic_groups=1))
    seed["tenants"][0]["users"][0]["password"] = "Secret-123"  # kept apart from the user
    return validate_seed(json.loads(json.dumps(seed)), consume=True)


def test_reset_gives_back_the_seed_the_directory_was_built_from() -> None:
    seed = fresh_seed()
    ann = seed["tenants"][0]["users"][0]["id"]
    state = SandboxState(seed, owned=True)
    before = state.snapshot()
    source = state.tenants[gen.CONTOSO]
    first, second = sorted(source.active_user_ids)[:2]
    source.update_user(first, {"department": "Renamed", "userPrincipalName": "x@contoso.com"})
    source.soft_delete_user(second)
    source.remove_member(gen.SYNC_SCOPE, first)
    source.create_user({"userPrincipalName": "new@contoso.com", "displayName": "New"})
    assert state.snapshot() != before

    state.reset()
    assert state.snapshot() == before
    assert state.tenants[gen.CONTOSO].password_of(ann) == "Secret-123"
    # Twice: what load() kept is read again, not used up.
    state.reset()
    assert state.snapshot() == before


def test_writes_after_a_reset_are_undone_by_the_next_one() -> None:
    state = SandboxState(fresh_seed(), owned=True)
    before = state.snapshot()
    state.reset()  # before any write: what it keeps is the directory as seeded
    source = state.tenants[gen.CONTOSO]
    first, second, third = sorted(source.active_user_ids)[:3]
    source.set_manager(first, second)
    source.remove_manager(third)
    state.reset()
    assert state.snapshot() == before
    state.tenants[gen.CONTOSO].update_user(first, {"department": "Again"})
    state.reset()
    assert state.snapshot() == before


def test_a_parsed_seed_given_away_is_normalised_as_a_kept_one_is() -> None:
    raw = gen.generate(gen.Shape(users=20, groups=2, guests=2, unicode=True))
    raw["tenants"][0]["users"][1]["manager"] = None
    raw["tenants"][0]["users"][2]["id"] = raw["tenants"][0]["users"][2]["id"].upper()

    def text(seed: dict[str, Any]) -> str:
        for t in seed["tenants"]:
            for u in t["users"]:
                u.pop("createdDateTime")  # the second it was read
        return json.dumps(seed)  # key order included

    kept = text(validate_seed(json.loads(json.dumps(raw))))
    assert text(validate_seed(json.loads(json.dumps(raw)), consume=True)) == kept


def test_a_seed_passed_without_ownership_is_left_as_it_was() -> None:
    seed = fresh_seed()
    copy = json.loads(json.dumps(seed))
    state = SandboxState(seed)
    source = state.tenants[gen.CONTOSO]
    source.update_user(source.active_user_ids[0], {"department": "Renamed"})
    assert seed == copy


def tenant(*users: dict[str, Any]) -> Tenant:
    return Tenant(
        {
            "tenant_id": gen.CONTOSO,
            "domain": "contoso.com",
            "display_name": "Contoso",
            "clients": [],
            "users": list(users),
            "groups": [],
            "cross_tenant_access": {"partners": []},
        }
    )


def user(name: str, **props: Any) -> dict[str, Any]:
    return {"id": f"id-{name}", "userPrincipalName": f"{name}@contoso.com", **props}


def test_an_address_two_users_share_finds_both_until_one_lets_it_go() -> None:
    t = tenant(
        user("ann", mail="Team@Contoso.com"),
        user("bob", otherMails=["team@contoso.com"]),
        user("cyd", mail="cyd@contoso.com"),
    )
    found = [u["id"] for u in t.users_by_address("TEAM@contoso.com")]
    assert found == ["id-ann", "id-bob"]
    t.update_user("id-ann", {"mail": "ann@contoso.com"})
    assert [u["id"] for u in t.users_by_address("team@contoso.com")] == ["id-bob"]
    t.soft_delete_user("id-bob")
    assert t.users_by_address("team@contoso.com") == []
    assert t.upn_taken("CYD@contoso.com")
    assert not t.upn_taken("cyd@contoso.com", "id-cyd")


def test_a_member_of_two_groups_stays_in_the_other() -> None:
    t = tenant(user("ann"), user("bob"))
    one = t.create_group({"displayName": "One"}, ["id-ann", "id-bob"])
    two = t.create_group({"displayName": "Two"}, ["id-ann"])
    assert sorted(t.member_of.get("id-ann")) == sorted([one["id"], two["id"]])
    t.remove_member(one["id"], "id-ann")
    assert list(t.member_of.get("id-ann")) == [two["id"]]
    assert t.effective_members(one["id"]) == ["id-bob"]
    t.soft_delete_group(two["id"])
    t.purge(two["id"])
    assert list(t.member_of.get("id-ann")) == []
    assert list(t.member_of.get("id-bob")) == [one["id"]]


def test_users_page_in_id_order_whatever_order_they_came_in() -> None:
    t = tenant(user("m"), user("c"), user("x"))
    t.create_user({"userPrincipalName": "new@contoso.com"})
    ids = [u["id"] for u in t.active_users_after(None)]
    assert ids == sorted(ids)
    assert [u["id"] for u in t.active_users_after("id-c")] == [i for i in ids if i > "id-c"]
    t.soft_delete_user("id-m")
    assert "id-m" not in [u["id"] for u in t.active_users_after(None)]
