"""$batch, stats, injected faults and throttling on the sandbox over HTTPS."""

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
ANN = make_user("ann", DOMAIN, id="ann")
TENANT = make_tenant(DOMAIN, users=[ANN], groups=[{"id": "g1", "displayName": "G", "members": []}])
TID = TENANT["tenant_id"]
DEFAULT_LIMITS = {"write_per_150s": 3000, "resource_units_per_10s": 8000, "invitations_per_5s": 150}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> Iterator[httpx.Client]:
    sb.reset()
    sb.admin("POST", "/_sandbox/stats/reset").raise_for_status()
    yield sb.graph(*client_of(TENANT))
    sb.admin("PUT", "/_sandbox/faults", json={"error_rate": 0, "latency_ms": 0})
    sb.admin("PUT", "/_sandbox/limits", json=DEFAULT_LIMITS)


def batch(graph: httpx.Client, requests: list[dict[str, Any]]) -> httpx.Response:
    return graph.post("/$batch", json={"requests": requests})


def test_batch_runs_items_through_the_same_handlers(graph: httpx.Client) -> None:
    resp = batch(
        graph,
        [
            {"id": "1", "method": "GET", "url": "/users/ann?$select=displayName"},
            {
                "id": "2",
                "method": "PATCH",
                "url": "users/ann",
                "headers": {"Content-Type": "application/json"},
                "body": {"jobTitle": "Lead"},
            },
            {"id": "3", "method": "GET", "url": "/users/nobody"},
            {
                "id": "4",
                "method": "POST",
                "url": "/groups/g1/members/$ref",
                "headers": {"Content-Type": "application/json"},
                "body": {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/ann"},
            },
        ],
    )
    assert resp.status_code == 200
    out = {r["id"]: r for r in resp.json()["responses"]}
    assert out["1"]["status"] == 200
    assert out["1"]["body"]["displayName"] == "Ann"
    assert out["2"]["status"] == 204
    assert out["3"]["status"] == 404
    assert out["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert out["4"]["status"] == 204
    assert graph.get("/users/ann?$select=jobTitle").json()["jobTitle"] == "Lead"


def test_batch_limits_and_dependencies(graph: httpx.Client) -> None:
    many = [{"id": str(i), "method": "GET", "url": "/users/ann"} for i in range(21)]
    resp = batch(graph, many)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "Request_BadRequest"

    resp = batch(
        graph,
        [
            {"id": "a", "method": "GET", "url": "/users/missing"},
            {
                "id": "b",
                "method": "PATCH",
                "url": "/users/ann",
                "headers": {"Content-Type": "application/json"},
                "body": {"jobTitle": "X"},
                "dependsOn": ["a"],
            },
            {"id": "c", "method": "GET", "url": "/users/ann", "dependsOn": ["b"]},
        ],
    )
    assert [(r["id"], r["status"]) for r in resp.json()["responses"]] == [
        ("a", 404),
        ("b", 424),
        ("c", 424),
    ]
    assert graph.get("/users/ann?$select=jobTitle").json()["jobTitle"] is None


def test_stats_count_writes(graph: httpx.Client, sb: SandboxHandle) -> None:
    graph.patch("/users/ann", json={"jobTitle": "A"})
    graph.patch("/users/nobody", json={"jobTitle": "A"})  # 404: not a write
    json_type = {"Content-Type": "application/json"}
    batch(
        graph,
        [
            {
                "id": "1",
                "method": "PATCH",
                "url": "/users/ann",
                "headers": json_type,
                "body": {"jobTitle": "B"},
            },
            {
                "id": "2",
                "method": "PATCH",
                "url": "/users/ann",
                "headers": json_type,
                "body": {"jobTitle": "C"},
            },
            {"id": "3", "method": "GET", "url": "/users/ann"},
        ],
    )
    graph.get("/users/delta")
    stats = sb.stats()
    assert stats["writes"] == {TID: 3}
    assert stats["requests"]["by_method_path"]["GET /v1.0/users/delta"] == 1
    assert stats["requests"]["by_method_path"]["PATCH /v1.0/users/{id}"] == 4
    assert stats["requests"]["by_tenant"][TID] >= 4
    assert stats["requests"]["total"] >= 4
    assert stats["errors"] >= 1
    assert stats["throttled"] == 0
    sb.admin("POST", "/_sandbox/stats/reset")
    assert sb.stats()["writes"] == {}


def test_fault_injection(graph: httpx.Client, sb: SandboxHandle) -> None:
    sb.admin(
        "PUT", "/_sandbox/faults", json={"error_rate": 1.0, "error_statuses": [503]}
    ).raise_for_status()
    resp = graph.get("/users")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert "code" in resp.json()["error"]
    assert sb.stats()["faults_injected"] >= 1
    sb.admin("PUT", "/_sandbox/faults", json={"error_rate": 0, "latency_ms": 50})
    resp = graph.get("/users")
    assert resp.status_code == 200
    assert resp.elapsed.total_seconds() >= 0.05


def test_write_throttling(graph: httpx.Client, sb: SandboxHandle) -> None:
    sb.admin("PUT", "/_sandbox/limits", json={"write_per_150s": 2}).raise_for_status()
    assert graph.patch("/users/ann", json={"jobTitle": "1"}).status_code == 204
    assert graph.patch("/users/ann", json={"jobTitle": "2"}).status_code == 204
    resp = graph.patch("/users/ann", json={"jobTitle": "3"})
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.json()["error"]["code"] == "TooManyRequests"
    assert graph.get("/users/ann").status_code == 200  # reads are not writes
    assert sb.stats()["throttled"] == 1
    assert graph.get("/users/ann?$select=jobTitle").json()["jobTitle"] == "2"


def test_admin_seed_replaces_state(sb: SandboxHandle) -> None:
    other = make_tenant("solo.onmicrosoft.com", users=[make_user("x", "solo.onmicrosoft.com")])
    resp = sb.admin("POST", "/_sandbox/seed", json=make_seed(TENANT, other))
    assert resp.status_code == 200
    assert [u["userPrincipalName"] for u in sb.users(other["tenant_id"])] == [
        "x@solo.onmicrosoft.com"
    ]
    bad = sb.admin("POST", "/_sandbox/seed", json={"tenants": [{"domain": "x.com"}]})
    assert bad.status_code == 400
    assert "tenant_id" in bad.json()["error"]
    sb.admin("POST", "/_sandbox/seed", json=make_seed(TENANT)).raise_for_status()


# ---------------------------------------------------------------- Graph's $batch rules

JSON_TYPE = {"Content-Type": "application/json"}


def test_item_urls_are_relative_to_the_version(graph: httpx.Client, sb: SandboxHandle) -> None:
    resp = batch(
        graph,
        [
            {"id": "1", "method": "GET", "url": f"{sb.url}/v1.0/users/ann"},
            {"id": "2", "method": "GET", "url": "/v1.0/users/ann"},
            {"id": "3", "method": "GET", "url": "users/ann"},
            {"id": "4", "method": "GET", "url": "/users/ann"},
        ],
    )
    assert resp.status_code == 200
    out = {r["id"]: r for r in resp.json()["responses"]}
    assert out["1"]["status"] == 400
    assert out["1"]["body"]["error"]["message"] == "Resource not found for the segment 'https:'."
    assert out["2"]["status"] == 400
    assert out["2"]["body"]["error"]["message"] == "Resource not found for the segment 'v1.0'."
    assert (out["3"]["status"], out["4"]["status"]) == (200, 200)


@pytest.mark.parametrize(
    "item",
    [
        {"method": "PATCH", "url": "/users/ann", "body": {"jobTitle": "x"}},  # no Content-Type
        {"method": "POST", "url": "/directory/deletedItems/ann/restore"},  # no body
        {"method": "POST", "url": "/groups/g1/members/$ref", "headers": JSON_TYPE},  # no body
    ],
)
def test_a_write_without_body_or_content_type_fails_the_whole_batch(
    graph: httpx.Client, sb: SandboxHandle, item: dict[str, Any]
) -> None:
    first = {"id": "1", "method": "PATCH", "url": "/users/ann", "headers": JSON_TYPE}
    resp = batch(graph, [{**first, "body": {"jobTitle": "ran"}}, {"id": "2", **item}])
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest"
    assert resp.json()["error"]["message"] == (
        "Write request id : 2 does not contain Content-Type header or body."
    )
    assert sb.stats()["writes"] == {}  # nothing ran


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [
                {"id": "a", "method": "GET", "url": "/users/ann"},
                {"id": "b", "method": "GET", "url": "/users/ann", "dependsOn": ["a"]},
                {"id": "c", "method": "GET", "url": "/users/ann"},
            ],
            "Batch should be either fully sequential or fully parallel",
        ),
        (
            [
                {"id": "a", "method": "GET", "url": "/users/ann"},
                {"id": "b", "method": "GET", "url": "/users/ann"},
                {"id": "c", "method": "GET", "url": "/users/ann", "dependsOn": ["b"]},
            ],
            "Batch should be either fully sequential or fully parallel",
        ),
        (
            [
                {"id": "a", "method": "GET", "url": "/users/ann", "dependsOn": ["b"]},
                {"id": "b", "method": "GET", "url": "/users/ann"},
            ],
            "Invalid dependency for request Id : a",
        ),
        (
            [
                {"id": "a", "method": "GET", "url": "/users/ann"},
                {"id": "A", "method": "GET", "url": "/users/ann"},
            ],
            "Batch request id 'A' is not unique in the batch.",
        ),
    ],
)
def test_batch_shape_rules(graph: httpx.Client, items: list[dict[str, Any]], message: str) -> None:
    resp = batch(graph, items)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest"
    assert resp.json()["error"]["message"].startswith(message)


