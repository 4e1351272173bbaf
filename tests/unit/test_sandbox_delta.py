"""Delta rounds of the sandbox, driven in-process through its Graph pipeline (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_sync_sandbox.delta import DeltaToken
from tenant_sync_sandbox.graph import GraphApi
from tenant_sync_sandbox.router import GraphRequest, GraphResponse, parse_query
from tenant_sync_sandbox.seed import validate_seed
from tenant_sync_sandbox.state import SandboxState
from tenant_sync_sandbox.tokens import TokenError, decode, encode

pytestmark = pytest.mark.unit

BASE = "https://sandbox.test"
TID = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
CID = "client-1"


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def gid(n: int) -> str:
    return f"00000000-0000-4000-9000-{n:012d}"


def seed(n_users: int = 5) -> dict[str, Any]:
    def members(*ns: int) -> list[str]:
        return [uid(n) for n in ns if n <= n_users]

    users = [
        {
            "id": uid(i),
            "userPrincipalName": f"u{i}@contoso.onmicrosoft.com",
            "displayName": f"User {i}",
            "mail": f"u{i}@contoso.com",
            "department": "Sales",
        }
        for i in range(1, n_users + 1)
    ]
    return validate_seed(
        {
            "tenants": [
                {
                    "tenant_id": TID,
                    "domain": "contoso.onmicrosoft.com",
                    "clients": [{"client_id": CID, "client_secret": "s"}],
                    "users": users,
                    "groups": [
                        {"id": gid(100), "displayName": "G1", "members": members(1, 2)},
                        {"id": gid(101), "displayName": "G2", "members": members(3)},
                    ],
                },
                {
                    "tenant_id": OTHER,
                    "domain": "fabrikam.onmicrosoft.com",
                    "clients": [{"client_id": CID, "client_secret": "s"}],
                },
            ]
        }
    )


def new_user(nick: str, name: str) -> dict[str, Any]:
    """What POST /users requires (as Graph does)."""
    return {
        "accountEnabled": True,
        "displayName": name,
        "mailNickname": nick,
        "userPrincipalName": f"{nick}@contoso.onmicrosoft.com",
        "passwordProfile": {"password": "Sandbox-Pass-1!"},
    }


class Api:
    def __init__(self, n_users: int = 5) -> None:
        self.state = SandboxState(seed(n_users))
        self.graph = GraphApi(self.state)

    def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        tenant: str = TID,
        headers: dict[str, str] | None = None,
    ) -> GraphResponse:
        if url.startswith(BASE):
            url = url[len(BASE) + len("/v1.0") :]
        path, _, query = url.partition("?")
        req = GraphRequest(
            state=self.state,
            tenant=self.state.tenants[tenant],
            client_id=CID,
            method=method,
            path=path,
            query=parse_query(query),
            headers=headers or {},
            body=body,
            base_url=BASE,
            request_id="req",
        )
        return self.graph.execute(req, None)

    def ok(self, method: str, url: str, body: Any = None, **kw: Any) -> Any:
        resp = self.call(method, url, body, **kw)
        assert resp.status < 300, resp.body
        return resp.body

    def round(self, url: str, **kw: Any) -> tuple[list[dict[str, Any]], str, int]:
        """Follow nextLinks to the deltaLink: (all items, deltaLink, number of pages)."""
        items: list[dict[str, Any]] = []
        pages = 0
        while True:
            body = self.ok("GET", url, **kw)
            pages += 1
            items += body["value"]
            if "@odata.deltaLink" in body:
                return items, body["@odata.deltaLink"], pages
            url = body["@odata.nextLink"]


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items}


def test_tokens_round_trip_and_reject_garbage() -> None:
    assert decode(encode({"a": 1, "b": [None, "x"]})) == {"a": 1, "b": [None, "x"]}
    with pytest.raises(TokenError):
        decode("not base64 json!")
    with pytest.raises(TokenError):
        DeltaToken.decode(encode({"v": 1}))


def test_initial_round_pages_by_id_and_omits_nulls() -> None:
    api = Api(n_users=5)
    items, delta_link, pages = api.round("/users/delta?$select=displayName,jobTitle&$top=2")
    assert pages == 3
    assert [i["id"] for i in items] == [uid(i) for i in range(1, 6)]
    assert items[0] == {"id": uid(1), "displayName": "User 1"}  # jobTitle null: omitted
    assert "$deltatoken=" in delta_link
    assert delta_link.startswith(BASE + "/v1.0/users/delta?")


def test_prefer_maxpagesize() -> None:
    api = Api(n_users=5)
    body = api.ok("GET", "/users/delta", headers={"prefer": "odata.maxpagesize=4"})
    assert len(body["value"]) == 4
    assert "@odata.nextLink" in body


def test_default_select_and_unknown_select() -> None:
    api = Api(n_users=1)
    items, _, _ = api.round("/users/delta")
    assert set(items[0]) == {"id", "displayName", "mail", "userPrincipalName", "businessPhones"}
    resp = api.call("GET", "/users/delta?$select=nope")
    assert resp.status == 400
    assert resp.body["error"]["code"] == "Request_BadRequest"


def test_incremental_round_reports_each_kind_of_change() -> None:
    api = Api(n_users=6)
    _, link, _ = api.round("/users/delta?$select=displayName,department,jobTitle")
    api.ok("PATCH", f"/users/{uid(1)}", {"department": None, "jobTitle": "Boss"})
    api.ok("PATCH", f"/users/{uid(2)}", {"mobilePhone": "+1 555"})  # outside $select
    api.ok("DELETE", f"/users/{uid(3)}")
    api.ok("DELETE", f"/users/{uid(4)}")
    api.ok("DELETE", f"/directory/deletedItems/{uid(4)}")
    api.ok("DELETE", f"/users/{uid(5)}")
    api.ok("POST", f"/directory/deletedItems/{uid(5)}/restore")
    new = api.ok("POST", "/users", new_user("n", "N"))
    gone = api.ok("POST", "/users", new_user("g", "G"))
    api.ok("DELETE", f"/users/{gone['id']}")

    items, link2, _ = api.round(link)
    got = by_id(items)
    assert got[uid(1)] == {
        "id": uid(1),
        "displayName": "User 1",
        "department": None,  # changed to null: explicit
        "jobTitle": "Boss",
    }
    assert uid(2) not in got
    assert got[uid(3)] == {"id": uid(3), "@removed": {"reason": "changed"}}
    assert got[uid(4)] == {"id": uid(4), "@removed": {"reason": "deleted"}}
    assert got[uid(5)] == {"id": uid(5), "displayName": "User 5", "department": "Sales"}
    assert got[new["id"]] == {"id": new["id"], "displayName": "N"}
    assert got[gone["id"]] == {"id": gone["id"], "@removed": {"reason": "changed"}}
    assert uid(6) not in got
    assert [i["id"] for i in items] == sorted(got)

    items, _, _ = api.round(link2)
    assert items == []


def test_deltatoken_latest_skips_the_initial_round() -> None:
    api = Api(n_users=3)
    body = api.ok("GET", "/users/delta?$deltatoken=latest&$select=displayName")
    assert body["value"] == []  # nobody, though three users exist
    api.ok("PATCH", f"/users/{uid(2)}", {"displayName": "Changed"})

    items, _, _ = api.round(body["@odata.deltaLink"])

    assert items == [{"id": uid(2), "displayName": "Changed"}]  # only what changed since


def test_change_during_paging_is_replayed_not_lost() -> None:
    api = Api(n_users=4)
    first = api.ok("GET", "/users/delta?$select=displayName&$top=2")
    # u1 was already returned on page 1; change it before the round finishes.
    api.ok("PATCH", f"/users/{uid(1)}", {"displayName": "Renamed"})
    rest, link, _ = api.round(first["@odata.nextLink"])
    assert len(first["value"]) + len(rest) == 4
    items, _, _ = api.round(link)
    assert by_id(items)[uid(1)]["displayName"] == "Renamed"


def test_unchanged_patch_is_not_a_change() -> None:
    api = Api(n_users=2)
    _, link, _ = api.round("/users/delta?$select=displayName")
    api.ok("PATCH", f"/users/{uid(1)}", {"displayName": "User 1"})
    items, _, _ = api.round(link)
    assert items == []


def test_token_of_other_tenant_is_rejected() -> None:
    api = Api(n_users=1)
    _, link, _ = api.round("/users/delta")
    resp = api.call("GET", link, tenant=OTHER)
    assert resp.status == 400


def test_expired_and_reset_tokens_answer_410_with_location() -> None:
    api = Api(n_users=1)
    _, link, _ = api.round("/users/delta?$select=displayName")
    api.state.token_age_offset += 8 * 24 * 3600
    resp = api.call("GET", link)
    assert resp.status == 410
    assert resp.body["error"]["code"] == "syncStateNotFound"
    assert resp.headers["Location"] == f"{BASE}/v1.0/users/delta?$select=displayName"
    fresh, _, _ = api.round(resp.headers["Location"])
    assert len(fresh) == 1

    _, link, _ = api.round("/users/delta")
    api.state.reset()
    assert api.call("GET", link).status == 410


def test_groups_delta_initial_and_incremental() -> None:
    api = Api(n_users=5)
    items, link, _ = api.round(
        f"/groups/delta?$select=members&$filter=id eq '{gid(100)}' or id eq '{gid(101)}'"
    )
    assert by_id(items)[gid(100)] == {
        "id": gid(100),
        "members@delta": [
            {"@odata.type": "#microsoft.graph.user", "id": uid(1)},
            {"@odata.type": "#microsoft.graph.user", "id": uid(2)},
        ],
    }
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid(4)}"}
    api.ok("POST", f"/groups/{gid(100)}/members/$ref", ref)
    api.ok("DELETE", f"/groups/{gid(100)}/members/{uid(2)}/$ref")
    api.ok("DELETE", f"/users/{uid(3)}")  # the only member of G2
    items, link, _ = api.round(link)
    got = by_id(items)
    assert got[gid(100)]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": uid(2), "@removed": {"reason": "deleted"}},
        {"@odata.type": "#microsoft.graph.user", "id": uid(4)},
    ]
    assert got[gid(101)]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": uid(3), "@removed": {"reason": "deleted"}}
    ]
    api.ok("POST", f"/directory/deletedItems/{uid(3)}/restore")
    api.ok("DELETE", f"/groups/{gid(100)}")
    items, _, _ = api.round(link)
    got = by_id(items)
    assert got[gid(101)]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": uid(3)}
    ]
    assert got[gid(100)] == {"id": gid(100), "@removed": {"reason": "changed"}}


def test_groups_delta_plain_and_filter_limits() -> None:
    api = Api(n_users=3)
    items, _, _ = api.round("/groups/delta")
    assert by_id(items)[gid(101)]["displayName"] == "G2"
    assert "members@delta" in by_id(items)[gid(101)]
    too_many = " or ".join(f"id eq '{uid(i)}'" for i in range(51))
    assert api.call("GET", f"/groups/delta?$filter={too_many}").status == 400
    resp = api.call("GET", "/groups/delta?$filter=displayName eq 'x'")
    assert resp.status == 400
    assert resp.body["error"]["code"] == "Request_UnsupportedQuery"


def test_nested_group_membership_in_groups_delta() -> None:
    api = Api(n_users=3)
    _, link, _ = api.round("/groups/delta?$select=members")
    ref = {"@odata.id": f"{BASE}/v1.0/groups/{gid(101)}"}
    api.ok("POST", f"/groups/{gid(100)}/members/$ref", ref)
    items, _, _ = api.round(link)
    assert by_id(items)[gid(100)]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.group", "id": gid(101)}
    ]


class Clock:
    """The tenant's change clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_replication_lag_spreads_recent_changes_over_two_rounds() -> None:
    api = Api(n_users=6)
    clock = Clock()
    api.state.tenants[TID].clock = clock
    api.state.delta_lag_s = 30.0
    _, link, _ = api.round("/users/delta?$select=displayName")
    api.ok("DELETE", f"/users/{uid(1)}")
    api.ok("DELETE", f"/users/{uid(2)}")
    clock.now += 40  # these two have replicated by the time the next round starts
    api.ok("DELETE", f"/users/{uid(3)}")
    api.ok("PATCH", f"/users/{uid(4)}", {"displayName": "Four"})
    clock.now += 10  # these two have not

    items, link2, _ = api.round(link)

    assert [i["id"] for i in items] == [uid(1), uid(2)]
    clock.now += 25  # now they have
    items, link3, _ = api.round(link2)
    assert by_id(items) == {
        uid(3): {"id": uid(3), "@removed": {"reason": "changed"}},
        uid(4): {"id": uid(4), "displayName": "Four"},
    }
    items, _, _ = api.round(link3)
    assert items == []


def test_without_a_lag_a_round_reports_every_change_made_before_it_started() -> None:
    api = Api(n_users=3)
    clock = Clock()
    api.state.tenants[TID].clock = clock
    _, link, _ = api.round("/users/delta?$select=displayName")
    api.ok("DELETE", f"/users/{uid(1)}")  # at the very moment the round starts

    items, _, _ = api.round(link)

    assert [i["id"] for i in items] == [uid(1)]


def test_a_lag_never_moves_a_round_before_its_start() -> None:
    api = Api(n_users=3)
    clock = Clock()
    api.state.tenants[TID].clock = clock
    _, link, _ = api.round("/users/delta?$select=displayName")
    api.state.delta_lag_s = 3600.0  # longer than the tenant has existed
    items, link2, _ = api.round(link)
    assert items == []
    api.state.delta_lag_s = 0.0
    api.ok("PATCH", f"/users/{uid(2)}", {"displayName": "Two"})
    items, _, _ = api.round(link2)
    assert [i["id"] for i in items] == [uid(2)]
