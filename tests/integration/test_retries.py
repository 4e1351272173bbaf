"""Graph faults ridden out inside one cycle (docs/retries.md), against the sandbox over HTTPS.

Every write goes through `$batch`; the sandbox answers some items with a 5xx before doing them
(`error_rate`) and others with a 5xx after doing them (`commit_then_error_rate`, a gateway that
timed out while the directory acted). Each cycle must end with every object done and no failure:
a repeated invitation is answered with the user the first one created, a repeated DELETE that
answers 404 is done, a repeated restore that answers 404 finds the user restored.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.conftest import SyncEnv
from tests.integration.test_faults import check_target
from worker.bootstrap import open_runtime
from worker.config import load_config

pytestmark = pytest.mark.integration

FAULTS = {
    "error_rate": 0.05,
    "commit_then_error_rate": 0.15,
    "error_statuses": [500, 502, 503, 504],
    "error_retry_after_s": 0,
    "seed": 1212,
}


def address(user: dict[str, Any]) -> str:
    return str(user.get("mail") or user["userPrincipalName"]).lower()


def no_failures(env: SyncEnv, summary: dict[str, Any]) -> dict[str, int]:
    assert summary["status"] == "success", summary
    counts: dict[str, int] = summary["counts"]
    if counts["failure"]:
        failed = env.cli(
            "logs", "sync", "--run", summary["run_id"], "--status", "failure", "--json"
        )
        raise AssertionError(f"{counts}: {failed.stdout[-3000:]}")
    return counts


@pytest.mark.world(users=60, prior_b2b=True)
def test_faults_before_and_after_writes_are_ridden_out_in_the_same_cycle(
    sync_env: SyncEnv, fault_summary: dict[str, int]
) -> None:
    env = sync_env
    members = env.seed["tenants"][0]["users"][:60]
    in_scope = members[:56]
    env.sandbox.set_faults(**FAULTS)

    created = no_failures(env, env.run_json("--full"))

    assert created["create"] > 0
    check_target(env, in_scope)  # every invitation once, every attribute written
    after = env.sandbox.stats()["faults_by_kind"]
    assert after.get("commit_then_error", 0) > 0
    assert sum(n for kind, n in after.items() if kind.startswith("error_")) > 0

    # Deletions: a DELETE whose first answer was lost in a 5xx is answered 404 when repeated.
    graph = env.source()
    doomed = members[:6]
    env.sandbox.set_faults(error_rate=0.0, commit_then_error_rate=0.0)
    for user in doomed:
        graph.delete(f"/users/{user['id']}").raise_for_status()
    env.sandbox.set_faults(**{**FAULTS, "commit_then_error_rate": 0.5, "seed": 7})

    deleted = no_failures(env, env.run_json())

    assert deleted["delete"] == len(doomed)
    gone = {
        (u.get("mail") or "").lower()
        for u in env.target_users(include_deleted=True)
        if u["deletedDateTime"]
    }
    assert {address(u) for u in doomed} <= gone

    # Restores: a restore repeated after it ran answers 404; the user is found restored.
    env.sandbox.set_faults(error_rate=0.0, commit_then_error_rate=0.0)
    for user in doomed:
        graph.post(f"/directory/deletedItems/{user['id']}/restore").raise_for_status()
    env.sandbox.set_faults(**{**FAULTS, "commit_then_error_rate": 0.5, "seed": 8})

    restored = no_failures(env, env.run_json())

    assert restored["restore"] == len(doomed)
    check_target(env, in_scope)
    live = Counter((u.get("mail") or "").lower() for u in env.target_users())
    assert max(live.values()) == 1
    fault_summary["faults"] += sum(env.sandbox.stats()["faults_by_kind"].values())
    fault_summary["cycles"] += 3


@pytest.mark.world(users=40, prior_b2b=False)
def test_with_no_retry_budget_the_same_faults_go_to_escrow(sync_env: SyncEnv) -> None:
    env = sync_env
    config = yaml.safe_load(env.config.read_text())
    for tenant in config["tenants"].values():
        tenant["limits"]["retry_budget"] = "0s"  # no retries at all
    env.config.write_text(yaml.safe_dump(config))
    assert env.cli("validate", check=True).returncode == 0
    env.sandbox.set_faults(**{**FAULTS, "error_statuses": [500], "error_rate": 0.1})

    for _ in range(20):  # a source read that fails fails the cycle; the next one resumes it
        summary = json.loads(env.cli("run", "sync", "--json", "--full").stdout)
        if summary["status"] == "success":
            break
    assert summary["status"] == "success", summary
    assert summary["counts"]["failure"] > 0
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["escrows"] > 0, status


def test_each_cycle_gets_a_fresh_retry_budget_of_its_tenants(sync_env: SyncEnv) -> None:
    config = yaml.safe_load(sync_env.config.read_text())
    config["tenants"]["fabrikam"]["limits"]["retry_budget"] = "90s"
    sync_env.config.write_text(yaml.safe_dump(config))
    runtime = open_runtime(load_config(sync_env.config))
    try:
        job = runtime.config.job("sync")
        source, target = runtime.directories(job)
        again, _ = runtime.directories(job)
        assert source.client.budget.seconds == 15 * 60  # the default
        assert target.client.budget.seconds == 90
        assert again.client.budget is not source.client.budget
        assert again.client._http is source.client._http  # the same connections
    finally:
        runtime.close()


def test_a_cycle_against_a_graph_url_that_never_answers_fails_fast(sync_env: SyncEnv) -> None:
    # A wrong graph_url (a closed port) is not an outage to ride out for 40 s: the first request
    # gets 3 attempts (docs/retries.md), then the cycle fails, naming the host.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{probe.getsockname()[1]}"
    config = yaml.safe_load(sync_env.config.read_text())
    config["tenants"]["contoso"]["graph_url"] = url
    sync_env.config.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    result = sync_env.cli("run", "sync", "--json")
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed"
    assert f"gave up after 3 attempts ({url} has not answered yet)" in summary["error"]
    assert elapsed < 20, f"the cycle took {elapsed:.0f} s to fail"
