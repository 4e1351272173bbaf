"""What the pages show of a job, computed from its status (`worker/service/status.py`) and its
config: state, last and next cycle, counts, quarantine, and the progress of a running cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.config import Job

from .formatting import moment

# A cycle's phases in the order it goes through them (worker/service/cycle.py).
PHASES = ("groups", "users", "pending", "escrow", "sweep", "deletions")
PHASE_TEXT = {
    "groups": "reading group memberships",
    "users": "syncing users",
    "pending": "syncing newly assigned users",
    "escrow": "retrying failed users",
    "sweep": "checking users gone from the source",
    "deletions": "deletions",
}
WRITE_KEYS = ("create", "update", "delete", "disable", "restore")
STATE_TEXT = {
    "Active": "active",
    "Paused": "paused",
    "Quarantine": "in quarantine",
    "NotRun": "not run yet",
}


def progress_view(status: dict[str, Any]) -> dict[str, Any] | None:
    """The progress bar of a running cycle, or None when none runs. JSON-ready: the overview's
    script gets the same dict from /console/progress.json.

    The status's live figures (`planned`: objects with a write decided, `exported`: carried out,
    `writes`: Graph write requests answered) move with every export round and $batch; without
    them (a cycle started by an older worker) the counts of the committed pages stand in."""
    progress = status.get("progress")
    if not status.get("running") or not progress:
        return None
    phase = str(progress.get("phase") or "")
    index = PHASES.index(phase) if phase in PHASES else 0
    counts = progress.get("counts") or {}
    read = _int(progress.get("usersRead"))
    live = progress.get("planned") is not None
    planned = _int(progress.get("planned")) if live else None
    exported = (
        _int(progress.get("exported")) if live else sum(_int(counts.get(key)) for key in WRITE_KEYS)
    )
    text = f"{PHASE_TEXT.get(phase, phase)} · {read:,} objects read · "
    text += f"{exported:,} of {planned:,} changes written" if live else f"{exported:,} written"
    if live:
        text += f" · {_int(progress.get('writes')):,} Graph writes"
    return {
        "run": progress.get("activityIdentifier"),
        "mode": progress.get("mode"),
        "phase": phase,
        "phaseIndex": index,
        "phases": list(PHASES),
        "usersRead": read,
        "planned": planned or None,
        "exported": exported,
        "graphWrites": _int(progress.get("writes")) if live else None,
        "failures": _int(counts.get("failure")),
        "timeBegan": progress.get("timeBegan"),
        "text": text,
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class NextCycle:
    text: str
    at: datetime | None = None


def next_cycle(job: Job, status: dict[str, Any], now: datetime | None = None) -> NextCycle:
    """When the schedule runs the job next, as far as this process can tell: beat sends a cycle
    every `schedule.interval`; a quarantined job waits for its next attempt."""
    now = now or datetime.now(UTC)
    if status.get("code") == "Paused":
        return NextCycle("none while paused")
    quarantine = status.get("quarantine") or {}
    if quarantine.get("nextAttempt"):
        at = moment(quarantine["nextAttempt"])
        return NextCycle("next attempt", at)
    interval = job.runtime.interval
    last = status.get("lastExecution") or {}
    began = moment(last.get("timeBegan"))
    if began is None:
        return NextCycle(f"every {_interval(interval.total_seconds())}, at the next beat")
    at = began + interval
    while at < now:
        at += interval
    return NextCycle(f"every {_interval(interval.total_seconds())}", at)


def _interval(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def job_view(job: Job, status: dict[str, Any]) -> dict[str, Any]:
    code = str(status.get("code", "NotRun"))
    return {
        "name": job.name,
        "source": job.source,
        "target": job.target,
        "deprovision": job.runtime.deprovision.value,
        "code": code,
        "state_text": STATE_TEXT.get(code, code),
        "running": bool(status.get("running")),
        "status": status,
        "last": status.get("lastExecution"),
        "next": next_cycle(job, status),
        "progress": progress_view(status),
        "quarantine": status.get("quarantine"),
    }
