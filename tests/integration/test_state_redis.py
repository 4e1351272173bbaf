"""The embedded Redis server, the cursor store and the job lock, on a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.adapters.state.rate_limit import Quota, RedisPacer
from worker.adapters.state.redis_store import (
    RedisCursorStore,
    RedisJobLock,
    RedisLiveProgress,
    RedisQueueGuard,
    connect,
    lock_key,
)
from worker.domain.errors import Transient
from worker.ports import AlreadyRunning, Cursor, Progress, Watermark

pytestmark = pytest.mark.integration


@pytest.fixture
def embedded(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "state")
    yield server
    server.stop()


def test_embedded_server_is_started_once_and_reused(
    embedded: EmbeddedRedis, tmp_path: Path
) -> None:
    url = embedded.ensure_running()
    assert EmbeddedRedis(tmp_path / "state").ensure_running() == url
    # Another process finds the same server rather than starting a second one.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from worker.adapters.state.embedded_redis import "
            "EmbeddedRedis; print(EmbeddedRedis(Path(sys.argv[1])).ensure_running())",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == url


def test_a_restarted_server_listens_where_its_clients_already_point(
    embedded: EmbeddedRedis, tmp_path: Path
) -> None:
    url = embedded.ensure_running()
    client = connect(url)  # a worker's connection, made before the restart
    client.set("k", "v")
    assert embedded.stop()

    assert embedded.ensure_running() == url  # same port: running workers and beats reconnect

    assert client.get("k") == b"v"


# A process that adopts the daemon when it detaches (a child subreaper, as a container's init
# is) and does not reap it while the server stops: the stopped server is a zombie meanwhile.
SLOW_INIT = """
import ctypes, os, sys, time
from pathlib import Path
from worker.adapters.state.embedded_redis import EmbeddedRedis
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
server = EmbeddedRedis(Path(sys.argv[1]))
server.ensure_running()
pid = int(server.pid_file.read_text())
started = time.monotonic()
stopped = server.stop()
print(f"{stopped} {time.monotonic() - started:.2f}", flush=True)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child subreaper is Linux's")
def test_stop_returns_once_the_server_has_exited_even_before_it_is_reaped(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SLOW_INIT, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stopped, seconds = result.stdout.split()
    assert stopped == "True"
    # It exits in milliseconds; waiting for the reaping would take the whole 15 s deadline.
    assert float(seconds) < 5, f"stop() took {seconds} s"


def test_a_taken_port_gets_a_new_one(embedded: EmbeddedRedis) -> None:
    import socket

    url = embedded.ensure_running()
    assert embedded.stop()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        moved = embedded.ensure_running()
    assert moved != url
    assert connect(moved).ping()


def test_cursors_survive_a_server_restart(embedded: EmbeddedRedis) -> None:
    client = connect(embedded.ensure_running())
    store = RedisCursorStore(client)
    cursor = Cursor(
        watermark=Watermark("https://g/users/delta?$deltatoken=a", None, "fp", "t1", "t0"),
        progress=Progress(run_id="r1", mode="full", fingerprint="fp", phase="users", next_link="n"),
    )
    store.save("job", cursor)
    client.close()

    assert embedded.stop()
    assert embedded.running_url() is None
    restarted = connect(embedded.ensure_running())

    assert RedisCursorStore(restarted).load("job") == cursor
    restarted.close()


def test_the_job_lock_admits_one_holder(embedded: EmbeddedRedis) -> None:
    client = connect(embedded.ensure_running())
    first, second = RedisJobLock(client), RedisJobLock(client)
    with first.hold("job"):
        assert first.is_held("job")
        with pytest.raises(AlreadyRunning), second.hold("job"):
            pass
        with second.hold("other-job"):
            pass
    with second.hold("job"):
        assert second.fencing_token is not None
        assert second.fencing_token > (first.fencing_token or 0)
    assert not first.is_held("job")


def start_holder(url: str) -> subprocess.Popen[str]:
    """Another process that takes the job's lock and keeps it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from worker.adapters.state.redis_store import RedisJobLock, connect\n"
            "lock = RedisJobLock(connect(sys.argv[1]), ttl_s=30)\n"
            "with lock.hold('job'):\n    print('held', flush=True); time.sleep(120)",
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_the_lock_is_renewed_while_held(embedded: EmbeddedRedis) -> None:
    client = connect(embedded.ensure_running())
    lock = RedisJobLock(client, ttl_s=1.5)
    with lock.hold("job"):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # held well past its ttl: the renewal works
            assert client.exists(lock_key("job"))
            time.sleep(0.1)


def test_a_holder_killed_on_this_machine_frees_the_lock_at_once(embedded: EmbeddedRedis) -> None:
    url = embedded.ensure_running()
    client = connect(url)
    holder = start_holder(url)
    try:
        with pytest.raises(AlreadyRunning), RedisJobLock(client).hold("job"):
            pass  # alive: it keeps the job
        assert RedisJobLock(client).is_held("job")
        os.kill(holder.pid, 9)  # and not reaped: a zombie is dead too
        deadline = time.monotonic() + 10
        while RedisJobLock(client).is_held("job"):  # the signal takes a moment to land
            assert time.monotonic() < deadline, "a killed holder still counts as running"
            time.sleep(0.05)

        with RedisJobLock(client, ttl_s=30).hold("job") as lease:  # no wait for its 30 s expiry
            assert client.get(lock_key("job")) == lease.token.encode()
        assert not client.exists(lock_key("job"))  # released as usual
    finally:
        holder.kill()
        holder.wait()


def test_a_holder_on_another_machine_keeps_the_lock_until_it_expires(
    embedded: EmbeddedRedis,
) -> None:
    client = connect(embedded.ensure_running())
    # What another machine's cycle writes: its own machine id; its pid means nothing here.
    client.set(lock_key("job"), "7:abc:0123456789abcdef/999999", px=1500)

    with pytest.raises(AlreadyRunning), RedisJobLock(client).hold("job"):
        pass

    deadline = time.monotonic() + 10
    while client.exists(lock_key("job")):
        assert time.monotonic() < deadline, "the lock never expired"
        time.sleep(0.1)
    with RedisJobLock(client).hold("job"):
        pass


def test_a_server_that_is_gone_is_replaced(embedded: EmbeddedRedis) -> None:
    url = embedded.ensure_running()
    redis.Redis.from_url(url).shutdown(nosave=True)
    assert embedded.running_url() is None
    assert connect(embedded.ensure_running()).ping()


def test_a_cycle_that_lost_its_lock_cannot_move_the_cursor(embedded: EmbeddedRedis) -> None:
    from worker.ports import LockLost

    client = connect(embedded.ensure_running())
    store = RedisCursorStore(client)
    stale_cursor = Cursor(
        progress=Progress(run_id="old", mode="full", fingerprint="f", phase="users")
    )
    fresh_cursor = Cursor(
        progress=Progress(run_id="new", mode="full", fingerprint="f", phase="users")
    )
    with RedisJobLock(client, ttl_s=3).hold("job") as stale:
        store.save("job", stale_cursor, stale)
        client.delete(lock_key("job"))  # its lock expired (a long pause) ...
        with RedisJobLock(client).hold("job") as fresh:  # ... and another cycle took the job
            store.save("job", fresh_cursor, fresh)
            with pytest.raises(LockLost):
                store.save("job", stale_cursor, stale)
    assert store.load("job") == fresh_cursor


def test_live_progress_is_a_cycles_only(embedded: EmbeddedRedis) -> None:
    from worker.adapters.state.redis_store import RedisLiveProgress

    live = RedisLiveProgress(connect(embedded.ensure_running()))
    # Graph writes counted outside any cycle (a user provisioned on demand) are no progress
    live.add("job", writes=3)
    assert live.load("job") is None
    live.start("job", run_id="r1", mode="full", phase="users", read=0)
    live.add("job", read=10, planned=4, writes=2)
    found = live.load("job")
    assert found is not None
    assert (found["runId"], found["read"], found["planned"], found["writes"]) == ("r1", 10, 4, 2)
    live.finish("job")
    live.add("job", writes=1)
    assert live.load("job") is None


def test_every_redis_adapter_reports_a_stopped_server_as_transient_naming_it(
    embedded: EmbeddedRedis,
) -> None:
    url = embedded.ensure_running()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    # With a password in the URL, as a configured server would have: it never shows.
    client = connect(f"redis://:Sw0rdfish-77@127.0.0.1:{port}/0")
    embedded.stop()
    quota = Quota(10, 1.0)
    pacer = RedisPacer(client, tenant_id="t", client_id="c", writes=quota, invitations=quota)
    live = RedisLiveProgress(client)
    calls: list[Callable[[], object]] = [
        lambda: RedisCursorStore(client).load("job"),
        lambda: RedisCursorStore(client).save("job", Cursor()),
        lambda: RedisCursorStore(client).clear("job"),
        lambda: RedisJobLock(client).is_held("job"),
        lambda: RedisJobLock(client).hold("job").__enter__(),
        lambda: RedisQueueGuard(client).claim_queue("job", "task", 60),
        lambda: RedisQueueGuard(client).release_queue("job", "task"),
        lambda: RedisQueueGuard(client).claim_slot("job", 1, 60),
        lambda: pacer.reserve(writes=1, invitations=0),
        lambda: live.load("job"),
    ]
    for call in calls:
        with pytest.raises(Transient) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(f"Redis at redis://127.0.0.1:{port}/0 is unavailable: "), message
        assert "Sw0rdfish-77" not in message
    # Live progress only informs people: a cycle goes on without it.
    live.start("job", run_id="r", mode="full", phase="users", read=0)
    live.add("job", read=3)
    live.finish("job")
    pacer.hold(5.0)  # the caller still honours the Retry-After itself


def test_live_counters_added_in_a_burst_are_written_together_within_the_interval(
    embedded: EmbeddedRedis,
) -> None:
    from worker.adapters.state.redis_store import RedisLiveProgress, live_key

    client = connect(embedded.ensure_running())
    live = RedisLiveProgress(client, flush_s=0.3)
    live.start("job", run_id="r1", mode="full", phase="users", read=0)

    def shown(name: str) -> int:
        # What `status` in another process reads: the hash itself, not this process's adds.
        return int(client.hget(live_key("job"), name) or 0)

    live.add("job", writes=1)  # the first after a quiet spell goes at once
    assert shown("writes") == 1
    for _ in range(50):  # a page's $batch answers: one Redis write for all of them
        live.add("job", writes=2)
    assert shown("writes") == 1
    deadline = time.monotonic() + 5
    while shown("writes") != 101 and time.monotonic() < deadline:
        time.sleep(0.02)  # a polling interval: the loop has a deadline
    assert shown("writes") == 101
    # A phase is written at once, with the counters still waiting.
    live.add("job", read=7)
    live.phase("job", "deletions")
    assert (shown("read"), client.hget(live_key("job"), "phase")) == (7, b"deletions")
    # Once the cycle finished, counters still waiting are not written back.
    live.add("job", writes=5)
    live.finish("job")
    time.sleep(0.5)  # longer than the interval: the timer has had its chance to write
    assert client.exists(live_key("job")) == 0
