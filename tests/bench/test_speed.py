"""Benchmarks (make bench): tenant-sync at the target tenant's Graph quota.

Against the sandbox with 30 ms added to every Graph request. Quotas are Graph's published ones
scaled by 10 (30,000 writes per 150 s, 1,500 invitations per 5 s) so an initial cycle of 5,000
users takes about a minute. Results go to bench-results/speed.json and a table at the end.

1. initial full cycle, 5,000 users: users/s, writes/s, rate ÷ quota, 429s, peak RSS
2. the same with 3 worker processes writing to one target tenant (3 jobs, a third each)
3. incremental cycle after 100 changes among 100,000 users in scope: requests and seconds
4. incremental cycle with no changes, 100,000 users: requests and seconds
5. full cycle over 100,000 users with nothing to change: peak RSS and seconds
6. a naive sequential client (list everyone, then look up, invite, patch each user): users/s
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import SyncEnv, sync_world
from tests.support.memory import peak_rss_mb
from tests.support.world import GROUP, SOURCE, TARGET, build_world_seed

pytestmark = [pytest.mark.bench, pytest.mark.timeout(3600)]

LATENCY_MS = 30
SCALE = 10
QUOTA_WRITES, QUOTA_WINDOW_S = 3000 * SCALE, 150
QUOTA_INVITES = 150 * SCALE
WRITE_RATE = QUOTA_WRITES / QUOTA_WINDOW_S  # writes per second the quota allows
RESULTS: dict[str, Any] = {}


def bench_seed(users: int, *, latency_ms: int = LATENCY_MS, groups: int = 1) -> dict[str, Any]:
    seed = build_world_seed(users=users, prior_b2b=False)
    source = seed["tenants"][0]
    members = [u["id"] for u in source["users"] if u.get("userType") == "Member"]
    if groups > 1:
        source["groups"] = [
            {"id": f"{GROUP[:-1]}{n}", "displayName": f"Sync {n}", "members": members[n::groups]}
            for n in range(groups)
        ]
    seed["limits"] = {
        "write_per_150s": QUOTA_WRITES,
        "invitations_per_5s": QUOTA_INVITES,
        "resource_units_per_10s": 8000 * SCALE,
    }
    seed["faults"] = {"latency_ms": latency_ms}
    return seed


def configure(env: SyncEnv, jobs: dict[str, Any] | None = None, **limits: Any) -> None:
    config = yaml.safe_load(env.config.read_text())
    config["tenants"][TARGET.name]["limits"] = {
        "write_per_150s": QUOTA_WRITES,
        "invitations_per_5s": QUOTA_INVITES,
        **limits,
    }
    config["logging"] = {"format": "json", "level": "WARNING"}
    if jobs is not None:
        config["jobs"] = jobs
    env.config.write_text(yaml.safe_dump(config))


def run_cycle(env: SyncEnv, job: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run", job, "--json", "--config", str(env.config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[dict[str, Any], float]:
    """The cycle's summary and the process's peak RSS in MB (sampled until it exits)."""
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, peak_rss_mb(process.pid))
        time.sleep(0.1)
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    return json.loads(out), peak


def stats(env: SyncEnv) -> dict[str, Any]:
    return env.sandbox.stats()


def target_writes(data: dict[str, Any]) -> int:
    return int(data["writes"].get(TARGET.tenant_id, 0))


def graph_requests(data: dict[str, Any]) -> tuple[int, int]:
    """(read requests, write operations) to Graph, $batch items counted one by one."""
    reads = writes = 0
    for key, count in data["requests"]["by_method_path"].items():
        method, path = key.split(" ", 1)
        if path == "/v1.0/$batch":
            continue
        if method == "GET":
            reads += count
        else:
            writes += count
    return reads, writes


def record(name: str, **values: Any) -> None:
    RESULTS[name] = values


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "latency_ms": LATENCY_MS,
        "quota_scale": SCALE,
    }
    (out / "speed.json").write_text(json.dumps({"machine": machine, **RESULTS}, indent=2) + "\n")
    print("\n\nbenchmark                                   result")
    for name, values in RESULTS.items():
        print(f"{name:<44}{', '.join(f'{k} {v}' for k, v in values.items())}")
    print(f"machine: {machine}")


def test_1_initial_full_cycle_at_the_quota(tmp_path: Path) -> None:
    with sync_world(tmp_path, bench_seed(5000)) as env:
        configure(env)
        before = stats(env)
        started = time.monotonic()
        summary, rss = finish(run_cycle(env, "sync", "--full"))
        seconds = time.monotonic() - started
        after = stats(env)
    writes = target_writes(after) - target_writes(before)
    requests_sent = after["requests"]["total"] - before["requests"]["total"]
    throttled = after["throttled"] - before["throttled"]
    created = summary["counts"]["create"]
    record(
        "1 initial full cycle, 5,000 users",
        users_per_s=round(created / seconds, 1),
        writes_per_s=round(writes / seconds, 1),
        rate_over_quota=round(writes / seconds / WRITE_RATE, 3),
        throttled_429=throttled,
        throttled_pct=round(100 * throttled / max(1, requests_sent), 2),
        peak_rss_mb=round(rss, 1),
        seconds=round(seconds, 1),
    )
    assert created >= 4990
    assert writes / seconds >= 0.90 * WRITE_RATE
    assert throttled <= 0.01 * requests_sent


def test_2_three_workers_on_one_target_tenant(tmp_path: Path) -> None:
    seed = bench_seed(5000, groups=3)
    groups = [g["id"] for g in seed["tenants"][0]["groups"]]
    jobs = {
        f"sync-{n}": {
            "source": SOURCE.name,
            "target": TARGET.name,
            "scope": {"users": "assigned", "groups": [group]},
        }
        for n, group in enumerate(groups)
    }
    with sync_world(tmp_path, seed) as env:
        configure(env, jobs=jobs)
        env.cli("db", "upgrade", check=True)
        before = stats(env)
        started = time.monotonic()
        processes = [run_cycle(env, job, "--full") for job in jobs]
        outcomes = [finish(p) for p in processes]
        seconds = time.monotonic() - started
        after = stats(env)
    writes = target_writes(after) - target_writes(before)
    requests_sent = after["requests"]["total"] - before["requests"]["total"]
    throttled = after["throttled"] - before["throttled"]
    record(
        "2 three worker processes, one tenant",
        users_per_s=round(sum(s["counts"]["create"] for s, _ in outcomes) / seconds, 1),
        writes_per_s=round(writes / seconds, 1),
        rate_over_quota=round(writes / seconds / WRITE_RATE, 3),
        throttled_429=throttled,
        throttled_pct=round(100 * throttled / max(1, requests_sent), 2),
        peak_rss_mb=round(max(rss for _, rss in outcomes), 1),
        seconds=round(seconds, 1),
    )
    assert writes / seconds >= 0.90 * WRITE_RATE
    assert throttled <= 0.01 * requests_sent


def test_2b_one_job_fanned_out_to_three_workers(tmp_path: Path) -> None:
    from tenant_sync_demo.demo import background, wait_for
    from worker.celery_app import create_celery
    from worker.config import load_config

    with sync_world(tmp_path, bench_seed(5000), job={"fan_out": 3}) as env:
        configure(env)
        env.cli("db", "upgrade", check=True)
        celery = create_celery(load_config(env.config))
        environment = {**os.environ, "TENANT_SYNC_CONFIG": str(env.config)}
        workers = [
            background(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "worker.celery_app",
                    "worker",
                    "-c",
                    "2",
                    "-n",
                    f"b{n}@%h",
                ],
                tmp_path / f"worker{n}.log",
                env=environment,
            )
            for n in range(3)
        ]
        with workers[0], workers[1], workers[2]:
            wait_for(lambda: len(celery.control.ping(timeout=0.5) or []) == 3, "three workers")
            before = stats(env)
            started = time.monotonic()
            triggered = env.cli("trigger", "sync", "--full", "--json", check=True)
            result = celery.AsyncResult(json.loads(triggered.stdout)["task_id"]).get(timeout=1800)
            seconds = time.monotonic() - started
            after = stats(env)
    writes = target_writes(after) - target_writes(before)
    requests_sent = after["requests"]["total"] - before["requests"]["total"]
    throttled = after["throttled"] - before["throttled"]
    record(
        "2b one job, pages fanned out to 3 workers",
        users_per_s=round(result["counts"]["create"] / seconds, 1),
        writes_per_s=round(writes / seconds, 1),
        rate_over_quota=round(writes / seconds / WRITE_RATE, 3),
        throttled_429=throttled,
        throttled_pct=round(100 * throttled / max(1, requests_sent), 2),
        seconds=round(seconds, 1),
    )
    assert result["status"] == "success"
    assert writes / seconds >= 0.90 * WRITE_RATE
    assert throttled <= 0.01 * requests_sent


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEnv]:
    """100,000 users in scope, synced once (fast: no latency, generous quotas)."""
    tmp_path = tmp_path_factory.mktemp("large")
    seed = bench_seed(100_000, latency_ms=0)
    seed["limits"] = {
        "write_per_150s": 10**9,
        "invitations_per_5s": 10**9,
        "resource_units_per_10s": 10**9,
    }
    with sync_world(tmp_path, seed, job={"scope": {"users": "all"}}) as env:
        configure(env, write_per_150s=10**9, invitations_per_5s=10**9, concurrency=8)
        summary, _ = finish(run_cycle(env, "sync", "--full"))
        assert summary["counts"]["create"] >= 99_990, summary
        # Measured with latency; the quotas stay generous (these measure requests, time, memory).
        env.sandbox.set_faults(latency_ms=LATENCY_MS)
        yield env


def test_3_incremental_after_100_changes_among_100000(large: SyncEnv) -> None:
    graph = large.source()
    members = [u for u in large.seed["tenants"][0]["users"] if u.get("userType") == "Member"]
    for user in members[::1000][:100]:
        graph.patch(f"/users/{user['id']}", json={"jobTitle": "Changed"}).raise_for_status()
    large.sandbox.admin("POST", "/_sandbox/stats/reset")
    started = time.monotonic()
    summary, _ = finish(run_cycle(large, "sync"))
    seconds = time.monotonic() - started
    reads, writes = graph_requests(stats(large))
    record(
        "3 incremental, 100 changes in 100,000",
        read_requests=reads,
        write_operations=writes,
        seconds=round(seconds, 2),
        updates=summary["counts"]["update"],
    )
    assert summary["mode"] == "incremental"
    assert summary["counts"]["update"] == 100
    assert reads <= 3
    assert writes <= 100


def test_4_incremental_with_no_changes(large: SyncEnv) -> None:
    large.sandbox.admin("POST", "/_sandbox/stats/reset")
    started = time.monotonic()
    summary, _ = finish(run_cycle(large, "sync"))
    seconds = time.monotonic() - started
    total = stats(large)["requests"]["total"]
    record("4 incremental, no changes, 100,000", requests=total, seconds=round(seconds, 2))
    assert summary["mode"] == "incremental"
    assert total <= 2


def test_5_full_cycle_with_nothing_to_change(large: SyncEnv) -> None:
    started = time.monotonic()
    summary, rss = finish(run_cycle(large, "sync", "--full"))
    seconds = time.monotonic() - started
    record(
        "5 full, nothing to change, 100,000",
        peak_rss_mb=round(rss, 1),
        seconds=round(seconds, 1),
        writes=sum(v for k, v in summary["counts"].items() if k != "skip"),
    )
    assert sum(v for k, v in summary["counts"].items() if k != "skip") == 0
    assert rss < 250


def test_6_naive_sequential_client(tmp_path: Path) -> None:
    sample = 150
    with sync_world(tmp_path, bench_seed(5000)) as env:
        ca = env.sandbox.ca_path
        source_token = env.sandbox.token(SOURCE.tenant_id, SOURCE.client_id, SOURCE.secret)
        target_token = env.sandbox.token(TARGET.tenant_id, TARGET.client_id, TARGET.secret)
        base = env.sandbox.url + "/v1.0"
        everyone: list[dict[str, Any]] = []
        url: str | None = f"{base}/users?$top=999"
        while url:  # as admins' scripts do: plain requests calls, one connection each
            page = requests.get(
                url, headers={"Authorization": f"Bearer {source_token}"}, verify=ca, timeout=60
            ).json()
            everyone.extend(page["value"])
            url = page.get("@odata.nextLink")
        started = time.monotonic()  # listing is paid once per run: leave it out of the rate
        done = 0
        for user in everyone:
            if not user.get("mail") or "#EXT#" in user["userPrincipalName"]:
                continue
            auth = {"Authorization": f"Bearer {target_token}"}
            found = requests.get(
                f"{base}/users",
                params={"$filter": f"mail eq '{user['mail']}'"},
                headers=auth,
                verify=ca,
                timeout=60,
            ).json()["value"]
            if not found:
                invited = requests.post(
                    f"{base}/invitations",
                    json={
                        "invitedUserEmailAddress": user["mail"],
                        "inviteRedirectUrl": "https://x",
                        "sendInvitationMessage": False,
                    },
                    headers=auth,
                    verify=ca,
                    timeout=60,
                ).json()
                requests.patch(
                    f"{base}/users/{invited['invitedUser']['id']}",
                    json={"displayName": user["displayName"], "department": user.get("department")},
                    headers=auth,
                    verify=ca,
                    timeout=60,
                ).raise_for_status()
            done += 1
            if done == sample:
                break
        seconds = time.monotonic() - started
    naive = done / seconds
    ours = RESULTS.get("1 initial full cycle, 5,000 users", {}).get("users_per_s")
    record(
        "6 naive sequential client",
        users_per_s=round(naive, 2),
        speedup=round(ours / naive, 1) if ours else None,
    )
    if ours:
        assert ours >= 10 * naive
