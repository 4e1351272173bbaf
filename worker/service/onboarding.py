"""`check --fix`: read the policies a set of jobs needs, plan the writes, apply them.

Reading and planning change nothing; `apply` sends the plan tenant by tenant, in plan order. A
failed write ends that tenant's writes (the rest are reported as not attempted) but not the
other tenants': one tenant's app lacking `Policy.ReadWrite.CrossTenantAccess` does not hold up
the pairs that do not involve it. Every write is reported: written, failed (with why) or not
attempted, so nothing that was changed is hidden by a later failure (docs/onboarding.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from worker.domain.errors import SyncError
from worker.domain.onboarding import Current, Need, Write, key
from worker.ports import CrossTenantPolicy

WRITTEN = "written"
FAILED = "failed"
NOT_ATTEMPTED = "not attempted"


@dataclass(frozen=True)
class ReadFailure:
    """A policy that could not be read: nothing can be planned for that tenant."""

    tenant: str
    error: SyncError


@dataclass(frozen=True)
class Outcome:
    write: Write
    status: str  # WRITTEN | FAILED | NOT_ATTEMPTED
    error: SyncError | None = None

    @property
    def denied(self) -> bool:
        """Graph refused the write for want of a permission (403)."""
        return self.error is not None and self.error.status == 403


def read_current(
    needs: Iterable[Need], policies: Mapping[str, CrossTenantPolicy]
) -> tuple[dict[tuple[str, str], Current], list[ReadFailure]]:
    """What each need's policy says now, by `onboarding.key`; the tenants that could not be
    read (their first error) instead."""
    currents: dict[tuple[str, str], Current] = {}
    failures: dict[str, ReadFailure] = {}
    for need in needs:
        if need.tenant in failures:
            continue
        policy = policies[need.tenant]
        try:
            partner = policy.partner(need.partner_id)
            sync = policy.identity_sync(need.partner_id) if need.user_sync and partner else None
        except SyncError as exc:
            failures[need.tenant] = ReadFailure(need.tenant, exc)
            continue
        currents[key(need)] = Current(partner, sync)
    return currents, list(failures.values())


def apply(writes: Sequence[Write], policies: Mapping[str, CrossTenantPolicy]) -> list[Outcome]:
    """Send the writes; one outcome per write, in plan order."""
    stopped: set[str] = set()
    outcomes: list[Outcome] = []
    for write in writes:
        if write.tenant in stopped:
            outcomes.append(Outcome(write, NOT_ATTEMPTED))
            continue
        try:
            policies[write.tenant].write(write.method, write.path, write.body)
        except SyncError as exc:
            stopped.add(write.tenant)
            outcomes.append(Outcome(write, FAILED, exc))
            continue
        outcomes.append(Outcome(write, WRITTEN))
    return outcomes
