"""A job's status, shaped like Graph's synchronizationStatus."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.domain.health import EXPORT_KEYS, DeletionThreshold, JobState
from worker.service.admin import held_deletions
from worker.service.held import held_count

if TYPE_CHECKING:
    # Annotations only: `status` loads this module without the ports' dataclasses.
    from worker.ports import Cursor, LedgerReads, RunRecord


def _execution(run: RunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    counts = run.counts or {}
    exported = sum(
        counts.get(key, 0) for key in ("create", "update", "delete", "disable", "restore")
    )
    return {
        "activityIdentifier": run.run_id,
        "mode": run.mode,
        "trigger": run.trigger,
        "state": {"success": "Succeeded", "failed": "Failed"}.get(run.status, "Running"),
        "timeBegan": run.started_at.isoformat(),
        "timeEnded": run.finished_at.isoformat() if run.finished_at else None,
        "countExported": exported,
        "countFailed": counts.get("failure", 0),
        "countSkipped": counts.get("skip", 0),
        "counts": counts,
        "error": {"message": run.error} if run.error else None,
    }


def _quarantine(state: JobState) -> dict[str, Any] | None:
    if not state.in_quarantine:
        return None
    return {
        "reason": state.quarantine_reason,
        "seriesBegan": state.quarantine_since.isoformat() if state.quarantine_since else None,
        "seriesCount": state.failures,
        "nextAttempt": state.next_attempt_at.isoformat() if state.next_attempt_at else None,
        "error": {"message": state.quarantine_error} if state.quarantine_error else None,
    }


def deletion_window(
    job: str, ledger: LedgerReads, state: JobState, threshold: DeletionThreshold, now: datetime
) -> dict[str, Any]:
    """Where the job stands against its deletion threshold: what it made within the window and
    what is staged, judged as the next cycle would judge them with nothing new to delete."""
    start = threshold.window_start(now, state.deletions_approved_at)
    # Held group deletions count with the users' (docs/groups.md), as the cycle counts them.
    held = held_count(ledger, job)
    linked = ledger.link_count(job)
    if held.groups:
        linked += len(ledger.group_links(job))
    verdict = threshold.judge(
        pending=held.counted,
        linked=linked,
        done=ledger.deletions_since(job, start),
        window_start=start,
    )
    return {
        "count": threshold.count,
        "percent": threshold.percent,
        "windowSeconds": int(threshold.window.total_seconds()),
        "windowStart": start.isoformat(),
        "approvedAt": state.deletions_approved_at.isoformat()
        if state.deletions_approved_at
        else None,
        "deletionsInWindow": verdict.carried_out,
        "staged": held.counted,
        "stagedGroups": held.groups,
        "approvedToRetry": held.approved,
        "counted": verdict.counted,
        "linkedAtWindowStart": verdict.base,
        "exceeded": verdict.exceeded,
    }


def _groups(job: str, ledger: LedgerReads) -> dict[str, Any]:
    """Provisioned groups (docs/groups.md): how many, and those skipped with the reason."""
    return {
        "provisioned": len(ledger.group_links(job)),
        "skipped": [
            {"sourceId": s.source_id, "displayName": s.label, "reason": s.reason}
            for s in ledger.group_skips(job)
            if not s.held
        ],
    }


def job_status(
    job: str,
    ledger: LedgerReads,
    cursor: Cursor,
    *,
    running: bool,
    live: dict[str, Any] | None = None,
    threshold: DeletionThreshold | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The job's status; `live` is its running cycle's live progress, when there is one.

    With the job's `threshold`, `deletionThreshold` tells where it stands in its deletion window.
    """
    runs = [
        r for r in ledger.recent_runs(job, limit=200) if not r.dry_run and r.mode != "on_demand"
    ]
    state = ledger.job_state(job)
    finished = [r for r in runs if r.status != "running"]
    last = finished[0] if finished else None
    last_success = next((r for r in finished if r.status == "success"), None)
    failures = 0
    for run in finished:
        if run.status != "failed":
            break
        failures += 1
    steady = next((r for r in reversed(finished) if r.status == "success"), None)
    with_exports = next(
        (
            r
            for r in finished
            if r.status == "success" and any(r.counts.get(key, 0) for key in EXPORT_KEYS)
        ),
        None,
    )
    progress = None
    if cursor.progress is not None:
        p = cursor.progress
        progress = {
            "activityIdentifier": p.run_id,
            "mode": p.mode,
            "phase": p.phase,
            "running": running,
            "usersRead": p.seen_users,
            "counts": p.counts,
            "timeBegan": p.started_at,
        }
    if live is not None and (
        progress is None or live.get("runId") == progress["activityIdentifier"]
    ):
        # Counted as the work happens (pages read, export rounds, $batch answers), so it moves
        # before a page is committed.
        progress = {
            **(progress or {}),
            "activityIdentifier": live.get("runId"),
            "mode": live.get("mode"),
            "phase": live.get("phase"),
            "running": running,
            "usersRead": max(live["read"], progress["usersRead"] if progress else 0),
            "planned": live["planned"],
            "exported": live["exported"],
            "writes": live["writes"],
            "timeBegan": (progress or {}).get("timeBegan") or live.get("startedAt"),
            "updatedAt": live.get("updatedAt"),
        }
    if state.paused:
        code = "Paused"
    elif state.in_quarantine:
        code = "Quarantine"
    else:
        code = "Active" if runs or running else "NotRun"
    return {
        "job": job,
        "code": code,
        "running": running,
        "lastExecution": _execution(last),
        "lastSuccessfulExecution": _execution(last_success),
        "countSuccessiveCompleteFailures": failures,
        "lastSuccessfulExecutionWithExports": _execution(with_exports),
        "steadyStateFirstAchievedTime": steady.finished_at.isoformat()
        if steady and steady.finished_at
        else None,
        "steadyStateLastAchievedTime": last_success.finished_at.isoformat()
        if last_success and last_success.finished_at
        else None,
        "progress": progress,
        "watermark": {
            "completedAt": cursor.watermark.completed_at,
            "lastFullAt": cursor.watermark.last_full_at,
        }
        if cursor.watermark
        else None,
        "linkedUsers": ledger.link_count(job),
        "groups": _groups(job, ledger),
        "quarantine": _quarantine(state),
        "escrows": ledger.escrow_count(job),
        "stagedDeletes": held_deletions(ledger, job),  # users' and groups'
        "allowDeletes": state.allow_deletes,
        "deletionThreshold": deletion_window(
            job, ledger, state, threshold, now or datetime.now(UTC)
        )
        if threshold is not None
        else None,
    }


def with_pair(status: dict[str, Any], source: str, target: str, origin: str) -> dict[str, Any]:
    """The status with the keys `status` groups by: the job's source and target tenants, and
    where the job was written (`jobs`, or `organization` when an organisation made it)."""
    return status | {"source": source, "target": target, "origin": origin}


def grouped_by_pair(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statuses carrying `with_pair`'s keys, ordered by source tenant, then target, then job:
    each source's jobs together (docs/organizations.md)."""
    return sorted(statuses, key=lambda s: (s["source"], s["target"], s["job"]))
