"""How each kind of receiver lays a Message out: Teams' Adaptive Card, an e-mail.

Pure functions of the Message (the webhook's JSON is `Message.payload()`); unit-tested.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from worker.domain.notification_text import Message

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
COLOURS = {"attention": "Attention", "warning": "Warning", "good": "Good"}


def teams_card(message: Message) -> dict[str, Any]:
    """A Teams incoming-webhook message carrying one Adaptive Card."""
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": message.title,
                "size": "Medium",
                "weight": "Bolder",
                "color": COLOURS.get(message.severity, "Default"),
                "wrap": True,
            },
            {"type": "TextBlock", "text": message.summary, "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in message.facts],
            },
        ],
    }
    if message.links:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": label, "url": url} for label, url in message.links
        ]
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }


def message_id(delivery_key: str) -> str:
    """The same Message-ID for every attempt of one delivery, so a mail system can drop a copy."""
    digest = hashlib.sha256(delivery_key.encode()).hexdigest()[:32]
    return f"<{digest}@tenant-sync>"


def email_message(message: Message, *, sender: str, to: Sequence[str], key: str) -> EmailMessage:
    """A plain-text mail: the summary, the facts one per line, the links."""
    mail = EmailMessage()
    mail["Subject"] = f"[tenant-sync] {message.title}"
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = format_datetime(message.event.occurred_at)
    mail["Message-ID"] = message_id(key)
    mail["X-Tenant-Sync-Event"] = message.event.kind.value
    width = max(len(name) for name, _ in message.facts)
    lines = [message.summary, ""]
    lines += [f"{name + ':':<{width + 1}} {value}" for name, value in message.facts]
    if message.links:
        lines.append("")
        lines += [f"{label}: {url}" for label, url in message.links]
    lines += ["", "-- ", "tenant-sync notifications (the notifications: section of its config)"]
    mail.set_content("\n".join(lines) + "\n")
    return mail
