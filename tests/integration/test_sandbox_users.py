"""Users and groups on the sandbox over HTTPS: CRUD, validation, $filter, paging, recycle bin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.sandbox import (
    SandboxHandle,
    client_of,
    make_seed,
    make_tenant,
    make_user,
    running_sandbox,
)

pytestmark = pytest.mark.integration

DOMAIN = "contoso.onmicrosoft.com"
ANN = make_user("ann", DOMAIN, department="Sales", displayName="Ann O'Neil")
BOB = make_user("bob", DOMAIN, department="Sales", accountEnabled=False)
GUEST = make_user(
    "zed_fabrikam.com#EXT#",
    DOMAIN,
    userType="Guest",
    mail="zed@fabrikam.com",
    otherMails=["zed@fabrikam.com"],
    creationType="Invitation",
)
MANY = [make_user(f"user{i:03d}", DOMAIN, department="Bulk") for i in range(25)]
TENANT = make_tenant(DOMAIN, users=[ANN, BOB, GUEST, *MANY])
GROUP_IDS = ("g-outer", "g-inner", "g-loop")
TENANT["groups"] = [
    {"id": "g-outer", "displayName": "Outer", "members": [ANN["id"], "g-inner"]},
    {"id": "g-inner", "displayName": "Inner", "members": [BOB["id"], "g-loop"]},
    {"id": "g-loop", "displayName": "Loop", "members": ["g-outer", ANN["id"]]},
]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()
    return sb.graph(*client_of(TENANT))


def error_of(resp: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = resp.json()["error"]
    return error


def all_pages(graph: httpx.Client, url: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while url:
        resp = graph.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["value"]
        pages += 1
        url = body.get("@odata.nextLink", "")
    return items, pages


def test_list_default_properties(graph: httpx.Client) -> None:
    body = graph.get("/users", params={"$filter": f"id eq '{ANN['id']}'"}).json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#users")
    assert set(body["value"][0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }


def test_select_and_unknown_select(graph: httpx.Client) -> None:
    resp = graph.get(f"/users/{ANN['id']}", params={"$select": "department,accountEnabled"})
    assert resp.json()["department"] == "Sales"
    assert set(resp.json()) == {"@odata.context", "id", "department", "accountEnabled"}
    resp = graph.get("/users", params={"$select": "displayName,nonsense"})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"


def test_get_by_upn_and_missing(graph: httpx.Client) -> None:
    assert graph.get(f"/users/{ANN['userPrincipalName'].upper()}").json()["id"] == ANN["id"]
    guest_upn = quote(GUEST["userPrincipalName"], safe="@")  # '#' must travel as %23
    assert graph.get(f"/users/{guest_upn}").json()["id"] == GUEST["id"]
    resp = graph.get("/users/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404
    assert error_of(resp)["code"] == "Request_ResourceNotFound"
    assert "does not exist" in error_of(resp)["message"]
    assert resp.headers["request-id"] == error_of(resp)["innerError"]["request-id"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("displayName eq 'Ann O''Neil'", {"ann"}),
        ("displayName eq 'Ann O''Neil'' or displayName ne ''x'", set()),
        ("mail eq 'ANN@contoso.com'", {"ann"}),
        ("accountEnabled eq false", {"bob"}),
        ("startswith(userPrincipalName,'b')", {"bob"}),
        ("userType eq 'Guest'", {"zed"}),
        ("otherMails/any(x:x eq 'ZED@fabrikam.com')", {"zed"}),
        ("mail in ('bob@contoso.com', 'zed@fabrikam.com')", {"bob", "zed"}),
        ("department eq 'Sales' and (accountEnabled eq true or userType eq 'Guest')", {"ann"}),
    ],
)
def test_filter(graph: httpx.Client, expr: str, expected: set[str]) -> None:
    items, _ = all_pages(graph, f"/users?$filter={expr}&$select=userPrincipalName")
    assert {u["userPrincipalName"].split("@")[0][:3] for u in items} == expected


def test_unsupported_filter(graph: httpx.Client) -> None:
    resp = graph.get("/users", params={"$filter": "contains(displayName,'a')"})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_UnsupportedQuery"


def test_paging(graph: httpx.Client) -> None:
    items, pages = all_pages(graph, "/users?$top=10&$select=id")
    assert len(items) == 28
    assert pages == 3
    assert [u["id"] for u in items] == sorted(u["id"] for u in items)
    first = graph.get("/users", params={"$top": 10}).json()
    assert first["@odata.nextLink"].startswith(str(graph.base_url))
    assert "$skiptoken=" in first["@odata.nextLink"]
    filtered, pages = all_pages(graph, "/users?$top=7&$filter=department eq 'Bulk'")
    assert len(filtered) == 25
    assert pages == 4
    assert graph.get("/users", params={"$top": 1000}).status_code == 400


def test_create_user(graph: httpx.Client, sb: SandboxHandle) -> None:
    body = {
        "accountEnabled": True,
        "displayName": "Cyd",
        "mailNickname": "cyd",
        "userPrincipalName": f"cyd@{DOMAIN}",
        "passwordProfile": {"password": "P@ss-w0rd!", "forceChangePasswordNextSignIn": True},
        "department": "Ops",
        "businessPhones": ["+1 555 0100"],
    }
    resp = graph.post("/users", json=body)
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert len(user["id"]) == 36
    assert user["createdDateTime"].endswith("Z")
    assert user["creationType"] is None
    assert "P@ss-w0rd!" not in resp.text
    assert graph.get(f"/users/{user['id']}").json()["displayName"] == "Cyd"
    dump = {u["id"]: u for u in sb.users(TENANT["tenant_id"])}
    assert dump[user["id"]]["department"] == "Ops"

    dup = graph.post("/users", json={**body, "userPrincipalName": f"CYD@{DOMAIN}"})
    assert dup.status_code == 400
    assert error_of(dup)["message"] == (
        "Another object with the same value for property userPrincipalName already exists."
    )
    missing = graph.post("/users", json={"userPrincipalName": f"x@{DOMAIN}"})
    assert missing.status_code == 400
    assert error_of(missing)["code"] == "Request_BadRequest"


NEW_USER = {
    "accountEnabled": True,
    "displayName": "Eve",
    "mailNickname": "eve",
    "userPrincipalName": f"eve@{DOMAIN}",
    "passwordProfile": {"password": "P@ss-w0rd!"},
}


@pytest.mark.parametrize(
    "missing",
    ["accountEnabled", "displayName", "mailNickname", "passwordProfile", "userPrincipalName"],
)
def test_create_user_requires_what_graph_requires(
    graph: httpx.Client, sb: SandboxHandle, missing: str
) -> None:
    body = {k: v for k, v in NEW_USER.items() if k != missing}
    resp = graph.post("/users", json=body)
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"
    assert error_of(resp)["message"] == (
        f"Invalid value specified for property '{missing}' of resource 'User'."
    )
    assert all(u["userPrincipalName"] != f"eve@{DOMAIN}" for u in sb.users(TENANT["tenant_id"]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"passwordProfile": {"forceChangePasswordNextSignIn": True}}, "'passwordProfile'"),
        ({"passwordProfile": {"password": "short1!"}}, "password complexity requirements"),
        ({"passwordProfile": {"password": "alllowercaseletters"}}, "password complexity"),
        ({"mailNickname": "eve smith"}, "'mailNickname'"),
        ({"mailNickname": "eve@x"}, "'mailNickname'"),
        ({"userPrincipalName": "eve"}, "'userPrincipalName'"),
    ],
)
def test_create_user_checks_values(
    graph: httpx.Client, change: dict[str, Any], message: str
) -> None:
    resp = graph.post("/users", json={**NEW_USER, **change})
    assert resp.status_code == 400
    assert message in error_of(resp)["message"]


def test_created_user_has_its_upn_identity(graph: httpx.Client) -> None:
    created = graph.post("/users", json=NEW_USER).json()
    got = graph.get(f"/users/{created['id']}", params={"$select": "identities"}).json()
    assert got["identities"] == [
        {"signInType": "userPrincipalName", "issuer": DOMAIN, "issuerAssignedId": f"eve@{DOMAIN}"}
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"favoriteColour": "red"}, "Property 'favoriteColour' does not exist on type"),
        ({"createdDateTime": "2020-01-01T00:00:00Z"}, "is read-only"),
        ({"externalUserState": "Accepted"}, "is read-only"),
        ({"onPremisesSyncEnabled": True}, "is read-only"),
        ({"accountEnabled": "false"}, "Edm.Boolean"),
        ({"businessPhones": "+1 555"}, "Collection(Edm.String)"),
        ({"otherMails": None}, "cannot be null"),
    ],
)
def test_patch_validation(graph: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    resp = graph.patch(f"/users/{ANN['id']}", json=body)
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"
    assert fragment in error_of(resp)["message"]


def test_patch_user(graph: httpx.Client) -> None:
    resp = graph.patch(
        f"/users/{ANN['id']}",
        json={"jobTitle": "Lead", "department": None, "identities": [], "showInAddressList": True},
    )
    assert resp.status_code == 204
    assert resp.content == b""
    got = graph.get(f"/users/{ANN['id']}?$select=jobTitle,department").json()
    assert got["jobTitle"] == "Lead"
    assert got["department"] is None
    assert graph.patch("/users/nope", json={"jobTitle": "x"}).status_code == 404


def test_soft_delete_restore_and_purge(graph: httpx.Client, sb: SandboxHandle) -> None:
    tid = TENANT["tenant_id"]
    assert graph.delete(f"/users/{ANN['id']}").status_code == 204
    assert graph.get(f"/users/{ANN['id']}").status_code == 404
    listed = {u["id"] for u in all_pages(graph, "/users?$select=id")[0]}
    assert ANN["id"] not in listed
    members = graph.get("/groups/g-outer/members").json()["value"]
    assert ANN["id"] not in {m["id"] for m in members}

    deleted = graph.get("/directory/deletedItems/microsoft.graph.user").json()["value"]
    assert [d["id"] for d in deleted] == [ANN["id"]]
    assert deleted[0]["deletedDateTime"].endswith("Z")
    one = graph.get(f"/directory/deletedItems/{ANN['id']}").json()
    assert one["@odata.type"] == "#microsoft.graph.user"
    dump = {u["id"]: u for u in sb.users(tid, include_deleted=True)}
    assert dump[ANN["id"]]["deletedDateTime"] is not None
    assert ANN["id"] not in {u["id"] for u in sb.users(tid)}

    restored = graph.post(f"/directory/deletedItems/{ANN['id']}/restore")
    assert restored.status_code == 200
    assert restored.json()["id"] == ANN["id"]
    assert graph.get(f"/users/{ANN['id']}").status_code == 200
    members = graph.get("/groups/g-outer/members").json()["value"]
    assert ANN["id"] in {m["id"] for m in members}
    again = graph.post(f"/directory/deletedItems/{ANN['id']}/restore")
    assert again.status_code == 404

    graph.delete(f"/users/{BOB['id']}")
    assert graph.delete(f"/directory/deletedItems/{BOB['id']}").status_code == 204
    assert graph.get(f"/directory/deletedItems/{BOB['id']}").status_code == 404
    assert BOB["id"] not in {u["id"] for u in sb.users(tid, include_deleted=True)}


def test_members_and_refs(graph: httpx.Client) -> None:
    members = graph.get("/groups/g-inner/members").json()["value"]
    assert {(m["@odata.type"], m["id"]) for m in members} == {
        ("#microsoft.graph.user", BOB["id"]),
        ("#microsoft.graph.group", "g-loop"),
    }
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{GUEST['id']}"}
    assert graph.post("/groups/g-inner/members/$ref", json=ref).status_code == 204
    dup = graph.post("/groups/g-inner/members/$ref", json=ref)
    assert dup.status_code == 400
    assert (
        "already exist for the following modified properties: 'members'"
        in (error_of(dup)["message"])
    )
    assert graph.delete(f"/groups/g-inner/members/{GUEST['id']}/$ref").status_code == 204
    assert graph.delete(f"/groups/g-inner/members/{GUEST['id']}/$ref").status_code == 404
    paged, pages = all_pages(graph, "/groups/g-inner/members?$top=1&$select=id")
    assert len(paged) == 2
    assert pages == 2


def test_transitive_members_follow_nesting_without_cycles(graph: httpx.Client) -> None:
    items, _ = all_pages(graph, "/groups/g-outer/transitiveMembers?$select=id,displayName")
    ids = [m["id"] for m in items]
    assert sorted(ids) == sorted([ANN["id"], BOB["id"], "g-inner", "g-loop"])
    assert len(ids) == len(set(ids))


def test_groups_crud(graph: httpx.Client) -> None:
    resp = graph.post(
        "/groups",
        json={
            "displayName": "New",
            "mailNickname": "new",
            "securityEnabled": True,
            "mailEnabled": False,
            "members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{ANN['id']}"],
        },
    )
    assert resp.status_code == 201
    gid = resp.json()["id"]
    assert graph.get(f"/groups/{gid}").json()["displayName"] == "New"
    assert [m["id"] for m in graph.get(f"/groups/{gid}/members").json()["value"]] == [ANN["id"]]
    listed = graph.get("/groups", params={"$filter": "displayName eq 'new'"}).json()["value"]
    assert [g["id"] for g in listed] == [gid]
