"""Per-job state kept in Redis: the cursor (watermark + progress) and the cluster-wide job lock.

The cursor is one JSON value per job, replaced atomically. The lock is a Redis key with an expiry,
renewed by a background thread while the cycle runs, so a dead holder frees it by itself; each
acquisition also takes a fencing token from a per-job counter. Every adapter here speaks the
domain's errors (`speaks_domain_errors`): an unreachable Redis is a Transient naming its URL.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.adapters.state.errors import redis_errors, redis_name, speaks_domain_errors
from worker.adapters.state.redis_lib import Lock, redis
from worker.state_records import AlreadyRunning, Cursor, Lease, LockLost, Progress, Watermark

PREFIX = "tenant-sync"


def _log() -> Any:
    """The lock's logger; structlog is loaded on the first line logged, not by `status`'s
    import of this module (docs/performance.md, "CLI start-up")."""
    import structlog

    return structlog.get_logger("tenant_sync.lock")


def cursor_key(job: str) -> str:
    return f"{PREFIX}:job:{job}:cursor"


def lock_key(job: str) -> str:
    return f"{PREFIX}:job:{job}:lock"


def fence_key(job: str) -> str:
    return f"{PREFIX}:job:{job}:fence"


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )


# Set the cursor only while the job's lock still holds this holder's token, in one step.
_FENCED_SET = """
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class _RedisAdapter:
    """What every Redis adapter shares: its client, and its errors named by the server."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def _errors(self) -> AbstractContextManager[None]:
        return redis_errors(redis_name(self.client))


@speaks_domain_errors
class RedisCursorStore(_RedisAdapter):
    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self._fenced = client.register_script(_FENCED_SET)

    def load(self, job: str) -> Cursor:
        raw = self.client.get(cursor_key(job))
        if not raw:
            return Cursor()
        data: dict[str, Any] = json.loads(raw)
        watermark = data.get("watermark")
        progress = data.get("progress")
        return Cursor(
            watermark=Watermark(**watermark) if watermark else None,
            progress=Progress(**progress) if progress else None,
        )

    def save(self, job: str, cursor: Cursor, lease: Lease | None = None) -> None:
        payload = json.dumps(
            {
                "watermark": asdict(cursor.watermark) if cursor.watermark else None,
                "progress": asdict(cursor.progress) if cursor.progress else None,
            }
        )
        if lease is None:
            self.client.set(cursor_key(job), payload)
            return
        saved = self._fenced(keys=[cursor_key(job), lock_key(job)], args=[payload, lease.token])
        if not saved:
            raise LockLost(
                f"the lock of job {job!r} expired under this cycle and another may hold it: "
                "stopping without moving the cursor"
            )

    def clear(self, job: str) -> None:
        self.client.delete(cursor_key(job))


# Replace the lock's value only if it is still the dead holder's token, keeping an expiry.
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@functools.cache
def _machine() -> str:
    """This kernel instance and process namespace: where a pid means the same process."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        with contextlib.suppress(OSError):
            parts.append(
                os.readlink(path) if path.endswith("/pid") else Path(path).read_text().strip()
            )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def holder_id() -> str:
    return f"{_machine()}/{os.getpid()}"


def holder_is_dead(token: str) -> bool:
    """Whether the lock's holder is a process of this machine that no longer runs.

    Only a certainty counts: another machine's holder, an unreadable token, or a pid that
    exists (even reused) is taken as alive, and its lock expires by itself.
    """
    holder = token.split(":", 2)[-1] if token.count(":") >= 2 else ""
    machine, _, pid_text = holder.partition("/")
    if machine != _machine() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's live process
    with contextlib.suppress(OSError, IndexError):
        # A killed process its parent has not reaped yet is a zombie: dead all the same.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


