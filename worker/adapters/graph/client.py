"""The HTTP client for Graph: bearer tokens, retries of what is transient, errors translated once.

`translate_error` is the one place an HTTP answer becomes the domain's error vocabulary.
Throttling, 500/502/503/504, dropped connections and timeouts are retried as `retry.py` rules
(idempotent requests only, where Graph may have acted), honouring `Retry-After`, else with capped
exponential back-off and jitter, within the cycle's retry budget; every other error is raised at
once as a typed error carrying Graph's error code.
"""

from __future__ import annotations

import copy
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from worker.adapters.graph.retry import (
    LOST,
    NOT_SENT,
    TIMEOUT,
    RetryBudget,
    RetryPolicy,
    give_up,
    is_idempotent,
    never_sent,
    retryable,
    settled_by_replay,
)
from worker.domain.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ResyncRequired,
    StopSync,
    SyncError,
    Transient,
)

RESYNC_CODES = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateInvalid"})


class TokenProvider(Protocol):
    def token(self) -> str: ...


def error_fields(body: Any) -> tuple[str, str]:
    """Graph's OData error body: (code, message)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", str(body)[:300] if body else ""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate_error(response: httpx.Response) -> SyncError:
    """Turn a non-2xx Graph answer into the error vocabulary."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    where = f"{response.request.method} {urlsplit(str(response.request.url)).path}"
    return error_from(response.status_code, body, response.headers, where, response.reason_phrase)


def error_from(
    status: int, body: Any, headers: Mapping[str, str], where: str, reason: str = ""
) -> SyncError:
    """The one mapping of an HTTP status and Graph error body to the error vocabulary
    (also used for the items of a `$batch` answer)."""
    code, message = error_fields(body)
    text = message or reason or f"HTTP {status}"
    full = f"{text} ({where} -> HTTP {status})"
    if status == 410 or code in RESYNC_CODES:
        return ResyncRequired(full, code=code or "syncStateNotFound", status=status)
    if status == 429 or status >= 500:
        return Transient(
            full,
            code=code or f"HTTP{status}",
            status=status,
            retry_after=retry_after_seconds(headers),
        )
    if status in (401, 403):
        return StopSync(full, code=code or f"HTTP{status}", status=status)
    if status == 404:
        return NotFound(full, code=code or "Request_ResourceNotFound", status=status)
    if status in (409, 412):
        return Conflict(full, code=code or f"HTTP{status}", status=status)
    return BadRequest(full, code=code or f"HTTP{status}", status=status)


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    if ca_bundle is None:
        return True
    return ssl.create_default_context(cafile=str(ca_bundle))


