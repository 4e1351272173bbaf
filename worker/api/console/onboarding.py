"""Onboarding a job's tenant pair from the console (docs/onboarding.md): the job page's
"Onboarding" section, its confirmation page and the form that writes.

The same path as `tenant-sync check JOB --fix` (`worker.service.onboarding.onboard`): read the
pair's cross-tenant access policies, plan, approve, write, check again. What the console adds is
how a plan is approved: the confirmation form carries the plan's fingerprint, and the plan is
written only if it is still that one (else the page says it changed and shows the new plan) and
only when every tenant to write in has an app holding `Policy.ReadWrite.CrossTenantAccess` (else
it says which lacks it): either way nothing is written. Writing needs TenantSync.Operate and the
session's CSRF token (`operator_form`) and is audited as `onboard`.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from worker.adapters.graph.checks import Check
from worker.adapters.graph.policy import WRITE_PERMISSION
from worker.api.app import services
from worker.api.operations import actor
from worker.config import ConfigError
from worker.domain.audit import AuditAction
from worker.domain.onboarding import Pair
from worker.onboarding_wiring import (
    READ_PERMISSION,
    Clients,
    failure,
    group_notes,
    job_checks,
    lacking_write_permission,
    lacks_permission,
    pairs,
    partner_label,
    policies,
    summary,
    tenants_of,
    unreadable,
    value,
    verb,
    what,
    where,
)
from worker.service.audit import audited
from worker.service.onboarding import FAILED, WRITTEN, Onboarding, Survey, onboard, survey

from .sessions import ConsoleSession
from .views import job_view
from .web import ConsoleRoute, PageError, console, operator_form, signed_in

log = structlog.get_logger("tenant_sync.console")
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
THEN = "reload this page"


def _pair(request: Request, job: str) -> tuple[list[Pair], str]:
    """The job's pair, or why it cannot be onboarded now (a tenant it uses is unusable)."""
    services(request).operations.job(job)
    try:
        return pairs(services(request).config, [job]), ""
    except ConfigError as exc:
        return [], "; ".join(exc.problems)


def _clients(request: Request) -> Clients:
    # The process's shared clients: their tokens and connections are reused between pages.
    return services(request).runtime.client


def plan_view(request: Request, job: str, found: Survey | None = None) -> dict[str, Any]:
    """What the pages show of the pair's plan: its rows, or why there is none (a policy that
    cannot be read, an unusable tenant), and the tenants whose app cannot write it."""
    cfg = services(request).config
    view: dict[str, Any] = {"errors": [], "rows": [], "lacking": [], "notes": [], "tenants": 0}
    view["read_permission"], view["write_permission"] = READ_PERMISSION, WRITE_PERMISSION
    if found is None:
        pair, problem = _pair(request, job)
        if problem:
            view["errors"] = [f"{job} cannot be onboarded now: {problem}"]
            return view
        tenants = tenants_of(pair)
        found = survey(pair, policies(_clients(request), tenants))
    if found.unreadable:
        view["errors"] = [unreadable(cfg, f) for f in found.unreadable]
        return view
    view["fingerprint"] = found.fingerprint
    view["notes"] = group_notes(cfg, [job])
    view["tenants"] = len({w.tenant for w in found.plan})
    view["rows"] = [
        {
            "tenant": w.tenant,
            "object": what(w),
            "partner": partner_label(cfg, w.partner_id),
            "verb": verb(w),
            "request": f"{w.method} {w.path}",
            "changes": [(c.prop, value(c.current), value(c.new)) for c in w.changes],
        }
        for w in found.plan
    ]
    if found.plan:
        writers = sorted({w.tenant for w in found.plan})
        lacking = lacking_write_permission(_clients(request), writers)
        view["lacking"] = [lacks_permission(cfg, t, THEN) for t in lacking]
    return view


def section(request: Request, job: str) -> dict[str, Any]:
    """The job page's Onboarding section; never fails the page (a failure is its text)."""
    try:
        return plan_view(request, job)
    except Exception as exc:  # the rest of the job page must still show
        log.warning("onboarding plan failed", job=job, error=type(exc).__name__)
        return {"errors": [f"the plan could not be made: {type(exc).__name__}: {exc}"], "rows": []}


