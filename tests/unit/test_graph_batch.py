"""$batch execution rules (an injected transport and sleep, no network): items retried one by
one, repeats that find their work done, the cycle's retry budget, and a grouped lookup's further
pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from worker.adapters.graph.batch import BatchAnswer, BatchCall, BatchExecutor
from worker.adapters.graph.client import GraphClient
from worker.adapters.graph.directory import GraphTargetDirectory
from worker.adapters.graph.retry import RetryBudget, RetryPolicy
from worker.domain.errors import BadRequest, NotFound, StopSync, Transient
from worker.ports import FindUsersIn, Invitation, Invite

pytestmark = pytest.mark.unit


class StaticTokens:
    def token(self) -> str:
        return "t"


def executor(
    handler: Callable[[list[dict[str, Any]]], Any],
    sleeps: list[float],
    *,
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
    **kwargs: Any,
) -> tuple[BatchExecutor, list[list[dict[str, Any]]]]:
    sent: list[list[dict[str, Any]]] = []

    def transport(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["requests"]
        sent.append(items)
        answer = handler(items)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    client = GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(transport),
        sleep=sleeps.append,
        policy=policy,
        budget=budget,
    )
    return BatchExecutor(client, **kwargs), sent


def ok(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"responses": [{"id": i["id"], "status": 204, "body": None} for i in items]}


def test_calls_go_twenty_to_a_batch_and_answers_come_back_in_order() -> None:
    batches, sent = executor(ok, [])
    calls = [BatchCall("PATCH", f"/users/{n}", {"city": "Oslo"}) for n in range(45)]

    results = batches.run(calls)

    assert [len(items) for items in sent] == [20, 20, 5]
    assert all(isinstance(r, BatchAnswer) and r.status == 204 for r in results)
    assert sent[0][0] == {
        "id": "0",
        "method": "PATCH",
        "url": "/users/0",
        "body": {"city": "Oslo"},
        "headers": {"Content-Type": "application/json"},
    }


def test_throttled_items_are_sent_again_after_retry_after_and_final_errors_are_not() -> None:
    rounds: list[int] = []

    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        rounds.append(len(items))
        answers = []
        for item in items:
            if item["url"] == "/users/missing":
                answers.append(
                    {
                        "id": item["id"],
                        "status": 404,
                        "body": {"error": {"code": "Request_ResourceNotFound", "message": "gone"}},
                    }
                )
            elif item["url"] == "/users/busy" and len(rounds) == 1:
                answers.append(
                    {
                        "id": item["id"],
                        "status": 429,
                        "headers": {"Retry-After": "3"},
                        "body": {"error": {"code": "TooManyRequests", "message": "slow down"}},
                    }
                )
            else:
                answers.append({"id": item["id"], "status": 204})
        return {"responses": answers}

    sleeps: list[float] = []
    batches, _ = executor(handler, sleeps)

    results = batches.run(
        [
            BatchCall("DELETE", "/users/missing"),
            BatchCall("DELETE", "/users/busy"),
            BatchCall("DELETE", "/users/fine"),
        ]
    )

    assert rounds == [3, 1]  # only the throttled item went again
    assert sleeps == [3.0]
    assert isinstance(results[0], NotFound)
    assert isinstance(results[1], BatchAnswer)
    assert isinstance(results[2], BatchAnswer)


def test_a_refused_token_stops_everything_but_a_forbidden_object_fails_alone() -> None:
    def forbidden(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "responses": [
                {
                    "id": i["id"],
                    "status": 403,
                    "body": {"error": {"code": "Authorization_RequestDenied", "message": "no"}},
                }
                for i in items
            ]
        }

    batches, _ = executor(forbidden, [])
    (result,) = batches.run([BatchCall("PATCH", "/users/admin", {"city": "x"})])
    assert isinstance(result, BadRequest)
    assert result.code == "Authorization_RequestDenied"

    def unauthorized(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "responses": [
                {
                    "id": i["id"],
                    "status": 401,
                    "body": {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}},
                }
                for i in items
            ]
        }

    batches, _ = executor(unauthorized, [])
    with pytest.raises(StopSync):
        batches.run([BatchCall("PATCH", "/users/a", {"city": "x"})])


def test_a_lost_batch_asks_before_repeating_an_invitation() -> None:
    attempts: list[list[str]] = []

    def handler(items: list[dict[str, Any]]) -> Any:
        attempts.append([i["url"] for i in items])
        if len(attempts) == 1:
            raise httpx.ReadError("connection dropped after the server acted")
        return ok(items)

    recovered: list[str] = []

    def already_invited() -> dict[str, Any]:
        recovered.append("asked")
        return {"invitedUser": {"id": "u-1"}, "status": "Existing"}

    sleeps: list[float] = []
    batches, _ = executor(handler, sleeps)
    invite = BatchCall(
        "POST", "/invitations", {"invitedUserEmailAddress": "a@x.com"}, recover=already_invited
    )

    results = batches.run([invite, BatchCall("PATCH", "/users/u-2", {"city": "x"})])

    assert recovered == ["asked"]
    assert attempts == [
        ["/invitations", "/users/u-2"],
        ["/users/u-2"],
    ]  # the invitation is not resent
    assert isinstance(results[0], BatchAnswer)
    assert results[0].body == {"invitedUser": {"id": "u-1"}, "status": "Existing"}
    assert len(sleeps) == 1


def test_a_refused_batch_is_sent_again_whole() -> None:
    calls = 0

    def handler(items: list[dict[str, Any]]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(
                429,
                headers={"Retry-After": "2"},
                json={"error": {"code": "TooManyRequests", "message": "x"}},
            )
        return ok(items)

    sleeps: list[float] = []
    batches, sent = executor(handler, sleeps)

    results = batches.run(
        [BatchCall("POST", "/invitations", {"a": 1}, recover=lambda: pytest.fail("nothing ran"))]
    )

    assert sleeps == [2.0]
    assert len(sent) == 2
    assert isinstance(results[0], BatchAnswer)


def test_items_that_never_succeed_end_as_transient_errors() -> None:
    def unavailable(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "responses": [
                {
                    "id": i["id"],
                    "status": 503,
                    "body": {"error": {"code": "ServiceUnavailable", "message": "later"}},
                }
                for i in items
            ]
        }

    sleeps: list[float] = []
    batches, sent = executor(unavailable, sleeps, policy=RetryPolicy(max_attempts=3))

    (result,) = batches.run([BatchCall("PATCH", "/users/a", {"city": "x"})])

    assert isinstance(result, Transient)
    assert "gave up after 3 attempts" in str(result)
    assert len(sent) == 3
    assert len(sleeps) == 2


def item_error(item: dict[str, Any], status: int, code: str, **headers: str) -> dict[str, Any]:
    return {
        "id": item["id"],
        "status": status,
        "headers": headers,
        "body": {"error": {"code": code, "message": f"{code} happened"}},
    }


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_only_the_failed_items_are_sent_again_in_a_later_batch(status: int) -> None:
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        first = len(sent) == 1
        return {
            "responses": [
                item_error(i, status, "Fault")
                if first and i["url"] in ("/users/1", "/users/3")
                else {"id": i["id"], "status": 204}
                for i in items
            ]
        }

    sleeps: list[float] = []
    batches, sent = executor(handler, sleeps)

    results = batches.run([BatchCall("PATCH", f"/users/{n}", {"city": "x"}) for n in range(5)])

    assert [[i["url"] for i in items] for items in sent] == [
        [f"/users/{n}" for n in range(5)],
        ["/users/1", "/users/3"],  # not the items that succeeded, not the whole batch
    ]
    assert all(isinstance(r, BatchAnswer) for r in results)
    assert len(sleeps) == 1


def test_the_round_waits_for_the_longest_retry_after_of_its_items() -> None:
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        if len(sent) > 1:
            return ok(items)
        return {
            "responses": [
                item_error(items[0], 503, "ServiceUnavailable", **{"Retry-After": "2"}),
                item_error(items[1], 429, "TooManyRequests", **{"Retry-After": "5"}),
            ]
        }

    sleeps: list[float] = []
    batches, sent = executor(handler, sleeps)
    batches.run([BatchCall("GET", "/users/a"), BatchCall("GET", "/users/b")])

    assert sleeps == [5.0]


def test_a_delete_whose_repeat_answers_404_is_done() -> None:
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        # The first attempt deleted the user but its answer was a gateway timeout.
        if len(sent) == 1:
            return {"responses": [item_error(i, 504, "GatewayTimeout") for i in items]}
        return {"responses": [item_error(i, 404, "Request_ResourceNotFound") for i in items]}

    batches, sent = executor(handler, [])
    (result,) = batches.run([BatchCall("DELETE", "/users/u-1")])

    assert isinstance(result, BatchAnswer)
    assert len(sent) == 2


def test_a_delete_answered_404_at_once_is_not_found() -> None:
    batches, _ = executor(
        lambda items: {
            "responses": [item_error(i, 404, "Request_ResourceNotFound") for i in items]
        },
        [],
    )
    (result,) = batches.run([BatchCall("DELETE", "/users/u-1")])
    assert isinstance(result, NotFound)


def test_an_invitation_answered_500_is_sent_again_and_answered_with_the_same_user() -> None:
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        if len(sent) == 1:
            return {"responses": [item_error(i, 500, "InternalServerError") for i in items]}
        body = {"invitedUser": {"id": "u-1"}, "status": "Completed"}
        return {"responses": [{"id": i["id"], "status": 201, "body": body} for i in items]}

    batches, sent = executor(handler, [])
    (result,) = batches.run([BatchCall("POST", "/invitations", {"invitedUserEmailAddress": "a@x"})])

    assert isinstance(result, BatchAnswer)
    assert result.body["invitedUser"]["id"] == "u-1"


@pytest.mark.parametrize(("status", "repeated"), [(500, False), (504, False), (429, True)])
def test_an_item_that_is_not_idempotent_is_not_repeated_blindly(
    status: int, repeated: bool
) -> None:
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        if len(sent) == 1:
            return {"responses": [item_error(i, status, "Fault") for i in items]}
        return {"responses": [{"id": i["id"], "status": 201, "body": {"id": "g"}} for i in items]}

    batches, sent = executor(handler, [])
    (result,) = batches.run([BatchCall("POST", "/groups", {"displayName": "x"})])

    assert len(sent) == (2 if repeated else 1)
    assert isinstance(result, BatchAnswer) is repeated


def test_a_keyed_group_creation_answered_504_after_it_ran_resolves_to_the_group_made() -> None:
    # Graph made the group, then the gateway answered 504; the repeat is refused because the
    # uniqueName is taken: the answer is the group found by it, not an error or a second group.
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        if len(sent) == 1:
            return {"responses": [item_error(i, 504, "GatewayTimeout") for i in items]}
        message = "Another object with the same value for property uniqueName already exists."
        refused = {"error": {"code": "Request_BadRequest", "message": message}}
        return {"responses": [{"id": i["id"], "status": 400, "body": refused} for i in items]}

    batches, sent = executor(handler, [])
    body = {"displayName": "x", "uniqueName": "tenant-sync-1-g"}
    recovered = {"id": "g-made", "displayName": "x"}
    (result,) = batches.run([BatchCall("POST", "/groups", body, recover=lambda: recovered)])

    assert len(sent) == 2
    assert isinstance(result, BatchAnswer)
    assert result.body == recovered


def test_a_lost_batch_repeats_idempotent_items_but_fails_the_others() -> None:
    def handler(items: list[dict[str, Any]]) -> Any:
        if len(sent) == 1:
            raise httpx.ReadTimeout("no answer in time")
        return ok(items)

    batches, sent = executor(handler, [])
    results = batches.run(
        [BatchCall("POST", "/groups", {"displayName": "x"}), BatchCall("DELETE", "/users/u")]
    )

    assert [[i["url"] for i in items] for items in sent] == [["/groups", "/users/u"], ["/users/u"]]
    assert isinstance(results[0], Transient)
    assert isinstance(results[1], BatchAnswer)


def test_items_are_not_retried_once_the_cycle_budget_is_spent() -> None:
    def handler(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "responses": [
                item_error(i, 503, "ServiceUnavailable", **{"Retry-After": "4"}) for i in items
            ]
        }

    sleeps: list[float] = []
    budget = RetryBudget(10.0)
    batches, sent = executor(handler, sleeps, budget=budget)

    (result,) = batches.run([BatchCall("PATCH", "/users/a", {"city": "x"})])

    assert sleeps == [4.0, 4.0]  # a third wait of 4 s would pass the 10 s budget
    assert len(sent) == 3
    assert isinstance(result, Transient)
    assert "retry budget" in str(result)
    assert result.status == 503
    assert budget.spent == 8.0


def test_an_unreadable_item_answer_is_sent_again_and_an_unreadable_batch_too() -> None:
    def handler(items: list[dict[str, Any]]) -> Any:
        if len(sent) == 1:
            return httpx.Response(200, text="not json")
        if len(sent) == 2:
            return {
                "responses": [{"id": items[0]["id"], "status": "x"}, *ok(items[1:])["responses"]]
            }
        return ok(items)

    batches, sent = executor(handler, [])
    results = batches.run([BatchCall("GET", "/users/a"), BatchCall("GET", "/users/b")])

    assert [[i["url"] for i in items] for items in sent] == [
        ["/users/a", "/users/b"],
        ["/users/a", "/users/b"],
        ["/users/a"],
    ]
    assert all(isinstance(r, BatchAnswer) for r in results)


def test_a_malformed_answer_fails_its_own_object_only() -> None:
    def transport(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["requests"]
        bodies = [{"status": "Completed"}, {"invitedUser": {"id": "u-2"}, "status": "Completed"}]
        return httpx.Response(
            200,
            json={
                "responses": [
                    {"id": i["id"], "status": 201, "body": b}
                    for i, b in zip(items, bodies, strict=True)
                ]
            },
        )

    client = GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(transport),
        sleep=[].append,
    )
    target = GraphTargetDirectory(client, invite_redirect_url="https://example.com")

    broken, fine = target.execute(
        [Invite("a@x.com", None, "Guest"), Invite("b@x.com", None, "Guest")]
    )

    assert isinstance(broken, Transient)
    assert broken.code == "UnexpectedAnswer"
    assert isinstance(fine, Invitation)
    assert fine.user_id == "u-2"


def test_a_batch_to_a_graph_that_never_answered_fails_after_few_attempts() -> None:
    def refused(items: list[dict[str, Any]]) -> Any:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    sleeps: list[float] = []
    batches, sent = executor(refused, sleeps)

    (result,) = batches.run([BatchCall("PATCH", "/users/a", {"city": "x"})])

    assert isinstance(result, Transient)
    assert "gave up after 3 attempts (https://graph.example has not answered yet)" in str(result)
    assert len(sent) == 3
    assert sum(sleeps) <= 1.5


def grouped_target(second_page: httpx.Response) -> tuple[GraphTargetDirectory, list[str]]:
    """A target whose grouped lookup answers one user and a nextLink to `second_page`."""
    urls: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$batch"):
            (item,) = json.loads(request.content)["requests"]
            urls.append(item["url"])
            body = {
                "value": [{"id": "t-1", "mail": "o'neil@x.com"}],
                "@odata.nextLink": "https://graph.example/v1.0/users?$skiptoken=p2",
            }
            return httpx.Response(
                200, json={"responses": [{"id": item["id"], "status": 200, "body": body}]}
            )
        urls.append(str(request.url))
        return second_page

    client = GraphClient(
        graph_url="https://graph.example",
        tokens=StaticTokens(),
        transport=httpx.MockTransport(transport),
        sleep=[].append,
    )
    return GraphTargetDirectory(client, invite_redirect_url="https://example.com"), urls


def test_a_grouped_lookup_quotes_its_values_and_reads_every_page() -> None:
    page = {"value": [{"id": "t-2", "mail": "ann@x.com"}]}
    target, urls = grouped_target(httpx.Response(200, json=page))

    (found,) = target.execute([FindUsersIn("mail", ("o'neil@x.com", "ann@x.com"), ("mail",))])

    assert [u.id for u in found] == ["t-1", "t-2"]
    query = parse_qs(urlsplit(urls[0]).query)
    assert query["$filter"] == ["mail in ('o''neil@x.com','ann@x.com')"]
    assert (query["$select"], query["$top"]) == (["id,mail"], ["999"])
    assert urls[1].endswith("$skiptoken=p2")


def test_a_grouped_lookup_whose_next_page_fails_fails_whole() -> None:
    refused = {"error": {"code": "Request_BadRequest", "message": "no"}}
    target, _ = grouped_target(httpx.Response(400, json=refused))

    (failed,) = target.execute([FindUsersIn("mail", ("a@x.com",), ("mail",))])

    assert isinstance(failed, BadRequest)
