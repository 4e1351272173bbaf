"""Fault plans, throttling costs/headers/Retry-After, seed knobs and $count rules, in-process."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from tenant_sync_sandbox import faults, throttling
from tenant_sync_sandbox.graph import GraphApi
from tenant_sync_sandbox.router import GraphRequest, GraphResponse, parse_query
from tenant_sync_sandbox.seed import SeedError, validate_faults, validate_limits, validate_seed
from tenant_sync_sandbox.state import SandboxState, Stats

pytestmark = pytest.mark.unit

TID = "11111111-1111-4111-8111-111111111111"
CID = "client-1"
BASE = "https://sandbox.test"


def make_state(**extra: Any) -> SandboxState:
    users = [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "userPrincipalName": f"u{i}@contoso.onmicrosoft.com",
            "displayName": f"User {i}",
            "accountEnabled": i % 2 == 0,
            "mail": f"u{i}@contoso.com",
        }
        for i in range(1, 6)
    ]
    seed = {
        "tenants": [
            {
                "tenant_id": TID,
                "domain": "contoso.onmicrosoft.com",
                "clients": [{"client_id": CID, "client_secret": "s"}],
                "users": users,
                "groups": [{"id": "g1", "displayName": "G", "members": [users[0]["id"]]}],
            }
        ],
        **extra,
    }
    return SandboxState(validate_seed(seed))


class Api:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.graph = GraphApi(state)

    def call(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> GraphResponse:
        path, _, query = url.partition("?")
        req = GraphRequest(
            state=self.state,
            tenant=self.state.tenants[TID],
            client_id=CID,
            method=method,
            path=path,
            query=parse_query(query),
            headers={k.lower(): v for k, v in (headers or {}).items()},
            body=body,
            base_url=BASE,
            request_id="req",
        )
        return self.graph.execute(req, None)


EVENTUAL = {"ConsistencyLevel": "eventual"}


# ---------------------------------------------------------------- seed knobs


def test_fault_and_limit_knobs_are_validated() -> None:
    got = validate_faults(
        {
            "error_rate": 0.25,
            "error_statuses": [503, 500, 503],
            "drop_rate": 0.1,
            "commit_then_drop_rate": 1,
            "commit_then_drop_paths": ["post /v1.0/invitations"],
            "seed": 7,
            "error_retry_after_s": 2,
        }
    )
    assert got["error_statuses"] == [503, 500]
    assert got["commit_then_drop_paths"] == ["POST /v1.0/invitations"]
    assert got["seed"] == 7
    assert got["latency_ms"] == 0
    assert validate_limits({"window_scale": 0.01})["window_scale"] == 0.01
    seed = validate_seed(
        {"tenants": [{"tenant_id": TID, "clients": []}], "delta": {"token_max_age_s": 60}}
    )
    assert seed["delta"] == {"token_max_age_s": 60, "lag_s": 0.0}
    assert SandboxState(seed).delta_max_age_s == 60.0


@pytest.mark.parametrize(
    ("section", "value", "fragment"),
    [
        ("faults", {"drop_rate": 1.5}, "between 0 and 1"),
        ("faults", {"error_statuses": [418]}, "may only hold"),
        ("faults", {"error_statuses": []}, "non-empty list"),
        ("faults", {"commit_then_drop_paths": ["/v1.0/users"]}, "METHOD /path"),
        ("faults", {"seed": "x"}, "integer"),
        ("faults", {"chaos": 1}, "not a known fault"),
        ("limits", {"window_scale": 0}, "must be > 0"),
        ("delta", {"token_max_age_s": 0}, "must be > 0"),
        ("delta", {"max_age": 1}, "not a known delta setting (token_max_age_s, lag_s)"),
        ("delta", {"lag_s": -1}, "delta.lag_s"),
        ("delta", {"lag_s": 7200}, "delta.lag_s"),
    ],
)
def test_bad_knobs(section: str, value: Any, fragment: str) -> None:
    with pytest.raises(SeedError) as info:
        validate_seed({"tenants": [{"tenant_id": TID}], section: value})
    assert fragment in str(info.value)


# ---------------------------------------------------------------- fault plans


def plans(settings: dict[str, Any], n: int, seed: int) -> list[faults.FaultPlan]:
    rng = faults.new_rng(seed)
    config = validate_faults(settings)
    return [
        faults.plan_request(config, rng, "POST /v1.0/invitations", "POST /v1.0/invitations")
        for _ in range(n)
    ]


def test_fault_plans_are_reproducible_and_mixed() -> None:
    settings = {"error_rate": 0.5, "drop_rate": 0.1, "commit_then_drop_rate": 0.2}
    assert plans(settings, 200, seed=3) == plans(settings, 200, seed=3)
    assert plans(settings, 200, seed=3) != plans(settings, 200, seed=4)
    statuses = Counter(p.error_status for p in plans({"error_rate": 1.0}, 400, seed=1))
    assert set(statuses) == {500, 502, 503, 504}
    only = {p.error_status for p in plans({"error_rate": 1, "error_statuses": [504]}, 50, 1)}
    assert only == {504}
    assert all(p.drop_before for p in plans({"drop_rate": 1.0}, 20, seed=1))
    assert all(p == faults.FaultPlan() for p in plans({}, 50, seed=1))


def test_commit_then_drop_paths() -> None:
    config = validate_faults(
        {"commit_then_drop_rate": 1.0, "commit_then_drop_paths": ["POST /v1.0/invitations"]}
    )
    rng = random.Random(0)
    hit = faults.plan_request(config, rng, "POST /v1.0/invitations", "POST /v1.0/invitations")
    assert hit.drop_after
    miss = faults.plan_request(config, rng, "PATCH /v1.0/users/{id}", "PATCH /v1.0/users/u1")
    assert not miss.drop_after
    assert faults.route_matches(["PATCH /v1.0/users/*"], "PATCH /v1.0/users/{id}", "x")
    assert faults.route_matches(["PATCH /v1.0/users/u1"], "x", "PATCH /v1.0/users/u1")
    assert faults.route_matches(None, "anything", "anything")


def test_injected_errors_and_stats() -> None:
    for status in (503, 504):
        assert faults.injected_error(status, 2).headers == {"Retry-After": "2"}
    for status in (500, 502):
        err = faults.injected_error(status, 2)
        assert err.status == status
        assert "Retry-After" not in err.headers
    stats = Stats()
    for kind in ("drop", "error_503", "latency", "drop"):
        stats.count_fault(kind)
    assert stats.as_json()["faults_injected"] == 3
    assert stats.as_json()["faults_by_kind"] == {"drop": 2, "error_503": 1, "latency": 1}


def test_batch_items_get_injected_statuses() -> None:
    state = make_state(faults={"error_rate": 1.0, "error_statuses": [502], "seed": 1})
    api = Api(state)
    body = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(3)]}
    out = api.call("POST", "/$batch", body).body["responses"]
    assert [r["status"] for r in out] == [502, 502, 502]
    assert state.stats.faults_by_kind == {"error_502": 3}


def test_commit_then_error_carries_the_item_out_then_answers_an_error() -> None:
    state = make_state(faults={"commit_then_error_rate": 1.0, "error_statuses": [504], "seed": 1})
    api = Api(state)
    user = "00000000-0000-4000-8000-000000000001"
    body = {"requests": [{"id": "1", "method": "DELETE", "url": f"/users/{user}"}]}

    (first,) = api.call("POST", "/$batch", body).body["responses"]
    assert first["status"] == 504  # and yet the user is gone: a repeat answers 404
    state.set_faults(validate_faults({}), reseed=False)
    (second,) = api.call("POST", "/$batch", body).body["responses"]
    assert second["status"] == 404
    assert state.stats.faults_by_kind == {"commit_then_error": 1}
    # Unset, it draws nothing: the other knobs' sequences are unchanged.
    assert plans({"error_rate": 0.3}, 50, seed=2) == [
        p for p in plans({"error_rate": 0.3, "commit_then_error_rate": 0.0}, 50, seed=2)
    ]


# ---------------------------------------------------------------- throttling


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(throttling, "monotonic", fake)
    return fake


def test_request_costs_follow_the_published_table(clock: Clock) -> None:
    api = Api(make_state())
    uid = "00000000-0000-4000-8000-000000000001"
    cases = {
        "/users": "2",
        "/users?$select=id": "1",
        "/users?$top=5": "1",
        "/users?$top=50": "2",
        f"/users/{uid}": "1",
        "/groups/g1/members": "3",
        "/groups/g1/transitiveMembers": "5",
        "/groups/g1/transitiveMembers?$select=id&$top=5": "3",
    }
    for url, units in cases.items():
        assert api.call("GET", url).headers["x-ms-resource-unit"] == units, url


def test_limit_percentage_and_429_headers(clock: Clock) -> None:
    state = make_state(limits={"resource_units_per_10s": 10})
    api = Api(state)
    uid = "00000000-0000-4000-8000-000000000001"
    seen = [api.call("GET", f"/users/{uid}").headers for _ in range(10)]
    assert [h.get("x-ms-throttle-limit-percentage") for h in seen] == [None] * 8 + ["0.90", "1.00"]
    refused = api.call("GET", f"/users/{uid}")
    assert refused.status == 429
    assert refused.body["error"]["code"] == "TooManyRequests"
    assert refused.headers["Retry-After"] == "10"
    assert refused.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert refused.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{CID}/{TID}"
    assert refused.headers["x-ms-throttle-limit-percentage"] == "1.10"
    assert state.stats.throttled == 1


def test_write_and_invitation_scopes_and_window_scale(clock: Clock) -> None:
    state = make_state(limits={"write_per_150s": 1, "invitations_per_5s": 1, "window_scale": 0.1})
    api = Api(state)
    uid = "00000000-0000-4000-8000-000000000001"
    assert api.call("PATCH", f"/users/{uid}", {"jobTitle": "a"}).status == 204
    refused = api.call("PATCH", f"/users/{uid}", {"jobTitle": "b"})
    assert refused.status == 429
    assert refused.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert refused.headers["x-ms-throttle-scope"] == f"Tenant_Application/Write/{CID}/{TID}"
    assert refused.headers["Retry-After"] == "15"  # 150 s x 0.1
    clock.now += 15
    state.limits["write_per_150s"] = 100
    invite = {"invitedUserEmailAddress": "x@example.org", "inviteRedirectUrl": "https://x"}
    assert api.call("POST", "/invitations", invite).status == 201
    clock.now += 0.1  # the invitation window is 5 s x 0.1
    refused = api.call("POST", "/invitations", invite)
    assert refused.headers["x-ms-throttle-information"] == "InvitationLimitExceeded"
    assert refused.headers["x-ms-throttle-scope"] == f"Tenant/ReadWrite/{CID}/{TID}"
    assert refused.headers["Retry-After"] == "1"  # 0.4 s, rounded up to whole seconds


def test_waiting_retry_after_always_admits_the_same_request(clock: Clock) -> None:
    rng = random.Random(5)
    state = make_state(limits={"resource_units_per_10s": 7, "write_per_150s": 4})
    api = Api(state)
    uid = "00000000-0000-4000-8000-000000000001"
    requests = [
        ("GET", "/users", None),
        ("GET", "/groups/g1/transitiveMembers", None),
        ("GET", f"/users/{uid}", None),
        ("PATCH", f"/users/{uid}", {"jobTitle": "x"}),
    ]
    retried = 0
    for _ in range(300):
        clock.now += rng.choice((0.0, 0.1, 0.7, 2.5))
        method, url, body = rng.choice(requests)
        resp = api.call(method, url, body)
        if resp.status == 429:
            retried += 1
            clock.now += int(resp.headers["Retry-After"])
            again = api.call(method, url, body)
            assert again.status != 429, (method, url, resp.headers)
    assert retried > 20


# ---------------------------------------------------------------- $count and advanced queries


def test_count_segment_needs_consistency_level(clock: Clock) -> None:
    api = Api(make_state())
    plain = api.call("GET", "/users/$count")
    assert plain.status == 400
    assert plain.body["error"]["code"] == "Request_BadRequest"
    assert plain.body["error"]["message"] == "$count is not currently supported."
    counted = api.call("GET", "/users/$count", headers=EVENTUAL)
    assert (counted.status, counted.text) == (200, "5")
    assert counted.headers["Content-Type"] == "text/plain"
    enabled = api.call("GET", "/users/$count?$filter=accountEnabled eq true", headers=EVENTUAL)
    assert enabled.text == "2"
    disabled = api.call("GET", "/users/$count?$filter=accountEnabled ne true", headers=EVENTUAL)
    assert disabled.text == "3"
    assert api.call("GET", "/groups/$count", headers=EVENTUAL).text == "1"


def test_count_option_is_ignored_without_consistency_level(clock: Clock) -> None:
    api = Api(make_state())
    without = api.call("GET", "/users?$count=true&$top=2")
    assert without.status == 200
    assert "@odata.count" not in without.body
    with_header = api.call("GET", "/users?$count=true&$top=2", headers=EVENTUAL)
    assert with_header.body["@odata.count"] == 5
    assert len(with_header.body["value"]) == 2
    assert api.call("GET", "/users?$count=maybe").status == 400


@pytest.mark.parametrize(
    ("expr", "op"),
    [
        ("accountEnabled ne true", "ne"),
        ("not(accountEnabled eq true)", "not"),
        ("endswith(mail,'@contoso.com')", "endsWith"),
        ("displayName eq 'x' or mail ne null", "ne"),
    ],
)
def test_advanced_operators_need_advanced_parameters(clock: Clock, expr: str, op: str) -> None:
    api = Api(make_state())
    for headers, query in ((None, ""), (EVENTUAL, ""), (None, "&$count=true")):
        resp = api.call("GET", f"/users?$filter={expr}{query}", headers=headers)
        assert resp.status == 400
        assert resp.body["error"]["code"] == "Request_UnsupportedQuery"
        assert resp.body["error"]["message"].startswith(f"Operator '{op}' is not supported")
    ok = api.call("GET", f"/users?$filter={expr}&$count=true", headers=EVENTUAL)
    assert ok.status == 200, ok.body
    assert ok.body["@odata.count"] == len(ok.body["value"])