def _render(
    request: Request,
    job: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    session: ConsoleSession | None = None,
) -> Response:
    svc = services(request)
    view = job_view(svc.operations.job(job), svc.operations.status(job))
    return console(request).render(
        request,
        "onboarding.html",
        {"job": view, "nav": "jobs", "message": "", "result": None, **context},
        status=status,
        session=session,
    )


@router.get("/jobs/{job}/onboarding")
def confirm_page(
    request: Request, job: str, session: ConsoleSession = Depends(signed_in)
) -> Response:
    """The plan as it is now, and (for an operator) the form that confirms and writes it."""
    return _render(request, job, {"plan": plan_view(request, job)})


@router.post("/jobs/{job}/onboarding")
def write_settings(
    request: Request,
    job: str,
    seen: str = Form(""),
    confirm: str = Form(""),
    session: ConsoleSession = Depends(operator_form),
) -> Response:
    """Write the plan the operator confirmed, if it is still the plan; then the checks."""
    svc = services(request)
    cfg = svc.config
    pair, problem = _pair(request, job)
    if confirm != "yes":
        raise PageError(
            400, "Tick the box that confirms the changes before writing them. Nothing was written."
        )
    if problem:
        raise PageError(409, f"{job} cannot be onboarded now: {problem}. Nothing was written.")
    clients = _clients(request)
    refusal: list[str] = []

    def approve(found: Survey) -> bool:
        if found.fingerprint != seen:
            refusal.append(
                "The plan changed since you reviewed it (someone or something changed these "
                "settings meanwhile): nothing was written. This is the plan now."
            )
            return False
        writers = sorted({w.tenant for w in found.plan})
        lacking = lacking_write_permission(clients, writers)
        if lacking:
            refusal.append(
                "Nothing was written: "
                + "; ".join(lacks_permission(cfg, t, THEN) for t in lacking)
                + "."
            )
            return False
        return True

    tenants = tenants_of(pair)
    with audited(svc.runtime.audit, actor(session.principal), AuditAction.ONBOARD, job) as entry:
        result: Onboarding[Check] = onboard(
            pair,
            policies(clients, tenants),
            approve=approve,
            checks=lambda name: job_checks(cfg, name, clients),
        )
        entry.note(planned=len(result.survey.plan))
        if result.survey.unreadable:
            entry.fail("; ".join(unreadable(cfg, f) for f in result.survey.unreadable))
        elif not result.approved:
            entry.refuse(refusal[0] if refusal else "not approved")
        else:
            entry.note(
                written=sum(o.status == WRITTEN for o in result.outcomes),
                checks="fail" if any(c.status == "fail" for c in result.checks[job]) else "pass",
            )
            if result.failed:
                entry.fail("; ".join(failure(cfg, o) for o in result.failed))
    log.info(
        "console action",
        user=session.principal.name,
        job=job,
        action="onboard",
        planned=len(result.survey.plan),
        written=sum(o.status == WRITTEN for o in result.outcomes),
        failed=len(result.failed),
        approved=result.approved,
    )
    if not result.approved:
        # Unreadable, changed or not permitted: the page shows the plan as it is now.
        return _render(
            request,
            job,
            {"plan": plan_view(request, job, result.survey), "message": " ".join(refusal)},
            status=409 if refusal else 502,
            session=session,
        )
    outcomes = [
        {
            "status": o.status,
            "where": where(cfg, o.write),
            "reason": failure(cfg, o) if o.status == FAILED else "",
            "changes": [(c.prop, value(c.current), value(c.new)) for c in o.write.changes],
        }
        for o in result.outcomes
    ]
    done = {
        "outcomes": outcomes,
        "summary": summary(result.outcomes) if result.outcomes else "",
        "checks": result.checks[job],
        "checks_ok": not any(c.status == "fail" for c in result.checks[job]),
        "ok": result.ok,
    }
    return _render(request, job, {"plan": None, "result": done}, session=session)
