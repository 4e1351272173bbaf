"""`tenant-sync check [JOB] --fix [--yes]`: onboard tenant pairs (docs/onboarding.md).

Reads each pair's cross-tenant access policies, shows the plan (tenant, policy object, property,
current -> new), asks on a terminal (or takes --yes; without either it refuses, exit 2, having
changed nothing), writes, reports every write, and runs the checks again. Without JOB it does
every job in the configuration, each (tenant, partner) policy written once.
Exit codes: 0 all written and every check passes; 1 a write or check failed, a policy could not
be read, or the plan was declined; 2 bad input or no way to confirm.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from worker.adapters.graph.checks import Side as CheckSide
from worker.adapters.graph.checks import hint
from worker.adapters.graph.policy import WRITE_PERMISSION, GraphCrossTenantPolicy
from worker.adapters.graph.retry import CHECK_POLICY
from worker.bootstrap import graph_client
from worker.cli import (
    _check_dict,
    _job,
    _job_checks,
    _print_checks,
    _refuse,
    emit_json,
    err,
    out,
)
from worker.config import Config, Job
from worker.domain.errors import SyncError
from worker.domain.onboarding import Pair, Write, needs, plan_all
from worker.service.onboarding import FAILED, WRITTEN, Outcome, apply, read_current


def fix_jobs(cfg: Config, job: str | None, *, yes: bool, as_json: bool) -> int:
    """Run `check --fix` for JOB (or every job); the exit code."""
    names = [job] if job is not None else sorted(cfg.jobs)
    report: dict[str, Any] = {"jobs": names}
    fail_json = (lambda message: emit_json({**report, "error": message})) if as_json else None
    if not names:
        _refuse("the configuration has no jobs to onboard", 2, fail_json)
    for name in names:
        _job(cfg, name, graph=True, on_failure=fail_json)
    pairs = []
    for name in names:
        spec = cfg.job(name)
        source, target = cfg.tenants[spec.source], cfg.tenants[spec.target]
        pairs.append(Pair(name, spec.source, source.tenant_id, spec.target, target.tenant_id))
    wanted = needs(pairs)
    tenants = sorted({n.tenant for n in wanted})
    clients = {t: graph_client(cfg.tenants[t]).with_policy(CHECK_POLICY) for t in tenants}
    try:
        policies = {t: GraphCrossTenantPolicy(c) for t, c in clients.items()}
        currents, unreadable = read_current(wanted, policies)
        if unreadable:
            problems = [
                f"cannot read tenant {f.tenant}'s cross-tenant access policy: {f.error}"
                + _advice(cfg, f.tenant, f.error, "Policy.Read.All")
                for f in unreadable
            ]
            _refuse("; ".join(problems) + " (nothing was changed)", 1, fail_json)
        writes = plan_all(wanted, currents)
        report["plan"] = [w.as_dict() for w in writes]
        report["notes"] = _group_notes(cfg, names)
        if not as_json:
            _print_plan(writes, report["notes"])
        outcomes: list[Outcome] = []
        if writes:
            _confirm(yes, as_json, fail_json)
            outcomes = apply(writes, policies)
    finally:
        for client in clients.values():
            client.close()
    report["results"] = [_outcome_dict(cfg, o) for o in outcomes]
    if outcomes and not as_json:
        _print_outcomes(cfg, outcomes)
    failures = [o for o in outcomes if o.status == FAILED]
    if failures and not as_json:
        written = sum(o.status == WRITTEN for o in outcomes)
        err.print(
            f"tenant-sync: {written} of {len(outcomes)} write(s) made; "
            + "; ".join(_failure(cfg, o) for o in failures),
            markup=False,
        )
    checks = {name: _job_checks(cfg, name) for name in names}
    report["checks"] = {name: [_check_dict(c) for c in cs] for name, cs in checks.items()}
    failed = any(o.status != WRITTEN for o in outcomes) or any(
        c.status == "fail" for cs in checks.values() for c in cs
    )
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


def _value(value: Any) -> str:
    if value is None:
        return "(not set)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _print_plan(writes: list[Write], notes: list[str]) -> None:
    if not writes:
        out.print("nothing to change: the cross-tenant access settings are in place", markup=False)
    else:
        tenants = len({w.tenant for w in writes})
        out.print(f"plan: {len(writes)} write(s) in {tenants} tenant(s)", markup=False)
        for w in writes:
            what = "partner entry" if w.object == "partner" else "identity synchronization"
            verb = {"POST": "create", "PATCH": "update", "PUT": "set"}[w.method]
            out.print(
                f"  tenant {w.tenant}: {what} for {w.partner_id} — {verb} ({w.method} {w.path})",
                markup=False,
            )
            for c in w.changes:
                out.print(f"      {c.prop}: {_value(c.current)} -> {_value(c.new)}", markup=False)
    for note in notes:
        out.print(f"note: {note}", markup=False)


def _partner_name(cfg: Config, partner_id: str) -> str | None:
    """The config name of the tenant with this id, if the configuration has it."""
    for name, tenant in cfg.tenants.items():
        if tenant.tenant_id.lower() == partner_id.lower():
            return name
    return None


def _where(cfg: Config, w: Write) -> str:
    """One write, naming the partner: a tenant's writes differ by partner only (POST path)."""
    what = "partner entry" if w.object == "partner" else "identity synchronization"
    name = _partner_name(cfg, w.partner_id)
    partner = f"{name} ({w.partner_id})" if name else w.partner_id
    return f"tenant {w.tenant}: {what} for {partner} — {w.method} {w.path}"


