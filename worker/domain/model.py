"""Value objects of a sync: source users, links, actions and the records a cycle keeps."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

MANAGER: Final = "manager"  # the key in a source user's attributes and in a link's attributes
EXTERNAL_UPN_MARKER = "#EXT#"


class Mode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class LinkState(StrEnum):
    ACTIVE = "active"
    SOFT_DELETED = "soft_deleted"
    DISABLED = "disabled"


class Action(StrEnum):
    """What a cycle did to one object; the names of `run --json` counts and of the log."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    DISABLE = "disable"
    RESTORE = "restore"
    STAGED_DELETE = "staged_delete"
    SKIP = "skip"
    OTHER = "other"

    @property
    def log_name(self) -> str:
        """The action as the provisioning log spells it: Entra's `stagedDelete`, else the value."""
        return "stagedDelete" if self is Action.STAGED_DELETE else self.value

    @classmethod
    def from_text(cls, text: str) -> Action:
        """An action as a user may type it: `stagedDelete`, `StagedDelete`, `staged_delete`,
        `staged-delete`; ValueError names the choices."""
        key = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text.strip()).replace("-", "_").lower()
        try:
            return cls(key)
        except ValueError:
            choices = ", ".join(action.log_name for action in cls)
            raise ValueError(f"unknown action {text!r} (one of: {choices})") from None


class Status(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
    WARNING = "warning"

    @classmethod
    def from_text(cls, text: str) -> Status:
        """A status as a user may type it (any case; `skip` for skipped)."""
        key = text.strip().lower()
        try:
            return cls("skipped" if key == "skip" else key)
        except ValueError:
            choices = ", ".join(status.value for status in cls)
            raise ValueError(f"unknown status {text!r} (one of: {choices})") from None


COUNT_KEYS = (
    "create",
    "update",
    "delete",
    "disable",
    "restore",
    "staged_delete",
    "skip",
    "failure",
)


@dataclass(frozen=True)
class SourceUser:
    """A user as read from the source tenant: its id and the selected attributes."""

    id: str
    attributes: Mapping[str, Any]

    def get(self, name: str) -> Any:
        return self.attributes.get(name)

    @property
    def user_principal_name(self) -> str | None:
        value = self.attributes.get("userPrincipalName")
        return value if isinstance(value, str) and value else None

    @property
    def mail(self) -> str | None:
        value = self.attributes.get("mail")
        return value if isinstance(value, str) and value else None

    @property
    def invitation_address(self) -> str | None:
        """Where the B2B invitation goes: `mail`, or `userPrincipalName` when mail is empty."""
        return self.mail or self.user_principal_name

    @property
    def is_internal_member(self) -> bool:
        """Only the source's own members are synced: never its guests or B2B users, whatever
        their userType (a user synced into this tenant from another is a B2B *member*, so it
        is told apart by its invitation too: it is never synced onward to a third tenant)."""
        user_type = self.attributes.get("userType")
        if isinstance(user_type, str) and user_type.lower() == "guest":
            return False
        if self.attributes.get("creationType") == "Invitation":
            return False
        if self.attributes.get("externalUserState"):
            return False  # PendingAcceptance or Accepted: someone invited from elsewhere
        upn = self.user_principal_name or ""
        return EXTERNAL_UPN_MARKER.lower() not in upn.lower()

    @property
    def label(self) -> str:
        return self.user_principal_name or self.mail or self.id


@dataclass(frozen=True)
class SourceRemoval:
    """The source says this user is gone: soft-deleted (`changed`) or hard-deleted (`deleted`)."""

    id: str
    reason: str = "deleted"

    @property
    def description(self) -> str:
        if self.reason == "changed":
            return "source user deleted (in the source's recycle bin)"
        return "source user deleted permanently"


SourceItem = SourceUser | SourceRemoval


@dataclass(frozen=True)
class TargetUser:
    """A user of the target tenant, as much of it as was read."""

    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Link:
    """The shadow of one synced user: source id to target id, and what was last written."""

    job: str
    source_id: str
    target_id: str
    state: LinkState = LinkState.ACTIVE
    attributes: dict[str, Any] = field(default_factory=dict)
    last_seen_run: str | None = None
    source_label: str = ""  # UPN or mail as last read, to name users that are gone
    source_mail: str = ""  # and the mail, to find them by it

    @property
    def attributes_hash(self) -> str:
        return attributes_hash(self.attributes)


def attributes_hash(attributes: Mapping[str, Any]) -> str:
    canonical = json.dumps(attributes, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    """One attribute's move: what was last written and what is written now."""

    old: Any
    new: Any


@dataclass
class Step:
    """One step of an object's processing, as Entra's provisioning logs show it."""

    name: str  # import | scoping | matching | processing | export
    status: Status
    detail: str = ""


@dataclass
class ObjectOutcome:
    """What happened to one source object in one cycle: the provisioning log's row."""

    source_id: str
    action: Action
    status: Status
    source_label: str = ""
    source_mail: str = ""
    target_id: str | None = None
    reason: str = ""
    error_code: str = ""
    error_message: str = ""
    steps: list[Step] = field(default_factory=list)
    modified: dict[str, Change] = field(default_factory=dict)
    duration_ms: int = 0
    # A deprovisioning an operator allowed over the deletion threshold: it does not count
    # against the threshold's window (docs/safety.md).
    approved: bool = False
    # Planned, not done: the target answered its writes without making them (a dry run).
    simulated: bool = False
    # What the row is about: `User`, or `Group` for a provisioned group (docs/groups.md).
    object_type: str = "User"

    @property
    def count_key(self) -> str:
        return count_keys(self.action, self.status)[0]


def count_keys(action: Action, status: Status) -> tuple[str, ...]:
    """The counts an outcome adds to: its `run --json` count, and for a failure also
    `failure.<action>` (which action failed, for the metrics; the summary shows the total)."""
    if status is Status.FAILURE:
        return ("failure", f"failure.{action.value}")
    if status is Status.SKIPPED:
        return ("skip",)
    return (action.value,)


def add_counts(counts: dict[str, int], action: Action, status: Status, n: int = 1) -> None:
    for key in count_keys(action, status):
        counts[key] = counts.get(key, 0) + n


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNT_KEYS, 0)
