"""Delta query on the sandbox over HTTPS: users and groups rounds, token expiry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
USERS = [make_user(f"u{i:02d}", DOMAIN, department="Sales", id=f"u{i:02d}") for i in range(12)]
TENANT = make_tenant(
    DOMAIN,
    users=USERS,
    groups=[
        {"id": "g1", "displayName": "One", "members": ["u00", "u01"]},
        {"id": "g2", "displayName": "Two", "members": ["u02"]},
        {"id": "g3", "displayName": "Other", "members": ["u03"]},
    ],
)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()
    return sb.graph(*client_of(TENANT))


def run_round(graph: httpx.Client, url: str) -> tuple[list[dict[str, Any]], str, int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        resp = graph.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_users_delta_rounds(graph: httpx.Client) -> None:
    items, link, pages = run_round(graph, "/users/delta?$select=displayName,department,mail&$top=5")
    assert pages == 3
    assert len(items) == 12
    assert link.startswith(f"{str(graph.base_url).rstrip('/')}/users/delta?$deltatoken=")
    assert items[0] == {
        "id": "u00",
        "displayName": "U00",
        "department": "Sales",
        "mail": "u00@contoso.com",
    }

    graph.patch("/users/u01", json={"department": None})
    graph.patch("/users/u02", json={"jobTitle": "Not selected"})
    graph.delete("/users/u03")
    graph.delete("/users/u04")
    graph.delete("/directory/deletedItems/u04")
    graph.delete("/users/u05")
    graph.post("/directory/deletedItems/u05/restore")
    created = graph.post(
        "/users",
        json={
            "accountEnabled": True,
            "displayName": "New",
            "mailNickname": "new",
            "userPrincipalName": f"new@{DOMAIN}",
            "passwordProfile": {"password": "Sandbox-Pass-1!"},
        },
    ).json()

    items, link2, _ = run_round(graph, link)
    got = {i["id"]: i for i in items}
    assert set(got) == {"u01", "u03", "u04", "u05", created["id"]}
    assert got["u01"] == {
        "id": "u01",
        "displayName": "U01",
        "department": None,
        "mail": "u01@contoso.com",
    }
    assert got["u03"] == {"id": "u03", "@removed": {"reason": "changed"}}
    assert got["u04"] == {"id": "u04", "@removed": {"reason": "deleted"}}
    assert got["u05"]["displayName"] == "U05"
    assert "@removed" not in got["u05"]
    assert got[created["id"]] == {"id": created["id"], "displayName": "New"}

    # Nothing changed since: an empty round; the same link replays the same answer.
    assert run_round(graph, link2)[0] == []
    replay, _, _ = run_round(graph, link)
    assert {i["id"] for i in replay} == set(got)


def test_change_while_paging_is_not_lost(graph: httpx.Client) -> None:
    first = graph.get("/users/delta?$select=displayName&$top=4").json()
    graph.patch("/users/u00", json={"displayName": "Changed mid-round"})
    rest, link, _ = run_round(graph, first["@odata.nextLink"])
    assert len(first["value"]) + len(rest) == 12
    items, _, _ = run_round(graph, link)
    assert {"id": "u00", "displayName": "Changed mid-round"} in items


def test_groups_delta_rounds(graph: httpx.Client) -> None:
    url = "/groups/delta?$select=members&$filter=id eq 'g1' or id eq 'g2'"
    items, link, _ = run_round(graph, url)
    assert items == [
        {
            "id": "g1",
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": "u00"},
                {"@odata.type": "#microsoft.graph.user", "id": "u01"},
            ],
        },
        {"id": "g2", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u02"}]},
    ]
    ref = {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/u05"}
    assert graph.post("/groups/g1/members/$ref", json=ref).status_code == 204
    assert graph.delete("/groups/g1/members/u00/$ref").status_code == 204
    assert graph.post("/groups/g3/members/$ref", json=ref).status_code == 204  # not filtered in
    graph.delete("/users/u02")

    items, link, _ = run_round(graph, link)
    assert items == [
        {
            "id": "g1",
            "members@delta": [
                {
                    "@odata.type": "#microsoft.graph.user",
                    "id": "u00",
                    "@removed": {"reason": "deleted"},
                },
                {"@odata.type": "#microsoft.graph.user", "id": "u05"},
            ],
        },
        {
            "id": "g2",
            "members@delta": [
                {
                    "@odata.type": "#microsoft.graph.user",
                    "id": "u02",
                    "@removed": {"reason": "deleted"},
                }
            ],
        },
    ]
    graph.post("/directory/deletedItems/u02/restore")
    items, _, _ = run_round(graph, link)
    assert items == [
        {"id": "g2", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u02"}]}
    ]


def test_expired_delta_token_is_410(graph: httpx.Client, sb: SandboxHandle) -> None:
    _, link, _ = run_round(graph, "/users/delta?$select=displayName")
    assert graph.get(link).status_code == 200
    sb.admin("POST", "/_sandbox/delta-tokens/age", json={"seconds": 8 * 24 * 3600})
    resp = graph.get(link)
    assert resp.status_code == 410
    assert resp.json()["error"]["code"] == "syncStateNotFound"
    fresh = resp.headers["Location"]
    assert fresh.startswith(f"{sb.url}/v1.0/users/delta")
    items, new_link, _ = run_round(graph, fresh)
    assert len(items) == 12
    assert set(items[0]) == {"id", "displayName"}
    assert graph.get(new_link).status_code == 200  # tokens issued after ageing are fresh


def test_token_from_another_tenant_is_rejected(sb: SandboxHandle, tmp_path: Any) -> None:
    other = make_tenant("other.onmicrosoft.com", users=[make_user("x", "other.onmicrosoft.com")])
    with running_sandbox(make_seed(TENANT, other), tmp_path) as two:
        mine = two.graph(*client_of(TENANT))
        theirs = two.graph(*client_of(other))
        _, link, _ = run_round(mine, "/users/delta")
        assert theirs.get(link).status_code == 400