def _print_outcomes(cfg: Config, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        where = _where(cfg, o.write)
        if o.status == WRITTEN:
            out.print(f"✓ written: {where}", markup=False)
        elif o.status == FAILED:
            out.print(f"✗ failed: {where} — {_failure(cfg, o)}", markup=False)
        else:
            out.print(f"- not attempted: {where} (an earlier write there failed)", markup=False)


def _outcome_dict(cfg: Config, o: Outcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "tenant": o.write.tenant,
        "partner_tenant_id": o.write.partner_id,
        "partner": _partner_name(cfg, o.write.partner_id),
        "object": o.write.object,
        "method": o.write.method,
        "path": o.write.path,
        "status": o.status,
    }
    if o.status == FAILED:
        result["error"] = _failure(cfg, o)
    return result


def _failure(cfg: Config, o: Outcome) -> str:
    tenant = o.write.tenant
    if o.denied:
        client_id = cfg.tenants[tenant].client_id
        return (
            f"tenant {tenant}'s app ({client_id}) lacks {WRITE_PERMISSION}: add that Microsoft "
            f"Graph application permission to its app registration in tenant {tenant} and grant "
            "admin consent, then run again"
        )
    assert o.error is not None
    return f"{o.error}" + _advice(cfg, tenant, o.error, WRITE_PERMISSION)


def _advice(cfg: Config, tenant: str, error: SyncError, permission: str) -> str:
    settings = cfg.tenants[tenant]
    side = CheckSide(tenant, str(settings.ca_bundle) if settings.ca_bundle else None)
    advice = hint(error, f"{tenant}", side, f"grant {permission} to the app in tenant {tenant}")
    return f" (fix: {advice})" if advice else ""


def _group_notes(cfg: Config, names: list[str]) -> list[str]:
    grouped = [n for n in names if _provisions_groups(cfg.jobs[n])]
    if not grouped:
        return []
    return [
        f"{', '.join(grouped)}: group provisioning needs no cross-tenant setting of its own "
        "(Graph v1.0's crossTenantUserSyncInbound has only isSyncAllowed, which this plan "
        "covers); it needs group permissions instead, which the check below tests"
    ]


def _provisions_groups(job: Job) -> bool:
    """Whether a job provisions groups (`groups.provision: true`, docs/groups.md)."""
    return job.spec.groups.enabled
