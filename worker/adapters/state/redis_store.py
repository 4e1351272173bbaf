"""Per-job state kept in Redis: the cursor (watermark + progress) and the cluster-wide job lock.

The cursor is one JSON value per job, replaced atomically. The lock is a Redis key with an expiry,
renewed by a background thread while the cycle runs, so a dead holder frees it by itself; each
acquisition also takes a fencing token from a per-job counter.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import redis
from redis.lock import Lock

from worker.domain.errors import Transient
from worker.ports import AlreadyRunning, Cursor, Progress, Watermark

PREFIX = "tenant-sync"


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


class RedisCursorStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def load(self, job: str) -> Cursor:
        try:
            raw = self.client.get(cursor_key(job))
        except redis.RedisError as exc:
            raise Transient(f"cannot read the cursor from Redis: {exc}") from exc
        if not raw:
            return Cursor()
        data: dict[str, Any] = json.loads(raw)
        watermark = data.get("watermark")
        progress = data.get("progress")
        return Cursor(
            watermark=Watermark(**watermark) if watermark else None,
            progress=Progress(**progress) if progress else None,
        )

    def save(self, job: str, cursor: Cursor) -> None:
        payload = {
            "watermark": asdict(cursor.watermark) if cursor.watermark else None,
            "progress": asdict(cursor.progress) if cursor.progress else None,
        }
        try:
            self.client.set(cursor_key(job), json.dumps(payload))
        except redis.RedisError as exc:
            raise Transient(f"cannot write the cursor to Redis: {exc}") from exc

    def clear(self, job: str) -> None:
        self.client.delete(cursor_key(job))


class RedisJobLock:
    """One cycle of a job at a time anywhere in the cluster."""

    def __init__(self, client: redis.Redis, *, ttl_s: float = 60.0) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.fencing_token: int | None = None

    def is_held(self, job: str) -> bool:
        return bool(self.client.exists(lock_key(job)))

    @contextmanager
    def hold(self, job: str) -> Iterator[None]:
        lock = Lock(self.client, lock_key(job), timeout=self.ttl_s, thread_local=False)
        if not lock.acquire(blocking=False):
            raise AlreadyRunning(f"a cycle of job {job!r} is already running")
        self.fencing_token = int(self.client.incr(fence_key(job)))
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lock, stop), name=f"lock-renew-{job}", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)
            # If it expired while we were stuck, the next holder owns it now: nothing to release.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def _renew(self, lock: Lock, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_s / 3):
            try:
                lock.reacquire()
            except (redis.RedisError, redis.exceptions.LockError):
                continue  # try again at the next tick; expiry is the safety net
