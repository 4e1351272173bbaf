"""tenant-sync's own API beyond Graph's shape, under `/api/` (JSON; OpenAPI at /api/openapi.json).

Jobs at a glance, cycle history, held deletions with who they would delete, live progress, and
the operator actions Graph has no verb for (trigger full/incremental, resume, allow-deletes).
Reads need TenantSync.Read, actions TenantSync.Operate; errors are Graph-style OData errors.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from worker.ports import RunRecord
from worker.service.admin import held_deletions

from .app import Operator, Reader, services
from .auth import Principal
from .operations import Operations

router = APIRouter(prefix="/api", tags=["tenant-sync extensions"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token (OData error)"},
    403: {"description": "The token lacks the role (OData error)"},
    404: {"description": "No such job (OData error)"},
}


class Open(BaseModel):
    # Passed through as the service builds it: fields added later are not cut off.
    model_config = ConfigDict(extra="allow")


class Execution(Open):
    activityIdentifier: str
    mode: str
    trigger: str
    state: str = Field(description="Succeeded | Failed")
    timeBegan: str
    timeEnded: str | None
    countExported: int
    countFailed: int
    countSkipped: int
    counts: dict[str, int]
    error: dict[str, Any] | None


class CycleProgress(Open):
    activityIdentifier: str | None
    mode: str | None
    phase: str | None = Field(description="groups | users | pending | sweep")
    running: bool
    usersRead: int = Field(0, description="Source users read so far")
    planned: int | None = Field(None, description="Objects planned for export (live)")
    exported: int | None = Field(None, description="Objects exported so far (live)")
    writes: int | None = Field(None, description="Graph writes answered so far (live)")
    counts: dict[str, int] | None = Field(None, description="What the committed pages did")
    timeBegan: str | None = None
    updatedAt: str | None = None


class Quarantine(Open):
    reason: str | None = Field(description="Graph's quarantineReason, e.g. TooManyDeletes")
    seriesBegan: str | None
    seriesCount: int
    nextAttempt: str | None
    error: dict[str, Any] | None


class JobOverview(Open):
    job: str
    source: str
    target: str
    state: str = Field(description="NotRun | Active | Paused | Quarantine")
    running: bool
    interval: str
    lastCycle: Execution | None
    nextCycle: str | None = Field(
        description="When the next cycle is expected: the quarantine's next attempt, else the "
        "last cycle's start plus the interval; null while paused or before the first cycle"
    )
    counts: dict[str, int]
    quarantine: Quarantine | None
    progress: CycleProgress | None
    linkedUsers: int
    escrows: int
    stagedDeletes: int
    allowDeletes: bool


class Run(BaseModel):
    runId: str
    mode: str = Field(description="full | incremental | on_demand (a dry run says so in dryRun)")
    trigger: str
    dryRun: bool
    status: str = Field(description="running | success | failed")
    startedAt: str
    finishedAt: str | None
    durationS: float | None
    counts: dict[str, int]
    error: str | None


class StagedDeletion(BaseModel):
    objectType: str = Field(description="User | Group (a group tenant-sync provisioned)")
    sourceId: str
    sourceIdentity: str | None = Field(
        description="The user's UPN (or mail), the group's displayName, as last read"
    )
    sourceMail: str | None
    targetId: str | None = Field(description="The target user or group that would be deleted")
    sourceDeleted: bool = Field(description="Gone from the source (else it left the scope)")
    reason: str


class Staged(BaseModel):
    job: str
    count: int
    threshold: dict[str, float | int | None]
    allowDeletes: bool = Field(description="The next cycle makes them (allow-deletes was given)")
    deprovision: str = Field(description="soft_delete | disable: what a deletion does")
    deletions: list[StagedDeletion]


class Progress(BaseModel):
    job: str
    running: bool
    progress: CycleProgress | None


class TriggerRequest(BaseModel):
    full: bool = Field(default=False, description="A full cycle (else incremental when it can)")


class Triggered(BaseModel):
    job: str
    taskId: str
    mode: str = Field(description="full | auto")


class JobState(BaseModel):
    job: str
    paused: bool
    allowDeletes: bool
    stagedDeletes: int


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: Principal = Reader) -> JSONResponse:
    """The OpenAPI document of the whole service (Graph-shaped routes and extensions)."""
    return JSONResponse(request.app.openapi())


def _ops(request: Request) -> Operations:
    return services(request).operations


def _run(run: RunRecord) -> Run:
    duration = (
        (run.finished_at - run.started_at).total_seconds() if run.finished_at is not None else None
    )
    return Run(
        runId=run.run_id,
        mode=run.mode,
        trigger=run.trigger,
        dryRun=run.dry_run,
        status=run.status,
        startedAt=run.started_at.isoformat(),
        finishedAt=run.finished_at.isoformat() if run.finished_at else None,
        durationS=round(duration, 3) if duration is not None else None,
        counts=run.counts,
        error=run.error or None,
    )


def _state(ops: Operations, name: str) -> JobState:
    state = ops.runtime.ledger.job_state(name)
    return JobState(
        job=name,
        paused=state.paused,
        allowDeletes=state.allow_deletes,
        stagedDeletes=held_deletions(ops.runtime.ledger, name),
    )


@router.get("/jobs", response_model=list[JobOverview], responses=_ERRORS)
def jobs(request: Request, who: Principal = Reader) -> list[dict[str, Any]]:
    """Every job: state, last and next cycle, counts, quarantine and a running cycle's progress."""
    ops = _ops(request)
    return [ops.overview(name) for name in ops.job_names()]


