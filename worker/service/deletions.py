"""The end of a cycle: its deletions re-checked, counted against the threshold, made or held.

Deprovisioning is never carried out where it is decided: pages stage it. Once every page is
committed, the cycle (recheck) reads what changed in the source since its round, then counts
the staged deletions with those the job made within the window (docs/safety.md). Within the
threshold, or released by an operator's `allow-deletes`, they are carried out through the page
pipeline; over it, all of them are held and logged as staged deletes. `DeletionCheck` is that
decision as a value; it becomes a dict only for JSON (`as_dict`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from worker.domain.groups import GroupLink
from worker.domain.health import DeletionVerdict, JobState, StagedDeletion
from worker.domain.job import JobSpec
from worker.domain.model import (
    Action,
    Link,
    ObjectOutcome,
    SourceItem,
    SourceRemoval,
    Status,
    Step,
)
from worker.domain.plan import Decision, decide_departure
from worker.ports import Ledger, PageWrite
from worker.service.apply import Task
from worker.service.feed import Tally
from worker.service.page import processing_step
from worker.service.pipeline import PagePipeline

DELETION_BATCH = 100
# Catch-up rounds a cycle reads, at most, before it judges its deletions (see `recheck`).
MAX_CATCH_UP_ROUNDS = 3


@dataclass(frozen=True)
class DeletionCheck:
    """The threshold's verdict on a cycle's deletions, and what the cycle did about it."""

    verdict: DeletionVerdict
    approved: int  # staged deletions an operator had released before: not counted again
    held: bool  # over the threshold: staged, not sent
    released: bool  # over the threshold, released by allow-deletes
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The `deletions` object of `run --json` and of the notifications."""
        return {
            **self.verdict.as_dict(),
            "approved": self.approved,
            "held": self.held,
            "message": self.message,
        }


class GroupDeletions(Protocol):
    """Provisioned groups to delete (worker/service/group_provision.py): counted with the
    users' deletions against the same threshold, and made or held with them."""

    def linked(self) -> int: ...

    def departures(self) -> list[tuple[GroupLink, str]]: ...

    def hold(self, found: Sequence[tuple[GroupLink, str]], message: str) -> None: ...

    def delete(self, found: Sequence[tuple[GroupLink, str]], *, approved: bool) -> None: ...


