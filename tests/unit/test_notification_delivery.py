"""Cycles queue their events once; one delivery path sends them, retries and gives up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_cycle import World
from worker.domain.errors import BadRequest, StopSync, Transient
from worker.domain.event_kinds import ALL_EVENTS, EventKind
from worker.domain.health import DeletionThreshold, JobState
from worker.domain.job import JobSpec
from worker.domain.notification_text import Message
from worker.domain.notifications import Delivery
from worker.service.cycle import CycleService
from worker.service.notify import NotificationObserver, deliver_due

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MemoryOutbox:
    """The NotificationOutbox port in memory, with the same once-per-id rule."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.items: dict[str, tuple[Delivery, datetime]] = {}

    def add(self, deliveries: Sequence[Delivery], now: datetime) -> list[Delivery]:
        added = []
        for d in deliveries:
            if d.id not in self.seen:
                self.seen.add(d.id)
                self.items[d.id] = (d, now)
                added.append(d)
        return added

    def claim(self, now: datetime, lease: timedelta) -> Delivery | None:
        due = sorted((at, i) for i, (_, at) in self.items.items() if at <= now)
        if not due:
            return None
        delivery = self.items[due[0][1]][0]
        self.items[delivery.id] = (delivery, now + lease)
        return delivery

    def done(self, delivery: Delivery) -> None:
        self.items.pop(delivery.id, None)

    def retry(self, delivery: Delivery, at: datetime) -> None:
        self.items[delivery.id] = (delivery, at)

    def pending(self) -> list[tuple[Delivery, datetime]]:
        return sorted(self.items.values(), key=lambda item: item[1])


class Receiver:
    """A notifier that records what it was sent, failing as told first."""

    def __init__(self, key: str = "webhook#0-x", events: Sequence[EventKind] = ALL_EVENTS) -> None:
        self._key = key
        self.events = set(events)
        self.messages: list[Message] = []
        self.failures: list[Exception] = []
        self.timeouts: list[float] = []

    @property
    def key(self) -> str:
        return self._key

    @property
    def label(self) -> str:
        return f"{self._key} (receiver.example)"

    def wants(self, kind: EventKind, job: str) -> bool:
        return kind in self.events

    def send(self, message: Message, *, timeout_s: float) -> None:
        self.timeouts.append(timeout_s)
        if self.failures:
            raise self.failures.pop(0)
        self.messages.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def observed_world(
    receivers: Sequence[Receiver], outbox: MemoryOutbox, clock: Clock, kicks: list[int]
) -> World:
    w = World(threshold=DeletionThreshold(count=2))
    observer = NotificationObserver(
        outbox,
        receivers,
        secrets=["target-s3cret"],
        kick=lambda: kicks.append(1),
        clock=clock,
    )

    def service() -> CycleService:
        spec = JobSpec(
            name="job",
            scope=w.scope,
            mappings=w.mappings,
            policy=w.policy,
            deletion_threshold=w.threshold,
        )
        return CycleService(
            spec,
            source=w.source,
            target=w.target,
            cursors=w.cursors,
            lock=w.lock,
            ledger=w.ledger,
            clock=lambda: w.now,
            observers=[observer],
        )

    w.service = service  # type: ignore[method-assign]
    return w


def test_a_cycle_that_holds_deletions_queues_one_message_per_receiver_once() -> None:
    outbox, clock, kicks = MemoryOutbox(), Clock(), []
    webhook, mail = Receiver("webhook#0-a"), Receiver("email#1-b", [EventKind.QUARANTINE])
    w = observed_world([webhook, mail], outbox, clock, kicks)
    ids = [w.user(f"user{i}") for i in range(6)]
    w.run()
    assert outbox.pending() == []  # a healthy first cycle: nothing to tell
    for source_id in ids[:4]:
        w.source.delete(source_id)

    w.run()  # 4 deletions over a threshold of 2: held
    w.run()  # still held: nothing new
    w.run(dry_run=True)  # a dry run tells nobody

    assert [d.event.kind for d, _ in outbox.pending()] == [EventKind.STAGED_DELETIONS]
    assert [d.notifier for d, _ in outbox.pending()] == ["webhook#0-a"]  # mail wants quarantine
    assert kicks == [1]
    report = deliver_due(outbox, [webhook, mail], clock=clock)
    assert report.as_dict() == {"sent": 1, "retrying": 0, "dropped": 0}
    (message,) = webhook.messages
    assert message.event.deletions is not None
    assert (message.event.deletions.count, message.event.deletions.threshold_count) == (4, 2)
    assert deliver_due(outbox, [webhook, mail], clock=clock).as_dict()["sent"] == 0


def test_a_job_that_fails_is_told_once_and_its_recovery_once() -> None:
    outbox, clock, kicks = MemoryOutbox(), Clock(), []
    hook = Receiver()
    w = observed_world([hook], outbox, clock, kicks)
    w.user("ann")
    w.run()
    w.target.credentials_rejected = True
    for _ in range(3):
        assert w.run().status == "failed"
    w.target.credentials_rejected = False
    assert w.run().status == "success"

    deliver_due(outbox, [hook], clock=clock)
    assert [m.event.kind.value for m in hook.messages] == [
        "cycle_failed",
        "quarantine",
        "recovered",
    ]
    quarantine = hook.messages[1]
    assert quarantine.event.reason == "EncounteredQuarantineException"
    assert "invalid_client" in quarantine.event.error


