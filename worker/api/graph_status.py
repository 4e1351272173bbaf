"""A job as Graph's synchronizationJob, its status as synchronizationStatus.

Built from `worker.service.status.job_status` (what `tenant-sync status --json` prints): Graph's
properties with the CSDL's names and types, then tenant-sync's own properties that have no Graph
counterpart, under their `status --json` names. Two of ours would collide with Graph's and are
renamed on this side only: `progress` (Graph's is a list of synchronizationProgress; ours is
`cycleProgress`) and, in an execution, `counts` stays as it is beside Graph's count* properties.
"""

from __future__ import annotations

from typing import Any

from worker.config import Job
from worker.domain.model import COUNT_KEYS

from .odata import NEVER, graph_time, iso_duration

TEMPLATE_ID = "Azure2Azure"  # Entra's template for cross-tenant synchronization
# status --json keys that are Graph's (reshaped below); every other key is passed through.
_GRAPH_KEYS = {
    "code",
    "countSuccessiveCompleteFailures",
    "lastExecution",
    "lastSuccessfulExecution",
    "lastSuccessfulExecutionWithExports",
    "progress",
    "quarantine",
    "steadyStateFirstAchievedTime",
    "steadyStateLastAchievedTime",
}


def _error(error: dict[str, Any] | None, code: str) -> dict[str, Any] | None:
    if not error:
        return None
    return {"code": code, "message": error.get("message"), "tenantActionable": True}


def task_execution(execution: dict[str, Any] | None) -> dict[str, Any] | None:
    """One finished cycle as synchronizationTaskExecution (+ mode, trigger, counts)."""
    if execution is None:
        return None
    counts: dict[str, int] = execution.get("counts") or {}
    imported = sum(counts.get(key, 0) for key in COUNT_KEYS)
    failed = counts.get("failure", 0)
    exported = int(execution.get("countExported", 0))
    if execution.get("state") == "Failed":
        state = "Failed"
    elif failed:
        state = "EntryLevelErrors"
    else:
        state = "Succeeded"
    incremental = execution.get("mode") == "incremental"
    return {
        "activityIdentifier": execution.get("activityIdentifier"),
        "countEntitled": imported - counts.get("skip", 0),
        "countEntitledForProvisioning": imported - counts.get("skip", 0),
        "countEscrowed": failed,
        "countEscrowedRaw": failed,
        "countExported": exported,
        "countExports": exported + failed,
        "countImported": imported,
        "countImportedDeltas": imported if incremental else 0,
        "countImportedReferenceDeltas": 0,
        "error": _error(execution.get("error"), "CycleFailed"),
        "state": state,
        "timeBegan": graph_time(execution.get("timeBegan")),
        "timeEnded": graph_time(execution.get("timeEnded")) or NEVER,
        # tenant-sync's own
        "mode": execution.get("mode"),
        "trigger": execution.get("trigger"),
        "counts": counts,
    }


def _progress(progress: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A running cycle as Graph's synchronizationProgress: objects exported of those planned
    (live, each export round), else objects decided of users read (each committed page)."""
    if not progress:
        return []
    if progress.get("planned") is not None:
        completed, total = int(progress.get("exported") or 0), int(progress["planned"])
        units = "objects"
    else:
        counts: dict[str, int] = progress.get("counts") or {}
        completed = sum(counts.get(key, 0) for key in COUNT_KEYS)
        total, units = int(progress.get("usersRead") or 0), "users"
    observed = progress.get("updatedAt") or progress.get("timeBegan")
    return [
        {
            "completedUnits": completed,
            "totalUnits": total,
            "units": units,
            "progressObservationDateTime": graph_time(observed) or NEVER,
        }
    ]


def _quarantine(quarantine: dict[str, Any] | None) -> dict[str, Any] | None:
    if not quarantine:
        return None
    began = graph_time(quarantine.get("seriesBegan")) or NEVER
    return {
        "currentBegan": began,
        "nextAttempt": graph_time(quarantine.get("nextAttempt")) or NEVER,
        "reason": quarantine.get("reason"),
        "seriesBegan": began,
        "seriesCount": int(quarantine.get("seriesCount") or 0),
        "error": _error(quarantine.get("error"), quarantine.get("reason") or "Quarantine"),
    }


def _groups_count(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The provisioned groups (docs/groups.md), when the job has any."""
    provisioned = (status.get("groups") or {}).get("provisioned", 0)
    return [{"key": "Group", "value": provisioned}] if provisioned else []


def synchronization_status(status: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "code": status["code"],
        "countSuccessiveCompleteFailures": status["countSuccessiveCompleteFailures"],
        "escrowsPruned": False,
        "lastExecution": task_execution(status["lastExecution"]),
        "lastSuccessfulExecution": task_execution(status["lastSuccessfulExecution"]),
        "lastSuccessfulExecutionWithExports": task_execution(
            status.get("lastSuccessfulExecutionWithExports")
        ),
        "progress": _progress(status["progress"]),
        "quarantine": _quarantine(status["quarantine"]),
        "steadyStateFirstAchievedTime": graph_time(status["steadyStateFirstAchievedTime"]) or NEVER,
        "steadyStateLastAchievedTime": graph_time(status.get("steadyStateLastAchievedTime"))
        or NEVER,
        "synchronizedEntryCountByType": [
            {"key": "User", "value": status["linkedUsers"]},
            *_groups_count(status),
        ],
        "troubleshootingUrl": None,
    }
    for key, value in status.items():
        if key not in _GRAPH_KEYS:
            shaped[key] = value
    shaped["cycleProgress"] = status["progress"]
    return shaped


def synchronization_job(job: Job, status: dict[str, Any]) -> dict[str, Any]:
    rt = job.runtime
    settings = {
        "Source": job.source,
        "Target": job.target,
        "UserType": rt.user_type,
        "Deprovision": rt.deprovision.value,
        "SkipOutOfScopeDeletions": str(rt.skip_out_of_scope_deletions).lower(),
        "DeletionThresholdCount": "" if rt.deletion_count is None else str(rt.deletion_count),
        "DeletionThresholdPercent": "" if rt.deletion_percent is None else str(rt.deletion_percent),
        "FullEvery": iso_duration(rt.full_every) if rt.full_every else "",
    }
    return {
        "id": job.name,
        "templateId": TEMPLATE_ID,
        "schedule": {
            "expiration": None,
            "interval": iso_duration(rt.interval),
            "state": "Paused" if status["code"] == "Paused" else "Active",
        },
        "status": synchronization_status(status),
        "synchronizationJobSettings": [
            {"name": name, "value": value} for name, value in settings.items()
        ],
    }
