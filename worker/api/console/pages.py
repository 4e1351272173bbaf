"""The console's pages (GET): overview, job, held deletions, provisioning logs and downloads,
provision on demand, audit trail, and the small JSON the overview polls for progress bars.

Everything is read straight from SQL and Redis through `Operations` and the ledger, so the
pages work without a Celery worker. Pages are the same for every role, less the operate forms.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from worker.api.app import services
from worker.domain.errors import SyncError
from worker.ports import RunRecord
from worker.service.admin import RestartScope
from worker.service.logexport import logs_csv

from .charts import cycle_chart
from .filters import ACTIONS, STATUSES, LogFilters
from .onboarding import section as onboarding_section
from .sessions import ConsoleSession
from .views import job_view
from .web import SECURITY_HEADERS, ConsoleRoute, PageError, console, path_segment, signed_in

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
Session = Depends(signed_in)

LOG_PAGE = 100
AUDIT_PAGE = 100
RECENT_ACTIONS = 5
CHART_CYCLES = 40
SEARCH_LIMIT = 25
SEARCH_SELECT = ("id", "displayName", "userPrincipalName", "mail", "userType", "accountEnabled")
RESTART_SCOPES = (
    (RestartScope.WATERMARK, "Watermark", "forget the delta position: the next cycle is full"),
    (RestartScope.ESCROWS, "Escrows", "forget the objects waiting for a retry"),
    (RestartScope.QUARANTINE, "Quarantine state", "end the quarantine: the schedule applies again"),
    (
        RestartScope.FULL,
        "Full",
        "all three, and the held deletions (links are kept; the next full cycle finds them again)",
    ),
    (
        RestartScope.FORCE_DELETES,
        "Force deletes",
        "the next cycle makes its deletions even over the threshold",
    ),
)


def cycles(request: Request, job: str, limit: int) -> list[RunRecord]:
    """The job's real cycles, newest first (dry runs and provisioning on demand left out)."""
    runs = services(request).runtime.ledger.recent_runs(job, limit=limit * 3)
    return [r for r in runs if not r.dry_run and r.mode != "on_demand"][:limit]


def staged_rows(request: Request, job: str) -> list[dict[str, Any]]:
    """The deletions held for the job, users' and provisioned groups', with who they are: the
    source identity and mail as last read, and the target object that would be deleted."""
    from worker.service.held import held_deletions

    rows = [
        {
            "objectType": h.object_type,
            "sourceId": h.source_id,
            "sourceIdentity": h.source_identity,
            "sourceMail": h.source_mail,
            "targetId": h.target_id,
            "reason": h.reason,
            "gone": h.source_deleted,
        }
        for h in held_deletions(services(request).runtime.ledger, job)
    ]
    rows.sort(key=lambda r: str(r["sourceIdentity"] or r["sourceId"]).lower())
    return rows


@router.get("/")
def overview(request: Request, session: ConsoleSession = Session) -> Response:
    svc = services(request)
    jobs = [
        job_view(svc.operations.job(name), svc.operations.status(name))
        for name in svc.operations.job_names()
    ]
    return console(request).render(request, "overview.html", {"jobs": jobs, "nav": "jobs"})


@router.get("/console/progress.json")
def progress(request: Request) -> Response:
    """What the overview's script polls: each job's state and its running cycle's progress."""
    if console(request).session(request) is None:
        return JSONResponse({"error": "signed out"}, status_code=401, headers=SECURITY_HEADERS)
    svc = services(request)
    jobs = []
    for name in svc.operations.job_names():
        view = job_view(svc.operations.job(name), svc.operations.status(name))
        jobs.append(
            {
                "job": name,
                "code": view["code"],
                "running": view["running"],
                "progress": view["progress"],
            }
        )
    return JSONResponse({"jobs": jobs}, headers=SECURITY_HEADERS)


@router.get("/jobs/{job}")
def job_page(request: Request, job: str, session: ConsoleSession = Session) -> Response:
    svc = services(request)
    view = job_view(svc.operations.job(job), svc.operations.status(job))
    runs = cycles(request, job, CHART_CYCLES)
    staged = staged_rows(request, job)
    return console(request).render(
        request,
        "job.html",
        {
            "job": view,
            "chart": cycle_chart(job, runs),
            "runs": runs[:15],
            "staged": staged[:10],
            "staged_count": len(staged),
            "restart_scopes": RESTART_SCOPES,
            "onboarding": onboarding_section(request, job),
            "actions": [
                e.as_row() for e in svc.runtime.audit.entries(job=job, limit=RECENT_ACTIONS)
            ],
            "nav": "jobs",
        },
    )


@router.get("/jobs/{job}/deletes")
def held_deletions(request: Request, job: str, session: ConsoleSession = Session) -> Response:
    """Every deletion held over the threshold, before an operator allows them."""
    svc = services(request)
    view = job_view(svc.operations.job(job), svc.operations.status(job))
    staged = staged_rows(request, job)
    return console(request).render(
        request,
        "deletes.html",
        {"job": view, "staged": staged, "target": view["target"], "nav": "jobs"},
    )


def _filtered(request: Request, job: str) -> dict[str, Any]:
    services(request).operations.job(job)
    filters = LogFilters.from_query(request.query_params)
    try:
        return filters.ledger_arguments()
    except ValueError as exc:
        raise PageError(400, f"Filter {exc}.") from None


