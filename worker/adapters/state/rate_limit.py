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

from contextlib import AbstractContextManager
from dataclasses import dataclass

from worker.adapters.state.errors import redis_errors, redis_name, speaks_domain_errors
from worker.adapters.state.redis_lib import redis

PREFIX = "tenant-sync:pace"

# KEYS[1]: the bucket; ARGV: rate (tokens per second), capacity, tokens wanted, hold seconds.
# Returns the milliseconds to wait before the reserved tokens may be spent.
_RESERVE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local hold = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
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
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 60000)
if tokens >= 0 then
  return 0
end
return math.ceil(-tokens / rate * 1000)
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
        wait_ms = 0
        if writes:
            wait_ms = max(wait_ms, self._call(self._write_key, self.writes, writes, 0.0))
        if invitations:
            wait_ms = max(wait_ms, self._call(self._invite_key, self.invitations, invitations, 0.0))
        return wait_ms / 1000.0

    def hold(self, seconds: float, *, invitations: bool = False) -> None:
        """Graph said 429 anyway: nobody writes to this tenant for `seconds`."""
        try:
            self._call(self._write_key, self.writes, 0, seconds)
            if invitations:
                self._call(self._invite_key, self.invitations, 0, seconds)
        except redis.RedisError:
            pass  # the Retry-After itself is still honoured by the caller

    def _call(self, key: str, quota: Quota, wanted: int, hold: float) -> int:
        return int(self._script(keys=[key], args=[quota.rate, quota.capacity, wanted, hold]))
