"""When a failed Graph request is sent again: which failures, how long to wait, and for how long
in all (the cycle's retry budget). One policy for single requests (client.py) and for the items
of a `$batch` (batch.py); docs/retries.md explains it for operators.

- Worth repeating: 429, 500, 502, 503, 504, a dropped connection and a timeout. A request that
  is not idempotent is repeated only where Graph cannot have acted on it: 429 and 503 (refused
  before anything ran) and a connection that never reached the server.
- Idempotent: reads, PUT, PATCH, DELETE, `$ref` writes, restores, invitations (Graph answers a
  repeated invitation with the user the first one created) and a `POST /groups` carrying a
  `uniqueName` (Graph refuses a second group with it: the repeat cannot make a twin).
- The wait: `Retry-After` when Graph sends it, else capped exponential back-off with jitter.
- A repeat that finds its effect already there is done, not failed: a DELETE or a `$ref` removal
  answered 404, a `$ref` addition answered "already exist", a `POST /groups` with a
  `uniqueName` answered "already exists" (the caller's `recover` reads the group it made).
  (A restore answered 404 is settled by the restore flow, which reads the user: restored
  already, or gone from the recycle bin.)
- The budget: the waits of one cycle against one tenant add up to at most `limits.retry_budget`;
  once it is spent a failure is final at its first answer and goes to escrow.
- A connection that fails (refused, no such host, connect timeout) before the tenant's Graph has
  ever answered this process is most likely a wrong `graph_url`: it gets `unreached_attempts`
  (3), so a cycle fails within seconds. Once Graph has answered, a connection failure is an
  outage to ride out, with every attempt. `check` uses `CHECK_POLICY`: 2 attempts, short waits.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from worker.domain.errors import BadRequest, NotFound, SyncError, Transient

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Graph refused these before acting: safe to repeat whatever the request.
NOT_CARRIED_OUT = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
# The codes of transport failures (Transient errors without an HTTP status).
NOT_SENT = "ConnectionFailed"  # the request never reached the server
LOST = "ConnectionLost"  # sent, and the answer never came: it may have run
TIMEOUT = "Timeout"  # sent, and no answer in time: it may have run


class RetryBudget:
    """The seconds one cycle may still spend waiting to repeat failed requests to one tenant;
    shared by the cycle's threads. `None` is no budget (only the attempt cap applies)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.spent = 0.0
        self._lock = threading.Lock()

    def take(self, wait_s: float) -> bool:
        """Book a wait of `wait_s`; False (and nothing booked) when it no longer fits."""
        with self._lock:
            if self.seconds is not None and (
                self.seconds <= 0 or self.spent + wait_s > self.seconds
            ):  # a zero budget is "no retries", even after a `Retry-After: 0`
                return False
            self.spent += wait_s
            return True

    def describe(self) -> str:
        return f"the cycle's retry budget ({self.seconds:g} s) is spent"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a request is repeated (the budget caps the total)."""

    max_attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0
    # Attempts of a request whose connection fails before the tenant's Graph has ever answered.
    unreached_attempts: int = 3

    def attempts(self, error: SyncError, *, reached: bool) -> int:
        """How many attempts in all a request failing with `error` gets; `reached`: whether the
        tenant's Graph has answered this process before (a wrong URL should fail fast, an
        outage of a Graph that worked be ridden out)."""
        if not reached and never_sent(error):
            return min(self.max_attempts, self.unreached_attempts)
        return self.max_attempts

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt `attempt` (1-based): jittered, so workers spread out."""
        exp = min(self.cap_s, self.base_s * (2 ** (attempt - 1)))
        return rng.uniform(exp / 2, exp)

    def delay(self, attempt: int, error: SyncError, rng: random.Random) -> float:
        if isinstance(error, Transient) and error.retry_after is not None:
            return error.retry_after
        return self.backoff(attempt, rng)


# `tenant-sync check` is asked by a person waiting for its answer: a failure is reported, not
# ridden out (at most one repeat, after at most a second).
CHECK_POLICY = RetryPolicy(max_attempts=2, base_s=0.5, cap_s=1.0, unreached_attempts=2)


def never_sent(error: SyncError) -> bool:
    """A failure of the connection itself: the request never reached the server."""
    return isinstance(error, Transient) and error.status is None and error.code == NOT_SENT


def keyed_creation(method: str, path: str, body: Any) -> bool:
    """A group creation carrying its alternate key (`uniqueName`): Graph makes it at most once."""
    path = path.split("?", 1)[0].rstrip("/")
    return (
        method.upper() == "POST"
        and path.endswith("/groups")
        and isinstance(body, dict)
        and bool(body.get("uniqueName"))
    )


def is_idempotent(method: str, path: str, body: Any = None) -> bool:
    """Whether sending this request twice leaves the directory as sending it once."""
    method = method.upper()
    if method in IDEMPOTENT_METHODS or keyed_creation(method, path, body):
        return True
    path = path.split("?", 1)[0].rstrip("/")
    return method == "POST" and (
        path.endswith(("/$ref", "/invitations", "/restore")) or path == "invitations"
    )


def retryable(error: SyncError, *, idempotent: bool) -> bool:
    """Whether this failure is worth sending the request again."""
    if not isinstance(error, Transient):
        return False
    if error.status is None:
        return error.code == NOT_SENT or (idempotent and error.code in (LOST, TIMEOUT))
    if error.status in NOT_CARRIED_OUT:
        return True
    return idempotent and error.status in RETRYABLE_STATUS


def settled_by_replay(method: str, path: str, error: SyncError, body: Any = None) -> bool:
    """A repeated request's error that only says an earlier attempt already did the work."""
    method = method.upper()
    if keyed_creation(method, path, body):
        # The group with this uniqueName exists: the first attempt made it.
        return isinstance(error, BadRequest) and "uniqueName already exist" in error.message
    path = path.split("?", 1)[0].rstrip("/")
    if method == "DELETE" and isinstance(error, NotFound):
        return True  # the user, or the $ref, is gone: what was asked
    return (
        method == "POST"
        and path.endswith("/$ref")
        and isinstance(error, BadRequest)
        and "already exist" in error.message
    )


def give_up(error: SyncError, attempts: int, budget_spent: str = "") -> Transient:
    """The final error of a request that was repeated in vain (it goes to escrow)."""
    why = budget_spent or f"gave up after {attempts} attempts"
    return Transient(
        f"{why}: {error}",
        code=error.code,
        status=error.status,
        retry_after=error.retry_after if isinstance(error, Transient) else None,
    )
