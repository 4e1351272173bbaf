"""Provisioning-log rows in Graph's shapes: provisioningObjectSummary, and the steps of
provisionOnDemand.

Graph's names are kept as the CSDL spells them. tenant-sync's finer actions map onto Graph's
`provisioningAction` (restore → update, skip → other) and stay visible as the extra property
`action`; the step names follow Entra's (EntryImport, EntrySynchronizationScoping, EntryExportAdd
...), typed with Graph's `provisioningStepType`. docs/operator-service.md has the whole table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from worker.config import Config
from worker.domain.model import Action

from .odata import graph_time, parse_datetime

# tenant-sync action -> Graph provisioningAction
GRAPH_ACTIONS = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.RESTORE: "update",
    Action.DELETE: "delete",
    Action.DISABLE: "disable",
    Action.STAGED_DELETE: "stagedDelete",
    Action.SKIP: "other",
    Action.OTHER: "other",
}
_REASON_CODE = re.compile(r"^([A-Z][A-Za-z]+)(?::|$)")
_REASON_TEXT = {
    "RedundantExport": "The user in the source and the target already match: nothing to write."
}
PROVISIONING_ACTIONS = ("other", "create", "delete", "disable", "update", "stagedDelete")
PROVISIONING_RESULTS = ("success", "failure", "skipped", "warning")
STEP_TYPES = ("import", "scoping", "matching", "processing", "referenceResolution", "export")

_SYNC_VERB = {
    Action.CREATE: "Add",
    Action.UPDATE: "Update",
    Action.RESTORE: "Update",
    Action.DELETE: "Delete",
    Action.DISABLE: "Update",
    Action.STAGED_DELETE: "Delete",
    Action.SKIP: "Skip",
    Action.OTHER: "Skip",
}
_EXPORT_NAME = {
    Action.CREATE: "EntryExportAdd",
    Action.UPDATE: "EntryExportUpdate",
    Action.RESTORE: "EntryExportUpdate",
    Action.DELETE: "EntryExportDelete",
    Action.DISABLE: "EntryExportUpdateSoftDelete",
    Action.STAGED_DELETE: "EntryExportDelete",
    Action.SKIP: "EntrySynchronizationSkip",
    Action.OTHER: "EntryExport",
}


def actions_for(graph_action: str) -> list[str]:
    """The tenant-sync actions (as stored) that Graph's `provisioningAction` value covers."""
    return [a.value for a, g in GRAPH_ACTIONS.items() if g == graph_action]


def step_name(step: str, action: Action) -> str:
    if step == "import":
        return "EntryImport"
    if step == "scoping":
        return "EntrySynchronizationScoping"
    if step == "matching":
        return "EntryMatching"
    if step == "processing":
        return f"EntrySynchronization{_SYNC_VERB[action]}"
    if step == "export":
        return _EXPORT_NAME[action]
    return f"Entry{step[:1].upper()}{step[1:]}"


def step_names(steps: list[dict[str, Any]], action: Action) -> list[str]:
    """Each step's Entra name; a create's export after its invitation is the attributes' update."""
    names: list[str] = []
    exported = False
    for step in steps:
        if step["name"] == "export" and action is Action.CREATE and exported:
            names.append("EntryExportUpdate")
            continue
        exported = exported or step["name"] == "export"
        names.append(step_name(step["name"], action))
    return names


def _text(value: Any) -> str | None:
    """Graph's modifiedProperty values are strings: JSON for anything else."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def modified_properties(modified: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "displayName": name,
            "oldValue": _text(change.get("old")),
            "newValue": _text(change.get("new")),
        }
        for name, change in modified.items()
    ]


@dataclass(frozen=True)
class System:
    id: str | None
    name: str


@dataclass(frozen=True)
class JobSystems:
    """Where a job's rows come from and go to, for the identities of its log rows."""

    source: System
    target: System


def job_systems(config: Config, job: str) -> JobSystems:
    """The job's tenants; a job no longer in the config (old rows) has unknown ones."""
    found = config.jobs.get(job)
    if found is None:
        return JobSystems(System(None, "unknown"), System(None, "unknown"))
    source, target = config.tenants[found.source], config.tenants[found.target]
    return JobSystems(
        System(source.tenant_id, found.source), System(target.tenant_id, found.target)
    )


def _system(system: System) -> dict[str, Any]:
    return {"id": system.id, "displayName": system.name, "details": {}}


