"""The Graph surface group and manager sync need, over HTTPS (issue 13, part 3): group writes
and bulk `members@odata.bind`, Microsoft 365 and dynamic groups, the `manager` relationship
(`$ref`, GET, `$expand`, delta), extension attributes, and throttling costs and headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tenant_sync_sandbox.default_seed import default_seed
from tests.support.sandbox import (
    SandboxHandle,
    client_of,
    error_of,
    ids,
    make_seed,
    make_tenant,
    make_user,
    running_sandbox,
)

pytestmark = pytest.mark.integration

DOMAIN = "contoso.onmicrosoft.com"
EXT = "extension_0123456789abcdef0123456789abcdef_costCenter"
ANN = make_user("ann", DOMAIN, id="u-ann", department="Sales")
BOB = make_user("bob", DOMAIN, id="u-bob", department="Sales", manager="u-ann")
CYD = make_user("cyd", DOMAIN, id="u-cyd", department="Finance", **{EXT: "CC-7"})
SYNCED = make_user("old", DOMAIN, id="u-old", onPremisesSyncEnabled=True)
MANY = [make_user(f"m{i:02d}", DOMAIN, id=f"u-m{i:02d}", department="Bulk") for i in range(21)]
TENANT = make_tenant(
    DOMAIN,
    users=[ANN, BOB, CYD, SYNCED, *MANY],
    groups=[
        {"id": "g-static", "displayName": "Static", "members": ["u-ann"]},
        {
            "id": "g-sales",
            "displayName": "Sales (dynamic)",
            "groupTypes": ["DynamicMembership"],
            "membershipRule": 'user.department -eq "Sales"',
        },
        {"id": "g-team", "displayName": "Team", "groupTypes": ["Unified"], "members": ["u-cyd"]},
    ],
)
JSON = {"Content-Type": "application/json"}
EVENTUAL = {"ConsistencyLevel": "eventual"}
SECURITY_GROUP = {
    "displayName": "Engineers",
    "mailEnabled": False,
    "mailNickname": "engineers",
    "securityEnabled": True,
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()
    return sb.graph(*client_of(TENANT))


def bind(*object_ids: str) -> list[str]:
    return [f"https://graph.microsoft.com/v1.0/directoryObjects/{oid}" for oid in object_ids]


def delta_round(graph: httpx.Client, url: str) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        body = graph.get(url).json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


# ---------------------------------------------------------------- group writes


@pytest.mark.parametrize("missing", sorted(SECURITY_GROUP))
def test_create_group_requires_what_graph_requires(graph: httpx.Client, missing: str) -> None:
    body = {k: v for k, v in SECURITY_GROUP.items() if k != missing}
    resp = graph.post("/groups", json=body)
    assert error_of(resp)["message"] == (
        f"Invalid value specified for property '{missing}' of resource 'Group'."
    )


def test_create_security_group_with_members(graph: httpx.Client) -> None:
    created = graph.post(
        "/groups", json={**SECURITY_GROUP, "members@odata.bind": bind("u-ann", "u-bob")}
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert (group["securityEnabled"], group["mailEnabled"], group["groupTypes"]) == (
        True,
        False,
        [],
    )
    assert ids(graph.get(f"/groups/{group['id']}/members")) == ["u-ann", "u-bob"]

    too_many = graph.post(
        "/groups", json={**SECURITY_GROUP, "members@odata.bind": bind(*(u["id"] for u in MANY))}
    )
    assert error_of(too_many)["code"] == "Request_BadRequest"
    assert "at most 20" in error_of(too_many)["message"]
    unknown = graph.post("/groups", json={**SECURITY_GROUP, "members@odata.bind": bind("nobody")})
    assert error_of(unknown)["code"] == "Request_ResourceNotFound"
    mail_security = graph.post("/groups", json={**SECURITY_GROUP, "mailEnabled": True})
    assert "cannot be created" in error_of(mail_security)["message"]


def test_create_microsoft_365_and_dynamic_groups(graph: httpx.Client) -> None:
    team = graph.post(
        "/groups",
        json={
            "displayName": "Launch",
            "mailEnabled": True,
            "mailNickname": "launch",
            "securityEnabled": False,
            "groupTypes": ["Unified"],
        },
    ).json()
    assert team["mail"] == f"launch@{DOMAIN}"
    assert team["groupTypes"] == ["Unified"]
    dynamic = graph.post(
        "/groups",
        json={
            **SECURITY_GROUP,
            "groupTypes": ["DynamicMembership"],
            "membershipRule": '(user.department -eq "Finance") -or (user.userPrincipalName -startsWith "ann")',
            "membershipRuleProcessingState": "On",
        },
    )
    assert dynamic.status_code == 201, dynamic.text
    assert ids(graph.get(f"/groups/{dynamic.json()['id']}/members")) == ["u-ann", "u-cyd"]
    bad_rule = graph.post(
        "/groups",
        json={
            **SECURITY_GROUP,
            "groupTypes": ["DynamicMembership"],
            "membershipRule": "user.x -eq",
        },
    )
    assert "membershipRule" in error_of(bad_rule)["message"]


def test_patch_group_and_bulk_members(graph: httpx.Client) -> None:
    twenty = [u["id"] for u in MANY[:20]]
    resp = graph.patch(
        "/groups/g-static",
        json={"description": "Twenty more", "members@odata.bind": bind(*twenty)},
    )
    assert resp.status_code == 204, resp.text
    assert ids(graph.get("/groups/g-static/members?$top=999")) == sorted(["u-ann", *twenty])
    assert graph.get("/groups/g-static?$select=description").json()["description"] == "Twenty more"
    again = graph.patch("/groups/g-static", json={"members@odata.bind": bind("u-ann")})
    assert "already exist" in error_of(again)["message"]
    over = graph.patch(
        "/groups/g-static", json={"members@odata.bind": bind(*(u["id"] for u in MANY))}
    )
    assert "at most 20" in error_of(over)["message"]
    # One PATCH, one write: the bulk add is a single request against the write quota.
    assert resp.headers["x-ms-resource-unit"] == "1"


def test_unique_name_is_an_immutable_alternate_key_unique_per_tenant(graph: httpx.Client) -> None:
    keyed = {**SECURITY_GROUP, "uniqueName": "tenant-sync-0a1b2c3d-g1"}
    made = graph.post("/groups", json=keyed)
    assert made.status_code == 201, made.text
    gid = made.json()["id"]
    assert made.json()["uniqueName"] == "tenant-sync-0a1b2c3d-g1"
    # a second group with the same uniqueName is refused, whatever its name
    twin = graph.post("/groups", json={**keyed, "displayName": "Other", "mailNickname": "o"})
    assert twin.status_code == 400
    assert "same value for property uniqueName already exists" in twin.json()["error"]["message"]
    # read by its alternate key, and found by $filter
    by_key = graph.get("/groups(uniqueName='tenant-sync-0a1b2c3d-g1')?$select=id,uniqueName")
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["id"] == gid
    found = graph.get("/groups", params={"$filter": "uniqueName eq 'tenant-sync-0a1b2c3d-g1'"})
    assert [g["id"] for g in found.json()["value"]] == [gid]
    assert graph.get("/groups(uniqueName='nobody')").status_code == 404
    # immutable: a PATCH changing it is refused, the rest of the group can change
    changed = graph.patch(f"/groups/{gid}", json={"uniqueName": "another"})
    assert changed.status_code == 400
    assert "immutable" in changed.json()["error"]["message"]
    assert graph.patch(f"/groups/{gid}", json={"description": "x"}).status_code == 204
    assert (
        graph.get(f"/groups/{gid}?$select=uniqueName").json()["uniqueName"] == keyed["uniqueName"]
    )


def test_a_deleted_group_cannot_be_restored_beside_the_new_holder_of_its_unique_name(
    graph: httpx.Client,
) -> None:
    """uniqueName is unique in the tenant: a group made while the first one is in deletedItems
    takes the name, and the first one's restore is then refused (as for a user whose UPN was
    taken), never two live groups with one uniqueName."""
    keyed = {**SECURITY_GROUP, "uniqueName": "tenant-sync-0a1b2c3d-g2"}
    first = graph.post("/groups", json=keyed).json()["id"]
    assert graph.delete(f"/groups/{first}").status_code == 204
    again = graph.post("/groups", json=keyed)
    assert again.status_code == 201, again.text
    refused = graph.post(f"/directory/deletedItems/{first}/restore")
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "Request_BadRequest"
    assert "same value for property uniqueName already exists" in error_of(refused)["message"]
    found = graph.get("/groups", params={"$filter": "uniqueName eq 'tenant-sync-0a1b2c3d-g2'"})
    assert [g["id"] for g in found.json()["value"]] == [again.json()["id"]]
    # Once the new holder is gone too, the first one can come back.
    assert graph.delete(f"/groups/{again.json()['id']}").status_code == 204
    assert graph.post(f"/directory/deletedItems/{first}/restore").status_code == 200


@pytest.mark.parametrize(
    "nickname",
    [
        "G Chain",
        "a@x",
        "a(b)",
        "a\\b",
        "a[b]",
        'a"b',
        "a;b",
        "a:b",
        "a<b>",
        "a,b",
        "x" * 65,
        "Grüße",
    ],
)
def test_a_mail_nickname_graph_refuses_is_refused(graph: httpx.Client, nickname: str) -> None:
    """Graph's group mailNickname: at most 64 ASCII characters, none of @ ( ) \\ [ ] " ; : < > ,
    or a space (400, on create and on update)."""
    made = graph.post("/groups", json={**SECURITY_GROUP, "mailNickname": nickname})
    assert error_of(made)["message"] == (
        "Invalid value specified for property 'mailNickname' of resource 'Group'."
    )
    changed = graph.patch("/groups/g-static", json={"mailNickname": nickname})
    assert changed.status_code == 400
    ok = graph.post("/groups", json={**SECURITY_GROUP, "mailNickname": "T1GChain-x.y_z" + "x" * 50})
    assert ok.status_code == 201, ok.text


def test_a_reference_in_a_user_body_is_refused(graph: httpx.Client) -> None:
    body = {
        "accountEnabled": True,
        "displayName": "Dee",
        "mailNickname": "dee",
        "userPrincipalName": f"dee@{DOMAIN}",
        "passwordProfile": {"password": "Pa55w.rd-long-enough"},
        "manager@odata.bind": "x",
    }
    assert graph.post("/users", json=body).status_code == 400
    assert graph.get(f"/users/dee@{DOMAIN}").status_code == 404
    assert graph.patch("/users/u-ann", json={"manager@odata.bind": "x"}).status_code == 400


def test_delete_and_restore_group(graph: httpx.Client) -> None:
    assert graph.delete("/groups/g-static").status_code == 204
    assert graph.get("/groups/g-static").status_code == 404
    assert ids(graph.get("/directory/deletedItems/microsoft.graph.group")) == ["g-static"]
    restored = graph.post("/directory/deletedItems/g-static/restore")
    assert restored.status_code == 200
    assert ids(graph.get("/groups/g-static/members")) == ["u-ann"]


def test_dynamic_group_members_follow_the_rule(graph: httpx.Client) -> None:
    assert ids(graph.get("/groups/g-sales/members")) == ["u-ann", "u-bob"]
    _, link = delta_round(graph, "/groups/delta?$select=displayName,members")
    graph.patch("/users/u-cyd", json={"department": "Sales"})
    graph.patch("/users/u-bob", json={"department": "Legal"})
    assert ids(graph.get("/groups/g-sales/members")) == ["u-ann", "u-cyd"]
    items, _ = delta_round(graph, link)
    sales = next(i for i in items if i["id"] == "g-sales")
    assert sorted((m["id"], "@removed" in m) for m in sales["members@delta"]) == [
        ("u-bob", True),
        ("u-cyd", False),
    ]
    refused = graph.post("/groups/g-sales/members/$ref", json={"@odata.id": bind("u-m00")[0]})
    assert "dynamic membership" in error_of(refused)["message"]
    assert graph.delete("/groups/g-sales/members/u-ann/$ref").status_code == 400


# ---------------------------------------------------------------- manager


def test_manager_ref_get_and_direct_reports(graph: httpx.Client) -> None:
    got = graph.get("/users/u-bob/manager")
    assert got.status_code == 200
    assert got.json()["@odata.type"] == "#microsoft.graph.user"
    assert got.json()["id"] == "u-ann"
    assert got.json()["userPrincipalName"] == f"ann@{DOMAIN}"
    assert (
        graph.get("/users/u-bob/manager/$ref")
        .json()["@odata.id"]
        .endswith("/directoryObjects/u-ann/Microsoft.DirectoryServices.User")
    )
    none = graph.get("/users/u-ann/manager")
    assert error_of(none)["code"] == "Request_ResourceNotFound"

    ref = {"@odata.id": "https://graph.microsoft.com/v1.0/users/u-ann"}
    assert graph.put("/users/u-cyd/manager/$ref", json=ref).status_code == 204
    assert ids(graph.get("/users/u-ann/directReports")) == ["u-bob", "u-cyd"]
    assert graph.delete("/users/u-bob/manager/$ref").status_code == 204
    assert graph.get("/users/u-bob/manager").status_code == 404
    assert graph.delete("/users/u-bob/manager/$ref").status_code == 404
    assert "own manager" in error_of(graph.put("/users/u-ann/manager/$ref", json=ref))["message"]
    group = {"@odata.id": "https://graph.microsoft.com/v1.0/groups/g-static"}
    assert error_of(graph.put("/users/u-ann/manager/$ref", json=group))["code"] == (
        "Request_BadRequest"
    )
    missing = {"@odata.id": "https://graph.microsoft.com/v1.0/users/nobody"}
    assert graph.put("/users/u-ann/manager/$ref", json=missing).status_code == 404


def test_expand_manager(graph: httpx.Client) -> None:
    one = graph.get("/users/u-bob", params={"$select": "displayName", "$expand": "manager"}).json()
    assert one["manager"]["id"] == "u-ann"
    assert one["manager"]["displayName"] == "Ann"
    listed = graph.get(
        "/users",
        params={
            "$select": "id",
            "$expand": "manager($select=id,department)",
            "$filter": "id in ('u-ann', 'u-bob')",
        },
    ).json()["value"]
    assert listed == [
        {"id": "u-ann"},  # no manager: no manager property
        {
            "id": "u-bob",
            "manager": {
                "@odata.type": "#microsoft.graph.user",
                "id": "u-ann",
                "department": "Sales",
            },
        },
    ]
    refused = graph.get("/users/u-bob", params={"$expand": "directReports"})
    assert error_of(refused)["code"] == "Request_UnsupportedQuery"


@pytest.mark.parametrize("query", ["$select=displayName,manager", "$expand=manager"])
def test_manager_in_users_delta(graph: httpx.Client, query: str) -> None:
    items, link = delta_round(graph, f"/users/delta?{query}")
    bob = next(i for i in items if i["id"] == "u-bob")
    assert bob["manager@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": "u-ann"}]
    assert "manager@delta" not in next(i for i in items if i["id"] == "u-ann")

    graph.put(
        "/users/u-cyd/manager/$ref",
        json={"@odata.id": "https://graph.microsoft.com/v1.0/users/u-bob"},
    )
    graph.delete("/users/u-bob/manager/$ref")
    changes, _ = delta_round(graph, link)
    got = {i["id"]: i for i in changes}
    assert set(got) == {"u-bob", "u-cyd"}
    assert got["u-cyd"]["manager@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-bob"}
    ]
    assert got["u-bob"]["manager@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-ann", "@removed": {"reason": "deleted"}}
    ]


# ---------------------------------------------------------------- extension attributes


def test_on_premises_extension_attributes(graph: httpx.Client) -> None:
    shown = graph.get("/users/u-ann?$select=onPremisesExtensionAttributes").json()
    assert shown["onPremisesExtensionAttributes"] == {
        f"extensionAttribute{i}": None for i in range(1, 16)
    }
    patch = {
        "onPremisesExtensionAttributes": {"extensionAttribute1": "E1", "extensionAttribute2": "x"}
    }
    assert graph.patch("/users/u-ann", json=patch).status_code == 204
    graph.patch(
        "/users/u-ann", json={"onPremisesExtensionAttributes": {"extensionAttribute2": None}}
    )
    attrs = graph.get("/users/u-ann?$select=onPremisesExtensionAttributes").json()
    assert attrs["onPremisesExtensionAttributes"]["extensionAttribute1"] == "E1"  # kept
    assert attrs["onPremisesExtensionAttributes"]["extensionAttribute2"] is None

    clause = {"$filter": "onPremisesExtensionAttributes/extensionAttribute1 eq 'E1'"}
    refused = graph.get("/users", params=clause)
    assert error_of(refused)["code"] == "Request_UnsupportedQuery"
    assert "ConsistencyLevel:eventual" in error_of(refused)["message"]
    found = graph.get("/users", params={**clause, "$count": "true"}, headers=EVENTUAL)
    assert ids(found) == ["u-ann"]
    synced = graph.patch("/users/u-old", json=patch)
    assert "on-premises mastered" in error_of(synced)["message"]


def test_directory_extension_properties(graph: httpx.Client) -> None:
    both = graph.get(
        "/users", params={"$select": f"id,{EXT}", "$filter": "id in ('u-ann', 'u-cyd')"}
    )
    assert both.json()["value"] == [{"id": "u-ann"}, {"id": "u-cyd", EXT: "CC-7"}]  # unset: absent
    assert ids(graph.get("/users", params={"$filter": f"{EXT} eq 'CC-7'"})) == ["u-cyd"]
    _, link = delta_round(graph, f"/users/delta?$select=displayName,{EXT}")
    assert graph.patch("/users/u-ann", json={EXT: "CC-9"}).status_code == 204
    graph.patch("/users/u-bob", json={"jobTitle": "not selected"})
    changes, _ = delta_round(graph, link)
    assert changes == [{"id": "u-ann", "displayName": "Ann", EXT: "CC-9"}]
    assert ids(graph.get("/users", params={"$filter": f"startswith({EXT}, 'CC-')"})) == [
        "u-ann",
        "u-cyd",
    ]


# ---------------------------------------------------------------- throttling costs and headers


@pytest.mark.parametrize(
    ("url", "cost"),
    [
        ("/users", "2"),
        ("/users?$select=id", "1"),
        ("/users?$top=5", "1"),
        ("/users/u-bob?$expand=manager", "2"),
        ("/groups/g-static/members", "3"),
        ("/groups/g-static/members?$select=id", "2"),
        ("/groups/g-static/transitiveMembers", "5"),
        ("/groups/g-static/transitiveMembers/graph.user?$select=id&$top=5", "3"),
        ("/users/u-ann/memberOf", "2"),
        ("/users/u-bob/manager", "1"),
    ],
)
def test_resource_unit_costs(graph: httpx.Client, url: str, cost: str) -> None:
    resp = graph.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-ms-resource-unit"] == cost


def test_write_quota_headers(graph: httpx.Client, sb: SandboxHandle) -> None:
    sb.set_limits(write_per_150s=5, window_scale=0.01)
    ref = {"@odata.id": "https://graph.microsoft.com/v1.0/users/u-ann"}
    answers = [graph.put("/users/u-cyd/manager/$ref", json=ref) for _ in range(6)]
    assert [a.status_code for a in answers] == [204] * 5 + [429]
    assert "x-ms-throttle-limit-percentage" not in answers[3].headers  # 4 of 5: at 0.8
    assert answers[4].headers["x-ms-throttle-limit-percentage"] == "1.00"
    refused = answers[5]
    assert refused.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert refused.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/Write/{TENANT['clients'][0]['client_id']}/{TENANT['tenant_id']}"
    )
    assert int(refused.headers["Retry-After"]) >= 1


# ---------------------------------------------------------------- the default seed


def test_default_seed_has_the_group_kinds_and_managers(tmp_path: Any) -> None:
    seed = default_seed()
    contoso = seed["tenants"][0]
    with running_sandbox(seed, tmp_path) as sb:
        graph = sb.graph(contoso["tenant_id"], contoso["clients"][0]["client_id"], "contoso-secret")
        groups = graph.get(
            "/groups", params={"$select": "displayName,groupTypes,membershipRule"}
        ).json()["value"]
        kinds = {g["displayName"]: g["groupTypes"] for g in groups}
        assert kinds["Contoso Team"] == ["Unified"]
        assert kinds["Sales (dynamic)"] == ["DynamicMembership"]
        dynamic = next(g for g in groups if g["groupTypes"] == ["DynamicMembership"])
        members = graph.get(
            f"/groups/{dynamic['id']}/members", params={"$select": "department"}
        ).json()
        assert {m["department"] for m in members["value"]} == {"Sales"}
        bob = contoso["users"][1]
        assert graph.get(f"/users/{bob['id']}/manager").json()["id"] == contoso["users"][0]["id"]
