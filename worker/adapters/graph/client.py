"""The HTTP client for Graph: bearer tokens, retries of what is transient, errors translated once.

`translate_error` is the one place an HTTP answer becomes the domain's error vocabulary.
Only throttling and unavailability (429, 503, 504) and dropped connections are retried, honouring
`Retry-After`, else with capped exponential back-off and jitter; every other error is raised
at once as a typed error carrying Graph's error code.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
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

RETRYABLE_STATUS = frozenset({429, 503, 504})
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
    if status in RETRYABLE_STATUS or status >= 500:
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


class _RetryableAnswer(Exception):
    def __init__(self, error: Transient) -> None:
        super().__init__(str(error))
        self.error = error


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
        max_attempts: int = 6,
        max_wait_s: float = 300.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
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
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_response = on_response

    def observe(self, method: str, status: int) -> None:
        """Tell the watcher (metrics) about one Graph answer, $batch items included."""
        if self._on_response is not None:
            self._on_response(method, status)

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base}/{path.lstrip('/')}"

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _RetryableAnswer) and exc.error.retry_after is not None:
            return exc.error.retry_after
        return self.backoff(state.attempt_number)

    def backoff(self, attempt: int) -> float:
        """Capped exponential back-off with jitter, which spreads the workers out."""
        exp = min(self.backoff_cap_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(exp / 2, exp)

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
    ) -> httpx.Response:
        """One Graph call; transient failures retried (unless `retry` is off, for callers that
        must decide themselves whether a repeat is safe), others raised as typed errors."""
        url = self.url(path)
        if _origin(url) != self.origin:
            # A nextLink pointing elsewhere must never receive this tenant's token.
            raise StopSync(f"refusing to send a token to {_origin(url)} (expected {self.origin})")
        if not retry:
            try:
                return self._send(method, url, params=params, json=json, headers=headers)
            except _RetryableAnswer as exc:
                raise exc.error from None
        retrying = Retrying(
            retry=retry_if_exception_type(_RetryableAnswer),
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_wait_s),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, url, params=params, json=json, headers=headers)
        except _RetryableAnswer as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        all_headers = {
            "Authorization": f"Bearer {self.tokens.token()}",
            "Accept": "application/json",
        }
        all_headers.update(headers or {})
        try:
            response = self._http.request(
                method, url, params=params, json=json, headers=all_headers
            )
        except httpx.TransportError as exc:
            self.observe(method, 0)
            raise _RetryableAnswer(
                Transient(
                    f"{method} {urlsplit(url).path}: connection failed: {exc!r}",
                    code="ConnectionFailed",
                )
            ) from exc
        # A $batch that got through is counted item by item instead (see batch.py).
        if not (url.endswith("/$batch") and response.is_success):
            self.observe(method, response.status_code)
        if response.is_success:
            return response
        error = translate_error(response)
        if response.status_code in RETRYABLE_STATUS and isinstance(error, Transient):
            raise _RetryableAnswer(error)
        raise error

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", path, params=params).json()
        return data


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
