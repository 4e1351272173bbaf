"""Notifications end to end in one process tree: cycles run by the CLI against the sandbox, real
HTTP and SMTP receivers started by the test, the outbox in the embedded Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from tests.conftest import SyncEnv
from tests.support.receivers import (
    HttpReceiver,
    SmtpReceiver,
    free_port,
    http_receiver,
    smtp_receiver,
)
from tests.support.world import SOURCE, TARGET
from worker.bootstrap import Runtime, open_runtime
from worker.config import load_config

pytestmark = pytest.mark.integration

TOKEN = "sig=Zm9vYmFyLXdlYmhvb2stdG9rZW4"  # what a Teams or webhook URL carries
SMTP_PASSWORD = "smtp-pa55word"
SECRETS = (TOKEN, SMTP_PASSWORD, SOURCE.secret, TARGET.secret, "wrong-secret")


def configure(env: SyncEnv, notifications: list[dict[str, Any]]) -> None:
    """Add a notifications: section to the test's config (and log at INFO, to see everything)."""
    config = yaml.safe_load(env.config.read_text())
    config["notifications"] = notifications
    config["logging"]["level"] = "INFO"
    env.config.write_text(yaml.safe_dump(config, sort_keys=False))


def set_target_secret(env: SyncEnv, secret: str) -> None:
    config = yaml.safe_load(env.config.read_text())
    config["tenants"][TARGET.name]["client_secret"] = secret
    env.config.write_text(yaml.safe_dump(config, sort_keys=False))


@contextmanager
def runtime(env: SyncEnv) -> Iterator[Runtime]:
    state = open_runtime(load_config(env.config), migrate=False)
    try:
        yield state
    finally:
        state.close()


class Transcript:
    """Everything the CLI printed, to check no secret ever appears in it."""

    def __init__(self, env: SyncEnv) -> None:
        self.env = env
        self.text: list[str] = []

    def cli(self, *args: str) -> Any:
        result = self.env.cli(*args)
        self.text += [result.stdout, result.stderr]
        return result

    def run(self, *args: str) -> dict[str, Any]:
        result = self.cli("run", "sync", "--json", *args)
        assert result.returncode in (0, 1), result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data


def events(receiver: HttpReceiver, path: str) -> list[str]:
    return [body["event"] for body in receiver.bodies(path)]


def card_titles(receiver: HttpReceiver, path: str) -> list[str]:
    return [body["attachments"][0]["content"]["body"][0]["text"] for body in receiver.bodies(path)]


def mails(smtp: SmtpReceiver) -> list[str]:
    return [mail["X-Tenant-Sync-Event"] for _, _, mail in smtp.messages]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked"


@pytest.mark.world(users=30, prior_b2b=False, job={"deletion_threshold": {"count": 10}})
def test_held_deletions_reach_each_receiver_once_and_so_does_their_release(
    sync_env: SyncEnv,
) -> None:
    env = sync_env
    with http_receiver() as http, smtp_receiver() as smtp:
        configure(
            env,
            [
                {"kind": "webhook", "url": f"{http.url}/hook?{TOKEN}"},
                {
                    "kind": "teams",
                    "url": f"{http.url}/teams/{TOKEN}",
                    "events": ["quarantine", "staged_deletions"],
                },
                {
                    "kind": "email",
                    "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
                    "from": "sync@contoso.com",
                    "to": ["idteam@contoso.com", "oncall@contoso.com"],
                },
            ],
        )
        cli = Transcript(env)
        assert cli.run("--full")["counts"]["create"] == 26
        members = env.seed["tenants"][0]["users"][:26]
        graph = env.source()
        for user in members[:16]:
            graph.delete(f"/users/{user['id']}").raise_for_status()

        held = cli.run()
        assert held["counts"]["staged_delete"] == 16
        assert held["notifications"] == {"sent": 3, "retrying": 0, "dropped": 0}
        assert cli.run()["counts"]["staged_delete"] == 16  # the same hold: told once
        cli.run("--dry-run")

        assert events(http, "/hook?" + TOKEN) == ["staged_deletions"]
        (payload,) = http.bodies("/hook?" + TOKEN)
        assert payload["job"] == "sync"
        assert payload["runId"] == held["run_id"]
        assert payload["deletions"] == {
            "count": 16,
            "linkedUsers": 26,
            "threshold": {"count": 10, "percent": None},
            # Nothing was deleted earlier in the window: the cycle's 16 are all that counted.
            "counted": 16,
            "madeInWindow": 0,
            "windowSeconds": 86400,
            "release": "tenant-sync allow-deletes sync",
        }
        assert card_titles(http, f"/teams/{TOKEN}") == [
            "Job sync holds 16 deletions over its threshold"
        ]
        (teams,) = http.bodies(f"/teams/{TOKEN}")
        assert teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert mails(smtp) == ["staged_deletions"]
        sender, recipients, mail = smtp.messages[0]
        assert sender == "sync@contoso.com"
        assert recipients == ["idteam@contoso.com", "oncall@contoso.com"]
        assert mail["Subject"] == "[tenant-sync] Job sync holds 16 deletions over its threshold"
        assert "tenant-sync allow-deletes sync" in mail.get_payload()

        cli.cli("allow-deletes", "sync")
        released = cli.run()
        assert released["counts"]["delete"] == 16

        assert events(http, "/hook?" + TOKEN) == ["staged_deletions", "recovered"]
        assert len(http.bodies(f"/teams/{TOKEN}")) == 1  # Teams only wants the two kinds
        assert mails(smtp) == ["staged_deletions", "recovered"]
        assert_no_secret(
            *cli.text,
            *(r.raw for r in http.requests),
            *(mail.as_string() for _, _, mail in smtp.messages),
        )


