"""What a notification says, built once from an event: title, one-paragraph summary, facts,
links, and the JSON a webhook receives. The senders only lay it out (an Adaptive Card, a mail).

Built from the event's plain data alone (job, kind, times, reasons, counts, threshold, the
job-level error with secrets masked), so no user's attribute value can reach a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from worker.domain.event_kinds import EventKind
from worker.domain.health import QuarantineReason
from worker.domain.notifications import Event

REASONS = {
    QuarantineReason.EXCEPTION.value: "its cycles fail as a whole",
    QuarantineReason.ESCROW_PROPORTION.value: "too many of a cycle's exports failed",
    QuarantineReason.TOO_MANY_DELETES.value: "deletions over the threshold are held",
}


@dataclass(frozen=True)
class Message:
    event: Event
    title: str
    summary: str
    facts: tuple[tuple[str, str], ...]
    severity: str  # attention | warning | good (Adaptive Card colours)
    links: tuple[tuple[str, str], ...] = ()  # (label, url)

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body: the event's fields (camelCase, like Graph) and the text."""
        e = self.event
        held = e.deletions
        return {
            "id": e.id,
            "event": e.kind.value,
            "job": e.job,
            "runId": e.run_id,
            "occurredAt": e.occurred_at.isoformat(),
            "title": self.title,
            "text": self.summary,
            "severity": self.severity,
            "reason": e.reason,
            "error": e.error or None,
            "since": e.since.isoformat() if e.since else None,
            "nextAttemptAt": e.next_attempt_at.isoformat() if e.next_attempt_at else None,
            "successiveFailures": e.failures,
            "deletions": None
            if held is None
            else {
                "count": held.count,
                "linkedUsers": held.linked,
                "threshold": {"count": held.threshold_count, "percent": held.threshold_percent},
                "counted": held.counted,
                "madeInWindow": held.made_in_window,
                "windowSeconds": held.window_s,
                "release": release_command(e.job),
            },
            "links": {label: url for label, url in self.links},
            "source": "tenant-sync",
        }


def release_command(job: str) -> str:
    return f"tenant-sync allow-deletes {job}"


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def reason_text(reason: str | None) -> str:
    return REASONS.get(reason or "", reason or "unknown")


def describe(event: Event, *, console_url: str | None = None) -> Message:
    """The message for an event; `console_url` (the operator console's address) adds a link."""
    e = event
    facts: list[tuple[str, str]] = [("Job", e.job)]
    if e.kind is EventKind.QUARANTINE:
        title = f"Job {e.job} is in quarantine"
        summary = (
            f"Job {e.job} went into quarantine: {reason_text(e.reason)}. Its scheduled cycles "
            f"back off until the next attempt at {when(e.next_attempt_at)}; the first healthy "
            f"cycle ends the quarantine, and `tenant-sync restart {e.job} --scope quarantine` "
            "ends it by hand."
        )
        facts += [
            ("Reason", f"{e.reason} ({reason_text(e.reason)})"),
            ("Error", e.error or "—"),
            ("Since", when(e.since)),
            ("Next attempt", when(e.next_attempt_at)),
            ("Successive failed cycles", str(e.failures)),
        ]
        severity = "attention"
    elif e.kind is EventKind.STAGED_DELETIONS:
        held = e.deletions
        count = held.count if held else 0
        threshold = held.threshold_text() if held else "—"
        title = f"Job {e.job} holds {count} deletions over its threshold"
        summary = (
            f"A cycle of job {e.job} found {count} deletions, over its threshold ({threshold}). "
            "Creates and updates go on; the deletions wait for an operator. Review them with "
            f"`tenant-sync logs {e.job} --action staged_delete` and release them with "
            f"`{release_command(e.job)}`."
        )
        facts += [
            ("Deletions held", str(count)),
            ("Threshold", threshold),
            ("Linked users", str(held.linked) if held else "—"),
            ("Release with", release_command(e.job)),
        ]
        if held and held.window_s:
            facts.insert(-3, ("Counted against it", held.window_text()))
        severity = "warning"
    elif e.kind is EventKind.CYCLE_FAILED:
        title = f"A cycle of job {e.job} failed"
        summary = (
            f"A cycle of job {e.job} failed: {e.error or 'no error was recorded'}. The job tries "
            "again on its schedule and goes into quarantine if its cycles keep failing."
        )
        facts += [("Error", e.error or "—")]
        severity = "attention"
    else:
        title = f"Job {e.job} is healthy again"
        if e.reason == QuarantineReason.TOO_MANY_DELETES.value:
            was = "holding deletions over its threshold"
        elif e.reason:
            was = f"in quarantine ({e.reason})"
        else:
            was = f"{e.failures} failed cycle{'' if e.failures == 1 else 's'}"
        summary = f"Job {e.job} completed a healthy cycle after {was}."
        facts += [("Was", was)]
        if e.since:
            facts.append(("Since", when(e.since)))
        severity = "good"
    facts += [("Cycle", e.run_id), ("At", when(e.occurred_at)), ("Event id", e.id)]
    links: tuple[tuple[str, str], ...] = ()
    if console_url:
        links = (("Open the job", f"{console_url.rstrip('/')}/jobs/{quote(e.job, safe='')}"),)
    return Message(
        event=e,
        title=title,
        summary=summary,
        facts=tuple(facts),
        severity=severity,
        links=links,
    )
