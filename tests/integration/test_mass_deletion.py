"""A mass deletion that reaches the job over several cycles is held whole (issue 14).

Real cycles against the sandbox, Redis and SQLite, run in this process so that a fault, or a
person deleting users, can be placed at an exact point of a cycle: a `Tripwire` wraps the real
source directory and, just before its n-th read of one kind, injects faults into the sandbox
(the read then really fails, after the client's retries) or deletes users through Graph. The
threshold is `count: 10`; 34 of the 56 synced users (60 %) are deleted, in parts, between and
during cycles. No deletion may reach the target before `allow-deletes`; after it, every one does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import SyncEnv
from tests.support.world import GROUP, SOURCE
from worker.adapters.graph.retry import RetryPolicy
from worker.bootstrap import Runtime, open_runtime
from worker.config import load_config
from worker.service.cycle import CycleResult

pytestmark = pytest.mark.integration

THRESHOLD = {"deletion_threshold": {"count": 10}}
PAGE = 10  # users per delta page, so that a round of 25 changes has three pages
FAULTS_ON = {"error_rate": 1.0, "error_statuses": [500, 503], "error_retry_after_s": 0}
FAULTS_OFF = {"error_rate": 0.0}


class Tripwire:
    """The job's real source directory; just before the `nth` call of `method`, `action` runs."""

    def __init__(self, method: str, nth: int, action: Callable[[], None]) -> None:
        self.method, self.nth, self.action = method, nth, action
        self.calls = 0
        self.inner: Any = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name != self.method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.nth:
                self.action()
            return attribute(*args, **kwargs)

        return call


class Job:
    """The `sync` job of a SyncEnv, driven in this process and through the CLI."""

    def __init__(self, env: SyncEnv, runtime: Runtime) -> None:
        self.env, self.runtime = env, runtime
        self.members: list[dict[str, Any]] = env.seed["tenants"][0]["users"][:56]
        self.graph = env.source()

    def cycle(self, tripwire: Tripwire | None = None) -> CycleResult:
        service = self.runtime.cycle("sync")
        service.source.page_size = PAGE  # type: ignore[attr-defined]
        if tripwire is not None:
            tripwire.inner = service.source
            service.source = tripwire  # type: ignore[assignment]
        try:
            return service.run()
        finally:
            self.env.sandbox.set_faults(**FAULTS_OFF)

    def failing_cycle(self, method: str, nth: int) -> CycleResult:
        """A cycle that meets an outage just before its nth `method` read and fails."""
        result = self.cycle(Tripwire(method, nth, lambda: self.env.sandbox.set_faults(**FAULTS_ON)))
        assert result.status == "failed", result
        assert self.progress() is not None
        return result

    def progress(self) -> Any:
        return self.runtime.cursors.load("sync").progress

    def delete(self, users: Sequence[dict[str, Any]]) -> None:
        for user in users:
            self.graph.delete(f"/users/{user['id']}").raise_for_status()

    def rename(self, users: Sequence[dict[str, Any]]) -> None:
        for user in users:
            user["displayName"] += " (renamed)"
            self.graph.patch(
                f"/users/{user['id']}", json={"displayName": user["displayName"]}
            ).raise_for_status()

    def touch_memberships(self, users: Sequence[dict[str, Any]]) -> None:
        """Out of the group and back: the next cycle re-reads them one by one."""
        for user in users:
            self.graph.delete(f"/groups/{GROUP}/members/{user['id']}/$ref").raise_for_status()
            self.graph.post(
                f"/groups/{GROUP}/members/$ref",
                json={"@odata.id": f"{self.graph.base_url}directoryObjects/{user['id']}"},
            ).raise_for_status()

    def deleted_in_target(self) -> int:
        return sum(1 for u in self.env.target_users(include_deleted=True) if u["deletedDateTime"])

    def live_in_target(self) -> int:
        return sum(1 for u in self.env.target_users() if not u.get("deletedDateTime"))

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self.env.cli("status", "sync", "--json", check=True).stdout
        )
        return data


@contextmanager
def job(env: SyncEnv) -> Iterator[Job]:
    runtime = open_runtime(load_config(env.config))
    # An outage should fail the cycle in a second, not after Graph's minutes of back-off.
    source = runtime.client(SOURCE.name)
    source.policy = RetryPolicy(max_attempts=2, base_s=0.01, cap_s=0.02)
    try:
        synced = Job(env, runtime)
        first = synced.cycle()
        assert first.counts["create"] == 56
        yield synced
    finally:
        runtime.close()


