"""Injected faults: which Graph request fails how, and how a connection is dropped.

Owns the fault decisions for the knobs of a seed's `faults` section (validated in `seed.py`,
changed at run time with `PUT /_sandbox/faults`):

- `latency_ms`: added before every Graph request is handled;
- `drop_rate`: the connection is closed without any HTTP response, nothing is done;
- `error_rate`: the request is answered with one of `error_statuses` (500/502/503/504 by
  default, picked at random) without being carried out; 503 and 504 carry
  `Retry-After: error_retry_after_s`;
- `commit_then_drop_rate`: the request is carried out (a write happens), then the connection
  is closed instead of sending the response; `commit_then_drop_paths` restricts it to routes
  (fnmatch patterns on "METHOD /v1.0/template" or "METHOD /v1.0/actual/path");
- `commit_then_error_rate`: the request, or the `$batch` item, is carried out, then answered
  with one of `error_statuses` instead of its result (a gateway that timed out after the
  service acted): what a client that repeats it must recognise as done.

Only Graph requests (`/v1.0/...`, with a valid token) are ever faulted: never the admin API
under `/_sandbox/` nor the Entra endpoints. Every decision draws a fixed number of values from
one `random.Random`, seeded from `faults.seed` when it is an integer, so the same sequence of
requests meets the same faults (`commit_then_error_rate` draws two more, and only when it is
set, so the other knobs' sequences stay as they were). `$batch` items only get error faults
(as item statuses).

Dropping needs the server's transport: `ConnectionControl` (the outermost ASGI wrapper, see
`app.asgi_app`) puts an abort callable into the request scope; `drop_connection` uses it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from .router import GraphError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ABORT_KEY = "sandbox.abort_connection"
DISCONNECT_WAIT_S = 1.0

_ERRORS: dict[int, tuple[str, str]] = {
    500: ("InternalServerError", "An internal server error occurred (sandbox fault injection)."),
    502: ("BadGateway", "The upstream service returned an invalid response (sandbox fault)."),
    503: (
        "ServiceUnavailable",
        "The service is temporarily unavailable (sandbox fault injection). Retry later.",
    ),
    504: ("GatewayTimeout", "The upstream service did not answer in time (sandbox fault)."),
}


class ConnectionDropped(Exception):
    """Raised where the connection cannot be aborted (no uvicorn transport, e.g. in-process)."""


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one Graph request, decided before it is handled."""

    drop_before: bool = False
    error_status: int | None = None
    drop_after: bool = False
    error_after: int | None = None  # carried out, then answered with this status


def new_rng(seed: int | None) -> random.Random:
    return random.Random(seed) if seed is not None else random.Random()


def route_matches(patterns: Sequence[str] | None, route_key: str, actual_key: str) -> bool:
    """True when no patterns are set, or one matches the route template or the actual path."""
    if patterns is None:
        return True
    return any(fnmatchcase(route_key, p) or fnmatchcase(actual_key, p) for p in patterns)


def _pick(statuses: Sequence[int], draw: float) -> int:
    return int(statuses[min(int(draw * len(statuses)), len(statuses) - 1)])


def plan_request(
    faults: dict[str, Any], rng: random.Random, route_key: str, actual_key: str
) -> FaultPlan:
    """The faults of one HTTP Graph request; always draws four values from `rng` (six with
    `commit_then_error_rate`)."""
    drop, error, pick, commit = (rng.random() for _ in range(4))
    error_after = error_after_commit(faults, rng)
    if drop < float(faults.get("drop_rate") or 0):
        return FaultPlan(drop_before=True)
    if error < float(faults.get("error_rate") or 0):
        return FaultPlan(error_status=_pick(faults.get("error_statuses") or [503], pick))
    drop_after = commit < float(faults.get("commit_then_drop_rate") or 0) and route_matches(
        faults.get("commit_then_drop_paths"), route_key, actual_key
    )
    return FaultPlan(drop_after=drop_after, error_after=None if drop_after else error_after)


def plan_batch_item(faults: dict[str, Any], rng: random.Random) -> int | None:
    """The injected status of one `$batch` item, or None; always draws two values."""
    error, pick = rng.random(), rng.random()
    if error < float(faults.get("error_rate") or 0):
        return _pick(faults.get("error_statuses") or [503], pick)
    return None


def error_after_commit(faults: dict[str, Any], rng: random.Random) -> int | None:
    """The status answered instead of a carried-out request's result, or None; draws two values
    when `commit_then_error_rate` is set, none otherwise."""
    rate = float(faults.get("commit_then_error_rate") or 0)
    if rate <= 0:
        return None
    after, pick = rng.random(), rng.random()
    return _pick(faults.get("error_statuses") or [503], pick) if after < rate else None


def injected_error(status: int, retry_after_s: int) -> GraphError:
    code, message = _ERRORS.get(status, _ERRORS[500])
    headers = {"Retry-After": str(retry_after_s)} if status in (503, 504) else {}
    return GraphError(status, code, message, headers=headers)


# ---------------------------------------------------------------- dropping connections


class ConnectionControl:
    """Outermost ASGI wrapper: gives each HTTP request a way to abort its own connection.

    uvicorn's `send` is a bound method of the request/response cycle, which holds the
    transport; it must be captured here, before any middleware wraps `send`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            abort = _aborter(send)
            if abort is not None:
                scope[ABORT_KEY] = abort
        await self.app(scope, receive, send)


def _aborter(send: Send) -> Callable[[], Awaitable[None]] | None:
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None or not callable(getattr(transport, "abort", None)):
        return None

    async def abort() -> None:
        transport.abort()
        # Let connection_lost run: the cycle then ignores whatever the app sends, and the
        # server neither writes a response nor logs "returned without starting response".
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DISCONNECT_WAIT_S
        while not getattr(cycle, "disconnected", True) and loop.time() < deadline:
            await asyncio.sleep(0.001)

    return abort


async def drop_connection(scope: Scope) -> None:
    """Close the request's connection at once, without a response (TCP reset/EOF)."""
    abort = scope.get(ABORT_KEY)
    if abort is None:
        raise ConnectionDropped("sandbox fault: connection dropped")
    await abort()
