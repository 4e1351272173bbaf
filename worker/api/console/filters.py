"""The provisioning-log filters of the console: from a query string to the ledger's arguments.

The same choices as `tenant-sync logs`: user (source or target id, UPN or mail), action (Entra's
names, `stagedDelete`), status, cycle (its GUID), and a time range. A time is ISO 8601 (what a
browser's date-time field sends, read as UTC unless it names a zone) or a duration ago (`2h`).
Anything else is refused with a sentence naming the filter, and no row is shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from worker.config import GUID_RE, parse_duration
from worker.domain.model import Action, Status

ACTIONS = tuple(action.log_name for action in Action)
STATUSES = tuple(status.value for status in Status)


@dataclass(frozen=True)
class LogFilters:
    user: str = ""
    action: str = ""
    status: str = ""
    cycle: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def from_query(cls, params: Any) -> LogFilters:
        return cls(**{name: str(params.get(name, "") or "").strip() for name in cls.fields()})

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("user", "action", "status", "cycle", "since", "until")

    @property
    def active(self) -> bool:
        return any(asdict(self).values())

    def query(self, **extra: Any) -> str:
        """The query string of these filters (and `extra`), empty values left out."""
        values = {**asdict(self), **extra}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def ledger_arguments(self, now: datetime | None = None) -> dict[str, Any]:
        """Keyword arguments for `SqlLedger.logs`; ValueError names what is wrong."""
        arguments: dict[str, Any] = {}
        if self.user:
            arguments["user"] = self.user
        if self.action:
            try:
                arguments["action"] = Action.from_text(self.action).value
            except ValueError as exc:
                raise ValueError(f"action: {exc}") from None
        if self.status:
            try:
                arguments["status"] = Status.from_text(self.status).value
            except ValueError as exc:
                raise ValueError(f"status: {exc}") from None
        if self.cycle:
            if not GUID_RE.match(self.cycle):
                raise ValueError(
                    f"cycle: must be a cycle id (a GUID, as the job page lists them), "
                    f"not {self.cycle!r}"
                )
            arguments["run_id"] = self.cycle.lower()
        for name, key in (("since", "since"), ("until", "until")):
            value = getattr(self, name)
            if value:
                arguments[key] = moment(value, name, now)
        if (
            "since" in arguments
            and "until" in arguments
            and arguments["since"] >= arguments["until"]
        ):
            raise ValueError("since: must be before until")
        return arguments


def moment(value: str, name: str, now: datetime | None = None) -> datetime:
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - parse_duration(value)
        except ValueError:
            raise ValueError(
                f"{name}: must be a time (ISO 8601, UTC unless it says otherwise) or a duration "
                f"ago such as 2h or 7d, not {value!r}"
            ) from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)
