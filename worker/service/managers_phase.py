"""The cycle's managers phase: the manager references its pages could not resolve.

Runs once every page of the cycle is committed (docs/manager.md): a manager created in the same
cycle is linked by then, so its reports' references are written now; a manager still without a
link is out of scope (a warning in the user's log row). What is left is the progress's
`managers`, saved with the cursor after each batch, so a cycle killed here finishes on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from worker.domain.health import Escrow, escrow_after_failure
from worker.domain.job import JobSpec
from worker.domain.manager import MANAGER, wanted_manager
from worker.domain.model import Action, ObjectOutcome, Status, Step
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
        references: list[Reference] = []
        for source_id, manager in batch:
            link = links.get(source_id)
            if link is None or link.state not in LIVE:
                continue  # failed since, or deprovisioned: nothing to refer from
            if manager is None:
                user = self.source.get_user(source_id, ["id", MANAGER])
                if user is None:
                    continue
                wanted = wanted_manager(user, complete=True)
                manager = wanted if isinstance(wanted, str) else None
            references.append(
                Reference(
                    link=link,
                    wanted=manager,
                    outcome=ObjectOutcome(
                        source_id=source_id,
                        action=Action.SKIP,
                        status=Status.SKIPPED,
                        source_label=link.source_label,
                        source_mail=link.source_mail,
                        target_id=link.target_id,
                        steps=[Step("import", Status.SUCCESS, "manager reference of this cycle")],
                    ),
                )
            )
        changed, _ = self.references.settle(references, {}, final=True)
        outcomes = [r.outcome for r in references if r.outcome.status is not Status.SKIPPED]
        if outcomes or changed:
            escrows = self._escrows([o for o in outcomes if o.status is Status.FAILURE])
            self.tally.add(
                self.pipeline.write(PageWrite(links=changed, outcomes=outcomes, escrows=escrows))
            )

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
