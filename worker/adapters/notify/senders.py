"""The Notifier port for each kind of receiver: a JSON webhook, a Teams channel, an SMTP relay.

Each translates its transport's failures into the domain's words: Transient (no answer, a 5xx,
429, a 4xx from a mail server) to be retried, BadRequest (a 4xx, a 5xx from a mail server) when
the receiver refuses the message for good. Errors never quote a webhook's URL (its path or query
is the credential) or a password.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from worker.adapters.notify.render import email_message, teams_card
from worker.domain.errors import BadRequest, Transient
from worker.domain.event_kinds import EventKind
from worker.domain.notification_text import Message

USER_AGENT = "tenant-sync-notifications"
RETRYABLE_HTTP = frozenset({408, 425, 429})


def fingerprint(*parts: object) -> str:
    """A short digest naming a notifier's configuration (not reversible to its URL)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Target:
    """Who a notifier is and what it wants: its position in the config and its filters."""

    kind: str
    index: int
    host: str  # for logs: the receiver's host, never its path or query
    events: frozenset[EventKind]
    jobs: frozenset[str] | None  # None: every job
    identity: str  # what names its configuration (hashed into the key)

    @property
    def key(self) -> str:
        return f"{self.kind}#{self.index}-{fingerprint(self.kind, self.identity)}"

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.index} ({self.host})"


class _Notifier:
    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def key(self) -> str:
        return self.target.key

    @property
    def label(self) -> str:
        return self.target.label

    def wants(self, kind: EventKind, job: str) -> bool:
        jobs = self.target.jobs
        return kind in self.target.events and (jobs is None or job in jobs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class WebhookNotifier(_Notifier):
    """POSTs the event as JSON (`Message.payload()`)."""

    def __init__(self, target: Target, url: str, *, ca_bundle: Path | None = None) -> None:
        super().__init__(target)
        self._url = url
        self._verify: bool | str = str(ca_bundle) if ca_bundle else True

    def body(self, message: Message) -> dict[str, Any]:
        return message.payload()

    def send(self, message: Message, *, timeout_s: float) -> None:
        try:
            response = httpx.post(
                self._url,
                json=self.body(message),
                headers={"User-Agent": USER_AGENT},
                timeout=timeout_s,
                verify=self._verify,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            # The exception's text may quote the URL: only its kind is told.
            raise Transient(f"no answer from {self.label} ({type(exc).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = response.text[:200].strip()
        text = f"{self.label} answered HTTP {status}" + (f": {detail}" if detail else "")
        if status >= 500 or status in RETRYABLE_HTTP:
            raise Transient(text, status=status)
        raise BadRequest(text, status=status)


class TeamsNotifier(WebhookNotifier):
    """POSTs an Adaptive Card to a Teams incoming webhook (or a Workflows webhook)."""

    def body(self, message: Message) -> dict[str, Any]:
        return teams_card(message)


class EmailNotifier(_Notifier):
    """Sends a plain-text mail through an SMTP relay: plain, STARTTLS or implicit TLS."""

    def __init__(
        self,
        target: Target,
        *,
        host: str,
        port: int,
        security: str,  # none | starttls | ssl
        sender: str,
        to: Sequence[str],
        user: str | None = None,
        password: str | None = None,
        ca_bundle: Path | None = None,
    ) -> None:
        super().__init__(target)
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self.to = list(to)
        self._user = user
        self._password = password
        self._ca_bundle = ca_bundle

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self._ca_bundle) if self._ca_bundle else None)

    def send(self, message: Message, *, timeout_s: float) -> None:
        mail = email_message(
            message, sender=self.sender, to=self.to, key=f"{message.event.id}@{self.key}"
        )
        try:
            smtp: smtplib.SMTP
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=timeout_s, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout_s)
            with smtp:
                smtp.ehlo()
                if self.security == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self._user:
                    smtp.login(self._user, self._password or "")
                smtp.send_message(mail, from_addr=self.sender, to_addrs=self.to)
        except smtplib.SMTPRecipientsRefused:
            raise BadRequest(f"{self.label} refused every recipient") from None
        except smtplib.SMTPResponseException as exc:
            text = f"{self.label} answered {exc.smtp_code}: {_text(exc.smtp_error)}"
            # 5xx is a permanent refusal in SMTP (RFC 5321); 4xx asks to try later.
            if exc.smtp_code >= 500:
                raise BadRequest(text, status=exc.smtp_code) from None
            raise Transient(text, status=exc.smtp_code) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Transient(f"no answer from {self.label} ({type(exc).__name__})") from None


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return " ".join(text.split())[:200]