class GraphClient:
    """Requests to one tenant's Graph endpoint, as one app."""

    def __init__(
        self,
        *,
        graph_url: str,
        tokens: TokenProvider,
        ca_bundle: Path | None = None,
        timeout_s: float = 60.0,
        policy: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
        on_response: Callable[[str, int], None] | None = None,
    ) -> None:
        self.base = graph_url.rstrip("/") + "/v1.0"
        self.origin = _origin(graph_url)
        self.tokens = tokens
        self._http = httpx.Client(
            verify=ssl_context(ca_bundle),
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
            trust_env=False,
        )
        self.policy = policy or RetryPolicy()
        # Set once Graph has answered (any status): shared by this client's copies, so that a
        # connection failure after that is an outage, not a wrong graph_url (see retry.py).
        self._reached = threading.Event()
        # Without a cycle's budget (see `with_budget`) only the attempt cap bounds the waits.
        self.budget = budget or RetryBudget(None)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_response = on_response

    def observe(self, method: str, status: int) -> None:
        """Tell the watcher (metrics) about one Graph answer, $batch items included."""
        if self._on_response is not None:
            self._on_response(method, status)

    def with_budget(self, budget: RetryBudget) -> GraphClient:
        """This client (same connections, tokens and watcher) spending `budget` on its retries:
        one per cycle, so that one cycle's waits are bounded whatever the others do."""
        bound = copy.copy(self)
        bound.budget = budget
        return bound

    def with_policy(self, policy: RetryPolicy) -> GraphClient:
        """This client (same connections, tokens, budget and watcher) repeating as `policy` says."""
        bound = copy.copy(self)
        bound.policy = policy
        return bound

    @property
    def reached(self) -> bool:
        """Whether the tenant's Graph has answered a request of this client (or a copy) yet."""
        return self._reached.is_set()

    def attempts(self, error: SyncError) -> int:
        """How many attempts in all a request failing with `error` gets (see retry.py)."""
        return self.policy.attempts(error, reached=self.reached)

    def give_up(self, error: SyncError, attempt: int) -> Transient:
        """The final error after `attempt` attempts, saying when Graph never answered."""
        if self.reached or not never_sent(error):
            return give_up(error, attempt)
        return give_up(
            error,
            attempt,
            f"gave up after {attempt} attempts ({self.origin} has not answered yet)",
        )

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base}/{path.lstrip('/')}"

    def delay(self, attempt: int, error: SyncError) -> float:
        """How long to wait after failed attempt `attempt`: Retry-After, else jittered back-off."""
        return self.policy.delay(attempt, error, self._rng)

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One Graph call; transient failures retried (unless `retry` is off, for callers that
        retry themselves), others raised as typed errors. `idempotent` overrides what the
        method and path say (see `retry.is_idempotent`)."""
        url = self.url(path)
        if _origin(url) != self.origin:
            # A nextLink pointing elsewhere must never receive this tenant's token.
            raise StopSync(f"refusing to send a token to {_origin(url)} (expected {self.origin})")
        where = urlsplit(url).path
        repeatable = is_idempotent(method, where) if idempotent is None else idempotent
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send(method, url, params=params, json=json, headers=headers)
            except SyncError as error:
                if attempt > 1 and settled_by_replay(method, where, error):
                    # An earlier attempt did it (its answer was lost or an error): done.
                    return httpx.Response(204, request=httpx.Request(method, url))
                if not retry or not retryable(error, idempotent=repeatable):
                    raise
                if attempt >= self.attempts(error):
                    raise self.give_up(error, attempt) from None
                pause = self.delay(attempt, error)
                if not self.budget.take(pause):
                    raise give_up(error, attempt, self.budget.describe()) from None
                self._sleep(pause)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        try:
            token = self.tokens.token()
        except StopSync:
            raise
        except Transient as exc:
            # The token endpoint failed: the request never left, so any request may go again.
            raise Transient(f"{method} {urlsplit(url).path}: {exc}", code=NOT_SENT) from exc
        all_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        try:
            response = self._http.request(
                method, url, params=params, json=json, headers=all_headers
            )
        except httpx.HTTPError as exc:
            self.observe(method, 0)
            raise transport_error(method, url, exc) from exc
        self._reached.set()
        # A $batch that got through is counted item by item instead (see batch.py).
        if not (url.endswith("/$batch") and response.is_success):
            self.observe(method, response.status_code)
        if response.is_success:
            return response
        raise translate_error(response)

    def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return json_object(self.request("GET", path, params=params, headers=headers))


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful answer; anything else is an error of the vocabulary."""
    with parsing(f"{response.request.method} {urlsplit(str(response.request.url)).path}"):
        data = response.json()
        if not isinstance(data, dict):
            raise TypeError(f"a JSON object was expected, not {type(data).__name__}")
        return data
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def parsing(where: str) -> Iterator[None]:
    """Reading a successful answer: a body not shaped as Graph documents it (a proxy's page, a
    cut-off body) is a Transient error of that request, not a crash of the cycle."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise Transient(f"{where}: unexpected answer: {exc!r}", code="UnexpectedAnswer") from exc


def transport_error(method: str, url: str, exc: httpx.HTTPError) -> Transient:
    """A failure without an HTTP answer, saying whether the request can have reached Graph."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        code, what = NOT_SENT, "connection failed"
    elif isinstance(exc, httpx.TimeoutException):
        code, what = TIMEOUT, "no answer in time"
    else:
        code, what = LOST, "connection lost"
    return Transient(f"{method} {urlsplit(url).path}: {what}: {exc!r}", code=code)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
