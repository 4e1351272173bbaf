"""Graph's rules for OData casts, `$count` on relationships, `$orderby`, `$search`, seeded
identities and filter error messages, over HTTPS as a client sees them (issue 13, part 1)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

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
ANN = make_user("ann", DOMAIN, id="u-ann", displayName="Ann Lee", department="Sales")
BOB = make_user(
    "bob", DOMAIN, id="u-bob", displayName="bob Stone", createdDateTime="2021-01-01T00:00:00Z"
)
CYD = make_user(
    "cyd", DOMAIN, id="u-cyd", displayName="Cyd HelloWorld", jobTitle="Hello-World Lead"
)
DEE = make_user("dee", DOMAIN, id="u-dee", displayName="Dee Okafor-Smith", mail=None)
TENANT = make_tenant(
    DOMAIN,
    users=[ANN, BOB, CYD, DEE],
    groups=[
        {"id": "g-outer", "displayName": "Outer", "members": ["u-ann", "u-bob", "g-inner"]},
        {"id": "g-inner", "displayName": "Inner", "members": ["u-cyd"]},
    ],
)
EVENTUAL = {"ConsistencyLevel": "eventual"}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()
    return sb.graph(*client_of(TENANT))


# ---------------------------------------------------------------- type casts


@pytest.mark.parametrize("prefix", ["graph.", "microsoft.graph."])
def test_deleted_items_casts(graph: httpx.Client, prefix: str) -> None:
    assert graph.delete("/users/u-bob").status_code == 204
    assert graph.delete("/groups/g-inner").status_code == 204
    users = graph.get(f"/directory/deletedItems/{prefix}user")
    assert ids(users) == ["u-bob"]
    assert users.json()["value"][0]["deletedDateTime"]
    assert ids(graph.get(f"/directory/deletedItems/{prefix}group")) == ["g-inner"]
    assert ids(graph.get(f"/directory/deletedItems/{prefix}application")) == []
    one = graph.get(f"/directory/deletedItems/u-bob/{prefix}user")
    assert one.status_code == 200
    assert one.json()["userPrincipalName"] == f"bob@{DOMAIN}"
    # A cast to another type than the object's: not found, as for a missing object.
    assert error_of(graph.get(f"/directory/deletedItems/u-bob/{prefix}group"))["code"] == (
        "Request_ResourceNotFound"
    )
    counted = graph.get(f"/directory/deletedItems/{prefix}user/$count", headers=EVENTUAL)
    assert counted.text == "1"


def test_member_casts(graph: httpx.Client) -> None:
    for prefix in ("graph.", "microsoft.graph."):
        assert ids(graph.get(f"/groups/g-outer/members/{prefix}user")) == ["u-ann", "u-bob"]
        assert ids(graph.get(f"/groups/g-outer/members/{prefix}group")) == ["g-inner"]
        assert ids(graph.get(f"/groups/g-outer/transitiveMembers/{prefix}user")) == [
            "u-ann",
            "u-bob",
            "u-cyd",
        ]
        assert ids(graph.get(f"/users/u-cyd/memberOf/{prefix}group")) == ["g-inner"]
        assert ids(graph.get(f"/users/u-cyd/transitiveMemberOf/{prefix}group")) == [
            "g-inner",
            "g-outer",
        ]
    assert ids(graph.get("/groups/g-outer/members/graph.device")) == []
    # A user property is valid in $select and $filter on a cast to users only.
    page = graph.get(
        "/groups/g-outer/members/graph.user",
        params={"$select": "department", "$filter": "department eq 'Sales'"},
    )
    assert page.json()["value"] == [
        {"@odata.type": "#microsoft.graph.user", "id": "u-ann", "department": "Sales"}
    ]
    refused = graph.get("/groups/g-outer/members/graph.unicorn")
    assert error_of(refused)["message"] == "Resource not found for the segment 'graph.unicorn'."
    assert error_of(graph.get("/users/u-ann/memberOf/graph.user"))["code"] == "BadRequest"


# ---------------------------------------------------------------- $count on relationships


def test_count_on_members(graph: httpx.Client) -> None:
    assert error_of(graph.get("/groups/g-outer/members/$count"))["message"] == (
        "$count is not currently supported."
    )
    assert graph.get("/groups/g-outer/members/$count", headers=EVENTUAL).text == "3"
    assert graph.get("/groups/g-outer/members/graph.user/$count", headers=EVENTUAL).text == "2"
    assert graph.get("/groups/g-outer/transitiveMembers/$count", headers=EVENTUAL).text == "4"
    assert graph.get("/users/u-cyd/transitiveMemberOf/$count", headers=EVENTUAL).text == "2"
    page = graph.get(
        "/groups/g-outer/members", params={"$count": "true", "$top": "1"}, headers=EVENTUAL
    ).json()
    assert page["@odata.count"] == 3
    assert len(page["value"]) == 1
    assert "@odata.count" not in graph.get("/groups/g-outer/members?$count=true").json()


# ---------------------------------------------------------------- $orderby


def test_orderby_display_name_and_upn(graph: httpx.Client) -> None:
    by_name = graph.get("/users", params={"$orderby": "displayName", "$select": "displayName"})
    assert [u["displayName"] for u in by_name.json()["value"]] == [
        "Ann Lee",
        "bob Stone",  # case-insensitive, as Graph sorts
        "Cyd HelloWorld",
        "Dee Okafor-Smith",
    ]
    desc = graph.get("/users", params={"$orderby": "userPrincipalName desc", "$top": "3"})
    assert ids(desc) == ["u-dee", "u-cyd", "u-bob"]
    rest = graph.get(desc.json()["@odata.nextLink"])
    assert ids(rest) == ["u-ann"]
    assert ids(graph.get("/groups", params={"$orderby": "displayName"})) == ["g-inner", "g-outer"]


def test_orderby_rules(graph: httpx.Client) -> None:
    for params in (
        {"$orderby": "createdDateTime"},  # advanced only
        {"$orderby": "displayName", "$filter": "accountEnabled eq true"},  # with $filter
        {"$orderby": "jobTitle", "$count": "true"},  # not sortable at all
    ):
        refused = graph.get("/users", params=params, headers=EVENTUAL if "$count" in params else {})
        assert error_of(refused) | {"innerError": None} == {
            "code": "Request_UnsupportedQuery",
            "message": "Sorting not supported for current query.",
            "innerError": None,
        }
    advanced = graph.get(
        "/users",
        params={
            "$orderby": "createdDateTime desc",
            "$count": "true",
            "$filter": "accountEnabled eq true",
        },
        headers=EVENTUAL,
    )
    assert ids(advanced)[-1] == "u-bob"  # 2021, the oldest
    unknown = graph.get("/users", params={"$orderby": "colour"})
    assert error_of(unknown)["message"] == (
        "Could not find a property named 'colour' on type 'microsoft.graph.user'."
    )


# ---------------------------------------------------------------- $search


def test_search_needs_consistency_level(graph: httpx.Client) -> None:
    refused = graph.get("/users", params={"$search": '"displayName:ann"'})
    assert error_of(refused) | {"innerError": None} == {
        "code": "Request_UnsupportedQuery",
        "message": "Request with $search query parameter only works through MSGraph with a "
        "special request header: 'ConsistencyLevel: eventual'",
        "innerError": None,
    }


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ('"displayName:ann"', ["u-ann"]),
        ('"displayName:lee ann"', ["u-ann"]),  # words in any order
        ('"displayName:world"', ["u-cyd"]),  # HelloWorld is two words
        ('"displayName:hel"', ["u-cyd"]),  # a word's start
        ('"displayName:okafors"', ["u-dee"]),  # Okafor-Smith also as one word
        ('"displayName:ee"', []),  # not "contains"
        ('"displayName:ann" OR "displayName:bob"', ["u-ann", "u-bob"]),
        ('"displayName:ann" AND "mail:ann@"', ["u-ann"]),
        ('"mail:bob@contoso"', ["u-bob"]),  # other properties: startsWith
        ('("displayName:dee" OR "displayName:cyd") AND "jobTitle:hello"', ["u-cyd"]),
    ],
)
def test_search_tokens(graph: httpx.Client, search: str, expected: list[str]) -> None:
    assert ids(graph.get("/users", params={"$search": search}, headers=EVENTUAL)) == expected


def test_search_with_filter_count_and_errors(graph: httpx.Client) -> None:
    page = graph.get(
        "/users",
        params={
            "$search": '"displayName:o"',
            "$filter": "accountEnabled eq true",
            "$count": "true",
        },
        headers=EVENTUAL,
    ).json()
    assert [u["id"] for u in page["value"]] == ["u-dee"]  # Okafor
    assert page["@odata.count"] == 1
    counted = graph.get("/groups/$count", params={"$search": '"displayName:out"'}, headers=EVENTUAL)
    assert counted.text == "1"
    members = graph.get(
        "/groups/g-outer/members/graph.user",
        params={"$search": '"displayName:bob"'},
        headers=EVENTUAL,
    )
    assert ids(members) == ["u-bob"]
    assert error_of(graph.get("/users", params={"$search": "ann"}, headers=EVENTUAL))["code"] == (
        "BadRequest"
    )
    assert error_of(graph.get("/users", params={"$search": '"ann"'}, headers=EVENTUAL))[
        "message"
    ].startswith("Invalid $search clause")
    wrong = graph.get("/users", params={"$search": '"accountEnabled:true"'}, headers=EVENTUAL)
    assert error_of(wrong)["message"] == (
        "Unsupported or invalid search clause specified for property 'accountEnabled' of "
        "resource 'User'."
    )


# ---------------------------------------------------------------- identities, messages


def test_seeded_members_have_their_upn_identity(graph: httpx.Client) -> None:
    body = graph.get("/users/u-ann", params={"$select": "identities"}).json()
    assert body["identities"] == [
        {"signInType": "userPrincipalName", "issuer": DOMAIN, "issuerAssignedId": f"ann@{DOMAIN}"}
    ]
    graph.patch("/users/u-ann", json={"userPrincipalName": f"ann.lee@{DOMAIN}"})
    moved = graph.get("/users/u-ann", params={"$select": "identities"}).json()
    assert moved["identities"][0]["issuerAssignedId"] == f"ann.lee@{DOMAIN}"


@pytest.mark.parametrize(
    ("url", "resource"),
    [("/users", "User"), ("/groups", "Group"), ("/groups/g-outer/members", "DirectoryObject")],
)
def test_unsupported_filter_names_the_resource_as_graph_does(
    graph: httpx.Client, url: str, resource: str
) -> None:
    refused = graph.get(url, params={"$filter": "colour eq 'red'"})
    assert error_of(refused) | {"innerError": None} == {
        "code": "Request_UnsupportedQuery",
        "message": "Unsupported or invalid query filter clause specified for property 'colour' "
        f"of resource '{resource}'.",
        "innerError": None,
    }


def test_an_in_list_holds_at_most_15_values_unless_the_query_is_advanced(
    graph: httpx.Client,
) -> None:
    """Graph's default limit on `in`: 15 values answer, 16 are refused with a 400."""
    fifteen = ["u-ann", *(f"u-none-{i}" for i in range(13)), "u-BOB"]
    listed = ",".join(f"'{v}'" for v in fifteen)
    found = graph.get("/users", params={"$filter": f"id in ({listed})", "$select": "id"})
    assert ids(found) == ["u-ann", "u-bob"]  # case-insensitively, as `eq` compares
    mails = ",".join(
        f"'{v}'" for v in [*(f"x{i}@contoso.com" for i in range(14)), "CYD@contoso.com"]
    )
    by_mail = graph.get("/users", params={"$filter": f"mail in ({mails})", "$select": "id"})
    assert ids(by_mail) == ["u-cyd"]
    sixteen = f"mail in ({mails},'ann@contoso.com')"
    refused = graph.get("/users", params={"$filter": sixteen})
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "Request_UnsupportedQuery"
    assert "16 values" in error_of(refused)["message"]
    advanced = graph.get("/users", params={"$filter": sixteen, "$count": "true"}, headers=EVENTUAL)
    assert ids(advanced) == ["u-ann", "u-cyd"]
