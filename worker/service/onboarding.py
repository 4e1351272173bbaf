"""Onboarding tenant pairs (`check --fix` and the console's job page): read the policies a set
of jobs needs, plan the writes, apply them once approved, run the checks again.

`onboard` is the one path both take; what differs is how the plan is approved (a terminal's
question or `--yes` for the CLI; for the console, that the plan is still the one the operator
confirmed, by its `fingerprint`) and how the result is shown. `survey` reads and plans alone (the
job page shows its plan). Reading and planning change nothing; `apply` sends the plan tenant by
tenant, in plan order. A failed write ends that tenant's writes (the rest are reported as not
attempted) but not the other tenants': one tenant's app lacking
`Policy.ReadWrite.CrossTenantAccess` does not hold up the pairs that do not involve it. Every write
is reported: written, failed (with why) or not attempted, so nothing that was changed is hidden by
a later failure (docs/onboarding.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from worker.domain.errors import SyncError
from worker.domain.onboarding import Current, Need, Pair, Write, key, needs, plan_all
from worker.ports import CrossTenantPolicy


class CheckResult(Protocol):
    """What onboarding needs of one of `check`'s results: whether it failed."""

    @property
    def status(self) -> str:
        """ok | fail | unknown"""


CheckT = TypeVar("CheckT", bound=CheckResult)

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


@dataclass(frozen=True)
class Survey:
    """What a set of jobs needs and the plan that makes it so; or, when a policy could not be
    read, which (and no plan: nothing can be planned or written then)."""

    needs: list[Need]
    plan: list[Write]
    unreadable: list[ReadFailure]

    @property
    def fingerprint(self) -> str:
        """A digest of the plan (requests and current values): a plan shown earlier has the
        same one exactly when nothing changed since."""
        text = json.dumps([w.as_dict() for w in self.plan], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Onboarding(Generic[CheckT]):
    """How `onboard` ended: the survey; whether the plan was approved (never when a policy
    could not be read); every write's outcome; and each job's checks afterwards (run once
    approved, whether or not there was anything to write)."""

    survey: Survey
    approved: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    checks: dict[str, list[CheckT]] = field(default_factory=dict)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def ok(self) -> bool:
        """Every write was made and no check fails (`check --fix`'s exit 0)."""
        return (
            self.approved
            and all(o.status == WRITTEN for o in self.outcomes)
            and not any(c.status == "fail" for cs in self.checks.values() for c in cs)
        )


def survey(pairs: Sequence[Pair], policies: Mapping[str, CrossTenantPolicy]) -> Survey:
    """Read the policies these jobs need and plan the writes; changes nothing. `policies` by
    tenant (config name): every tenant of the pairs."""
    wanted = needs(pairs)
    currents, unreadable = read_current(wanted, policies)
    if unreadable:
        return Survey(wanted, [], unreadable)
    return Survey(wanted, plan_all(wanted, currents), [])


def onboard(
    pairs: Sequence[Pair],
    policies: Mapping[str, CrossTenantPolicy],
    *,
    approve: Callable[[Survey], bool],
    checks: Callable[[str], list[CheckT]],
) -> Onboarding[CheckT]:
    """Survey the pairs; unless a policy could not be read, ask `approve` (it is shown the
    plan, empty or not); once approved apply the plan and run `checks` for each job again.
    Not approved, or unreadable: nothing is written and no check runs."""
    found = survey(pairs, policies)
    if found.unreadable or not approve(found):
        return Onboarding(found)
    outcomes = apply(found.plan, policies) if found.plan else []
    jobs = list(dict.fromkeys(p.job for p in pairs))
    return Onboarding(found, True, outcomes, {job: checks(job) for job in jobs})
