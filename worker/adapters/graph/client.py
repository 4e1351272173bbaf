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


def _error_body(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", str(body)[:300]


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate_error(response: httpx.Response) -> SyncError:
    """Turn a non-2xx Graph answer into the error vocabulary."""
    status = response.status_code
    code, message = _error_body(response)
    text = message or response.reason_phrase
    where = f"{response.request.method} {urlsplit(str(response.request.url)).path}"
    full = f"{text} ({where} -> HTTP {status})"
    if status == 410 or code in RESYNC_CODES:
        return ResyncRequired(full, code=code or "syncStateNotFound", status=status)
    if status in RETRYABLE_STATUS or status >= 500:
        return Transient(
            full,
            code=code or f"HTTP{status}",
            status=status,
            retry_after=retry_after_seconds(response),
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

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base}/{path.lstrip('/')}"

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _RetryableAnswer) and exc.error.retry_after is not None:
            return exc.error.retry_after
        exp = min(self.backoff_cap_s, self.backoff_base_s * (2 ** (state.attempt_number - 1)))
        return self._rng.uniform(exp / 2, exp)  # jitter spreads the workers out

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One Graph call; transient failures retried, others raised as typed errors."""
        url = self.url(path)
        if _origin(url) != self.origin:
            # A nextLink pointing elsewhere must never receive this tenant's token.
            raise StopSync(f"refusing to send a token to {_origin(url)} (expected {self.origin})")
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
            raise _RetryableAnswer(
                Transient(f"{method} {urlsplit(url).path}: connection failed: {exc!r}")
            ) from exc
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
