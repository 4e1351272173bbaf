"""The Graph client's error translation and retry policy (an injected transport, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from worker.adapters.graph.client import GraphClient, translate_error
from worker.adapters.graph.directory import odata_string
from worker.domain.errors import BadRequest, Conflict, NotFound, ResyncRequired, StopSync, Transient

pytestmark = pytest.mark.unit


class StaticTokens:
    def token(self) -> str:
        return "token-value"


def client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]) -> GraphClient:
    return GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        max_attempts=4,
    )


def graph_error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": f"{code} happened"}}, headers=headers
    )


def test_throttling_is_retried_after_the_server_says() -> None:
    answers = [
        graph_error(429, "TooManyRequests", {"Retry-After": "7"}),
        httpx.Response(200, json={"ok": 1}),
    ]
    sleeps: list[float] = []
    graph = client(lambda _: answers.pop(0), sleeps)

    assert graph.get_json("/users") == {"ok": 1}
    assert sleeps == [7.0]


def test_unavailable_is_retried_with_capped_backoff_then_raised() -> None:
    sleeps: list[float] = []
    graph = client(lambda _: graph_error(503, "ServiceUnavailable"), sleeps)

    with pytest.raises(Transient) as caught:
        graph.get_json("/users")
    assert caught.value.status == 503
    assert len(sleeps) == 3
    assert all(0 < s <= 30 for s in sleeps)


def test_connection_errors_are_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    assert client(handler, []).get_json("/users") == {}
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "Request_BadRequest", BadRequest),
        (401, "InvalidAuthenticationToken", StopSync),
        (403, "Authorization_RequestDenied", StopSync),
        (404, "Request_ResourceNotFound", NotFound),
        (409, "Conflict", Conflict),
        (410, "syncStateNotFound", ResyncRequired),
        (400, "resyncRequired", ResyncRequired),
        (500, "InternalServerError", Transient),
    ],
)
def test_errors_are_typed_with_the_graph_code_and_not_retried(
    status: int, code: str, kind: type[Exception]
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return graph_error(status, code)

    with pytest.raises(kind) as caught:
        client(handler, []).get_json("/users/x")
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert len(calls) == 1


def test_the_token_goes_only_to_the_configured_graph_host() -> None:
    graph = client(lambda _: httpx.Response(200, json={}), [])
    with pytest.raises(StopSync, match="refusing to send a token"):
        graph.get_json("https://elsewhere.example/v1.0/users?$skiptoken=x")


def test_translate_error_keeps_the_message() -> None:
    request = httpx.Request("PATCH", "https://graph.example/v1.0/users/1")
    response = httpx.Response(
        400,
        request=request,
        content=json.dumps(
            {"error": {"code": "Request_BadRequest", "message": "Property 'x' does not exist"}}
        ),
    )
    error = translate_error(response)
    assert isinstance(error, BadRequest)
    assert "Property 'x' does not exist" in str(error)
    assert "PATCH /v1.0/users/1" in str(error)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("ann@contoso.com", "'ann@contoso.com'"),
        ("o'brien@x.com", "'o''brien@x.com'"),
        ("' or 1 eq 1 or '", "''' or 1 eq 1 or '''"),
    ],
)
def test_odata_strings_cannot_break_out_of_the_literal(value: str, literal: str) -> None:
    assert odata_string(value) == literal
