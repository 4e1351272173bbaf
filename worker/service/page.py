"""One page of source objects: decided, carried out, and made into one SQL write.

`PageWorker` reads the page's links and escrows, decides for every object (`prepare`: scope, map,
decide), carries the decisions out in batched rounds (`Exporter`), and returns the `PageWrite`
to commit (and which objects failed); the page pipeline (pipeline.py) commits and logs it.
`PageRequest` is a page as plain data, so that it can travel to another worker. Deprovisioning
is not carried out here: it is staged, so that the cycle can count every deletion before
sending any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from worker.domain.health import Escrow, StagedDeletion, escrow_after_failure
from worker.domain.job import JobSpec
from worker.domain.mapping import Mapper
from worker.domain.model import (
    Action,
    Link,
    LinkState,
    ObjectOutcome,
    SourceItem,
    SourceRemoval,
    SourceUser,
    Status,
    Step,
)
from worker.domain.plan import (
    CreateUser,
    Decision,
    DeprovisionUser,
    NoChange,
    RestoreUser,
    UpdateUser,
    decide,
)
from worker.domain.scope import evaluate_scope
from worker.ports import Ledger, PageWrite
from worker.service.apply import Exporter, Task
from worker.service.managers import ManagerReferences, page_references


@dataclass
class PageRequest:
    """What a page's export needs to know besides the ledger; plain data, so it can travel."""

    items: list[SourceItem]
    full: bool
    resolved_pending: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)  # items in the job's assignment
    vanished: list[str] = field(default_factory=list)  # linked users the target no longer has
    # The page's links as the feed read them to find the vanished ones, for the worker that
    # runs the page right after in this process: a full cycle reads each page's links once,
    # not twice (docs/performance.md, "The no-change cycle"). They never travel (`to_json`):
    # a page run elsewhere, or later, reads its own.
    links: dict[str, Link] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [
                {"id": i.id, "removed": i.reason}
                if isinstance(i, SourceRemoval)
                else {"id": i.id, "attributes": dict(i.attributes)}
                for i in self.items
            ],
            "full": self.full,
            "resolved_pending": self.resolved_pending,
            "assigned": self.assigned,
            "vanished": self.vanished,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> PageRequest:
        items: list[SourceItem] = [
            SourceRemoval(i["id"], i["removed"])
            if "removed" in i
            else SourceUser(i["id"], i["attributes"])
            for i in data["items"]
        ]
        return PageRequest(
            items=items,
            full=bool(data["full"]),
            resolved_pending=list(data["resolved_pending"]),
            assigned=list(data["assigned"]),
            vanished=list(data["vanished"]),
        )


@dataclass
class PageDone:
    """A page decided and carried out, not yet committed: its write, and who failed."""

    write: PageWrite
    failed: set[str]
    # Manager references left for the cycle's managers phase (docs/manager.md).
    managers: dict[str, str | None] = field(default_factory=dict)


