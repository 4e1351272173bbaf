"""The notification outbox in Redis: durable, shared by every process, one delivery per id.

Keys (prefix `tenant-sync:notify:`): `due`, a sorted set of delivery ids by when they are due
(epoch seconds); `item:{id}`, the delivery as JSON (attempts, last error); `seen:{id}`, kept
30 days after a delivery is first queued, so the same occurrence observed again is not queued
again, even after it was sent. Adding and claiming are Lua scripts, so two processes never queue
or take the same delivery twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from worker.adapters.state.redis_lib import redis
from worker.domain.errors import Transient
from worker.domain.notifications import GIVE_UP_AFTER, Delivery

PREFIX = "tenant-sync:notify:"
DUE_KEY = PREFIX + "due"
SEEN_TTL = timedelta(days=30)
# An item outlives its last possible attempt; a stray one then goes by itself.
ITEM_TTL = GIVE_UP_AFTER * 2

_ADD = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
  return 1
end
return 0
"""

# Take the first due delivery and push its due time past the lease; skip (and forget) ids whose
# item is gone.
_CLAIM = """
for _ = 1, 20 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #ids == 0 then
    return nil
  end
  local id = ids[1]
  local item = redis.call('GET', ARGV[3] .. id)
  if item then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    return item
  end
  redis.call('ZREM', KEYS[1], id)
end
return nil
"""


def item_key(delivery_id: str) -> str:
    return f"{PREFIX}item:{delivery_id}"


def seen_key(delivery_id: str) -> str:
    return f"{PREFIX}seen:{delivery_id}"


def _epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


class RedisOutbox:
    """The NotificationOutbox port on Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)

    def add(self, deliveries: Sequence[Delivery], now: datetime) -> list[Delivery]:
        added = []
        try:
            for delivery in deliveries:
                new = self._add(
                    keys=[seen_key(delivery.id), item_key(delivery.id), DUE_KEY],
                    args=[
                        json.dumps(delivery.to_json()),
                        _epoch(now),
                        delivery.id,
                        int(SEEN_TTL.total_seconds()),
                        int(ITEM_TTL.total_seconds()),
                    ],
                )
                if new:
                    added.append(delivery)
        except redis.RedisError as exc:
            raise Transient(f"cannot queue notifications in Redis: {exc}") from exc
        return added

    def claim(self, now: datetime, lease: timedelta) -> Delivery | None:
        try:
            raw = self._claim(
                keys=[DUE_KEY], args=[_epoch(now), _epoch(now + lease), PREFIX + "item:"]
            )
        except redis.RedisError as exc:
            raise Transient(f"cannot read the notification outbox: {exc}") from exc
        return None if raw is None else Delivery.from_json(json.loads(raw))

    def done(self, delivery: Delivery) -> None:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.zrem(DUE_KEY, delivery.id)
                pipe.delete(item_key(delivery.id))
                pipe.execute()
        except redis.RedisError as exc:
            raise Transient(f"cannot update the notification outbox: {exc}") from exc

    def retry(self, delivery: Delivery, at: datetime) -> None:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.set(
                    item_key(delivery.id),
                    json.dumps(delivery.to_json()),
                    ex=int(ITEM_TTL.total_seconds()),
                )
                pipe.zadd(DUE_KEY, {delivery.id: _epoch(at)})
                pipe.execute()
        except redis.RedisError as exc:
            raise Transient(f"cannot update the notification outbox: {exc}") from exc

    def pending(self) -> list[tuple[Delivery, datetime]]:
        try:
            entries = cast(
                list[tuple[bytes, float]], self.client.zrange(DUE_KEY, 0, -1, withscores=True)
            )
            out = []
            for member, score in entries:
                delivery_id = member.decode() if isinstance(member, bytes) else str(member)
                raw = self.client.get(item_key(delivery_id))
                if raw:
                    out.append(
                        (
                            Delivery.from_json(json.loads(raw)),
                            datetime.fromtimestamp(float(score), UTC),
                        )
                    )
            return out
        except redis.RedisError as exc:
            raise Transient(f"cannot read the notification outbox: {exc}") from exc
