"""Onboarding a tenant pair (`tenant-sync check --fix`): what each tenant's cross-tenant access
policy must say, and the fewest Graph writes that make it so. Pure: no I/O.

A job from S to T needs, per docs/onboarding.md:
- in S, the partner entry for T with `automaticUserConsentSettings.outboundAllowed: true`;
- in T, the partner entry for S with `automaticUserConsentSettings.inboundAllowed: true`, and
  its `identitySynchronization` with `userSyncInbound.isSyncAllowed: true`.

Graph v1.0's `crossTenantUserSyncInbound` has only `isSyncAllowed` (no group switch), so group
provisioning needs nothing more than user sync allowed inbound.

Many jobs (an organisation) merge into one need per (tenant, partner), so each policy object is
written at most once whatever the number of jobs through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PARTNERS_PATH = "/policies/crossTenantAccessPolicy/partners"
PARTNER = "partner"
IDENTITY_SYNC = "identitySynchronization"
OUTBOUND = "automaticUserConsentSettings.outboundAllowed"
INBOUND = "automaticUserConsentSettings.inboundAllowed"
USER_SYNC = "userSyncInbound.isSyncAllowed"


@dataclass(frozen=True)
class Pair:
    """One job's tenants: config names and tenant ids."""

    job: str
    source: str
    source_id: str
    target: str
    target_id: str


@dataclass
class Need:
    """What one tenant's policy must allow towards one partner tenant."""

    tenant: str  # config name of the tenant whose policy this is
    tenant_id: str
    partner_id: str
    outbound: bool = False
    inbound: bool = False
    user_sync: bool = False
    jobs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Current:
    """What a tenant's policy says about one partner now (None: that object does not exist)."""

    partner: Mapping[str, Any] | None
    identity_sync: Mapping[str, Any] | None


@dataclass(frozen=True)
class Change:
    """One property that a write changes: `current` -> `new` (current None: not set)."""

    prop: str
    current: Any
    new: Any


@dataclass(frozen=True)
class Write:
    """One Graph request of the plan, with the property changes it makes."""

    tenant: str
    tenant_id: str
    partner_id: str
    object: str  # PARTNER | IDENTITY_SYNC
    method: str  # POST | PATCH | PUT
    path: str
    body: dict[str, Any]
    changes: tuple[Change, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "tenant_id": self.tenant_id,
            "partner_tenant_id": self.partner_id,
            "object": self.object,
            "method": self.method,
            "path": self.path,
            "body": self.body,
            "changes": [
                {"property": c.prop, "current": c.current, "new": c.new} for c in self.changes
            ],
        }


def needs(pairs: Iterable[Pair]) -> list[Need]:
    """The merged needs of these jobs, one per (tenant, partner), in a stable order."""
    merged: dict[tuple[str, str], Need] = {}

    def need(tenant: str, tenant_id: str, partner_id: str) -> Need:
        key = (tenant_id.lower(), partner_id.lower())
        if key not in merged:
            merged[key] = Need(tenant, tenant_id, partner_id)
        return merged[key]

    for pair in pairs:
        out = need(pair.source, pair.source_id, pair.target_id)
        out.outbound = True
        out.jobs.append(pair.job)
        into = need(pair.target, pair.target_id, pair.source_id)
        into.inbound = True
        into.user_sync = True
        into.jobs.append(pair.job)
    return [merged[k] for k in sorted(merged)]


def _flag(obj: Mapping[str, Any] | None, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def plan(need: Need, current: Current) -> list[Write]:
    """The writes (none when all is in place) that make `current` meet `need`.

    An absent partner entry is created (POST) with what is needed; a present one is patched with
    the `automaticUserConsentSettings` value alone, the flag that is not needed kept as it is.
    The identity synchronization policy is replaced (PUT, as Graph creates it) only when user
    sync is not already allowed, its display name kept."""
    writes: list[Write] = []
    wanted = {OUTBOUND: need.outbound, INBOUND: need.inbound}
    partner_path = f"{PARTNERS_PATH}/{need.partner_id}"
    if current.partner is None:
        consent = {"inboundAllowed": need.inbound, "outboundAllowed": need.outbound}
        changes = tuple(Change(prop, None, True) for prop, on in wanted.items() if on)
        writes.append(
            Write(
                need.tenant,
                need.tenant_id,
                need.partner_id,
                PARTNER,
                "POST",
                PARTNERS_PATH,
                {"tenantId": need.partner_id, "automaticUserConsentSettings": consent},
                changes,
            )
        )
    else:
        missing = [p for p, on in wanted.items() if on and _flag(current.partner, p) is not True]
        if missing:
            consent = {
                "inboundAllowed": bool(need.inbound or _flag(current.partner, INBOUND)),
                "outboundAllowed": bool(need.outbound or _flag(current.partner, OUTBOUND)),
            }
            changes = tuple(Change(p, _flag(current.partner, p), True) for p in missing)
            writes.append(
                Write(
                    need.tenant,
                    need.tenant_id,
                    need.partner_id,
                    PARTNER,
                    "PATCH",
                    partner_path,
                    {"automaticUserConsentSettings": consent},
                    changes,
                )
            )
    if need.user_sync and _flag(current.identity_sync, USER_SYNC) is not True:
        body: dict[str, Any] = {"userSyncInbound": {"isSyncAllowed": True}}
        name = _flag(current.identity_sync, "displayName")
        if name:
            body = {"displayName": name, **body}
        writes.append(
            Write(
                need.tenant,
                need.tenant_id,
                need.partner_id,
                IDENTITY_SYNC,
                "PUT",
                f"{partner_path}/identitySynchronization",
                body,
                (Change(USER_SYNC, _flag(current.identity_sync, USER_SYNC), True),),
            )
        )
    return writes


def plan_all(needs_: Iterable[Need], currents: Mapping[tuple[str, str], Current]) -> list[Write]:
    """Every write for these needs; `currents` by (tenant id, partner id), lower-case."""
    writes: list[Write] = []
    for need in needs_:
        writes += plan(need, currents[key(need)])
    return writes


def key(need: Need) -> tuple[str, str]:
    return (need.tenant_id.lower(), need.partner_id.lower())