def test_the_same_occurrence_queued_twice_is_sent_once() -> None:
    outbox, clock = MemoryOutbox(), Clock()
    hook = Receiver()
    observer = NotificationObserver(outbox, [hook], clock=clock)
    before = JobState("job")
    after = JobState("job", failures=1)
    from worker.ports import JobSnapshot

    snapshot = JobSnapshot(
        "job", "Active", 0, 0, run_id="run-1", error="boom", previous=before, state=after
    )
    for _ in range(2):  # e.g. a resumed cycle that reports its end again
        observer.cycle_finished(
            job="job", mode="full", status="failed", counts={}, duration_s=1.0, snapshot=snapshot
        )
    deliver_due(outbox, [hook], clock=clock)
    assert [m.event.id for m in hook.messages] == ["cycle_failed:job:run-1"]


def test_a_failed_send_is_retried_after_its_back_off_and_not_before() -> None:
    outbox, clock = MemoryOutbox(), Clock()
    hook = Receiver()
    hook.failures = [Transient("HTTP 500"), Transient("HTTP 502")]
    queue_failure(outbox, hook, clock)

    assert deliver_due(outbox, [hook], clock=clock).as_dict()["retrying"] == 1
    ((delivery, due),) = outbox.pending()
    assert (delivery.attempts, delivery.last_error, due) == (
        1,
        "HTTP 500",
        T0 + timedelta(seconds=10),
    )
    clock.now = T0 + timedelta(seconds=9)
    assert deliver_due(outbox, [hook], clock=clock).as_dict() == {
        "sent": 0,
        "retrying": 0,
        "dropped": 0,
    }
    clock.now = T0 + timedelta(seconds=10)
    deliver_due(outbox, [hook], clock=clock)  # second failure: 20 s more
    assert outbox.pending()[0][1] == T0 + timedelta(seconds=30)
    clock.now = T0 + timedelta(seconds=30)
    assert deliver_due(outbox, [hook], clock=clock).as_dict()["sent"] == 1
    assert len(hook.messages) == 1
    assert outbox.pending() == []


def test_a_receiver_down_for_a_day_is_given_up_with_an_error(capsys: Any) -> None:
    outbox, clock = MemoryOutbox(), Clock()
    hook = Receiver()
    hook.failures = [Transient("no answer")] * 100
    queue_failure(outbox, hook, clock)
    attempts = 0
    while outbox.pending():
        clock.now = max(clock.now, outbox.pending()[0][1])
        deliver_due(outbox, [hook], clock=clock)
        attempts += 1
    assert clock.now == T0 + timedelta(hours=24)
    assert 20 < attempts < 40
    assert hook.messages == []


def test_a_refused_message_is_not_sent_again() -> None:
    outbox, clock = MemoryOutbox(), Clock()
    hook = Receiver()
    hook.failures = [BadRequest("HTTP 404")]
    queue_failure(outbox, hook, clock)
    assert deliver_due(outbox, [hook], clock=clock).as_dict()["dropped"] == 1
    assert outbox.pending() == []


def test_the_deadline_bounds_a_delivery_round_and_each_send() -> None:
    outbox, clock = MemoryOutbox(), Clock()
    hook = Receiver()
    elapsed = iter([0.0, 0.0, 3.5, 4.5, 9.0])
    queue_failure(outbox, hook, clock, runs=3)
    report = deliver_due(outbox, [hook], clock=clock, monotonic=lambda: next(elapsed), deadline_s=5)
    assert report.as_dict()["sent"] == 2  # the third would start with under a second left
    assert hook.timeouts == [5.0, 1.5]
    assert len(outbox.pending()) == 1  # kept for later


def test_an_observer_that_cannot_queue_never_fails_the_cycle() -> None:
    class Broken(MemoryOutbox):
        def add(self, deliveries: Sequence[Delivery], now: datetime) -> list[Delivery]:
            raise Transient("Redis is away")

    clock, kicks = Clock(), []
    w = observed_world([Receiver()], Broken(), clock, kicks)
    w.user("ann")
    w.run()
    w.target.credentials_rejected = True
    assert w.run().status == "failed"  # the cycle's own result, nothing else
    assert kicks == []


def test_known_secrets_never_reach_an_event() -> None:
    outbox, clock, kicks = MemoryOutbox(), Clock(), []
    hook = Receiver()
    w = observed_world([hook], outbox, clock, kicks)
    w.user("ann")
    w.run()

    def refuse() -> None:
        raise StopSync("invalid_client: the secret target-s3cret is wrong")

    w.target.sign_in = refuse  # type: ignore[method-assign]
    assert w.run().status == "failed"
    deliver_due(outbox, [hook], clock=clock)
    text = repr([m.payload() for m in hook.messages])
    assert "target-s3cret" not in text


def queue_failure(outbox: MemoryOutbox, hook: Receiver, clock: Clock, runs: int = 1) -> None:
    from worker.ports import JobSnapshot

    observer = NotificationObserver(outbox, [hook], clock=clock)
    for n in range(runs):
        observer.cycle_finished(
            job="job",
            mode="full",
            status="failed",
            counts={},
            duration_s=1.0,
            snapshot=JobSnapshot(
                "job",
                "Active",
                0,
                0,
                run_id=f"run-{n}",
                error="boom",
                previous=JobState("job"),
                state=JobState("job", failures=1),
            ),
        )
