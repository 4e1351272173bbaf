"""Notifications: raised by cycles into the outbox, delivered from it by one function.

`NotificationObserver` is a CycleObserver: when a cycle ends it compares the job's state before
and after (domain/notifications.py), and queues each new event once per notifier that wants it.
Queuing is all it does, and it swallows every error: a notification never slows down or fails a
cycle. `deliver_due` is the one delivery path (the Celery task, the end of `tenant-sync run`,
tests): it claims due deliveries one at a time, sends each, and on failure keeps it for a later
attempt (10 s, doubling, at most 1 h apart) until it is sent or 24 h have passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from worker.domain.errors import BadRequest, SyncError
from worker.domain.notification_text import describe
from worker.domain.notifications import (
    CycleEnd,
    DeletionHold,
    Delivery,
    Event,
    events_after_cycle,
    next_attempt,
    scrub,
    scrubbed,
)
from worker.ports import JobSnapshot, NotificationOutbox, Notifier

log = structlog.get_logger("tenant_sync.notify")

# A claimed delivery is hidden this long: longer than any send may take (timeouts are shorter),
# so only a claimer that died leaves it to be tried again.
CLAIM_LEASE = timedelta(minutes=5)
SEND_TIMEOUT_S = 15.0
MIN_SEND_TIMEOUT_S = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def queue_events(
    outbox: NotificationOutbox,
    notifiers: Sequence[Notifier],
    events: Iterable[Event],
    now: datetime,
) -> list[Delivery]:
    """One delivery per event and notifier that wants it; those queued before are not again."""
    deliveries = [
        Delivery(event=event, notifier=n.key, first_at=now)
        for event in events
        for n in notifiers
        if n.wants(event.kind, event.job)
    ]
    return outbox.add(deliveries, now) if deliveries else []


class NotificationObserver:
    """The CycleObserver that turns a cycle's end into queued notifications."""

    def __init__(
        self,
        outbox: NotificationOutbox,
        notifiers: Sequence[Notifier],
        *,
        secrets: Iterable[str] = (),
        kick: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.outbox = outbox
        self.notifiers = list(notifiers)
        self.secrets = tuple(secrets)
        # Asks for a delivery now (a Celery task), rather than at the next periodic one.
        self.kick = kick
        self.clock = clock

    def cycle_finished(
        self,
        *,
        job: str,
        mode: str,
        status: str,
        counts: Mapping[str, int],
        duration_s: float,
        snapshot: JobSnapshot | None,
    ) -> None:
        if snapshot is None or snapshot.previous is None:
            return
        try:
            end = CycleEnd(
                job=job,
                run_id=snapshot.run_id,
                status=status,
                at=self.clock(),
                error=snapshot.error,
                held=DeletionHold.from_check(snapshot.deletions),
            )
            events = [
                scrubbed(e, self.secrets)
                for e in events_after_cycle(snapshot.previous, snapshot.state, end)
            ]
            if not events:
                return
            queued = queue_events(self.outbox, self.notifiers, events, end.at)
            for event in events:
                log.info(
                    "notification event",
                    notification=event.kind.value,
                    event_id=event.id,
                    notifiers=[n.label for n in self.notifiers if n.wants(event.kind, event.job)],
                    queued=sum(1 for d in queued if d.event.id == event.id),
                )
            if queued and self.kick is not None:
                self.kick()
        except Exception as exc:  # a notification must never fail the cycle
            log.error("notifications could not be queued", error=scrub(repr(exc), self.secrets))


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)  # delivery ids
    retrying: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": len(self.sent),
            "retrying": len(self.retrying),
            "dropped": len(self.dropped),
        }


def deliver_due(
    outbox: NotificationOutbox,
    notifiers: Sequence[Notifier],
    *,
    clock: Callable[[], datetime] = utcnow,
    monotonic: Callable[[], float] = time.monotonic,
    deadline_s: float | None = None,
    limit: int = 200,
    console_url: str | None = None,
    secrets: Iterable[str] = (),
) -> DeliveryReport:
    """Send what is due now, one delivery at a time, until none is due, `limit` were tried or
    `deadline_s` has passed (each send's timeout fits in what is left). What is not sent stays
    in the outbox for a later call."""
    by_key = {n.key: n for n in notifiers}
    hidden = tuple(secrets)
    report = DeliveryReport()
    started = monotonic()
    for _ in range(limit):
        timeout = SEND_TIMEOUT_S
        if deadline_s is not None:
            left = deadline_s - (monotonic() - started)
            if left < MIN_SEND_TIMEOUT_S:
                break
            timeout = min(timeout, left)
        try:
            delivery = outbox.claim(clock(), CLAIM_LEASE)
            if delivery is None:
                break
            _attempt(outbox, by_key, delivery, report, clock, timeout, console_url, hidden)
        except SyncError as exc:
            # Redis is away: what was claimed is due again once its lease ends.
            log.warning("the notification outbox is unreachable", error=str(exc))
            break
    return report


def _attempt(
    outbox: NotificationOutbox,
    by_key: Mapping[str, Notifier],
    delivery: Delivery,
    report: DeliveryReport,
    clock: Callable[[], datetime],
    timeout_s: float,
    console_url: str | None,
    secrets: tuple[str, ...],
) -> None:
    event = delivery.event
    bound = log.bind(notification=event.kind.value, event_id=event.id, job_id=event.job)
    notifier = by_key.get(delivery.notifier)
    if notifier is None:
        # The configuration changed since it was queued: nobody to send it to.
        outbox.done(delivery)
        report.dropped.append(delivery.id)
        bound.warning("notification dropped: its notifier is no longer configured")
        return
    bound = bound.bind(notifier=notifier.label)
    attempts = delivery.attempts + 1
    try:
        notifier.send(describe(event, console_url=console_url), timeout_s=timeout_s)
    except BadRequest as exc:
        outbox.done(delivery)
        report.dropped.append(delivery.id)
        bound.error(
            "notification refused by its receiver; not sent again",
            attempts=attempts,
            error=scrub(str(exc), secrets),
        )
        return
    except Exception as exc:
        # Transient (or unforeseen): keep it for a later attempt.
        error = scrub(str(exc) if isinstance(exc, SyncError) else repr(exc), secrets)
        failed = replace(delivery, attempts=attempts, last_error=error)
        now = clock()
        retry_at = next_attempt(failed, now)
        if retry_at is None:
            outbox.done(failed)
            report.dropped.append(delivery.id)
            bound.error(
                "notification given up after 24 h of failed attempts",
                attempts=attempts,
                error=error,
            )
            return
        outbox.retry(failed, retry_at)
        report.retrying.append(delivery.id)
        bound.warning(
            "notification not delivered; will retry",
            attempts=attempts,
            retry_at=retry_at.isoformat(),
            error=error,
        )
        return
    outbox.done(delivery)
    report.sent.append(delivery.id)
    bound.info("notification sent", attempts=attempts)
