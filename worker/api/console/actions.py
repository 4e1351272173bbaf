"""The console's forms that change something: pause, resume, trigger, restart, allow-deletes,
provision on demand. Each needs a session, the session's CSRF token and TenantSync.Operate
(see `operator_form`), and goes through the `Operations` the API uses. After a change the
browser is sent back to the job page with a one-shot message (the refusal's reason when there
was one), so reloading it never repeats the action.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from worker.api.app import services
from worker.api.errors import ApiError
from worker.config import GUID_RE
from worker.service.admin import RestartScope

from .pages import staged_rows
from .sessions import ConsoleSession
from .views import job_view
from .web import ConsoleRoute, PageError, console, operator_form, path_segment

log = structlog.get_logger("tenant_sync.console")
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
Operator = Depends(operator_form)


def _back(request: Request, job: str, session: ConsoleSession, kind: str, text: str) -> Response:
    console(request).sessions.flash(session, "ok" if kind == "ok" else "error", text)
    return RedirectResponse(f"/jobs/{path_segment(job)}", status_code=303)


def _done(session: ConsoleSession, job: str, action: str, **fields: object) -> None:
    log.info("console action", user=session.principal.name, job=job, action=action, **fields)


@router.post("/jobs/{job}/pause")
def pause(request: Request, job: str, session: ConsoleSession = Operator) -> Response:
    services(request).operations.pause(job, session.principal)
    _done(session, job, "pause")
    return _back(
        request,
        job,
        session,
        "ok",
        f"{job} is paused: no cycle starts until it is resumed (a running one finishes first; "
        "provisioning on demand still works).",
    )


@router.post("/jobs/{job}/resume")
def resume(request: Request, job: str, session: ConsoleSession = Operator) -> Response:
    services(request).operations.resume(job, session.principal)
    _done(session, job, "resume")
    return _back(request, job, session, "ok", f"{job} is resumed: its schedule applies again.")


@router.post("/jobs/{job}/trigger")
def trigger(
    request: Request, job: str, mode: str = Form("incremental"), session: ConsoleSession = Operator
) -> Response:
    if mode not in ("incremental", "full"):
        raise PageError(400, f"mode must be incremental or full, not {mode!r}. Nothing was done.")
    try:
        task_id = services(request).operations.trigger(
            job, full=mode == "full", who=session.principal
        )
    except ApiError as exc:
        if exc.status != 409:
            raise
        return _back(request, job, session, "error", f"No cycle was queued: {exc.message}")
    _done(session, job, "trigger", mode=mode, task_id=task_id)
    return _back(
        request,
        job,
        session,
        "ok",
        f"A{' full' if mode == 'full' else 'n incremental'} cycle of {job} is queued for the "
        f"workers (task {task_id}).",
    )


@router.post("/jobs/{job}/restart")
def restart(
    request: Request, job: str, scope: str = Form(""), session: ConsoleSession = Operator
) -> Response:
    try:
        chosen = RestartScope(scope)
    except ValueError:
        choices = ", ".join(s.value for s in RestartScope)
        raise PageError(
            400, f"Choose what to restart ({choices}), not {scope!r}. Nothing was done."
        ) from None
    try:
        done = services(request).operations.restart(job, [chosen], session.principal)
    except ApiError as exc:
        if exc.status != 409:
            raise
        return _back(request, job, session, "error", f"Nothing was restarted: {exc.message}")
    _done(session, job, "restart", scope=chosen.value)
    return _back(
        request, job, session, "ok", f"Restarted ({chosen.value}): " + "; ".join(done) + "."
    )


@router.post("/jobs/{job}/allow-deletes")
def allow_deletes(
    request: Request,
    job: str,
    seen: int = Form(-1),
    confirm: str = Form(""),
    session: ConsoleSession = Operator,
) -> Response:
    """Release the held deletions, once the operator has seen them: the form carries how many
    were listed, and a different number now means the list changed under them."""
    ops = services(request).operations
    ops.job(job)
    held = len(staged_rows(request, job))
    if confirm != "yes":
        raise PageError(
            400,
            "Tick the box that confirms the deletions before allowing them. Nothing was done.",
        )
    if held == 0:
        return _back(request, job, session, "error", f"{job} holds no deletions: nothing to allow.")
    if seen != held:
        return _back(
            request,
            job,
            session,
            "error",
            f"The held deletions changed since you reviewed them ({seen} then, {held} now): "
            "nothing was allowed; review them again.",
        )
    ops.allow_deletes(job, session.principal)
    _done(session, job, "allow-deletes", held=held)
    return _back(
        request,
        job,
        session,
        "ok",
        f"Deletions allowed: the next cycle of {job} deletes the {held} held users (once; the "
        "threshold applies again afterwards).",
    )


@router.post("/jobs/{job}/provision")
def provision(
    request: Request, job: str, source_id: str = Form(""), session: ConsoleSession = Operator
) -> Response:
    svc = services(request)
    spec = svc.operations.job(job)
    if not GUID_RE.match(source_id.strip()):
        raise PageError(
            400, f"Give the source user's object id (a GUID), not {source_id!r}. Nothing was done."
        )
    outcome = svc.operations.provision(job, source_id.strip(), session.principal)
    _done(
        session,
        job,
        "provision",
        source_id=outcome.source_id,
        result=f"{outcome.action.value} {outcome.status.value}",
    )
    return console(request).render(
        request,
        "provisioned.html",
        {
            "job": job_view(spec, svc.operations.status(job)),
            "outcome": outcome,
            "nav": "provision",
        },
        session=session,
    )