class PageWorker:
    def __init__(
        self,
        spec: JobSpec,
        *,
        ledger: Ledger,
        exporter: Exporter,
        mapper: Mapper,
        clock: Callable[[], datetime],
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.exporter = exporter
        self.mapper = mapper
        self.clock = clock
        self.managers = (
            ManagerReferences(spec, ledger=ledger, target=exporter.target) if spec.manager else None
        )

    def work(self, page: PageRequest) -> PageDone:
        # A page names each object once; should a replay repeat one, its latest state wins.
        latest = list({item.id: item for item in page.items}.values())
        ids = [item.id for item in latest]
        links = page.links
        if links is None:
            links = self.ledger.links_for(self.spec.name, ids)
        assigned, vanished = set(page.assigned), set(page.vanished)
        gone: list[Link] = []
        tasks: list[Task] = []
        outcomes: list[ObjectOutcome] = []
        staged: list[StagedDeletion] = []
        for item in latest:
            link = links.get(item.id)
            if (
                link is not None
                and item.id in vanished
                and link.state is not LinkState.SOFT_DELETED
            ):
                # Gone from the target's users (deleted there by hand, or the tenant was reset):
                # treat it as soft-deleted, so the user is restored if possible, else recreated.
                link = replace(link, state=LinkState.SOFT_DELETED)
                gone.append(link)
            prepared = prepare(self.spec, self.mapper, item, link, assigned=item.id in assigned)
            if isinstance(prepared, ObjectOutcome):
                outcomes.append(prepared)
            elif isinstance(prepared.decision, DeprovisionUser):
                staged.append(
                    StagedDeletion(
                        source_id=item.id,
                        reason=prepared.decision.reason,
                        deleted=isinstance(item, SourceRemoval),
                    )
                )
            else:
                tasks.append(prepared)
        staged_ids = {s.source_id for s in staged}
        return self.carry_out(
            tasks,
            outcomes=outcomes,
            links=gone,
            staged=staged,
            unstaged=[i for i in ids if i not in staged_ids],
            seen=[item.id for item in latest if isinstance(item, SourceUser)] if page.full else [],
            resolved_pending=page.resolved_pending,
            complete=page.full,
        )

    def carry_out(
        self,
        tasks: Sequence[Task],
        *,
        outcomes: Sequence[ObjectOutcome] = (),
        links: Sequence[Link] = (),
        staged: Sequence[StagedDeletion] = (),
        unstaged: Sequence[str] = (),
        seen: Sequence[str] = (),
        resolved_pending: Sequence[str] = (),
        complete: bool = True,
    ) -> PageDone:
        """Carry the tasks out; the write gathers them with the page's other effects.
        `complete`: the items name every user's manager (docs/manager.md)."""
        changed = {link.source_id: link for link in links}
        done = list(outcomes)
        results = self.exporter.apply(tasks)
        for applied in results:
            done.append(applied.outcome)
            if applied.link is not None and applied.link_changed:
                changed[applied.link.source_id] = applied.link
        later: dict[str, str | None] = {}
        if self.managers is not None:
            entries = [(t.item, t.link, a) for t, a in zip(tasks, results, strict=True)]
            references, later = page_references(self.spec, entries, complete=complete)
            written, unresolved = self.managers.settle(references, changed, final=False)
            changed.update({link.source_id: link for link in written})
            later.update(unresolved)
        escrows, released, expired, failed = self.escrows(done)
        return PageDone(
            write=PageWrite(
                links=list(changed.values()),
                seen=seen,
                outcomes=done + expired,
                resolved_pending=resolved_pending,
                escrows=escrows,
                released=released,
                staged=staged,
                unstaged=unstaged,
            ),
            failed=failed,
            managers=later,
        )

    def escrows(
        self, outcomes: Sequence[ObjectOutcome]
    ) -> tuple[list[Escrow], list[str], list[ObjectOutcome], set[str]]:
        """Failed objects are escrowed (again); the others, and expired escrows, are released."""
        now = self.clock()
        previous = self.ledger.escrows_for(self.spec.name, [o.source_id for o in outcomes])
        escrows: list[Escrow] = []
        released: list[str] = []
        expired: list[ObjectOutcome] = []
        failed: set[str] = set()
        for outcome in outcomes:
            if outcome.status is not Status.FAILURE:
                if outcome.source_id in previous:
                    released.append(outcome.source_id)
                continue
            failed.add(outcome.source_id)
            escrow = escrow_after_failure(
                previous.get(outcome.source_id),
                self.spec.name,
                outcome.source_id,
                outcome.error_message or outcome.reason,
                now,
            )
            if escrow is not None:
                escrows.append(escrow)
                continue
            released.append(outcome.source_id)
            expired.append(
                ObjectOutcome(
                    source_id=outcome.source_id,
                    source_label=outcome.source_label,
                    source_mail=outcome.source_mail,
                    action=Action.OTHER,
                    status=Status.WARNING,
                    target_id=outcome.target_id,
                    reason="escrow expired: failing for 28 days, no longer retried",
                )
            )
        return escrows, released, expired, failed


def prepare(
    spec: JobSpec, mapper: Mapper, item: SourceItem, link: Link | None, *, assigned: bool
) -> Task | ObjectOutcome:
    """Scope, map and decide for one object: the task to carry out, or a failed outcome."""
    steps = [Step("import", Status.SUCCESS, "read from the source")]
    values = None
    redacted: frozenset[str] = frozenset()
    in_scope = False
    reason = ""
    if isinstance(item, SourceUser):
        verdict = evaluate_scope(item, spec.scope, assigned=assigned)
        in_scope, reason = verdict.in_scope, verdict.reason
        steps.append(
            Step("scoping", Status.SUCCESS if in_scope else Status.SKIPPED, reason or "in scope")
        )
        if in_scope:
            try:
                mapped = mapper.map(item, creating=link is None)
            except ValueError as error:
                steps.append(Step("processing", Status.FAILURE, str(error)))
                return ObjectOutcome(
                    source_id=item.id,
                    source_label=item.label,
                    source_mail=item.mail or "",
                    action=_planned_action(link),
                    status=Status.FAILURE,
                    target_id=link.target_id if link else None,
                    reason=f"mapping failed: {error}",
                    error_code="MappingError",
                    error_message=str(error),
                    steps=steps,
                )
            values, redacted = mapped, mapped.redacted
    else:
        steps[0] = Step("import", Status.SUCCESS, item.description)
    decision = decide(
        item, link, in_scope=in_scope, scope_reason=reason, values=values, policy=spec.policy
    )
    if not isinstance(decision, CreateUser):
        # A create's matching runs against the target at export; the rest is decided here.
        if link is not None:
            steps.append(
                Step("matching", Status.SUCCESS, f"linked to target user {link.target_id}")
            )
        steps.append(processing_step(decision))
    return Task(decision=decision, item=item, link=link, steps=steps, redacted=redacted)


def processing_step(decision: Decision) -> Step:
    """The provisioning log's `processing` step: which action was decided, and why."""
    if isinstance(decision, NoChange):
        return Step("processing", Status.SKIPPED, f"no action: {decision.reason}")
    if isinstance(decision, UpdateUser | RestoreUser):
        names = ", ".join(sorted(decision.changes)) or "none"
        return Step("processing", Status.SUCCESS, f"{decision.action.value}; changed: {names}")
    if isinstance(decision, DeprovisionUser):
        return Step("processing", Status.SUCCESS, f"{decision.action.value}: {decision.reason}")
    return Step("processing", Status.SUCCESS, f"create: invite {decision.address}")


def _planned_action(link: Link | None) -> Action:
    if link is None:
        return Action.CREATE
    return Action.RESTORE if link.state is LinkState.SOFT_DELETED else Action.UPDATE