def test_sequential_batch_runs_in_order_and_unknown_keys_are_ignored(graph: httpx.Client) -> None:
    items = [
        {
            "id": str(i),
            "method": "PATCH",
            "url": "/users/ann",
            "headers": JSON_TYPE,
            "body": {"jobTitle": f"step {i}"},
            "depends_on": [],  # what Microsoft's Python SDK sends; Graph ignores it
            **({"dependsOn": [str(i - 1)]} if i else {}),
        }
        for i in range(10)
    ]
    resp = batch(graph, items)
    assert resp.status_code == 200
    assert [r["id"] for r in resp.json()["responses"]] == [str(i) for i in range(10)]
    assert graph.get("/users/ann?$select=jobTitle").json()["jobTitle"] == "step 9"


def test_parallel_batch_runs_in_any_order(graph: httpx.Client, sb: SandboxHandle) -> None:
    items = [
        {
            "id": str(i),
            "method": "PATCH",
            "url": "/users/ann",
            "headers": JSON_TYPE,
            "body": {"jobTitle": f"step {i}"},
        }
        for i in range(10)
    ]
    orders = []
    for _ in range(3):
        answered = [r["id"] for r in batch(graph, items).json()["responses"]]
        assert sorted(answered, key=int) == [str(i) for i in range(10)]
        # The last to run wins: whoever relies on array order sees it fail here.
        assert graph.get("/users/ann?$select=jobTitle").json()["jobTitle"] == f"step {answered[-1]}"
        orders.append(answered)
    assert any(order != [str(i) for i in range(10)] for order in orders)

    sb.set_faults(seed=11)  # a seeded sandbox repeats its order
    first = [r["id"] for r in batch(graph, items).json()["responses"]]
    sb.set_faults(seed=11)
    assert [r["id"] for r in batch(graph, items).json()["responses"]] == first
