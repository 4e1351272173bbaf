"""Injected faults over real HTTPS: 5xx mix, dropped connections, commit-then-drop, latency,
reproducibility, and what is never faulted (admin API, Entra endpoints)."""

from __future__ import annotations

from collections import Counter
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
ANN = make_user("ann", DOMAIN, id="ann")
TENANT = make_tenant(DOMAIN, users=[ANN])
TID = TENANT["tenant_id"]
CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
INVITE = {
    "invitedUserEmailAddress": "zed@example.org",
    "inviteRedirectUrl": "https://myapps.microsoft.com",
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()  # also restores the seed's (harmless) faults
    sb.admin("POST", "/_sandbox/stats/reset").raise_for_status()
    return sb.graph(*client_of(TENANT))


def statuses(graph: httpx.Client, n: int) -> list[int]:
    return [graph.get("/users/ann", params={"$select": "id"}).status_code for _ in range(n)]


def test_defaults_are_harmless(sb: SandboxHandle, graph: httpx.Client) -> None:
    faults = sb.admin("GET", "/_sandbox/faults").json()
    assert faults["error_rate"] == faults["drop_rate"] == faults["commit_then_drop_rate"] == 0
    assert faults["latency_ms"] == 0
    assert set(statuses(graph, 20)) == {200}
    assert sb.stats()["faults_injected"] == 0


def test_error_mix_with_retry_after_and_stats(sb: SandboxHandle, graph: httpx.Client) -> None:
    sb.set_faults(error_rate=1.0, seed=11)
    seen: Counter[int] = Counter()
    for _ in range(40):
        resp = graph.get("/users")
        seen[resp.status_code] += 1
        assert resp.json()["error"]["code"]
        if resp.status_code in (503, 504):
            assert resp.headers["Retry-After"] == "1"
        else:
            assert "Retry-After" not in resp.headers
    assert set(seen) == {500, 502, 503, 504}
    stats = sb.stats()
    assert stats["faults_injected"] == 40
    assert stats["faults_by_kind"] == {f"error_{s}": n for s, n in seen.items()}
    assert stats["errors"] == 40
    assert stats["writes"] == {}


def test_faults_are_reproducible_with_a_seed(sb: SandboxHandle, graph: httpx.Client) -> None:
    sb.set_faults(error_rate=0.5, seed=42)
    first = statuses(graph, 30)
    sb.set_faults(seed=42)  # restarts the sequence
    assert statuses(graph, 30) == first
    assert len(set(first)) > 1
    sb.set_faults(seed=43)
    assert statuses(graph, 30) != first


def test_dropped_connection_does_nothing_and_the_server_survives(
    sb: SandboxHandle, graph: httpx.Client
) -> None:
    sb.set_faults(drop_rate=1.0)
    with pytest.raises(CONNECTION_ERRORS):
        graph.patch("/users/ann", json={"jobTitle": "Dropped"})
    with pytest.raises(CONNECTION_ERRORS):
        graph.get("/users")
    assert sb.admin("GET", "/_sandbox/health").json() == {"status": "ok"}
    stats = sb.stats()
    assert stats["faults_by_kind"] == {"drop": 2}
    assert stats["writes"] == {}
    sb.set_faults(drop_rate=0.0)
    resp = graph.get("/users/ann", params={"$select": "jobTitle"})
    assert resp.status_code == 200
    assert resp.json()["jobTitle"] is None
    assert "could not" not in sb.stderr().lower()


def test_commit_then_drop_only_on_chosen_routes(sb: SandboxHandle, graph: httpx.Client) -> None:
    sb.set_faults(commit_then_drop_rate=1.0, commit_then_drop_paths=["POST /v1.0/invitations"])
    with pytest.raises(CONNECTION_ERRORS):
        graph.post("/invitations", json=INVITE)
    guests = [u for u in sb.users(TID) if u["mail"] == "zed@example.org"]
    assert len(guests) == 1  # the write happened although the caller saw a failure
    assert graph.patch("/users/ann", json={"jobTitle": "Kept"}).status_code == 204
    # the caller retries: Graph answers with the user the first call created
    sb.set_faults(commit_then_drop_rate=0.0)
    again = graph.post("/invitations", json=INVITE)
    assert again.status_code == 201
    assert again.json()["invitedUser"]["id"] == guests[0]["id"]
    stats = sb.stats()
    assert stats["faults_by_kind"] == {"commit_then_drop": 1}
    assert stats["writes"] == {TID: 3}


def test_commit_then_drop_patterns_match_templates(sb: SandboxHandle, graph: httpx.Client) -> None:
    sb.set_faults(commit_then_drop_rate=1.0, commit_then_drop_paths=["PATCH /v1.0/users/{id}"])
    with pytest.raises(CONNECTION_ERRORS):
        graph.patch("/users/ann", json={"jobTitle": "Committed"})
    assert graph.get("/users/ann?$select=jobTitle").json()["jobTitle"] == "Committed"


def test_admin_and_auth_are_never_faulted(sb: SandboxHandle, graph: httpx.Client) -> None:
    sb.set_faults(error_rate=1.0, drop_rate=1.0, commit_then_drop_rate=1.0, latency_ms=0)
    for _ in range(5):
        assert sb.admin("GET", "/_sandbox/health").status_code == 200
        assert sb.admin("GET", "/_sandbox/stats").status_code == 200
    tid, cid, secret = client_of(TENANT)
    result: dict[str, Any] = sb.token_result(tid, cid, secret)  # discovery + token endpoint
    assert "access_token" in result, result
    # unauthenticated Graph calls are not faulted either: they get their 401
    assert sb.http().get(f"{sb.url}/v1.0/users").status_code == 401
    assert sb.stats()["faults_injected"] == 0


def test_latency(sb: SandboxHandle, graph: httpx.Client) -> None:
    sb.set_faults(latency_ms=120)
    resp = graph.get("/users/ann")
    assert resp.status_code == 200
    assert resp.elapsed.total_seconds() >= 0.12
    assert sb.stats()["faults_by_kind"] == {"latency": 1}
    assert sb.stats()["faults_injected"] == 0  # latency alone is not a failure


def test_seed_faults_apply_from_the_start(tmp_path: Any) -> None:
    seed = make_seed(TENANT, faults={"error_rate": 1.0, "error_statuses": [504], "seed": 1})
    with running_sandbox(seed, tmp_path) as sb:
        graph = sb.graph(*client_of(TENANT))
        resp = graph.get("/users")
        assert resp.status_code == 504
        assert resp.headers["Retry-After"] == "1"
        sb.set_faults(error_rate=0)
        assert graph.get("/users").status_code == 200
        sb.reset()  # back to the seed's faults
        assert graph.get("/users").status_code == 504
