"""The Graph client's error translation and retry rules (an injected transport and sleep, no
network): what is retried, how long it waits, the cycle's budget, and repeats that find their
work done."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import httpx
import pytest

from worker.adapters.graph.client import GraphClient, translate_error
from worker.adapters.graph.directory import odata_string
from worker.adapters.graph.retry import CHECK_POLICY, RetryBudget, RetryPolicy, is_idempotent
from worker.domain.errors import BadRequest, Conflict, NotFound, ResyncRequired, StopSync, Transient

pytestmark = pytest.mark.unit


class StaticTokens:
    def token(self) -> str:
        return "token-value"


def client(
    handler: Callable[[httpx.Request], httpx.Response],
    sleeps: list[float],
    budget: RetryBudget | None = None,
) -> GraphClient:
    return GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        policy=RetryPolicy(max_attempts=4),
        budget=budget,
    )


def sequence(*answers: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A transport answering each request with the next of `answers` (raising the exceptions)."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


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
    assert "gave up after 4 attempts" in str(caught.value)
    assert len(sleeps) == 3
    assert all(0 < s <= 30 for s in sleeps)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_each_transient_status_is_retried_on_a_read(status: int) -> None:
    sleeps: list[float] = []
    graph = client(sequence(graph_error(status, "X"), httpx.Response(200, json={"ok": 1})), sleeps)

    assert graph.get_json("/users") == {"ok": 1}
    assert len(sleeps) == 1


def test_backoff_grows_and_is_capped_without_retry_after() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=5.0)
    rng = random.Random(1)
    waits = [policy.backoff(n, rng) for n in range(1, 8)]

    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert all(2.5 <= w <= 5.0 for w in waits[3:])  # capped, with jitter


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ConnectError("refused"),
    ],
)
def test_timeouts_and_dropped_connections_of_idempotent_requests_are_retried(
    failure: Exception,
) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise failure
        return httpx.Response(204)

    client(handler, []).request("PATCH", "/users/u-1", json={"city": "Oslo"})
    assert calls == ["PATCH", "PATCH"]


@pytest.mark.parametrize(
    ("answer", "repeated"),
    [
        (graph_error(500, "InternalServerError"), False),
        (graph_error(502, "BadGateway"), False),
        (graph_error(504, "GatewayTimeout"), False),
        (httpx.ReadTimeout("slow"), False),  # it may have run
        (graph_error(429, "TooManyRequests"), True),  # refused before anything ran
        (graph_error(503, "ServiceUnavailable"), True),
        (httpx.ConnectError("refused"), True),  # never reached Graph
    ],
)
def test_a_request_that_is_not_idempotent_is_repeated_only_where_nothing_ran(
    answer: httpx.Response | Exception, repeated: bool
) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            if isinstance(answer, Exception):
                raise answer
            return answer
        return httpx.Response(201, json={"id": "g-1"})

    graph = client(handler, [])
    if repeated:
        assert graph.request("POST", "/groups", json={}).status_code == 201
        assert len(calls) == 2
    else:
        with pytest.raises(Transient):
            graph.request("POST", "/groups", json={})
        assert len(calls) == 1


@pytest.mark.parametrize(
    ("method", "path", "idempotent"),
    [
        ("GET", "/users", True),
        ("PATCH", "/users/1", True),
        ("DELETE", "/users/1", True),
        ("POST", "/groups/g/members/$ref", True),
        ("POST", "/invitations", True),  # Graph answers a repeat with the user it created
        ("POST", "/directory/deletedItems/1/restore", True),
        ("POST", "/groups", False),
        ("POST", "/$batch", False),  # its items decide, one by one (batch.py)
    ],
)
def test_which_requests_are_idempotent(method: str, path: str, idempotent: bool) -> None:
    assert is_idempotent(method, path) is idempotent


def test_a_group_creation_with_a_unique_name_is_idempotent() -> None:
    # Graph makes at most one group per uniqueName: the repeat cannot make a twin.
    assert is_idempotent("POST", "/groups", {"displayName": "x", "uniqueName": "k"})
    assert not is_idempotent("POST", "/groups", {"displayName": "x"})


def test_a_delete_whose_repeat_answers_404_is_done() -> None:
    graph = client(
        sequence(graph_error(502, "BadGateway"), graph_error(404, "Request_ResourceNotFound")), []
    )
    assert graph.request("DELETE", "/users/u-1").status_code == 204


def test_a_delete_answered_404_at_once_is_not_found() -> None:
    graph = client(sequence(graph_error(404, "Request_ResourceNotFound")), [])
    with pytest.raises(NotFound):
        graph.request("DELETE", "/users/u-1")


def test_a_member_added_again_after_a_lost_answer_is_done() -> None:
    already = httpx.Response(
        400,
        json={
            "error": {
                "code": "Request_BadRequest",
                "message": "One or more added object references already exist for the "
                "following modified properties: 'members'.",
            }
        },
    )
    graph = client(sequence(httpx.ReadTimeout("slow"), already), [])
    assert graph.request("POST", "/groups/g/members/$ref", json={}).status_code == 204


def test_retries_stop_when_the_cycle_budget_is_spent() -> None:
    sleeps: list[float] = []
    budget = RetryBudget(5.0)
    throttled = graph_error(429, "TooManyRequests", {"Retry-After": "3"})
    graph = client(sequence(throttled, throttled, httpx.Response(200, json={})), sleeps, budget)

    with pytest.raises(Transient, match="retry budget") as caught:
        graph.get_json("/users")
    assert sleeps == [3.0]  # the second wait of 3 s does not fit in what is left
    assert caught.value.status == 429
    # The budget is the cycle's: the next request gets its first attempt, and no retry.
    with pytest.raises(Transient, match="retry budget"):
        client(sequence(throttled), sleeps, budget).get_json("/users")
    assert sleeps == [3.0]


def test_a_zero_budget_means_no_retries() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return graph_error(500, "InternalServerError")

    with pytest.raises(Transient):
        client(handler, [], RetryBudget(0.0)).get_json("/users")
    assert len(calls) == 1
    immediate = graph_error(503, "ServiceUnavailable", {"Retry-After": "0"})
    with pytest.raises(Transient):
        client(sequence(immediate, immediate), [], RetryBudget(0.0)).get_json("/users")


def test_each_cycle_gets_its_own_budget_on_the_same_connections() -> None:
    graph = client(lambda _: httpx.Response(200, json={}), [])
    first, second = graph.with_budget(RetryBudget(1.0)), graph.with_budget(RetryBudget(9.0))

    assert first.budget is not second.budget
    assert first._http is graph._http is second._http
    assert graph.budget.seconds is None  # without a cycle, only the attempt cap applies


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
        (501, "NotImplemented", Transient),
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


class FlakyTokens:
    def __init__(self) -> None:
        self.calls = 0

    def token(self) -> str:
        self.calls += 1
        if self.calls == 1:
            raise Transient(
                "token endpoint: temporarily_unavailable", code="temporarily_unavailable"
            )
        return "token-value"


def test_a_token_endpoint_blip_is_retried_even_for_a_request_that_is_not_idempotent() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(201, json={"id": "g"})

    graph = GraphClient(
        graph_url="https://graph.example",
        tokens=FlakyTokens(),
        transport=httpx.MockTransport(handler),
        sleep=[].append,
    )
    assert graph.request("POST", "/groups", json={}).status_code == 201
    assert sent == ["POST"]  # sent once: the failed attempt never left


def test_an_unreadable_answer_is_a_transient_error_not_a_crash() -> None:
    graph = client(lambda _: httpx.Response(200, text="<html>proxy</html>"), [])
    with pytest.raises(Transient) as caught:
        graph.get_json("/users")
    assert caught.value.code == "UnexpectedAnswer"
    with pytest.raises(Transient):
        client(lambda _: httpx.Response(200, json=[1, 2]), []).get_json("/users")


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_a_graph_that_never_answered_gets_few_attempts_a_graph_that_did_every_one() -> None:
    policy = RetryPolicy()
    never = Transient("connection failed", code="ConnectionFailed")
    outage = Transient("Service Unavailable", code="HTTP503", status=503)
    assert policy.attempts(never, reached=False) == 3  # a wrong graph_url fails fast
    assert policy.attempts(never, reached=True) == 8  # Graph worked: an outage, ridden out
    assert policy.attempts(outage, reached=False) == 8
    assert RetryPolicy(max_attempts=2).attempts(never, reached=False) == 2


def test_a_refused_connection_to_a_graph_that_never_answered_fails_within_seconds() -> None:
    calls: list[str] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return refused(request)

    graph = GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )
    with pytest.raises(Transient) as caught:
        graph.get_json("/users")

    assert len(calls) == 3
    assert sum(sleeps) <= 1.5
    assert "gave up after 3 attempts (https://graph.example has not answered yet)" in str(
        caught.value
    )
    assert "Connection refused" in str(caught.value)  # `check` reads it as a network problem


def test_once_graph_has_answered_a_refused_connection_is_ridden_out() -> None:
    answers: list[httpx.Response | Exception] = [httpx.Response(200, json={})]
    answers += [httpx.ConnectError("refused")] * 6 + [httpx.Response(200, json={"ok": 1})]
    sleeps: list[float] = []
    graph = GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(sequence(*answers)),
        sleep=sleeps.append,
    )
    graph.get_json("/users")
    # Each cycle's copy of the client knows it too.
    cycle = graph.with_budget(RetryBudget(900.0))

    assert cycle.get_json("/users") == {"ok": 1}
    assert len(sleeps) == 6


def test_the_check_policy_repeats_once_after_at_most_a_second() -> None:
    calls: list[str] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return graph_error(503, "ServiceUnavailable")

    graph = client(handler, sleeps).with_policy(CHECK_POLICY)
    with pytest.raises(Transient, match="gave up after 2 attempts"):
        graph.get_json("/users")
    assert len(calls) == 2
    assert len(sleeps) == 1
    assert sleeps[0] <= 1.0
