"""The audit trail's vocabulary: who acted (an Entra user, a static token, the CLI's OS user),
through what (console, API, CLI), which operator action on which job, and how it ended.

One `AuditEntry` per operator action (docs/audit.md). `AuditEntry.as_row()` is the one JSON shape
of an entry, for `tenant-sync audit --json`, the API and the console alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from worker.domain.errors import SyncError


class ActorKind(StrEnum):
    USER = "user"  # a person signed in with Entra ID: the name is their UPN
    TOKEN = "token"  # automation with a static token: the name is the token's name in the config
    OS = "os"  # the CLI: the name is the operating-system user who ran it
    APP = "app"  # an application with an Entra ID app-only token: the name is app:<its app id>


class Via(StrEnum):
    CONSOLE = "console"
    API = "api"
    CLI = "cli"


class AuditAction(StrEnum):
    """The operator actions that are recorded (`start` is the API's: resume, then trigger)."""

    RUN = "run"
    TRIGGER = "trigger"
    PROVISION = "provision"
    PAUSE = "pause"
    RESUME = "resume"
    ALLOW_DELETES = "allow-deletes"
    RESTART = "restart"
    START = "start"
    ONBOARD = "onboard"  # the console wrote a pair's cross-tenant access settings


class AuditResult(StrEnum):
    SUCCESS = "success"  # the action was carried out
    FAILURE = "failure"  # it was attempted and failed (or raised)
    REFUSED = "refused"  # it was not attempted: the job was paused, a cycle was running, ...


@dataclass(frozen=True)
class Actor:
    """Who acted, and through which door."""

    name: str
    kind: ActorKind
    via: Via

    def __str__(self) -> str:
        return f"{self.name} ({self.kind.value} via {self.via.value})"


@dataclass(frozen=True)
class AuditEntry:
    """One operator action. `id` is given by the audit log when it is recorded (None before);
    ids grow with the order entries are recorded, so they page the trail newest first."""

    at: datetime  # UTC, when the result was known
    actor: Actor
    action: str  # an AuditAction value
    job: str | None
    result: AuditResult
    detail: Mapping[str, Any] = field(default_factory=dict)  # JSON-able: scope, mode, user id...
    message: str = ""  # why it failed or was refused; what a person should read
    id: int | None = None

    def as_row(self) -> dict[str, Any]:
        """The entry as JSON, flat so that tables and CSV take it as it is."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor.name,
            "actorKind": self.actor.kind.value,
            "via": self.actor.via.value,
            "action": self.action,
            "job": self.job,
            "result": self.result.value,
            "detail": dict(self.detail),
            "message": self.message,
        }


class AuditNotRecorded(SyncError):
    """The action is done (or failed on its own) but its audit entry could not be written."""