def test_a_quarantine_is_told_once_retried_after_a_500_and_its_end_told_once(
    sync_env: SyncEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sync_env
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    with (
        http_receiver() as http,
        smtp_receiver(tls_dir=tmp_path / "smtp", login=("sync", SMTP_PASSWORD)) as smtp,
    ):
        http.statuses = [500]  # the first request fails
        configure(
            env,
            [
                {"kind": "webhook", "url": f"{http.url}/hook/{TOKEN}"},
                {
                    "kind": "email",
                    "smtp_url": f"smtp+starttls://127.0.0.1:{smtp.port}",
                    "from": "sync@contoso.com",
                    "to": ["idteam@contoso.com"],
                    "user": "sync",
                    "password": "${SMTP_PASSWORD}",
                    "ca_bundle": str(smtp.ca_path),
                    "events": ["quarantine", "recovered"],
                },
            ],
        )
        cli = Transcript(env)
        assert cli.run()["status"] == "success"
        set_target_secret(env, "wrong-secret")

        started = datetime.now(UTC)
        failed = cli.run()
        ended = datetime.now(UTC)
        assert failed["status"] == "failed"
        assert failed["notifications"] == {"sent": 2, "retrying": 1, "dropped": 0}
        # cycle_failed got the 500 (it is first in the outbox); the quarantine went through.
        assert events(http, f"/hook/{TOKEN}") == ["cycle_failed", "quarantine"]
        quarantine = http.bodies(f"/hook/{TOKEN}")[1]
        assert quarantine["reason"] == "EncounteredQuarantineException"
        assert "invalid_client" in quarantine["error"]
        assert quarantine["nextAttemptAt"] is not None
        assert mails(smtp) == ["quarantine"]
        assert smtp.logins == ["sync"]  # over STARTTLS, with the password from the environment

        with runtime(env) as state:
            ((waiting, due),) = state.outbox().pending()
            assert (waiting.event.kind.value, waiting.attempts) == ("cycle_failed", 1)
            assert waiting.last_error.startswith("webhook#0 (127.0.0.1) answered HTTP 500")
            # Due 10 s after the failed attempt, made during that run.
            assert started + timedelta(seconds=10) <= due <= ended + timedelta(seconds=10)
            # Not before its back-off ...
            early = state.deliver_notifications(clock=lambda: due - timedelta(seconds=1))
            assert early.as_dict() == {"sent": 0, "retrying": 0, "dropped": 0}
            # ... then once.
            late = state.deliver_notifications(clock=lambda: due + timedelta(seconds=1))
            assert late.as_dict() == {"sent": 1, "retrying": 0, "dropped": 0}
            assert state.outbox().pending() == []
        first, _, again = http.bodies(f"/hook/{TOKEN}")
        assert again == first  # the same occurrence, sent again after the 500

        assert cli.run()["status"] == "failed"  # still failing: nothing new
        assert len(http.requests) == 3
        set_target_secret(env, TARGET.secret)
        assert cli.run()["status"] == "success"

        assert events(http, f"/hook/{TOKEN}") == [
            "cycle_failed",
            "quarantine",
            "cycle_failed",
            "recovered",
        ]
        assert mails(smtp) == ["quarantine", "recovered"]
        assert_no_secret(
            *cli.text,
            *(r.raw for r in http.requests),
            *(mail.as_string() for _, _, mail in smtp.messages),
        )


@pytest.mark.world(users=12, prior_b2b=False, job={"deletion_threshold": {"count": 2}})
def test_receivers_that_are_down_never_fail_a_cycle_and_get_it_later(sync_env: SyncEnv) -> None:
    env = sync_env
    hook_port, smtp_port = free_port(), free_port()  # nothing listens there yet
    configure(
        env,
        [
            {"kind": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook/{TOKEN}"},
            {
                "kind": "email",
                "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
                "from": "sync@contoso.com",
                "to": ["idteam@contoso.com"],
            },
        ],
    )
    cli = Transcript(env)
    cli.run("--full")
    for user in env.seed["tenants"][0]["users"][:4]:
        env.source().delete(f"/users/{user['id']}").raise_for_status()

    held = cli.run()

    assert held["status"] == "success"  # the cycle's own result, receivers or not
    assert held["counts"]["staged_delete"] == 4
    assert held["notifications"] == {"sent": 0, "retrying": 2, "dropped": 0}
    assert any("notification not delivered; will retry" in t for t in cli.text)
    with runtime(env) as state:
        pending = state.outbox().pending()
        assert sorted(d.notifier.split("-")[0] for d, _ in pending) == ["email#1", "webhook#0"]
        later = pending[-1][1] + timedelta(seconds=1)
        with http_receiver(port=hook_port) as http:
            report = state.deliver_notifications(clock=lambda: later)
            assert report.as_dict() == {"sent": 1, "retrying": 1, "dropped": 0}
            assert events(http, f"/hook/{TOKEN}") == ["staged_deletions"]
        # The mail server never comes back: a day later the delivery is given up, loudly.
        with structlog.testing.capture_logs() as logs:
            report = state.deliver_notifications(
                clock=lambda: later + timedelta(hours=24, seconds=1)
            )
        assert report.as_dict() == {"sent": 0, "retrying": 0, "dropped": 1}
        (gave_up,) = [line for line in logs if line["log_level"] == "error"]
        assert gave_up["event"] == "notification given up after 24 h of failed attempts"
        assert gave_up["notifier"] == f"email#1 (127.0.0.1:{smtp_port})"
        assert state.outbox().pending() == []
    assert_no_secret(*cli.text, *(str(line) for line in logs))


def test_validate_lists_the_notifiers_without_their_secrets(sync_env: SyncEnv) -> None:
    configure(
        sync_env,
        [
            {
                "kind": "teams",
                "url": f"https://contoso.webhook.office.com/webhookb2/{TOKEN}",
                "events": ["quarantine"],
            },
            {
                "kind": "email",
                "smtp_url": "smtps://relay.contoso.com",
                "from": "a@contoso.com",
                "to": ["b@contoso.com"],
                "jobs": ["sync"],
            },
        ],
    )
    result = sync_env.cli("validate")
    assert result.returncode == 0, result.stderr
    assert "notify teams#0 (contoso.webhook.office.com): quarantine" in result.stdout
    assert (
        "notify email#1 (relay.contoso.com:465): quarantine, staged_deletions, cycle_failed, recovered (jobs: sync)"
        in result.stdout
    )
    assert TOKEN not in result.stdout
    data = json.loads(sync_env.cli("validate", "--json").stdout)
    assert data["notifications"][0] == {
        "name": "teams#0 (contoso.webhook.office.com)",
        "events": ["quarantine"],
        "jobs": None,
    }
    bad = yaml.safe_load(sync_env.config.read_text())
    bad["notifications"][1]["events"] = ["quarantine", "exploded"]
    sync_env.config.write_text(yaml.safe_dump(bad))
    refused = sync_env.cli("validate")
    assert refused.returncode == 2
    assert "notifications[1].events[1]: unknown event 'exploded'" in refused.stderr
