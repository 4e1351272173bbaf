"""Graph fidelity probes over HTTPS, as an outside client sees them: property validation,
$count / advanced queries, $batch limits and per-item throttling, throttling headers and
Retry-After, delta-token expiry from the seed and the admin API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
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
ANN = make_user("ann", DOMAIN, id="ann", department="Sales")
BOB = make_user("bob", DOMAIN, id="bob", accountEnabled=False)
TENANT = make_tenant(DOMAIN, users=[ANN, BOB])
TID = TENANT["tenant_id"]
EVENTUAL = {"ConsistencyLevel": "eventual"}
NEW_USER = {
    "accountEnabled": True,
    "displayName": "Cyd",
    "mailNickname": "cyd",
    "userPrincipalName": f"cyd@{DOMAIN}",
    "passwordProfile": {"password": "P@ss-w0rd!", "forceChangePasswordNextSignIn": True},
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()  # data, limits, faults and delta settings back to the seed's
    sb.admin("POST", "/_sandbox/stats/reset").raise_for_status()
    return sb.graph(*client_of(TENANT))


def error_of(resp: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = resp.json()["error"]
    return error


# ---------------------------------------------------------------- property validation


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unknown_property_is_graphs_400(graph: httpx.Client, method: str) -> None:
    url = "/users" if method == "POST" else "/users/ann"
    resp = graph.request(method, url, json={**NEW_USER, "x": 1} if method == "POST" else {"x": 1})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"
    assert (
        error_of(resp)["message"] == "Property 'x' does not exist on type 'microsoft.graph.user'."
    )
    assert set(error_of(resp)["innerError"]) >= {"date", "request-id", "client-request-id"}


@pytest.mark.parametrize(
    ("url", "body", "type_name"),
    [
        ("/groups", {"displayName": "G", "colour": "red"}, "group"),
        (
            "/invitations",
            {"invitedUserEmailAddress": "a@b.com", "inviteRedirectUrl": "https://x", "colour": 1},
            "invitation",
        ),
    ],
)
def test_unknown_property_on_other_entities(
    graph: httpx.Client, url: str, body: dict[str, Any], type_name: str
) -> None:
    resp = graph.post(url, json=body)
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"
    assert error_of(resp)["message"] == (
        f"Property 'colour' does not exist on type 'microsoft.graph.{type_name}'."
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", "00000000-0000-4000-8000-000000000099"),
        ("createdDateTime", "2020-01-01T00:00:00Z"),
        ("creationType", "Invitation"),
        ("externalUserState", "Accepted"),
        ("proxyAddresses", ["SMTP:ann@contoso.com"]),
        ("onPremisesSyncEnabled", True),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_read_only_properties_are_refused(
    graph: httpx.Client, sb: SandboxHandle, method: str, name: str, value: Any
) -> None:
    if method == "POST":
        resp = graph.post("/users", json={**NEW_USER, name: value})
    else:
        resp = graph.patch("/users/ann", json={name: value})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"
    assert name in error_of(resp)["message"]
    assert sb.stats()["writes"] == {}


# ---------------------------------------------------------------- $count and advanced queries


def test_count_rules(graph: httpx.Client) -> None:
    refused = graph.get("/users/$count")
    assert refused.status_code == 400
    assert error_of(refused) | {"innerError": None} == {
        "code": "Request_BadRequest",
        "message": "$count is not currently supported.",
        "innerError": None,
    }
    counted = graph.get("/users/$count", headers=EVENTUAL)
    assert counted.status_code == 200
    assert counted.text == "2"
    assert counted.headers["content-type"].startswith("text/plain")
    ignored = graph.get("/users", params={"$count": "true"})
    assert ignored.status_code == 200
    assert "@odata.count" not in ignored.json()
    page = graph.get("/users", params={"$count": "true", "$top": "1"}, headers=EVENTUAL).json()
    assert page["@odata.count"] == 2
    assert len(page["value"]) == 1
    assert "@odata.nextLink" in page


def test_ne_needs_advanced_query_parameters(graph: httpx.Client) -> None:
    params = {"$filter": "accountEnabled ne true", "$select": "id"}
    refused = graph.get("/users", params=params)
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "Request_UnsupportedQuery"
    assert "ConsistencyLevel:eventual" in error_of(refused)["message"]
    ok = graph.get("/users", params={**params, "$count": "true"}, headers=EVENTUAL)
    assert ok.status_code == 200
    assert [u["id"] for u in ok.json()["value"]] == ["bob"]
    both = graph.get(
        "/users", params={"$filter": "id in ('ann', 'bob') and startswith(displayName,'A')"}
    )
    assert [u["id"] for u in both.json()["value"]] == ["ann"]


# ---------------------------------------------------------------- $batch


def test_batch_of_21_is_refused(graph: httpx.Client) -> None:
    items = [{"id": str(i), "method": "GET", "url": "/users/ann"} for i in range(21)]
    resp = graph.post("/$batch", json={"requests": items})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "Request_BadRequest"
    assert "20" in error_of(resp)["message"]
    ok = graph.post("/$batch", json={"requests": items[:20]})
    assert ok.status_code == 200
    assert [r["status"] for r in ok.json()["responses"]] == [200] * 20


def test_throttled_batch_item_gets_its_own_429(graph: httpx.Client, sb: SandboxHandle) -> None:
    sb.set_limits(resource_units_per_10s=4)
    # Each costs 2 RU: whichever two run first (Graph runs a parallel batch in any order) are
    # admitted, the other two are refused on their own.
    items = [{"id": str(i), "method": "GET", "url": "/users"} for i in range(1, 5)]
    resp = graph.post("/$batch", json={"requests": items})
    assert resp.status_code == 200
    out = resp.json()["responses"]
    assert sorted(r["id"] for r in out) == ["1", "2", "3", "4"]
    assert [r["status"] for r in out] == [200, 200, 429, 429]  # answered in the order they ran
    for refused in out[2:]:
        assert int(refused["headers"]["Retry-After"]) >= 1
        assert refused["headers"]["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        assert refused["body"]["error"]["code"] == "TooManyRequests"
    assert "Retry-After" not in out[0]["headers"]
    assert sb.stats()["throttled"] == 2


# ---------------------------------------------------------------- throttling


def retry_after(resp: httpx.Response) -> int:
    assert resp.status_code == 429, resp.text
    return int(resp.headers["Retry-After"])


def test_throttling_headers(graph: httpx.Client, sb: SandboxHandle) -> None:
    sb.set_limits(resource_units_per_10s=10, window_scale=0.5)
    headers = [graph.get("/users/ann").headers for _ in range(10)]
    assert all(h["x-ms-resource-unit"] == "1" for h in headers)
    assert "x-ms-throttle-limit-percentage" not in headers[7]
    assert headers[8]["x-ms-throttle-limit-percentage"] == "0.90"
    refused = graph.get("/users/ann")
    assert 1 <= retry_after(refused) <= 5
    assert refused.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/ReadWrite/{TENANT['clients'][0]['client_id']}/{TID}"
    )
    assert refused.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert float(refused.headers["x-ms-throttle-limit-percentage"]) > 1


@pytest.mark.parametrize(
    ("limits", "method", "url", "body"),
    [
        ({"write_per_150s": 2, "window_scale": 0.006}, "PATCH", "/users/ann", {"jobTitle": "x"}),
        ({"resource_units_per_10s": 4, "window_scale": 0.1}, "GET", "/users", None),
        (
            {"invitations_per_5s": 2, "window_scale": 0.2},
            "POST",
            "/invitations",
            {"invitedUserEmailAddress": "z@example.org", "inviteRedirectUrl": "https://x"},
        ),
    ],
)
def test_waiting_retry_after_means_no_further_429(
    graph: httpx.Client,
    sb: SandboxHandle,
    limits: dict[str, float],
    method: str,
    url: str,
    body: Any,
) -> None:
    sb.set_limits(**limits)
    for _ in range(2):
        assert graph.request(method, url, json=body).status_code < 300
    wait = retry_after(graph.request(method, url, json=body))
    assert wait == 1  # the scaled windows are at most a second long
    time.sleep(wait)  # what a well-behaved caller does: exactly Retry-After
    assert graph.request(method, url, json=body).status_code < 300
    assert sb.stats()["throttled"] == 1


def test_admin_limits_round_trip(sb: SandboxHandle, graph: httpx.Client) -> None:
    got = sb.set_limits(window_scale=0.5)
    assert got == {
        "write_per_150s": 3000,
        "resource_units_per_10s": 8000,
        "invitations_per_5s": 150,
        "window_scale": 0.5,
    }
    bad = sb.admin("PUT", "/_sandbox/limits", json={"window_scale": 0})
    assert bad.status_code == 400
    sb.reset()
    assert sb.admin("GET", "/_sandbox/limits").json()["window_scale"] == 1.0


# ---------------------------------------------------------------- delta-token expiry


def delta_link(graph: httpx.Client) -> str:
    url = "/users/delta?$select=displayName"
    while True:
        body = graph.get(url).json()
        if "@odata.deltaLink" in body:
            return str(body["@odata.deltaLink"])
        url = body["@odata.nextLink"]


def test_delta_max_age_from_the_seed(tmp_path: Path) -> None:
    seed = make_seed(TENANT, delta={"token_max_age_s": 60})
    with running_sandbox(seed, tmp_path) as sb:
        graph = sb.graph(*client_of(TENANT))
        link = delta_link(graph)
        assert sb.admin("GET", "/_sandbox/delta").json()["token_max_age_s"] == 60
        sb.admin("POST", "/_sandbox/delta-tokens/age", json={"seconds": 59}).raise_for_status()
        assert graph.get(link).status_code == 200
        sb.admin("POST", "/_sandbox/delta-tokens/age", json={"seconds": 2}).raise_for_status()
        gone = graph.get(link)
        assert gone.status_code == 410
        assert error_of(gone)["code"] == "syncStateNotFound"
        assert "expired" in error_of(gone)["message"]
        assert gone.headers["Location"].startswith(f"{sb.url}/v1.0/users/delta?$select=")


def test_delta_max_age_from_the_admin_api(graph: httpx.Client, sb: SandboxHandle) -> None:
    link = delta_link(graph)
    assert sb.set_delta(token_max_age_s=5)["token_max_age_s"] == 5
    sb.admin("POST", "/_sandbox/delta-tokens/age", json={"seconds": 6}).raise_for_status()
    assert graph.get(link).status_code == 410
    sb.set_delta(token_max_age_s=3600)
    assert graph.get(link).status_code == 200
    assert sb.admin("PUT", "/_sandbox/delta", json={"token_max_age_s": -1}).status_code == 400
    sb.reset()
    assert sb.admin("GET", "/_sandbox/delta").json()["token_max_age_s"] == 7 * 24 * 3600