@speaks_domain_errors
class RedisJobLock(_RedisAdapter):
    """One cycle of a job at a time anywhere in the cluster."""

    def __init__(self, client: redis.Redis, *, ttl_s: float = 60.0) -> None:
        super().__init__(client)
        self.ttl_s = ttl_s
        self.fencing_token: int | None = None
        self._swap = client.register_script(_SWAP)

    def is_held(self, job: str) -> bool:
        """Held by a cycle that may be alive (a dead holder on this machine does not count)."""
        held = self.client.get(lock_key(job))
        return held is not None and not holder_is_dead(_text(held))

    @contextmanager
    def hold(self, job: str) -> Iterator[Lease]:
        # The token (unique per acquisition: a fencing counter and randomness) is what the lock
        # key holds; cursor saves check it (RedisCursorStore.save) so a holder that lost the
        # lock cannot write over the next one's progress. It also names the holder's machine
        # and process, so that a cycle killed on this machine frees the lock at once.
        token = ""
        lock = Lock(self.client, lock_key(job), timeout=self.ttl_s, thread_local=False)
        self.fencing_token = int(self.client.incr(fence_key(job)))
        token = f"{self.fencing_token}:{uuid.uuid4().hex}:{holder_id()}"
        if not lock.acquire(blocking=False, token=token) and not self._take_over(lock, token):
            raise AlreadyRunning(f"a cycle of job {job!r} is already running")
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lock, stop), name=f"lock-renew-{job}", daemon=True
        )
        renewer.start()
        try:
            yield Lease(job=job, token=token)
        finally:
            stop.set()
            renewer.join(timeout=5)
            # Expired while we were stuck (the next holder owns it now), or Redis is gone (the
            # lock expires by itself): either way there is nothing to release.
            with contextlib.suppress(redis.exceptions.LockError, redis.RedisError):
                lock.release()

    def _take_over(self, lock: Lock, token: str) -> bool:
        """Take the lock from a holder that died on this machine (kill -9, OOM), rather than
        wait for its expiry; the swap happens only if that holder's token is still there."""
        held = self.client.get(lock.name)
        if held is None or not holder_is_dead(_text(held)):
            return False
        swapped = self._swap(keys=[lock.name], args=[held, token, int(self.ttl_s * 1000)])
        if not swapped:
            return False
        lock.local.token = token.encode()
        _log().warning("job lock taken over", dead_holder=_text(held).split(":", 2)[-1])
        return True

    def _renew(self, lock: Lock, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_s / 3):
            try:
                lock.reacquire()
            except (redis.RedisError, redis.exceptions.LockError):
                continue  # try again at the next tick; expiry is the safety net


def queued_key(job: str) -> str:
    return f"{PREFIX}:job:{job}:queued"


def slot_key(job: str, slot: int) -> str:
    return f"{PREFIX}:job:{job}:slot:{slot}"


@speaks_domain_errors
class RedisQueueGuard(_RedisAdapter):
    """Keeps a job from being queued twice, and a schedule from firing twice an interval.

    `trigger` claims the job's queue marker with its task id; the task gives it back when it
    starts. Every beat's scheduled task claims the slot of its interval; with several beats,
    the first claim wins and the others are skipped.
    """

    def claim_queue(self, job: str, task_id: str, ttl_s: int) -> str | None:
        """Mark the job as queued; returns the task already queued instead, if there is one."""
        if self.client.set(queued_key(job), task_id, nx=True, ex=max(1, ttl_s)):
            return None
        existing = self.client.get(queued_key(job))
        return existing.decode() if isinstance(existing, bytes) else str(existing or "")

    def release_queue(self, job: str, task_id: str) -> None:
        # Only the task that was queued may clear the marker.
        self.client.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end",
            1,
            queued_key(job),
            task_id,
        )

    def claim_slot(self, job: str, slot: int, ttl_s: int) -> bool:
        return bool(self.client.set(slot_key(job, slot), "1", nx=True, ex=max(1, ttl_s)))


def live_key(job: str) -> str:
    return f"{PREFIX}:job:{job}:live"


LIVE_COUNTERS = ("read", "planned", "exported", "writes")
# A cycle that died leaves its numbers for a day at most; a new cycle replaces them at once.
LIVE_TTL_S = 24 * 3600
# Counters added within this long of a job's last write wait and go together in the next one
# (docs/performance.md, "Time per created user"): a page added to them several times a round,
# and each addition was a Redis round trip on the cycle's path.
LIVE_FLUSH_S = 0.25


