"""Long variants of the fault suite (make soak): more users, more kills, more faults."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tenant_sync_demo.demo import wait_for
from tests.conftest import sync_world
from tests.e2e.test_crash import (
    FAST_LOCK,
    ROOMY_LIMITS,
    assert_exact,
    configure,
    in_scope_of,
    run_to_success,
    start_cycle,
    target_writes,
)
from tests.e2e.test_fault_retries import check as check_retries
from tests.e2e.test_fault_retries import run_scenario as retries_scenario
from tests.e2e.test_mass_deletion import run_scenario
from tests.support.world import build_world_seed

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]


def test_twenty_kills_during_a_10000_user_cycle_under_faults(
    tmp_path: Path, fault_summary: dict[str, int]
) -> None:
    seed = build_world_seed(users=10_000, prior_b2b=True)
    seed["limits"] = ROOMY_LIMITS
    seed["faults"] = {
        "latency_ms": 2,
        "error_rate": 0.03,
        "error_statuses": [503, 504],
        "commit_then_drop_rate": 0.05,
        "commit_then_drop_paths": ["POST /v1.0/$batch"],
        "seed": 99,
    }
    with sync_world(tmp_path, seed) as env:
        configure(env, **FAST_LOCK)
        kills = 0
        for threshold in range(500, 19_000, 900):
            process = start_cycle(env, "--full") if kills == 0 else start_cycle(env)
            wait_for(
                lambda t=threshold, p=process: target_writes(env) >= t or p.poll() is not None,
                f"{threshold} target writes",
                600,
            )
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
        run_to_success(env, "--full", attempts=200)
        result = assert_exact(env, in_scope_of(seed))
        fault_summary["kills"] += kills
        fault_summary["faults"] += sum(env.sandbox.stats()["faults_by_kind"].values())
        fault_summary["cycles"] += kills + 1
        fault_summary["lost"] += result["lost"]
        fault_summary["duplicates"] += result["duplicates"]


@pytest.mark.parametrize("seed", range(1, 21))
def test_the_kill_and_fault_mass_deletion_of_issue_14_never_deletes_before_approval(
    tmp_path: Path, seed: int, fault_summary: dict[str, int]
) -> None:
    found = run_scenario(tmp_path, seed, users=1200)
    fault_summary["kills"] += found["kills"]
    fault_summary["cycles"] += found["cycles"]


@pytest.mark.parametrize("seed", range(1, 11))
def test_the_kill_under_faults_scenario_of_issue_12_leaves_nobody_behind(
    tmp_path: Path, seed: int, fault_summary: dict[str, int]
) -> None:
    check_retries(retries_scenario(tmp_path, seed, users=1200), fault_summary)