def by_id(users: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(users, key=lambda u: u["id"])


def plan(j: Job) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """25 users to rename (a round of three pages, in id order) and the 34 to delete: 4 of the
    renamed ones, past the first page, and 30 others."""
    members = by_id(j.members)
    renamed = members[:25]
    doomed = [renamed[12], renamed[14], renamed[21], renamed[23], *members[26:56]]
    return renamed, doomed


def assert_held_whole(j: Job, result: CycleResult, held: int) -> None:
    assert result.status == "success", result.error
    assert result.counts["delete"] == 0
    assert result.counts["staged_delete"] == held
    assert j.deleted_in_target() == 0
    assert result.deletions is not None
    assert result.deletions["held"] is True
    status = j.status()
    assert status["code"] == "Quarantine"
    assert status["quarantine"]["reason"] == "TooManyDeletes"
    assert status["stagedDeletes"] == held
    assert status["deletionThreshold"]["counted"] == held
    assert status["deletionThreshold"]["deletionsInWindow"] == 0


def assert_released(j: Job, doomed: int) -> None:
    allowed = j.env.cli("allow-deletes", "sync", check=True)
    assert f"{doomed} held now" in allowed.stdout
    before = j.deleted_in_target()
    released = j.env.run_json()
    assert released["counts"]["delete"] == doomed
    assert j.deleted_in_target() == before + doomed
    assert j.live_in_target() == 56 - before - doomed
    after = j.status()
    assert after["code"] == "Active"
    assert after["stagedDeletes"] == 0
    # The approved deletions do not count against the next ones.
    assert after["deletionThreshold"]["deletionsInWindow"] == 0


@pytest.mark.world(users=60, prior_b2b=False, job=THRESHOLD)
def test_a_cycle_resumed_past_its_round_after_a_mass_deletion_holds_it_whole(
    sync_env: SyncEnv,
) -> None:
    # Two cycles: the first fails on a fault while it re-reads the users whose membership
    # changed; 60 % of the users are deleted; the second resumes where the first stopped.
    with job(sync_env) as j:
        _, doomed = plan(j)
        j.touch_memberships(doomed[-6:])
        j.failing_cycle("get_user", 1)
        assert j.progress().phase == "pending"
        j.delete(doomed)

        resumed = j.cycle()

        assert_held_whole(j, resumed, 34)
        assert_held_whole(j, j.cycle(), 34)  # and the next cycle still holds them
        assert_released(j, 34)


@pytest.mark.world(users=60, prior_b2b=False, job=THRESHOLD)
def test_a_mass_deletion_made_between_three_cycles_cut_by_faults_is_held_whole(
    sync_env: SyncEnv,
) -> None:
    # A round of three pages, cut by a fault after its first page, then after its second,
    # with half the deletion made after each cut.
    with job(sync_env) as j:
        renamed, doomed = plan(j)
        j.rename(renamed)
        j.failing_cycle("users_page", 2)
        assert j.progress().next_link is not None
        j.delete(doomed[0:2] + doomed[4:19])
        j.failing_cycle("users_page", 2)
        assert j.deleted_in_target() == 0
        j.delete(doomed[2:4] + doomed[19:])

        third = j.cycle()

        assert_held_whole(j, third, 34)
        assert_released(j, 34)


@pytest.mark.world(users=60, prior_b2b=False, job=THRESHOLD)
def test_a_mass_deletion_made_while_a_cycle_pages_the_delta_is_held_whole(
    sync_env: SyncEnv,
) -> None:
    with job(sync_env) as j:
        renamed, doomed = plan(j)
        j.rename(renamed)

        during = j.cycle(Tripwire("users_page", 2, lambda: j.delete(doomed)))

        assert_held_whole(j, during, 34)
        assert_held_whole(j, j.cycle(), 34)
        assert_released(j, 34)


@pytest.mark.world(users=60, prior_b2b=False, job=THRESHOLD)
def test_a_mass_deletion_spread_over_five_cycles_by_faults_and_edits_is_held_whole(
    sync_env: SyncEnv,
) -> None:
    with job(sync_env) as j:
        renamed, doomed = plan(j)
        parts = [doomed[i::5] for i in range(5)]
        j.rename(renamed)
        j.touch_memberships([doomed[k] for k in (5, 10, 15)])
        # 1: an outage after the first page of the round
        j.failing_cycle("users_page", 2)
        j.delete(parts[0])
        # 2: resumed, and cut again after the second page
        j.failing_cycle("users_page", 2)
        j.delete(parts[1])
        # 3: resumed, to its end; cut while it re-reads the members that changed
        j.failing_cycle("get_user", 1)
        assert j.progress().phase == "pending"
        j.delete(parts[2])
        # 4: resumed; more users are deleted while it runs
        fourth = j.cycle(Tripwire("get_user", 1, lambda: j.delete(parts[3])))
        assert fourth.counts["delete"] == 0
        assert j.deleted_in_target() == 0
        j.delete(parts[4])

        fifth = j.cycle()

        assert_held_whole(j, fifth, 34)
        assert_released(j, 34)


@pytest.mark.world(users=60, prior_b2b=False, job=THRESHOLD)
def test_a_deletion_graph_spreads_over_rounds_gets_at_most_the_count_through(
    sync_env: SyncEnv,
) -> None:
    # Graph's replication may report changes in a later round than the one that started after
    # them: the sandbox's delta lag. A cycle then sees only what it re-reads one by one (here
    # the users whose membership changed), under the threshold, and makes those deletions; the
    # rest, once replicated, count with them in the window and are held.
    env = sync_env
    bad = env.sandbox.admin("PUT", "/_sandbox/delta", json={"lag_s": -1})
    assert bad.status_code == 400
    assert "delta.lag_s" in bad.text
    with job(env) as j:
        _, doomed = plan(j)
        j.touch_memberships(doomed[:6])
        lag = 5.0
        time.sleep(lag + 0.5)  # the memberships have replicated: the lag is a fixed delay
        assert env.sandbox.set_delta(lag_s=lag)["lag_s"] == lag
        j.delete(doomed)

        partial = j.cycle()

        assert partial.counts["delete"] == 6  # within the count: nothing else was visible yet
        assert j.deleted_in_target() == 6
        env.sandbox.set_delta(lag_s=0)  # replication catches up

        rest = j.cycle()

        assert rest.counts["delete"] == 0
        assert rest.counts["staged_delete"] == 28
        assert rest.deletions is not None
        assert (rest.deletions["carried_out_in_window"], rest.deletions["counted"]) == (6, 34)
        assert j.deleted_in_target() == 6
        window = j.status()["deletionThreshold"]
        assert (window["deletionsInWindow"], window["staged"], window["counted"]) == (6, 28, 34)
        assert_released(j, 28)


def test_an_approval_with_nothing_held_warns_and_shows_in_status(sync_env: SyncEnv) -> None:
    sync_env.run_json()
    allowed = sync_env.cli("allow-deletes", "sync", check=True)
    said = " ".join(allowed.stdout.split())
    assert "(0 held now)" in said
    assert "warning: nothing is held now: this approval applies to the next cycle only" in said
    status = " ".join(sync_env.cli("status", "sync", check=True).stdout.split())
    assert "sync: allow-deletes pending: the next cycle makes its deletions (0 held now)" in status
    assert json.loads(sync_env.cli("status", "sync", "--json", check=True).stdout)["allowDeletes"]


@pytest.mark.world(job={"deletion_threshold": {"count": 1}})
def test_an_approval_lapses_when_the_deletions_it_approved_are_dropped(
    sync_env: SyncEnv,
) -> None:
    """allow-deletes is for the deletions held when it was given: once they are dropped, a
    later mass deletion is held again, not released by the old approval."""
    sync_env.run_json("--full")
    graph = sync_env.source()
    users = sync_env.seed["tenants"][0]["users"]

    def out_of_group(indexes: Sequence[int]) -> None:
        for i in indexes:
            graph.delete(f"/groups/{GROUP}/members/{users[i]['id']}/$ref").raise_for_status()

    out_of_group([1, 2])
    assert sync_env.run_json()["counts"]["staged_delete"] == 2
    sync_env.cli("allow-deletes", "sync", check=True)
    pending = " ".join(sync_env.cli("status", "sync", check=True).stdout.split())
    assert "sync: allow-deletes pending: the next cycle makes its deletions (2 held now)" in pending
    for i in (1, 2):  # the source is fixed: nothing to delete any more
        graph.post(
            f"/groups/{GROUP}/members/$ref",
            json={"@odata.id": f"{graph.base_url}directoryObjects/{users[i]['id']}"},
        ).raise_for_status()
    fixed = sync_env.run_json()
    assert (fixed["counts"]["delete"], fixed["counts"]["staged_delete"]) == (0, 0)
    status = json.loads(sync_env.cli("status", "sync", "--json", check=True).stdout)
    assert status["allowDeletes"] is False

    out_of_group([3, 4, 5])
    later = sync_env.run_json()

    assert (later["counts"]["delete"], later["counts"]["staged_delete"]) == (0, 3)
    assert json.loads(sync_env.cli("status", "sync", "--json", check=True).stdout)["code"] == (
        "Quarantine"
    )
