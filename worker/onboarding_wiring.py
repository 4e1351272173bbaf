"""Onboarding wired to a configuration, for `check --fix` and the console alike
(docs/onboarding.md): the jobs' tenant pairs, each tenant's cross-tenant access policy over
Graph, `check`'s checks of a job, and the sentences that name a write and explain a failure.

`worker/service/onboarding.py` does the work (survey, approve, apply, check again); this module
only gives it what a configuration holds, so the CLI and the console say the same things.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from worker.adapters.graph.checks import Check, JobChecks, Side, hint, token_roles
from worker.adapters.graph.client import GraphClient
from worker.adapters.graph.policy import WRITE_PERMISSION, GraphCrossTenantPolicy
from worker.adapters.graph.retry import CHECK_POLICY
from worker.bootstrap import graph_client
from worker.config import Config, Job
from worker.domain.errors import SyncError
from worker.domain.onboarding import PARTNER, Pair, Write
from worker.service.onboarding import FAILED, WRITTEN, Outcome, ReadFailure

READ_PERMISSION = "Policy.Read.All"
# A tenant's Graph client, by the tenant's config name.
Clients = Callable[[str], GraphClient]


def pairs(cfg: Config, names: Sequence[str]) -> list[Pair]:
    """The tenant pairs of these jobs (each usable: `cfg.job` raises ConfigError otherwise)."""
    found = []
    for name in names:
        spec = cfg.job(name)
        source, target = cfg.tenants[spec.source], cfg.tenants[spec.target]
        found.append(Pair(name, spec.source, source.tenant_id, spec.target, target.tenant_id))
    return found


def tenants_of(found: Sequence[Pair]) -> list[str]:
    return sorted({p.source for p in found} | {p.target for p in found})


@contextmanager
def own_clients(cfg: Config, tenants: Sequence[str]) -> Iterator[Clients]:
    """A Graph client per tenant, made for this use and closed after it (the CLI's way)."""
    made: dict[str, GraphClient] = {}

    def client(tenant: str) -> GraphClient:
        if tenant not in made:
            made[tenant] = graph_client(cfg.tenants[tenant])
        return made[tenant]

    try:
        yield client
    finally:
        for c in made.values():
            c.close()


def policies(clients: Clients, tenants: Sequence[str]) -> dict[str, GraphCrossTenantPolicy]:
    """Each tenant's policy; a person waits for the answer, so a failure is reported within
    seconds (`retry.CHECK_POLICY`), not ridden out."""
    return {t: GraphCrossTenantPolicy(clients(t).with_policy(CHECK_POLICY)) for t in tenants}


def job_checks(cfg: Config, job: str, clients: Clients | None = None) -> list[Check]:
    """`check JOB`'s checks, for a usable job; with `clients`, over those (not closed here),
    else over clients of their own, closed afterwards."""
    spec = cfg.job(job)
    source, target = cfg.tenants[spec.source], cfg.tenants[spec.target]
    with own_clients(cfg, [spec.source, spec.target]) as own:
        get = clients or own
        return JobChecks(
            job=job,
            source=get(spec.source),
            target=get(spec.target),
            source_tenant=source.tenant_id,
            target_tenant=target.tenant_id,
            # Group provisioning reads every scoped group's members, whatever `scope.users`.
            groups=(
                spec.scope.group_ids if spec.scope.assigned_only or spec.spec.groups.enabled else ()
            ),
            source_side=Side(spec.source, str(source.ca_bundle) if source.ca_bundle else None),
            target_side=Side(spec.target, str(target.ca_bundle) if target.ca_bundle else None),
            provision_groups=spec.spec.groups.enabled,
        ).run()


# what to say ------------------------------------------------------------------------------------
def value(v: Any) -> str:
    """A property's value as the plan shows it."""
    if v is None:
        return "(not set)"
    return str(v).lower() if isinstance(v, bool) else str(v)


def what(w: Write) -> str:
    return "partner entry" if w.object == PARTNER else "identity synchronization"


def verb(w: Write) -> str:
    return {"POST": "create", "PATCH": "update", "PUT": "set"}[w.method]


def partner_name(cfg: Config, partner_id: str) -> str | None:
    """The config name of the tenant with this id, if the configuration has it."""
    for name, tenant in cfg.tenants.items():
        if tenant.tenant_id.lower() == partner_id.lower():
            return name
    return None


def partner_label(cfg: Config, partner_id: str) -> str:
    name = partner_name(cfg, partner_id)
    return f"{name} ({partner_id})" if name else partner_id


def where(cfg: Config, w: Write) -> str:
    """One write, naming the partner: a tenant's writes differ by partner only (POST path)."""
    return (
        f"tenant {w.tenant}: {what(w)} for {partner_label(cfg, w.partner_id)} — {w.method} {w.path}"
    )


def lacking_write_permission(clients: Clients, tenants: Sequence[str]) -> list[str]:
    """The tenants whose app's token lists its application permissions (`roles`) without
    `Policy.ReadWrite.CrossTenantAccess`. A token without roles, or none at all, tells nothing:
    the write itself will say (the token is only looked at, never kept or shown)."""
    lacking = []
    for tenant in tenants:
        try:
            roles = token_roles(clients(tenant).tokens.token())
        except SyncError:
            continue
        if roles is not None and WRITE_PERMISSION not in roles:
            lacking.append(tenant)
    return lacking


def lacks_permission(cfg: Config, tenant: str, then: str = "run again") -> str:
    client_id = cfg.tenants[tenant].client_id
    return (
        f"tenant {tenant}'s app ({client_id}) lacks {WRITE_PERMISSION}: add that Microsoft "
        f"Graph application permission to its app registration in tenant {tenant} and grant "
        f"admin consent, then {then}"
    )


def failure(cfg: Config, o: Outcome) -> str:
    """Why a write failed, with what to do; a 403 names the permission to grant."""
    if o.denied:
        return lacks_permission(cfg, o.write.tenant)
    tenant = o.write.tenant
    assert o.error is not None
    return f"{o.error}" + advice(cfg, tenant, o.error, WRITE_PERMISSION)


def unreadable(cfg: Config, f: ReadFailure) -> str:
    """A policy that could not be read, with advice matching the failure."""
    return f"cannot read tenant {f.tenant}'s cross-tenant access policy: {f.error}" + advice(
        cfg, f.tenant, f.error, READ_PERMISSION
    )


def advice(cfg: Config, tenant: str, error: SyncError, permission: str) -> str:
    settings = cfg.tenants[tenant]
    side = Side(tenant, str(settings.ca_bundle) if settings.ca_bundle else None)
    text = hint(error, f"{tenant}", side, f"grant {permission} to the app in tenant {tenant}")
    return f" (fix: {text})" if text else ""


def summary(outcomes: Sequence[Outcome]) -> str:
    written = sum(o.status == WRITTEN for o in outcomes)
    failed = sum(o.status == FAILED for o in outcomes)
    rest = len(outcomes) - written - failed
    text = f"{written} of {len(outcomes)} write(s) made"
    if failed:
        text += f", {failed} failed"
    if rest:
        text += f", {rest} not attempted"
    return text


def group_notes(cfg: Config, names: Sequence[str]) -> list[str]:
    grouped = [n for n in names if provisions_groups(cfg.jobs[n])]
    if not grouped:
        return []
    return [
        f"{', '.join(grouped)}: group provisioning needs no cross-tenant setting of its own "
        "(Graph v1.0's crossTenantUserSyncInbound has only isSyncAllowed, which this plan "
        "covers); it needs group permissions instead, which the check below tests"
    ]


def provisions_groups(job: Job) -> bool:
    """Whether a job provisions groups (`groups.provision: true`, docs/groups.md)."""
    return job.spec.groups.enabled