@router.get("/jobs/{job}", response_model=JobOverview, responses=_ERRORS)
def job(job: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    """One job at a glance."""
    return _ops(request).overview(job)


@router.get("/jobs/{job}/runs", response_model=list[Run], responses=_ERRORS)
def runs(
    job: str,
    request: Request,
    limit: int = Query(20, ge=1, le=500, description="How many cycles, newest first"),
    who: Principal = Reader,
) -> list[Run]:
    """Cycle history, newest first (incremental, full, dry runs and on-demand provisioning)."""
    return [_run(r) for r in _ops(request).runs(job, limit)]


@router.get("/jobs/{job}/staged", response_model=Staged, responses=_ERRORS)
def staged(job: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    """Deletions held over the threshold, and the target user each would delete."""
    return _ops(request).staged(job)


@router.get("/jobs/{job}/progress", response_model=Progress, responses=_ERRORS)
def progress(job: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    """The running cycle's progress (null when none runs or waits to resume)."""
    status = _ops(request).status(job)
    return {"job": job, "running": status["running"], "progress": status["progress"]}


@router.post(
    "/jobs/{job}/trigger",
    response_model=Triggered,
    status_code=202,
    responses={**_ERRORS, 409: {"description": "Paused, running, or already queued"}},
)
def trigger(
    job: str,
    request: Request,
    body: TriggerRequest | None = Body(default=None),
    who: Principal = Operator,
) -> Triggered:
    """Queue a cycle for the Celery workers, like `tenant-sync trigger`; returns the task id."""
    full = bool(body and body.full)
    task_id = _ops(request).trigger(job, full=full, who=who)
    return Triggered(job=job, taskId=task_id, mode="full" if full else "auto")


@router.post("/jobs/{job}/pause", response_model=JobState, responses=_ERRORS)
def pause(job: str, request: Request, who: Principal = Operator) -> JobState:
    """Stop the job's cycles, keeping all state (provisioning on demand still works)."""
    ops = _ops(request)
    ops.pause(job, who)
    return _state(ops, job)


@router.post("/jobs/{job}/resume", response_model=JobState, responses=_ERRORS)
def resume(job: str, request: Request, who: Principal = Operator) -> JobState:
    """Let the job's cycles run again (no cycle is queued: see trigger, or Graph's start)."""
    ops = _ops(request)
    ops.resume(job, who)
    return _state(ops, job)


@router.post("/jobs/{job}/allow-deletes", response_model=JobState, responses=_ERRORS)
def allow_deletes(job: str, request: Request, who: Principal = Operator) -> JobState:
    """Let the next cycle make its deletions even over the threshold (once)."""
    ops = _ops(request)
    ops.allow_deletes(job, who)
    return _state(ops, job)