def summary(row: dict[str, Any], systems: JobSystems) -> dict[str, Any]:
    """One provisioning-log row as Graph's provisioningObjectSummary (plus `action`, `reason`)."""
    action = Action.from_text(row["action"])
    status = row["status"]
    error = None
    if status != "success" and (row["errorCode"] or row["errorMessage"] or row["reason"]):
        error = {
            "errorCode": row["errorCode"] or reason_code(row["reason"]),
            "reason": row["errorMessage"] or row["reason"] or None,
            "additionalDetails": row["reason"]
            if row["errorMessage"] and row["reason"] and row["reason"] not in row["errorMessage"]
            else None,
            "errorCategory": "failure" if status == "failure" else None,
            "recommendedAction": None,
        }
    return {
        "id": row["changeId"],
        "activityDateTime": graph_time(row["activityDateTime"]),
        "changeId": row["changeId"],
        "cycleId": row["cycleId"],
        "jobId": row["jobId"],
        "tenantId": systems.target.id,
        "durationInMilliseconds": row["durationMs"],
        "provisioningAction": GRAPH_ACTIONS[action],
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "provisioningSteps": [
            {
                "name": name,
                "provisioningStepType": step["name"] if step["name"] in STEP_TYPES else None,
                "status": step["status"],
                "description": step.get("detail", ""),
                "details": {},
            }
            for name, step in zip(step_names(row["steps"], action), row["steps"], strict=True)
        ],
        "modifiedProperties": modified_properties(row["modifiedProperties"]),
        "servicePrincipal": {"id": row["jobId"], "displayName": row["jobId"]},
        "initiatedBy": {"id": "", "displayName": "tenant-sync", "initiatorType": "system"},
        "sourceIdentity": {
            "id": row["sourceId"],
            "displayName": row["sourceIdentity"] or None,
            "identityType": row.get("objectType", "User"),
            "details": {"mail": row["sourceMail"]} if row["sourceMail"] else {},
        },
        "targetIdentity": {
            "id": row["targetId"] or "",
            "displayName": None,
            "identityType": row.get("objectType", "User"),
            "details": {},
        },
        "sourceSystem": _system(systems.source),
        "targetSystem": _system(systems.target),
        # tenant-sync's own words, beside Graph's
        "action": action.log_name,
        "reason": row["reason"] or None,
    }


def reason_code(reason: str) -> str | None:
    """The code a skip reason starts with (`RedundantExport`, `NotInScope: ...`), if any."""
    match = _REASON_CODE.match(reason or "")
    return match.group(1) if match else None


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def on_demand_result(row: dict[str, Any], systems: JobSystems) -> dict[str, str]:
    """provisionOnDemand's stringKeyStringValuePair: `key` holds the result, `value` the steps,
    both as JSON text, the way Entra answers."""
    action = Action.from_text(row["action"])
    ended = parse_datetime(row["activityDateTime"])
    began = ended - timedelta(milliseconds=row["durationMs"] or 0)
    status = _capital(row["status"])
    error_code = row["errorCode"] or reason_code(row["reason"])
    message = row["errorMessage"] or _REASON_TEXT.get(row["reason"]) or row["reason"] or None
    key = {
        "result": status,
        "details": {"errorCode": error_code, "errorMessage": message},
    }
    value = {
        "action": _capital(GRAPH_ACTIONS[action]),
        "changeId": row["changeId"],
        "cycleId": row["cycleId"],
        "startTime": graph_time(began),
        "endTime": graph_time(ended),
        "modifiedProperties": modified_properties(row["modifiedProperties"]),
        "provisioningSteps": [
            {
                "name": name,
                "type": _capital(step["name"]),
                "status": _capital(step["status"]),
                "description": step.get("detail", ""),
                "timestamp": graph_time(ended),
                "details": {},
            }
            for name, step in zip(step_names(row["steps"], action), row["steps"], strict=True)
        ],
        "reportableIdentifier": row["sourceIdentity"] or row["sourceId"],
        "statusInfo": {
            "status": status,
            "errorCode": error_code,
            "reason": message,
            "additionalDetails": None,
            "errorCategory": "failure" if row["status"] == "failure" else None,
            "recommendedAction": None,
        },
        "sourceIdentity": {
            "id": row["sourceId"],
            "type": "User",
            "displayName": row["sourceIdentity"] or None,
            "details": None,
        },
        "sourceSystem": {"id": systems.source.id, "name": systems.source.name, "details": None},
        "targetIdentity": {
            "id": row["targetId"],
            "type": "User",
            "displayName": None,
            "details": None,
        },
        "targetSystem": {"id": systems.target.id, "name": systems.target.name, "details": None},
        # tenant-sync's own action name, beside Graph's
        "tenantSyncAction": action.log_name,
    }
    return {
        "key": json.dumps(key, ensure_ascii=False),
        "value": json.dumps(value, ensure_ascii=False),
    }