class Deletions:
    def __init__(
        self,
        spec: JobSpec,
        *,
        ledger: Ledger,
        state: JobState,
        pipeline: PagePipeline,
        tally: Tally,
        clock: Callable[[], datetime],
        catch_up: Callable[[], None],
        groups: GroupDeletions | None = None,
        reports: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.state = state
        self.pipeline = pipeline
        self.tally = tally
        self.clock = clock
        self.catch_up = catch_up
        self.groups = groups
        # Clears the manager references of the users about to be deleted (managers_phase.py).
        self.reports = reports
        self.check: DeletionCheck | None = None

    def recheck(self) -> None:
        """Before deletions are judged, read what changed in the source since this cycle's round.

        The cycle's view of the source is its delta round, which may be old: a round resumed
        from a saved position, or the deltaLink of a round finished by an earlier attempt of a
        cycle that then failed or was killed, holds nothing changed after the round began. The
        users re-read one by one meanwhile (escrows, pending members, the full sweep) are read
        as they are now. A mass deletion made in between would be seen only where it hits those
        users: a handful, under the threshold, carried out, the rest in a later cycle. So when
        the cycle has deletions to make and they are within the threshold, it reads the source's
        changes since its round (groups and users delta from the new deltaLinks, then the
        members that changed) like an incremental cycle, until a round brings no new deletion
        (or the threshold is exceeded anyway), and only then counts.
        """
        for _ in range(MAX_CATCH_UP_ROUNDS):
            staged = self._counted()
            if not staged or self.state.allow_deletes or self._judge(staged).exceeded:
                break
            before = {s.source_id for s in staged}
            self.catch_up()
            if {s.source_id for s in self._counted()} <= before:
                break  # nothing more to delete: the view is current enough

    def carry_out(self) -> None:
        """Count the cycle's deletions before sending any; over the threshold, hold them all.

        Deletions an operator already released (and that failed since) are made without being
        counted again.
        """
        staged = self.ledger.staged(self.spec.name)
        approved = [s for s in staged if s.approved]
        counted = [s for s in staged if not s.approved]
        groups = self.groups.departures() if self.groups is not None else []
        groups_approved = False
        if counted or groups:
            verdict = self._judge(counted, groups=len(groups))
            allowed = not verdict.exceeded or self.state.allow_deletes
            message = verdict.describe()
            if verdict.exceeded and allowed:
                message += "; released by allow-deletes"
            elif verdict.exceeded:
                message += f"; held until `tenant-sync allow-deletes {self.spec.name}`"
            self.check = DeletionCheck(
                verdict=verdict,
                approved=len(approved),
                held=not allowed,
                released=verdict.exceeded and allowed,
                message=message,
            )
            if not allowed:
                if counted:
                    self._hold(counted, message)
                if self.groups is not None:
                    self.groups.hold(groups, message)
                counted, groups = [], []
            elif verdict.exceeded:
                groups_approved = True
                # Released: recorded before any is made, so that one that fails, or a cycle
                # that dies half-way, leaves the rest approved rather than held again.
                counted = [replace(s, approved=True) for s in counted]
                self.tally.add(self.pipeline.write(PageWrite(staged=counted)))
        todo = sorted([*approved, *counted], key=lambda s: s.source_id)
        if todo and self.reports is not None:
            # Only now that the threshold let them through: a held manager keeps its reports.
            self.reports([s.source_id for s in todo])
        for start in range(0, len(todo), DELETION_BATCH):
            self._delete(todo[start : start + DELETION_BATCH])
        if self.groups is not None and groups:
            self.groups.delete(groups, approved=groups_approved)

    def _counted(self) -> list[StagedDeletion]:
        """The staged deletions the threshold counts: all but those already approved."""
        return [s for s in self.ledger.staged(self.spec.name) if not s.approved]

    def _judge(self, staged: Sequence[StagedDeletion], groups: int = 0) -> DeletionVerdict:
        """The threshold's verdict on these deletions (and `groups` provisioned groups to
        delete) with those the job made in the window."""
        threshold = self.spec.deletion_threshold
        start = threshold.window_start(self.clock(), self.state.deletions_approved_at)
        linked = self.ledger.link_count(self.spec.name)
        if self.groups is not None and groups:
            linked += self.groups.linked()
        return threshold.judge(
            pending=len(staged) + groups,
            linked=linked,
            done=self.ledger.deletions_since(self.spec.name, start),
            window_start=start,
        )

    def _hold(self, staged: Sequence[StagedDeletion], message: str) -> None:
        links = self.ledger.links_for(self.spec.name, [s.source_id for s in staged])
        outcomes = []
        for s in staged:
            link = links.get(s.source_id)
            _, steps = self._departure(s, link)
            outcomes.append(
                ObjectOutcome(
                    source_id=s.source_id,
                    source_label=link.source_label if link else "",
                    source_mail=link.source_mail if link else "",
                    action=Action.STAGED_DELETE,
                    status=Status.WARNING,
                    target_id=link.target_id if link else None,
                    reason=f"{s.reason}; {message}",
                    steps=[*steps, Step("export", Status.WARNING, "staged: " + message)],
                )
            )
        self.tally.add(self.pipeline.write(PageWrite(outcomes=outcomes)))

    def _departure(self, staged: StagedDeletion, link: Link | None) -> tuple[Decision, list[Step]]:
        """A deletion decided earlier in the cycle: what it does now, and its steps told again
        on the row that makes (or holds) it, so the log row reads like any other."""
        decision = decide_departure(link, staged.reason, self.spec.policy, deleted=staged.deleted)
        steps = [
            Step(
                "import",
                Status.SUCCESS,
                "gone from the source" if staged.deleted else "read from the source",
            )
        ]
        if not staged.deleted:
            steps.append(Step("scoping", Status.SKIPPED, staged.reason))
        if link is not None:
            steps.append(
                Step("matching", Status.SUCCESS, f"linked to target user {link.target_id}")
            )
        steps.append(processing_step(decision))
        return decision, steps

    def _delete(self, staged: Sequence[StagedDeletion]) -> None:
        ids = [s.source_id for s in staged]
        links = self.ledger.links_for(self.spec.name, ids)
        tasks = []
        for s in staged:
            link = links.get(s.source_id)
            item: SourceItem = SourceRemoval(s.source_id, "deleted")
            decision, steps = self._departure(s, link)
            tasks.append(Task(decision=decision, item=item, link=link, steps=steps))
        done = self.pipeline.worker.carry_out(tasks, unstaged=ids)
        approved = {s.source_id for s in staged if s.approved}
        for outcome in done.write.outcomes:
            outcome.approved = outcome.source_id in approved
        # An approved deletion that failed stays staged, approved: a later cycle makes it
        # without counting it again (its escrow re-reads the user, who may have come back).
        kept = done.failed & approved
        done.write.unstaged = [i for i in ids if i not in kept]
        self.tally.add(self.pipeline.commit(done))
