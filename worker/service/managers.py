"""Manager references (docs/manager.md): written once both users they join exist.

`ManagerReferences.settle` resolves users' source managers to their linked target users (links
the caller already holds first, then the ledger), decides with `worker.domain.manager`, and
writes the references that differ from what the links hold in one round of requests to the
target (sent as `$batch`, through the same write quota and retry policy as every write). Each
write, and its link change, joins the user's own log row.

A page settles its users' references right after carrying them out (`page_references`). A
manager that has no link yet may be created later in the cycle: the page leaves it in the
cycle's progress, and the managers phase (managers_phase.py) settles those once every page is
committed — by then a manager created in the same cycle is linked, and one that is still not is
out of scope: the reference stays unset, a warning in the user's log row. The progress is saved
with the cursor, so a cycle killed before or during that phase finishes it when it resumes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import structlog

from worker.domain.errors import NotFound, SyncError
from worker.domain.job import Deprovision, JobSpec
from worker.domain.manager import (
    ClearManager,
    OutOfScope,
    SetManager,
    Unknown,
    Unresolved,
    decide_manager,
    last_written,
    out_of_scope_reason,
    wanted_manager,
    warned,
    with_manager,
    with_warned,
)
from worker.domain.model import (
    MANAGER,
    Action,
    Change,
    Link,
    LinkState,
    ObjectOutcome,
    SourceItem,
    SourceUser,
    Status,
    Step,
)
from worker.ports import (
    Ledger,
    RemoveManagerRef,
    SetManagerRef,
    Simulated,
    TargetDirectory,
)
from worker.service.apply import Applied

log = structlog.get_logger("tenant_sync.cycle")

LIVE = (LinkState.ACTIVE, LinkState.DISABLED)


@dataclass
class Reference:
    """One user's manager reference to settle, and the log row it joins."""

    link: Link  # the user's link, as the page (or the ledger) has it now
    wanted: str | None  # the source manager's id; None: no manager
    outcome: ObjectOutcome


def page_references(
    spec: JobSpec,
    entries: Sequence[tuple[SourceItem, Link | None, Applied]],
    *,
    complete: bool,
) -> tuple[list[Reference], dict[str, str | None]]:
    """The references a page's carried-out users ask for, and the users whose manager must be
    read later (a user new in the target that a delta page names without its manager).

    `entries` are each object with its link before the page and what carrying it out did;
    `complete` says the page names every manager (a full round, single-user reads)."""
    references: list[Reference] = []
    later: dict[str, str | None] = {}
    for item, before, applied in entries:
        link = applied.link
        if (
            not isinstance(item, SourceUser)
            or link is None
            or link.state not in LIVE
            or applied.outcome.status is Status.FAILURE
            # A user deprovisioned (provisioning on demand carries it out at once) keeps
            # whatever reference it has: it is leaving, not changing.
            or applied.outcome.action in (Action.DELETE, Action.DISABLE)
        ):
            continue
        new = before is None or before.state is LinkState.SOFT_DELETED
        if not new and not spec.policy.update:
            continue
        wanted = wanted_manager(item, complete=complete)
        if isinstance(wanted, Unknown):
            if new or before is None or before.target_id != link.target_id:
                later[item.id] = None
            continue
        if before is not None and before.state is LinkState.SOFT_DELETED:
            # Restored: whatever reference it had before is not trusted to have come back.
            link = replace(link, attributes=with_manager(link.attributes, None))
        references.append(Reference(link=link, wanted=wanted, outcome=applied.outcome))
    return references, later


