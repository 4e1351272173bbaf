"""One object's outcome as plain data: the one shape of a provisioning-log row.

`outcome_record` is the only place an `ObjectOutcome` becomes a dict: the SQL ledger stores its
parts, `run --dry-run --json` lists a subset of it (`planned`), `provision --json` prints it, and
a page exported on another worker sends its outcomes back in it (`outcome_from_record` reads
them again). The keys are those of the provisioning log (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from worker.domain.model import Action, Change, ObjectOutcome, Status, Step


def outcome_record(o: ObjectOutcome) -> dict[str, Any]:
    return {
        "sourceId": o.source_id,
        "sourceIdentity": o.source_label,
        "sourceMail": o.source_mail or None,
        "targetId": o.target_id,
        "action": o.action.log_name,
        "status": o.status.value,
        "reason": o.reason,
        "errorCode": o.error_code,
        "errorMessage": o.error_message,
        "steps": step_records(o),
        "modifiedProperties": modified_record(o),
        "durationMs": o.duration_ms,
        "approved": o.approved,
        "simulated": o.simulated,
        "objectType": o.object_type,
    }


def step_records(o: ObjectOutcome) -> list[dict[str, Any]]:
    """The record's `steps`: what the SQL ledger stores of them without the whole record."""
    return [{"name": s.name, "status": s.status.value, "detail": s.detail} for s in o.steps]


def modified_record(o: ObjectOutcome) -> dict[str, dict[str, Any]]:
    """The record's `modifiedProperties`."""
    return {name: {"old": change.old, "new": change.new} for name, change in o.modified.items()}


def outcome_from_record(data: dict[str, Any]) -> ObjectOutcome:
    return ObjectOutcome(
        source_id=data["sourceId"],
        source_label=data["sourceIdentity"],
        source_mail=data["sourceMail"] or "",
        target_id=data["targetId"],
        action=Action.from_text(data["action"]),
        status=Status(data["status"]),
        reason=data["reason"],
        error_code=data["errorCode"],
        error_message=data["errorMessage"],
        steps=[Step(s["name"], Status(s["status"]), s["detail"]) for s in data["steps"]],
        modified={
            name: Change(change["old"], change["new"])
            for name, change in data["modifiedProperties"].items()
        },
        duration_ms=data["durationMs"],
        approved=data["approved"],
        simulated=data["simulated"],
        object_type=data.get("objectType", "User"),
    )


# `run --dry-run --json`'s `planned` rows (the README lists them): a subset of the record.
PLANNED_KEYS = (
    "sourceId",
    "sourceIdentity",
    "targetId",
    "action",
    "status",
    "reason",
    "errorCode",
    "modifiedProperties",
    "objectType",
)


def planned_row(o: ObjectOutcome) -> dict[str, Any]:
    record = outcome_record(o)
    row = {key: record[key] for key in PLANNED_KEYS}
    row["errorCode"] = row["errorCode"] or None
    return row
