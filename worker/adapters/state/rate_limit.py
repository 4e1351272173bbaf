"""Pacing writes below the target tenant's Graph quotas, shared by every process through Redis.

One token bucket per quota and (app, tenant): writes (3,000 per 150 s per app and tenant) and
invitations (150 per 5 s per tenant). Each refills at `pace` (95 %) of the quota's rate and holds
at most the other 5 % of a window, so no window of the quota's length can ever see more than the
quota. A caller *reserves* what it is about to send and is told how long to wait: the bucket may
go into debt, which queues callers fairly, first come first served, across all workers. The
arithmetic runs inside Redis (one Lua script, Redis's clock) so hosts with skewed clocks agree.
When Graph answers 429 anyway, `hold` pushes the bucket back so every worker waits.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass

from worker.adapters.state.errors import redis_errors, redis_name, speaks_domain_errors
from worker.adapters.state.redis_lib import redis

PREFIX = "tenant-sync:pace"

# KEYS: the buckets, one or more; ARGV: for each bucket in turn, its rate (tokens per second),
# capacity, tokens wanted and hold seconds. Returns the milliseconds to wait before the reserved
# tokens may be spent: the longest of the buckets' waits. Every bucket a batch draws on is
# reserved in the one call (one round trip, where a batch of invitations made two); each is
# reserved as its own call did, at the same instant of Redis's clock.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i * 4 - 3])
  local capacity = tonumber(ARGV[i * 4 - 2])
  local wanted = tonumber(ARGV[i * 4 - 1])
  local hold = tonumber(ARGV[i * 4])
  local stored = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(stored[1])
  local ts = tonumber(stored[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  tokens = math.min(capacity, tokens + (now - ts) / 1000 * rate)
  if hold > 0 then
    tokens = math.min(tokens, -hold * rate)
  end
  tokens = tokens - wanted
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens) / rate * 1000) + 60000)
  if tokens < 0 then
    wait = math.max(wait, math.ceil(-tokens / rate * 1000))
  end
end
return wait
"""


@dataclass(frozen=True)
class Quota:
    limit: int  # requests allowed ...
    window_s: float  # ... per this many seconds
    pace: float = 0.95

    @property
    def rate(self) -> float:
        return self.pace * self.limit / self.window_s

    @property
    def capacity(self) -> float:
        return max(1.0, (1.0 - self.pace) * self.limit)


@speaks_domain_errors
class RedisPacer:
    """The write and invitation buckets of one app in one target tenant."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        tenant_id: str,
        client_id: str,
        writes: Quota,
        invitations: Quota,
    ) -> None:
        self.client = client
        self.writes = writes
        self.invitations = invitations
        self._write_key = f"{PREFIX}:{tenant_id}:{client_id}:writes"
        self._invite_key = f"{PREFIX}:{tenant_id}:invitations"
        self._script = client.register_script(_RESERVE)

    def _errors(self) -> AbstractContextManager[None]:
        return redis_errors(redis_name(self.client))

    def reserve(self, *, writes: int, invitations: int) -> float:
        """Seconds to wait before sending this many writes (of which so many invitations)."""
        buckets: list[tuple[str, Quota, int]] = []
        if writes:
            buckets.append((self._write_key, self.writes, writes))
        if invitations:
            buckets.append((self._invite_key, self.invitations, invitations))
        return self._call(buckets, 0.0) / 1000.0 if buckets else 0.0

    def hold(self, seconds: float, *, invitations: bool = False) -> None:
        """Graph said 429 anyway: nobody writes to this tenant for `seconds`."""
        buckets = [(self._write_key, self.writes, 0)]
        if invitations:
            buckets.append((self._invite_key, self.invitations, 0))
        # A Redis error is dropped: the Retry-After itself is still honoured by the caller.
        with suppress(redis.RedisError):
            self._call(buckets, seconds)

    def _call(self, buckets: list[tuple[str, Quota, int]], hold: float) -> int:
        args: list[float] = []
        for _, quota, wanted in buckets:
            args += [quota.rate, quota.capacity, wanted, hold]
        return int(self._script(keys=[key for key, _, _ in buckets], args=args))
