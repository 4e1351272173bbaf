"""Graph `$batch`: many requests in few round trips, each answer handled on its own.

Items go 20 to a batch, several batches in flight at once (latency does not cap throughput),
each paced first by the shared quota buckets (see `worker.adapters.state.rate_limit`). Retries
follow `retry.py`, item by item: an item answered 429/500/502/503/504 is sent again in a later
batch (with the other items still to repeat, never with those that succeeded), after the longest
`Retry-After` of the round or a capped, jittered back-off, within the cycle's retry budget; any
other answer is final for that item, and a repeat whose error only says the first attempt did
the work (a DELETE answered 404) is a success. When a whole batch is lost (a dropped
connection, a 5xx on the batch itself) its items may or may not have run: idempotent items are
simply sent again, and an item with a `recover` callback (an invitation) first asks it whether it
already happened; any other item is not repeated blindly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.adapters.graph.client import GraphClient, error_from, json_object, parsing
from worker.adapters.graph.retry import (
    NOT_CARRIED_OUT,
    NOT_SENT,
    give_up,
    is_idempotent,
    retryable,
    settled_by_replay,
)
from worker.domain.errors import BadRequest, StopSync, SyncError, Transient

MAX_BATCH_ITEMS = 20  # Graph's limit per $batch request
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class Pacer(Protocol):
    def reserve(self, *, writes: int, invitations: int) -> float:
        """Seconds to wait before sending this many writes."""

    def hold(self, seconds: float, *, invitations: bool = False) -> None:
        """Graph answered 429: make every sender wait."""


class Unpaced:
    def reserve(self, *, writes: int, invitations: int) -> float:
        return 0.0

    def hold(self, seconds: float, *, invitations: bool = False) -> None:
        return None


@dataclass
class BatchCall:
    method: str
    url: str  # relative to /v1.0, e.g. "/users/123?$select=id"
    body: Any = None
    # For a call that must not simply be repeated: returns the answer body if it already
    # happened (e.g. the invited user exists), or None to send it again.
    recover: Callable[[], Any | None] | None = None
    # Whether sending it twice is harmless; None: as the method and URL say (retry.is_idempotent).
    idempotent: bool | None = None

    @property
    def repeatable(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return is_idempotent(self.method, self.url, self.body)


@dataclass
class BatchAnswer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


BatchResult = BatchAnswer | SyncError


class BatchExecutor:
    """Runs calls through `$batch` with the client's retry policy and budget (see retry.py)."""

    def __init__(
        self,
        client: GraphClient,
        *,
        concurrency: int = 4,
        pacer: Pacer | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        # Told after each $batch how many of its writes got their final answer (live progress).
        self.on_written = on_written
        self.concurrency = max(1, concurrency)
        self.pacer = pacer or Unpaced()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="batch")

    def run(self, calls: Sequence[BatchCall]) -> list[BatchResult]:
        """Every call's answer or error, in order. Only StopSync is raised."""
        results: list[BatchResult | None] = [None] * len(calls)
        last_error: dict[int, SyncError] = {}
        pending = list(range(len(calls)))
        attempt = 0
        while pending:
            attempt += 1
            again: list[int] = []
            wait: float | None = None
            chunks = [
                pending[start : start + MAX_BATCH_ITEMS]
                for start in range(0, len(pending), MAX_BATCH_ITEMS)
            ]
            if len(chunks) == 1 or self.concurrency == 1:
                sent = [self._send(chunk, calls, results, last_error, attempt) for chunk in chunks]
            else:
                futures = [
                    self._pool.submit(self._send, chunk, calls, results, last_error, attempt)
                    for chunk in chunks
                ]
                sent = [future.result() for future in futures]  # re-raises StopSync
            for retry, retry_after in sent:
                again += retry
                if retry_after is not None:
                    wait = max(wait or 0.0, retry_after)
            if not again:
                break
            first = last_error.get(again[0]) or Transient("no answer")
            pause = wait if wait is not None else self.client.delay(attempt, first)
            budget = self.client.budget
            capped = attempt >= self.client.attempts(first)
            if capped or not budget.take(pause):
                for i in again:
                    error = last_error.get(i) or Transient("no answer")
                    results[i] = (
                        self.client.give_up(error, attempt)
                        if capped
                        else give_up(error, attempt, budget.describe())
                    )
                break
            self.client.sleep(pause)
            pending = again
        return [r if r is not None else Transient("no answer") for r in results]

    def _send(
        self,
        chunk: list[int],
        calls: Sequence[BatchCall],
        results: list[BatchResult | None],
        last_error: dict[int, SyncError],
        attempt: int,
    ) -> tuple[list[int], float | None]:
        """Send one batch; returns the items to send again and how long the server asks to wait."""
        writes = [calls[i] for i in chunk if calls[i].method in WRITE_METHODS]
        invitations = sum(1 for c in writes if c.url.startswith("/invitations"))
        pause = self.pacer.reserve(writes=len(writes), invitations=invitations)
        if pause > 0:
            self.client.sleep(pause)
        payload = {"requests": [_item(i, calls[i]) for i in chunk]}
        try:
            response = self.client.request("POST", "/$batch", json=payload, retry=False)
        except StopSync:
            raise
        except Transient as error:
            for i in chunk:
                last_error[i] = error
            if error.status == 429:
                self.pacer.hold(error.retry_after or 1.0, invitations=invitations > 0)
            if error.status in NOT_CARRIED_OUT or (error.status is None and error.code == NOT_SENT):
                return chunk, error.retry_after  # refused as a whole: nothing ran
            if not retryable(error, idempotent=True):
                for i in chunk:
                    results[i] = error
                return [], None
            return self._recover(chunk, calls, results, error), error.retry_after
        except SyncError as error:
            for i in chunk:
                results[i] = error
            return [], None
        try:
            with parsing("POST /$batch"):
                answers = {str(a.get("id")): a for a in json_object(response)["responses"]}
        except Transient as error:  # the batch got through, but its answer is unreadable
            for i in chunk:
                last_error[i] = error
            return self._recover(chunk, calls, results, error), None
        try:
            return self._answers(chunk, calls, results, last_error, answers, attempt)
        finally:
            if self.on_written is not None:
                self.on_written(
                    sum(
                        1
                        for i in chunk
                        if results[i] is not None and calls[i].method in WRITE_METHODS
                    )
                )

    def _answers(
        self,
        chunk: list[int],
        calls: Sequence[BatchCall],
        results: list[BatchResult | None],
        last_error: dict[int, SyncError],
        answers: dict[str, Any],
        attempt: int,
    ) -> tuple[list[int], float | None]:
        retry: list[int] = []
        wait: float | None = None
        for i in chunk:
            call = calls[i]
            answer = answers.get(str(i))
            if answer is None:
                missing = Transient("the batch answer left this request out")
                last_error[i] = missing
                retry += self._recover([i], calls, results, missing)
                continue
            try:
                with parsing(f"POST /$batch (item {i})"):
                    status = int(answer.get("status", 500))
                    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
                    body = answer.get("body")
            except Transient as unreadable:
                last_error[i] = unreadable
                retry += self._recover([i], calls, results, unreadable)
                continue
            self.client.observe(call.method, status)
            if 200 <= status < 300:
                results[i] = BatchAnswer(status, body, headers)
                continue
            where = f"{call.method} {call.url.split('?', 1)[0]}"
            failure = error_from(status, body, headers, where)
            if attempt > 1 and settled_by_replay(call.method, call.url, failure, call.body):
                results[i] = self._replayed(call, failure, headers)  # an earlier attempt did it
            elif retryable(failure, idempotent=call.repeatable):
                last_error[i] = failure
                retry.append(i)
                if isinstance(failure, Transient) and failure.retry_after is not None:
                    wait = max(wait or 0.0, failure.retry_after)
                if status == 429:
                    self.pacer.hold(wait or 1.0, invitations=call.url.startswith("/invitations"))
            elif status == 401:
                raise failure  # the token itself is refused: nothing else will work either
            elif isinstance(failure, StopSync):
                # A 403 on one object (a privileged user, say) fails that object, not the cycle.
                results[i] = BadRequest(failure.message, code=failure.code, status=status)
            else:
                results[i] = failure
        return retry, wait

    @staticmethod
    def _replayed(call: BatchCall, failure: SyncError, headers: dict[str, str]) -> BatchResult:
        """A repeat refused because an earlier attempt did the work: done. A call with a
        `recover` (a creation) is answered with what that attempt made, read back."""
        if call.recover is None:
            return BatchAnswer(204, None, headers)
        try:
            found = call.recover()
        except StopSync:
            raise
        except SyncError as error:
            return error
        return failure if found is None else BatchAnswer(200, found, headers)

    def _recover(
        self,
        chunk: list[int],
        calls: Sequence[BatchCall],
        results: list[BatchResult | None],
        error: Transient,
    ) -> list[int]:
        """Items that may have run: those with a `recover` callback ask it whether they did;
        idempotent ones go again; any other one fails with the error (it is not repeated)."""
        again: list[int] = []
        for i in chunk:
            recover = calls[i].recover
            if recover is not None:
                try:
                    found = recover()
                except StopSync:
                    raise
                except SyncError:
                    found = None  # cannot tell yet; the next round asks again
                if found is not None:
                    results[i] = BatchAnswer(200, found)
                    continue
                again.append(i)
            elif calls[i].repeatable:
                again.append(i)
            else:
                results[i] = error
        return again


def _item(index: int, call: BatchCall) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(index), "method": call.method, "url": call.url}
    if call.body is not None:
        item["body"] = call.body
        item["headers"] = {"Content-Type": "application/json"}
    return item
