"""The `notifications:` section: kinds, events, filters, secrets; every problem with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_config import GOOD, write
from worker.bootstrap import notification_secrets, notifiers
from worker.config import ConfigError, EmailNotification, load_config, notifier_label
from worker.domain.event_kinds import EventKind

pytestmark = pytest.mark.unit

ENV = {
    "CONTOSO_SECRET": "s3cret-value",
    "HOOK": "https://hooks.example/x/T0KEN-abc",
    "SMTP_PW": "pw-123456",
}


def load(tmp_path: Path, section: str) -> object:
    return load_config(write(tmp_path, GOOD + section), env=ENV)


def problems(tmp_path: Path, section: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, section)
    return caught.value.problems


def test_three_kinds_with_defaults_filters_and_secrets(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            GOOD
            + """
notifications:
  - {kind: webhook, url: "${HOOK}"}
  - {kind: teams, url: "https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/def",
     events: [quarantine, staged_deletions], jobs: [contoso-to-fabrikam]}
  - kind: email
    smtp_url: smtp+starttls://relay.contoso.com
    from: sync@contoso.com
    to: [idteam@contoso.com]
    user: sync
    password: ${SMTP_PW}
    events: [cycle_failed, recovered]
  - {kind: email, smtp_url: "smtps://relay.contoso.com:2465", from: a@contoso.com, to: [b@contoso.com]}
  - {kind: email, smtp_url: "smtp://relay:25", from: a@contoso.com, to: [b@contoso.com]}
""",
        ),
        env=ENV,
    )
    webhook, teams, mail, ssl, plain = config.notifications
    assert webhook.events == list(EventKind)  # all four by default
    assert webhook.jobs is None
    assert teams.events == [EventKind.QUARANTINE, EventKind.STAGED_DELETIONS]
    assert isinstance(mail, EmailNotification)
    assert (mail.host, mail.port, mail.security, mail.sender) == (
        "relay.contoso.com",
        587,
        "starttls",
        "sync@contoso.com",
    )
    assert (ssl.port, ssl.security) == (2465, "ssl")  # type: ignore[union-attr]
    assert (plain.port, plain.security) == (25, "none")  # type: ignore[union-attr]
    # Logged and shown by kind, position and host: never the URL's token or a password.
    labels = [notifier_label(i, n) for i, n in enumerate(config.notifications)]
    assert labels[:3] == [
        "webhook#0 (hooks.example)",
        "teams#1 (contoso.webhook.office.com)",
        "email#2 (relay.contoso.com:587)",
    ]
    assert "T0KEN" not in repr(config.notifications)
    assert "pw-123456" not in repr(config.notifications)
    built = notifiers(config)  # type: ignore[arg-type]
    assert [n.label for n in built][:3] == labels[:3]
    assert len({n.key for n in built}) == 5
    assert all("T0KEN" not in n.key and "T0KEN" not in repr(n) for n in built)
    assert built[1].wants(EventKind.QUARANTINE, "contoso-to-fabrikam")
    assert not built[1].wants(EventKind.RECOVERED, "contoso-to-fabrikam")
    assert not built[1].wants(EventKind.QUARANTINE, "another-job")
    secrets = notification_secrets(config)  # type: ignore[arg-type]
    assert {
        "s3cret-value",
        "https://hooks.example/x/T0KEN-abc",
        "/x/T0KEN-abc",
        "pw-123456",
    } <= set(secrets)


def test_every_problem_is_listed_with_its_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
notifications:
  - {kind: webhook, url: "ftp://hooks.example/x/T0KEN"}
  - {kind: slack, url: "https://x"}
  - {kind: teams, url: "https://x.example/y", events: [quarantine, deleted]}
  - {kind: email, smtp_url: "smtp://relay:25", from: sync@contoso.com}
  - {kind: email, smtp_url: "imap://relay", from: sync@contoso.com, to: [a@contoso.com]}
  - {kind: email, smtp_url: "smtp://relay", from: sync@contoso.com, to: [a@contoso.com], user: u, password: "${SMTP_PW}"}
  - {kind: webhook, url: "https://x.example/y", jobs: [nope]}
  - {kind: webhook, url: "${MISSING_HOOK}"}
  - {url: "https://x.example/y"}
  - {kind: email, smtp_url: "smtps://relay", from: "not an address", to: [], colour: red}
  - {kind: webhook, url: "https://x.example/y", events: []}
""",
    )
    assert found == [
        "notifications[7].url: environment variable MISSING_HOOK is not set",
        "notifications[0].url: must be an https:// or http:// URL",
        "notifications[1].kind: unknown kind 'slack' (one of: webhook, teams, email)",
        "notifications[2].events[1]: unknown event 'deleted' "
        "(one of: quarantine, staged_deletions, cycle_failed, recovered)",
        "notifications[3].to: required setting is missing",
        "notifications[4].smtp_url: must be an smtp://, smtp+starttls:// or smtps:// URL "
        "(e.g. smtp+starttls://relay.contoso.com:587)",
        "notifications[5]: user and password need smtp+starttls:// or smtps:// "
        "(never sent in clear)",
        "notifications[6].jobs[0]: unknown job 'nope' (known jobs: contoso-to-fabrikam)",
        "notifications[8].kind: required setting is missing (one of: webhook, teams, email)",
        "notifications[9].from: must be a mail address, got 'not an address'",
        "notifications[9].to: needs at least one address",
        "notifications[9].colour: unknown setting",
        "notifications[10].events: needs at least one event (or leave it out for all of them)",
    ]
    assert not any("T0KEN" in p for p in found)  # a bad URL is not echoed: it may be a token


def test_the_section_must_be_a_list_of_mappings(tmp_path: Path) -> None:
    assert problems(tmp_path, "notifications: {kind: webhook}\n") == [
        "notifications: must be a list of notifiers (each with a kind)"
    ]
    assert problems(tmp_path, "notifications: [webhook]\n") == [
        "notifications[0]: must be a mapping with a kind (webhook, teams, email)"
    ]


def test_no_section_means_no_notifiers(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    assert config.notifications == []


def test_beat_delivers_every_30_seconds_only_when_notifiers_are_configured(tmp_path: Path) -> None:
    from worker.celery_app import beat_schedule

    without = load_config(write(tmp_path, GOOD), env=ENV)
    assert "tenant-sync:notifications:deliver" not in beat_schedule(without)
    configured = load(tmp_path, 'notifications: [{kind: webhook, url: "${HOOK}"}]\n')
    entry = beat_schedule(configured)["tenant-sync:notifications:deliver"]  # type: ignore[arg-type]
    assert entry["task"] == "tenant_sync.deliver_notifications"
    assert entry["schedule"] == 30.0
