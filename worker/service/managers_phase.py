"""The cycle's managers phase: the manager references its pages could not resolve.

Runs once every page of the cycle is committed (docs/manager.md): a manager created in the same
cycle is linked by then, so its reports' references are written now; a manager still without a
link is out of scope (a warning in the user's log row). Each write joins the user's row of the
cycle, rewritten in place (one row per object per cycle). The reports of managers the cycle
deletes lose their reference, with the same warning, in the deletion phase (`clear_reports`),
once the threshold has let the deletion through: a held deletion leaves them as they are.
What is left is the progress's
`managers`, saved with the cursor after each batch, so a cycle killed here finishes on resume.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from worker.domain.health import Escrow, escrow_after_failure
from worker.domain.job import JobSpec
from worker.domain.manager import wanted_manager
from worker.domain.model import MANAGER, Action, Link, Mode, ObjectOutcome, Status, Step
from worker.ports import Ledger, PageWrite, SourceDirectory, TargetDirectory
from worker.service.feed import Tally
from worker.service.managers import LIVE, ManagerReferences, Reference
from worker.service.pipeline import PagePipeline
from worker.service.position import Position

PHASE_BATCH = 100


class ManagersPhase:
    """The cycle's managers phase: the references its pages left unresolved."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        source: SourceDirectory,
        ledger: Ledger,
        target: TargetDirectory,
        pipeline: PagePipeline,
        tally: Tally,
        position: Position,
        clock: Callable[[], datetime],
    ) -> None:
        self.spec = spec
        self.source = source
        self.ledger = ledger
        self.references = ManagerReferences(spec, ledger=ledger, target=target)
        self.pipeline = pipeline
        self.tally = tally
        self.position = position
        self.clock = clock

    def run(self) -> None:
        # The progress's own dict: what the pages left, saved with the cursor after each batch.
        pending = self.position.progress.managers
        while pending:
            batch = list(pending.items())[:PHASE_BATCH]
            self._settle(batch)
            for source_id, _ in batch:
                pending.pop(source_id, None)
            self.position.save()

    def _settle(self, batch: Sequence[tuple[str, str | None]]) -> None:
        links = self.ledger.links_for(self.spec.name, [source_id for source_id, _ in batch])
        wanted: list[tuple[Link, str | None]] = []
        for source_id, manager in batch:
            link = links.get(source_id)
            if link is None or link.state not in LIVE:
                continue  # failed since, or deprovisioned: nothing to refer from
            if manager is None:
                user = self.source.get_user(source_id, ["id", MANAGER])
                if user is None:
                    continue
                read = wanted_manager(user, complete=True)
                manager = read if isinstance(read, str) else None
            wanted.append((link, manager))
        self._write(wanted)

    def clear_reports(self, deleting: Sequence[str]) -> None:
        """Called by the deletion phase with the users it is about to delete, once the
        threshold let them through (never for a held deletion): their reports lose their
        reference, with the out-of-scope warning, before the manager is deleted. Once removed
        it is not found again, so a deletion phase resumed after a kill does not repeat it."""
        leaving = self.references.leaving(deleting)
        if not leaving:
            return
        managers = self.ledger.links_for(self.spec.name, sorted(leaving))
        by_target = {link.target_id: source_id for source_id, link in managers.items()}
        if not by_target:
            return
        reports = [
            r
            for r in self.ledger.reports_of(self.spec.name, by_target)
            if r.source_id not in leaving
        ]
        for start in range(0, len(reports), PHASE_BATCH):
            batch = reports[start : start + PHASE_BATCH]
            self._write(
                [(link, by_target[link.attributes[MANAGER]]) for link in batch], leaving=leaving
            )

    def _write(
        self, wanted: Sequence[tuple[Link, str | None]], *, leaving: Collection[str] = ()
    ) -> None:
        """Settle the references; each joins the user's row of this cycle, rewritten in place
        (one row per object per cycle), or is the user's only row when it has none yet."""
        progress = self.position.progress
        ids = [link.source_id for link, _ in wanted]
        rows = self.ledger.run_rows(self.spec.name, progress.run_id, ids) if ids else {}
        references = [
            Reference(link=link, wanted=manager, outcome=_row(rows.get(link.source_id), link))
            for link, manager in wanted
        ]
        steps = {r.link.source_id: len(r.outcome.steps) for r in references}
        changed, _ = self.references.settle(
            references, {}, final=True, leaving=leaving, again=progress.mode == Mode.FULL.value
        )
        outcomes = [r.outcome for r in references if len(r.outcome.steps) > steps[r.link.source_id]]
        if outcomes or changed:
            replaced = [rows[o.source_id] for o in outcomes if o.source_id in rows]
            escrows = self._escrows([o for o in outcomes if o.status is Status.FAILURE])
            self.tally.replaced(replaced)
            write = PageWrite(
                links=changed,
                outcomes=outcomes,
                escrows=escrows,
                replaces=[o.source_id for o in replaced],
            )
            self.tally.add(self.pipeline.write(write))

    def _escrows(self, failed: Sequence[ObjectOutcome]) -> list[Escrow]:
        if not failed:
            return []
        previous = self.ledger.escrows_for(self.spec.name, [o.source_id for o in failed])
        now = self.clock()
        escrows = []
        for outcome in failed:
            escrow = escrow_after_failure(
                previous.get(outcome.source_id),
                self.spec.name,
                outcome.source_id,
                outcome.error_message,
                now,
            )
            if escrow is not None:
                escrows.append(escrow)
        return escrows


def _row(logged: ObjectOutcome | None, link: Link) -> ObjectOutcome:
    """The row the phase's step joins: the user's row of this cycle (a copy), or a new one when
    the cycle has not logged the user yet. A step says what the phase added."""
    marker = Step("import", Status.SUCCESS, "manager reference of this cycle")
    if logged is not None:
        row = copy.deepcopy(logged)
        row.steps.append(marker)
        return row
    return ObjectOutcome(
        source_id=link.source_id,
        action=Action.SKIP,
        status=Status.SKIPPED,
        source_label=link.source_label,
        source_mail=link.source_mail,
        target_id=link.target_id,
        steps=[marker],
    )
