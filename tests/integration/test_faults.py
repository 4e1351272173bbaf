"""The worker against a misbehaving Graph: errors, latency, dropped connections, lost responses
after committed writes, and tight throttling. Cycles are repeated until they converge; the
target must then be exactly what scope and mappings imply, with zero duplicates."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.conftest import SyncEnv
from tests.support.world import GROUP

pytestmark = pytest.mark.integration

MAX_RUNS = 25
FAULTS = {
    "error_rate": 0.10,  # 500, 502, 503, 504
    "latency_ms": 5,
    "drop_rate": 0.02,
    "commit_then_drop_rate": 0.10,
    "commit_then_drop_paths": [
        "POST /v1.0/$batch",
        "POST /v1.0/invitations",
        "PATCH /v1.0/users/*",
    ],
    "seed": 20261122,
}
LIMITS = {
    "write_per_150s": 60,
    "invitations_per_5s": 8,
    "resource_units_per_10s": 600,
    "window_scale": 0.02,  # 3 s write windows, 0.1 s invitation windows
}


def converge(env: SyncEnv, *args: str) -> tuple[int, dict[str, Any]]:
    """Run cycles until one succeeds with nothing left to do; returns (runs, last summary)."""
    last: dict[str, Any] = {}
    for runs in range(1, MAX_RUNS + 1):
        result = env.cli("run", "sync", "--json", *args)
        assert result.returncode in (0, 1), result.stderr
        last = json.loads(result.stdout)
        counts = last["counts"]
        if last["status"] == "success" and sum(v for k, v in counts.items() if k != "skip") == 0:
            return runs, last
    raise AssertionError(f"no convergence after {MAX_RUNS} runs; last: {last}")


def check_target(env: SyncEnv, in_scope: list[dict[str, Any]]) -> None:
    live = [u for u in env.target_users() if not u.get("deletedDateTime")]
    per_address = Counter((u.get("mail") or "").lower() for u in live)
    duplicates = {a: n for a, n in per_address.items() if n > 1}
    assert not duplicates, f"duplicated B2B users: {duplicates}"
    expected = {(u.get("mail") or u["userPrincipalName"]).lower(): u for u in in_scope}
    assert set(per_address) == set(expected)
    for user in live:
        source = expected[user["mail"].lower()]
        assert user["displayName"] == source["displayName"]
        assert user["department"] == source["department"]


@pytest.mark.world(users=60, prior_b2b=True)
def test_cycles_converge_under_faults_and_throttling_without_duplicates(
    sync_env: SyncEnv, fault_summary: dict[str, int]
) -> None:
    env = sync_env
    env.sandbox.set_faults(**FAULTS)
    env.sandbox.set_limits(**LIMITS)
    members = env.seed["tenants"][0]["users"][:60]
    in_scope = members[:56]

    runs, _ = converge(env, "--full")

    check_target(env, in_scope)
    stats = env.sandbox.stats()
    assert stats["throttled"] > 0, "the limits were meant to bite"
    assert sum(stats["faults_by_kind"].values()) > 0

    # Changes made while the faults go on, then incremental cycles, then a full one to be sure.
    env.sandbox.set_faults(error_rate=0.0, drop_rate=0.0, commit_then_drop_rate=0.0)
    graph = env.source()
    for user in members[:5]:
        user["displayName"] = user["displayName"] + " (renamed)"
        graph.patch(
            f"/users/{user['id']}", json={"displayName": user["displayName"]}
        ).raise_for_status()
    for user in members[5:8]:
        graph.delete(f"/groups/{GROUP}/members/{user['id']}/$ref").raise_for_status()
    env.sandbox.set_faults(**FAULTS)
    converge(env)
    converge(env, "--full")

    check_target(env, [u for u in in_scope if u not in members[5:8]])
    fault_summary["faults"] += sum(env.sandbox.stats()["faults_by_kind"].values())
    fault_summary["cycles"] += runs