@speaks_domain_errors
class RedisLiveProgress(_RedisAdapter):
    """The live progress of a job's running cycle: one Redis hash, counters added in place.

    Best effort: a Redis error is logged and forgotten, since the numbers only inform people
    and the cycle's real state (cursor, SQL) has its own error handling. Counters are written
    at most every `flush_s` per job: the first addition after a quiet spell at once, the ones
    that follow it summed and written by a timer when the interval is over, so the numbers lag
    by `flush_s` at most. `start`, `phase` and `finish` are written at once, in order with the
    counters (one lock orders every write).
    """

    def __init__(
        self,
        client: redis.Redis,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        flush_s: float = LIVE_FLUSH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(client)
        self._clock = clock
        self._flush_s = flush_s
        self._monotonic = monotonic
        self._pending: dict[str, dict[str, int]] = {}  # job -> counters not written yet
        self._written_at: dict[str, float] = {}  # job -> when its counters were last written
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time, in the order they were made
        self._timer: threading.Timer | None = None
        self._timer_pid = 0

    def _now(self) -> str:
        return self._clock().isoformat()

    def _write(
        self, job: str, fields: dict[str, str | int], amounts: dict[str, int] | None = None
    ) -> None:
        key = live_key(job)
        try:
            pipe = self.client.pipeline(transaction=True)
            for name, amount in (amounts or {}).items():
                pipe.hincrby(key, name, amount)
            values: dict[str | bytes, str | int] = {"updatedAt": self._now()}
            values.update(fields)
            pipe.hset(key, mapping=values)  # type: ignore[arg-type]
            pipe.expire(key, LIVE_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            _log().debug("live progress not recorded", error=str(exc))

    def _take(self, job: str) -> dict[str, int]:
        """The job's counters not written yet, now taken to be written (caller holds the
        write lock)."""
        with self._pending_lock:
            self._written_at[job] = self._monotonic()
            return self._pending.pop(job, {})

    def _drop(self, job: str) -> None:
        """Forget the job's counters not written yet: a cycle starts or ended."""
        with self._pending_lock:
            self._pending.pop(job, None)
            self._written_at.pop(job, None)

    def _flush(self, job: str) -> None:
        with self._write_lock:
            amounts = self._take(job)
            if amounts:
                self._write(job, {}, amounts)

    def _flush_due(self) -> None:
        """The timer: write every job's waiting counters."""
        with self._pending_lock:
            self._timer = None
            jobs = list(self._pending)
        for job in jobs:
            self._flush(job)

    def _arm(self) -> None:
        """Start the timer unless it runs (in this process: a forked child has no timer)."""
        if self._timer is not None and self._timer_pid == os.getpid():
            return
        self._timer = threading.Timer(self._flush_s, self._flush_due)
        self._timer.daemon = True
        self._timer_pid = os.getpid()
        self._timer.start()

    def start(self, job: str, *, run_id: str, mode: str, phase: str, read: int) -> None:
        with self._write_lock:
            self._drop(job)  # a previous cycle's counters are not this one's
            try:
                self.client.delete(live_key(job))
            except redis.RedisError as exc:
                _log().debug("live progress not reset", error=str(exc))
            counters = {name: 0 for name in LIVE_COUNTERS}
            self._write(
                job,
                {
                    "runId": run_id,
                    "mode": mode,
                    "phase": phase,
                    "startedAt": self._now(),
                    **counters,
                    "read": read,
                },
            )

    def phase(self, job: str, phase: str) -> None:
        with self._write_lock:
            self._write(job, {"phase": phase}, self._take(job))

    def add(self, job: str, **amounts: int) -> None:
        unknown = set(amounts) - set(LIVE_COUNTERS)
        if unknown:
            raise ValueError(f"unknown live counters: {sorted(unknown)}")
        with self._pending_lock:
            pending = self._pending.setdefault(job, {})
            for name, amount in amounts.items():
                if amount:
                    pending[name] = pending.get(name, 0) + amount
            if not pending:
                del self._pending[job]
                return
            quiet = self._monotonic() - self._written_at.get(job, -self._flush_s)
            if quiet < self._flush_s:
                self._arm()
                return
        self._flush(job)

    def finish(self, job: str) -> None:
        with self._write_lock:
            self._drop(job)
            try:
                self.client.delete(live_key(job))
            except redis.RedisError as exc:
                _log().debug("live progress not cleared", error=str(exc))

    def load(self, job: str) -> dict[str, Any] | None:
        self._flush(job)  # what this process added is shown at once
        raw = self.client.hgetall(live_key(job))
        data = {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in (raw or {}).items()
        }
        if "runId" not in data:
            # Nothing, or only counters added outside a cycle (the Graph writes of a user
            # provisioned on demand after the cycle finished): no cycle's progress.
            return None
        out: dict[str, Any] = dict(data)
        for name in LIVE_COUNTERS:
            out[name] = int(data.get(name, 0))
        return out