class ManagerReferences:
    def __init__(self, spec: JobSpec, *, ledger: Ledger, target: TargetDirectory) -> None:
        self.spec = spec
        self.ledger = ledger
        self.target = target

    def settle(
        self,
        references: Sequence[Reference],
        known: Mapping[str, Link],
        *,
        final: bool,
        leaving: Collection[str] = (),
        again: bool = True,
    ) -> tuple[list[Link], dict[str, str]]:
        """Write what the references need. Returns the links that changed and, unless `final`,
        the references left unresolved (user's source id -> manager's source id).

        A manager whose deprovisioning is only staged is still linked and present in the
        target: its reports keep their reference until the deletion is made (the deletion
        phase clears them then, `ManagersPhase.clear_reports`), so a deletion the threshold
        holds does no harm (docs/manager.md). `leaving`: managers being deleted now (the
        deletion phase's), out of scope for their reports.
        `again`: warn again of an out-of-scope manager already warned of (docs/manager.md)."""
        wanted = sorted({r.wanted for r in references if r.wanted})
        managers = {m: known[m] for m in wanted if m in known}
        missing = [m for m in wanted if m not in managers]
        if missing:
            managers.update(self.ledger.links_for(self.spec.name, missing))
        if not final:
            # A manager no longer assigned to the job leaves scope when the cycle rereads it:
            # the managers phase settles its reports, once its departure is known.
            leaving = {*leaving, *self._unassigned(list(managers))}
        for manager in leaving:
            managers.pop(manager, None)
        unresolved: dict[str, str] = {}
        changed: list[Link] = []
        work: list[tuple[Reference, SetManager | ClearManager]] = []
        for ref in references:
            decision = decide_manager(
                ref.wanted,
                managers.get(ref.wanted) if ref.wanted else None,
                last_written(ref.link),
                final=final,
                warned_of=warned(ref.link),
                again=again,
            )
            if isinstance(decision, Unresolved):
                unresolved[ref.link.source_id] = decision.manager_source_id
            elif isinstance(decision, SetManager | ClearManager):
                work.append((ref, decision))
            else:
                if isinstance(decision, OutOfScope) and decision.warn:
                    _out_of_scope(ref, decision.manager_source_id)
                marker = decision.manager_source_id if isinstance(decision, OutOfScope) else None
                if warned(ref.link) != marker:
                    attributes = with_warned(ref.link.attributes, marker)
                    changed.append(replace(ref.link, attributes=attributes))
        if not work:
            return changed, unresolved
        answers = self.target.execute(
            [
                SetManagerRef(ref.link.target_id, d.manager_target_id)
                if isinstance(d, SetManager)
                else RemoveManagerRef(ref.link.target_id)
                for ref, d in work
            ]
        )
        for (ref, decision), answer in zip(work, answers, strict=True):
            if isinstance(answer, SyncError) and not (
                isinstance(decision, ClearManager) and isinstance(answer, NotFound)
            ):
                _failed(ref, answer)
                continue
            # A removal answered 404: the user has no manager already, which is what was asked.
            simulated = isinstance(answer, Simulated)
            new = decision.manager_target_id if isinstance(decision, SetManager) else None
            if new is not None:
                done = f"{'would set' if simulated else 'set'} manager to target user {new}"
            else:
                done = "would remove manager" if simulated else "removed manager"
            reason = ""
            status = Status.SUCCESS
            if isinstance(decision, ClearManager) and decision.manager_source_id is not None:
                reason, status = out_of_scope_reason(decision.manager_source_id), Status.WARNING
                log.warning(
                    "manager out of scope",
                    source_id=ref.link.source_id,
                    manager_id=decision.manager_source_id,
                )
            _join(
                ref.outcome,
                Step("export", status, f"{done}: {reason}" if reason else done),
                status,
                change=Change(decision.previous, new),
                reason=reason,
            )
            ref.outcome.simulated = ref.outcome.simulated or simulated
            attributes = with_manager(ref.link.attributes, new)
            marker = decision.manager_source_id if isinstance(decision, ClearManager) else None
            changed.append(replace(ref.link, attributes=with_warned(attributes, marker)))
        return changed, unresolved

    def _unassigned(self, managers: Sequence[str]) -> set[str]:
        scope = self.spec.scope
        if not managers or not scope.assigned_only:
            return set()
        assigned = self.ledger.assigned(self.spec.name, managers)
        return {m for m in managers if m not in scope.user_ids and m not in assigned}

    def leaving(self, deleting: Collection[str]) -> set[str]:
        """The users among those being deleted now that stop being managers: all of them for a
        job that soft-deletes (a disabled user can still be a manager). Entra would not keep a
        reference to a user it is deleting: they are out of scope (docs/manager.md)."""
        if self.spec.policy.deprovision is not Deprovision.SOFT_DELETE:
            return set()
        return set(deleting)


def _out_of_scope(ref: Reference, manager_id: str) -> None:
    reason = out_of_scope_reason(manager_id)
    if any(step.detail == reason for step in ref.outcome.steps):
        return  # the row has it already (a managers phase resumed after its commit)
    log.warning("manager out of scope", source_id=ref.link.source_id, manager_id=manager_id)
    _join(ref.outcome, Step("export", Status.WARNING, reason), Status.WARNING, reason=reason)


def _failed(ref: Reference, error: SyncError) -> None:
    """The write failed: the user's row fails (and is escrowed, so the write is tried again)."""
    outcome = ref.outcome
    _join(outcome, Step("export", Status.FAILURE, f"manager not written: {error}"), Status.FAILURE)
    outcome.reason = f"manager not written: {error.message}"
    outcome.error_code = error.code
    outcome.error_message = str(error)


def _join(
    outcome: ObjectOutcome,
    step: Step,
    status: Status,
    *,
    change: Change | None = None,
    reason: str = "",
) -> None:
    """Add the reference's step (and change) to a user's row; the row's status becomes the
    worst of the two (a row with nothing else done becomes the reference's own)."""
    outcome.steps.append(step)
    if change is not None:
        outcome.modified[MANAGER] = change
    if outcome.status is Status.SKIPPED:
        outcome.action = Action.UPDATE if change is not None else Action.OTHER
        outcome.status = status
        # The row is the reference's own: its reason says what was (or would be) done.
        outcome.reason = reason or step.detail
        return
    if status is Status.FAILURE or (status is Status.WARNING and outcome.status is Status.SUCCESS):
        outcome.status = status
    if reason:
        outcome.reason = f"{outcome.reason}; {reason}" if outcome.reason else reason
