"""`tenant-sync check [JOB] --fix [--yes]`: onboard tenant pairs (docs/onboarding.md).

The work is `worker.service.onboarding.onboard` (the console's job page takes the same path);
this module shows it. Reads each pair's cross-tenant access policies, shows the plan (tenant,
policy object, property, current -> new), asks on a terminal (or takes --yes; without either it
refuses, exit 2, having changed nothing), writes, reports every write, and runs the checks again.
Without JOB it does every job in the configuration, each (tenant, partner) policy written once.
Exit codes: 0 all written and every check passes; 1 a write or check failed, a policy could not
be read, or the plan was declined; 2 bad input or no way to confirm.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from worker.cli_admin import _check_dict, _print_checks
from worker.cli_common import _job, _refuse, emit_json, err, out
from worker.config import Config
from worker.domain.onboarding import Write
from worker.onboarding_wiring import (
    failure,
    group_notes,
    job_checks,
    own_clients,
    pairs,
    partner_name,
    policies,
    tenants_of,
    unreadable,
    value,
    verb,
    what,
    where,
)
from worker.service.onboarding import FAILED, WRITTEN, Outcome, Survey, onboard


def fix_jobs(cfg: Config, job: str | None, *, yes: bool, as_json: bool) -> int:
    """Run `check --fix` for JOB (or every job); the exit code."""
    names = [job] if job is not None else sorted(cfg.jobs)
    report: dict[str, Any] = {"jobs": names}
    fail_json = (lambda message: emit_json({**report, "error": message})) if as_json else None
    if not names:
        _refuse("the configuration has no jobs to onboard", 2, fail_json)
    for name in names:
        _job(cfg, name, graph=True, on_failure=fail_json)
    found = pairs(cfg, names)

    def approve(survey: Survey) -> bool:
        report["plan"] = [w.as_dict() for w in survey.plan]
        report["notes"] = group_notes(cfg, names)
        if not as_json:
            _print_plan(survey.plan, report["notes"])
        if survey.plan:
            _confirm(yes, as_json, fail_json)
        return True

    tenants = tenants_of(found)
    with own_clients(cfg, tenants) as clients:
        result = onboard(
            found,
            policies(clients, tenants),
            approve=approve,
            checks=lambda name: job_checks(cfg, name, clients),
        )
    if result.survey.unreadable:
        problems = [unreadable(cfg, f) for f in result.survey.unreadable]
        _refuse("; ".join(problems) + " (nothing was changed)", 1, fail_json)
    outcomes = result.outcomes
    report["results"] = [_outcome_dict(cfg, o) for o in outcomes]
    if outcomes and not as_json:
        _print_outcomes(cfg, outcomes)
    failures = result.failed
    if failures and not as_json:
        written = sum(o.status == WRITTEN for o in outcomes)
        err.print(
            f"tenant-sync: {written} of {len(outcomes)} write(s) made; "
            + "; ".join(failure(cfg, o) for o in failures),
            markup=False,
        )
    checks = result.checks
    report["checks"] = {name: [_check_dict(c) for c in cs] for name, cs in checks.items()}
    failed = not result.ok
    report["ok"] = not failed
    if as_json:
        emit_json(report)
    else:
        for name, cs in checks.items():
            out.print(f"check {name}:", markup=False)
            _print_checks(cs, indent="  ")
    return 1 if failed else 0


def _confirm(yes: bool, as_json: bool, fail_json: Any) -> None:
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        _refuse(
            "not writing without confirmation: run again with --yes to make these changes "
            "(no terminal to ask on; nothing was changed)",
            2,
            fail_json,
        )
    if not typer.confirm("Make these changes?", default=False):
        err.print("tenant-sync: declined; nothing was changed", markup=False)
        raise typer.Exit(1)


def _print_plan(writes: list[Write], notes: list[str]) -> None:
    if not writes:
        out.print("nothing to change: the cross-tenant access settings are in place", markup=False)
    else:
        tenants = len({w.tenant for w in writes})
        out.print(f"plan: {len(writes)} write(s) in {tenants} tenant(s)", markup=False)
        for w in writes:
            out.print(
                f"  tenant {w.tenant}: {what(w)} for {w.partner_id} — {verb(w)} "
                f"({w.method} {w.path})",
                markup=False,
            )
            for c in w.changes:
                out.print(f"      {c.prop}: {value(c.current)} -> {value(c.new)}", markup=False)
    for note in notes:
        out.print(f"note: {note}", markup=False)


def _print_outcomes(cfg: Config, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        at = where(cfg, o.write)
        if o.status == WRITTEN:
            out.print(f"✓ written: {at}", markup=False)
        elif o.status == FAILED:
            out.print(f"✗ failed: {at} — {failure(cfg, o)}", markup=False)
        else:
            out.print(f"- not attempted: {at} (an earlier write there failed)", markup=False)


def _outcome_dict(cfg: Config, o: Outcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "tenant": o.write.tenant,
        "partner_tenant_id": o.write.partner_id,
        "partner": partner_name(cfg, o.write.partner_id),
        "object": o.write.object,
        "method": o.write.method,
        "path": o.write.path,
        "status": o.status,
    }
    if o.status == FAILED:
        result["error"] = failure(cfg, o)
    return result