@router.get("/jobs/{job}/logs")
def logs(request: Request, job: str, page: int = 1, session: ConsoleSession = Session) -> Response:
    svc = services(request)
    view = job_view(svc.operations.job(job), svc.operations.status(job))
    filters = LogFilters.from_query(request.query_params)
    error = ""
    rows: list[dict[str, Any]] = []
    page = max(1, page)
    try:
        arguments = filters.ledger_arguments()
    except ValueError as exc:
        error = f"Filter {exc}."
    else:
        rows = svc.runtime.ledger.logs(
            job,
            **arguments,
            newest_first=True,
            offset=(page - 1) * LOG_PAGE,
            limit=LOG_PAGE + 1,
        )
    older = len(rows) > LOG_PAGE
    return console(request).render(
        request,
        "logs.html",
        {
            "job": view,
            "rows": rows[:LOG_PAGE],
            "filters": filters,
            "error": error,
            "page": page,
            "older": older,
            "actions": ACTIONS,
            "statuses": STATUSES,
            "cycles": cycles(request, job, 30),
            "nav": "logs",
        },
        status=400 if error else 200,
    )


def _download_name(job: str, extension: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in job)
    return f"{safe}-provisioning-logs-{stamp}.{extension}"


@router.get("/jobs/{job}/logs.csv")
def logs_as_csv(request: Request, job: str, session: ConsoleSession = Session) -> Response:
    """Every row the filters select (not just one page), newest first, as `logs --format csv`
    writes them."""
    arguments = _filtered(request, job)
    rows = services(request).runtime.ledger.logs(job, **arguments, newest_first=True)
    return Response(
        logs_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{_download_name(job, "csv")}"',
        },
    )


@router.get("/jobs/{job}/logs.json")
def logs_as_json(request: Request, job: str, session: ConsoleSession = Session) -> Response:
    """The same rows as `logs --json`: a list of objects, newest first."""
    arguments = _filtered(request, job)
    rows = services(request).runtime.ledger.logs(job, **arguments, newest_first=True)
    return Response(
        json.dumps(rows, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{_download_name(job, "json")}"',
        },
    )


@router.get("/jobs/{job}/logs/{change_id}")
def log_row(
    request: Request, job: str, change_id: str, session: ConsoleSession = Session
) -> Response:
    """One row: its steps (import, scoping, matching, processing, export) and what it changed."""
    svc = services(request)
    view = job_view(svc.operations.job(job), svc.operations.status(job))
    found = svc.runtime.ledger.logs(job, change_id=change_id, limit=1)
    if not found:
        raise PageError(404, f"The provisioning log of {job} has no row {change_id}.")
    back = request.query_params.get("back", "")
    return console(request).render(
        request,
        "log_row.html",
        {
            "job": view,
            "row": found[0],
            "back": back if back.startswith("?") else "",
            "nav": "logs",
        },
    )


@router.get("/jobs/{job}/provision")
def provision_page(
    request: Request, job: str, q: str = "", session: ConsoleSession = Session
) -> Response:
    """Find a source user by name, mail, UPN (the start of any) or object id."""
    svc = services(request)
    spec = svc.operations.job(job)
    view = job_view(spec, svc.operations.status(job))
    found: list[dict[str, Any]] = []
    error = ""
    q = q.strip()
    if q:
        source, _ = svc.runtime.directories(spec)
        try:
            users = source.search_users(q, SEARCH_SELECT, limit=SEARCH_LIMIT)
        except SyncError as exc:
            error = f"Searching {spec.source} failed: {exc}"
        else:
            links = svc.runtime.ledger.links_for(job, [u.id for u in users])
            found = sorted(
                ({"id": u.id, **u.attributes, "linked": links.get(u.id)} for u in users),
                key=lambda u: str(u.get("displayName") or u.get("userPrincipalName") or ""),
            )
    return console(request).render(
        request,
        "provision.html",
        {
            "job": view,
            "q": q,
            "found": found,
            "searched": bool(q),
            "error": error,
            "limit": SEARCH_LIMIT,
            "nav": "provision",
        },
    )


@router.get("/logs")
def logs_of_first_job(request: Request, session: ConsoleSession = Session) -> Response:
    return _first_job(request, "logs")


@router.get("/provision")
def provision_of_first_job(request: Request, session: ConsoleSession = Session) -> Response:
    return _first_job(request, "provision")


def _first_job(request: Request, page: str) -> Response:
    names = services(request).operations.job_names()
    if not names:
        raise PageError(404, "The configuration has no jobs.")
    return RedirectResponse(f"/jobs/{path_segment(names[0])}/{page}", status_code=303)


@router.get("/audit")
def audit(
    request: Request,
    job: str = "",
    before: int | None = None,
    session: ConsoleSession = Session,
) -> Response:
    """Who did what to which job, newest first (`tenant-sync audit`, `GET /api/audit`)."""
    svc = services(request)
    if job:
        svc.operations.job(job)
    entries = svc.runtime.audit.entries(job=job or None, limit=AUDIT_PAGE + 1, before_id=before)
    rows = [entry.as_row() for entry in entries[:AUDIT_PAGE]]
    older = rows[-1]["id"] if len(entries) > AUDIT_PAGE and rows else None
    return console(request).render(
        request,
        "audit.html",
        {"rows": rows, "job": job, "before": before, "older": older, "nav": "audit"},
    )
