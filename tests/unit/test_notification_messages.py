"""What each notification says, and how a webhook, Teams and a mail lay it out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from worker.adapters.notify.render import ADAPTIVE_CARD, email_message, message_id, teams_card
from worker.domain.event_kinds import EventKind
from worker.domain.notification_text import describe
from worker.domain.notifications import DeletionHold, Event

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(kind: EventKind, **fields: object) -> Event:
    return Event(
        id=f"{kind.value}:contoso-to-fabrikam:run-1",
        kind=kind,
        job="contoso-to-fabrikam",
        run_id="run-1",
        occurred_at=T0,
        **fields,  # type: ignore[arg-type]
    )


QUARANTINE = event(
    EventKind.QUARANTINE,
    reason="EncounteredQuarantineException",
    error="invalid_client: AADSTS7000215",
    since=T0,
    next_attempt_at=T0 + timedelta(hours=2),
    failures=1,
)
HELD = event(
    EventKind.STAGED_DELETIONS,
    reason="TooManyDeletes",
    since=T0,
    deletions=DeletionHold(count=16, linked=26, threshold_count=10, threshold_percent=None),
)
FAILED = event(EventKind.CYCLE_FAILED, error="Graph unreachable", failures=1)
RECOVERED = event(EventKind.RECOVERED, reason="EncounteredQuarantineException", since=T0)


def test_quarantine_says_why_since_when_and_what_next() -> None:
    m = describe(QUARANTINE)
    facts = dict(m.facts)
    assert m.title == "Job contoso-to-fabrikam is in quarantine"
    assert "its cycles fail as a whole" in m.summary
    assert "2026-03-01 14:00:00 UTC" in m.summary  # the next attempt
    assert "tenant-sync restart contoso-to-fabrikam --scope quarantine" in m.summary
    assert facts["Reason"].startswith("EncounteredQuarantineException")
    assert facts["Error"] == "invalid_client: AADSTS7000215"
    assert facts["Event id"] == QUARANTINE.id
    assert m.severity == "attention"


def test_staged_deletions_give_the_count_the_threshold_and_the_command() -> None:
    m = describe(HELD)
    facts = dict(m.facts)
    assert m.title == "Job contoso-to-fabrikam holds 16 deletions over its threshold"
    assert facts["Deletions held"] == "16"
    assert facts["Threshold"] == "10 deletions"
    assert facts["Release with"] == "tenant-sync allow-deletes contoso-to-fabrikam"
    assert "tenant-sync logs contoso-to-fabrikam --action staged_delete" in m.summary
    percent = event(
        EventKind.STAGED_DELETIONS,
        deletions=DeletionHold(count=3, linked=10, threshold_count=None, threshold_percent=20),
    )
    assert dict(describe(percent).facts)["Threshold"] == "20% of 10 linked users"


def test_staged_deletions_say_what_was_counted_over_the_window() -> None:
    # A deletion arriving over several cycles: 3 made earlier in the window, 8 now.
    check = {
        "deletions": 8,
        "carried_out_in_window": 3,
        "counted": 11,
        "linked": 40,
        "threshold": {"count": 10, "percent": None, "window_s": 86400},
        "held": True,
    }
    held = DeletionHold.from_check(check)
    assert held is not None
    m = describe(event(EventKind.STAGED_DELETIONS, deletions=held))
    assert dict(m.facts)["Counted against it"] == (
        "11 counted: 3 made in the last 24h and 8 waiting"
    )
    body = m.payload()["deletions"]
    assert (body["counted"], body["madeInWindow"], body["windowSeconds"]) == (11, 3, 86400)
    # What travels through the outbox comes back whole.
    again = Event.from_json(json.loads(json.dumps(m.event.to_json())))
    assert again.deletions == held


def test_failure_and_recovery_read_plainly() -> None:
    assert "Graph unreachable" in describe(FAILED).summary
    m = describe(RECOVERED)
    assert m.title == "Job contoso-to-fabrikam is healthy again"
    assert dict(m.facts)["Was"] == "in quarantine (EncounteredQuarantineException)"
    assert m.severity == "good"
    after_failures = describe(event(EventKind.RECOVERED, failures=2))
    assert "after 2 failed cycles" in after_failures.summary


def test_webhook_payload_is_the_events_data() -> None:
    payload = describe(HELD, console_url="https://sync.contoso.com/").payload()
    assert payload["id"] == HELD.id
    assert payload["event"] == "staged_deletions"
    assert payload["job"] == "contoso-to-fabrikam"
    assert payload["runId"] == "run-1"
    assert payload["occurredAt"] == "2026-03-01T12:00:00+00:00"
    assert payload["deletions"] == {
        "count": 16,
        "linkedUsers": 26,
        "threshold": {"count": 10, "percent": None},
        "counted": 0,  # HELD was built without the window's numbers
        "madeInWindow": 0,
        "windowSeconds": 0,
        "release": "tenant-sync allow-deletes contoso-to-fabrikam",
    }
    assert payload["links"] == {"Open the job": "https://sync.contoso.com/jobs/contoso-to-fabrikam"}
    json.dumps(payload)  # plain JSON


def test_teams_gets_an_adaptive_card_in_an_incoming_webhook_message() -> None:
    body = teams_card(describe(QUARANTINE, console_url="https://sync.contoso.com"))
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, summary, facts = card["body"]
    assert title["text"] == "Job contoso-to-fabrikam is in quarantine"
    assert title["color"] == "Attention"
    assert summary["wrap"] is True
    assert {
        "title": "Reason",
        "value": "EncounteredQuarantineException (its cycles fail as a whole)",
    } in facts["facts"]
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open the job",
            "url": "https://sync.contoso.com/jobs/contoso-to-fabrikam",
        }
    ]
    assert "actions" not in teams_card(describe(QUARANTINE))["attachments"][0]["content"]


def test_a_mail_has_a_subject_the_facts_and_a_stable_message_id() -> None:
    mail = email_message(
        describe(HELD), sender="sync@contoso.com", to=["id@contoso.com", "b@x.org"], key="k1"
    )
    assert (
        mail["Subject"]
        == "[tenant-sync] Job contoso-to-fabrikam holds 16 deletions over its threshold"
    )
    assert mail["From"] == "sync@contoso.com"
    assert mail["To"] == "id@contoso.com, b@x.org"
    assert mail["Message-ID"] == message_id("k1")
    assert message_id("k1") != message_id("k2")
    assert mail["X-Tenant-Sync-Event"] == "staged_deletions"
    text = mail.get_content()
    assert "Deletions held: 16" in text
    assert "Release with:   tenant-sync allow-deletes contoso-to-fabrikam" in text
