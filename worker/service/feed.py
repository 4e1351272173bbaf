"""Feeding pages to the pipeline, and adding up what they did.

`PageFeed` turns a list of source objects into a `PageRequest` (which of them the job's groups
assign, which linked users a full cycle found gone from the target) and runs it here. `Tally`
is the one place a cycle adds up a page's outcome — counts, failed ids, outcomes — whether the
page ran inline or on another worker.

A real cycle keeps counts and a bounded sample of the outcomes it reports (the first
`SAMPLE` written objects and up to `SAMPLE` failures), never one object per user: the summary
shows 40 of them and points to `tenant-sync logs` for the rest, and `run --json` reports counts
(docs/performance.md). A dry run keeps every outcome: its `planned` list is the preview.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from worker.domain.job import JobSpec
from worker.domain.model import Link, LinkState, ObjectOutcome, SourceItem, Status, count_keys
from worker.ports import Ledger
from worker.service.page import PageRequest
from worker.service.pipeline import PageOutcome, PagePipeline

SAMPLE = 100  # outcomes a real cycle keeps to report, and failures besides


class Tally:
    """What the cycle has done so far. `counts` is the progress's, saved with the cursor.

    `outcomes` is what the cycle reports: every outcome in a dry run (`report_skipped`), else a
    sample of the objects written or failed; `reported` counts them all."""

    def __init__(
        self,
        counts: dict[str, int],
        *,
        report_skipped: bool,
        on_change: Callable[[], None] | None = None,
        managers: dict[str, str | None] | None = None,
        on_managers: Callable[[], None] | None = None,
        sample: int | None = None,
    ) -> None:
        self.counts = counts
        # The progress's manager references left for the managers phase, saved with it.
        self.managers: dict[str, str | None] = {} if managers is None else managers
        self.on_managers = on_managers
        self.report_skipped = report_skipped
        self.on_change = on_change
        self.outcomes: list[ObjectOutcome] = []
        self.reported = 0
        # A preview lists every planned object; a real cycle's memory must not grow with them.
        self.sample = None if report_skipped else (SAMPLE if sample is None else sample)
        self._failures_kept = 0
        self.failed: set[str] = set()  # failed in this cycle: their escrow waits for the next

    def add(self, page: PageOutcome) -> None:
        for key, count in page.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.failed |= page.failed
        self.managers.update(page.managers)
        if page.managers and self.on_managers is not None:
            # Saved now: a reread's page is not read again after a crash, so what it left
            # for the managers phase must not wait for the phase's end to be kept.
            self.on_managers()
        for outcome in page.outcomes:
            if outcome.status is Status.SKIPPED and not self.report_skipped:
                continue
            self.reported += 1
            self._keep(outcome)
        if self.on_change is not None:
            self.on_change()

    def _keep(self, outcome: ObjectOutcome) -> None:
        if self.sample is None or len(self.outcomes) < self.sample:
            self.outcomes.append(outcome)
        elif outcome.status is Status.FAILURE and self._failures_kept < self.sample:
            # Past the sample, failures are still kept (as many again): they are what an
            # operator reads first.
            self._failures_kept += 1
            self.outcomes.append(outcome)

    def replaced(self, rows: Sequence[ObjectOutcome]) -> None:
        """Rows about to be rewritten in place (the managers phase, docs/manager.md): they no
        longer count, and the new ones are reported instead."""
        for row in rows:
            for key in count_keys(row.action, row.status):
                self.counts[key] = self.counts.get(key, 0) - 1
        self.reported -= sum(
            1 for row in rows if self.report_skipped or row.status is not Status.SKIPPED
        )
        gone = {row.source_id for row in rows}
        self.outcomes = [o for o in self.outcomes if o.source_id not in gone]


class PageFeed:
    def __init__(
        self, spec: JobSpec, *, ledger: Ledger, pipeline: PagePipeline, tally: Tally
    ) -> None:
        self.spec = spec
        self.ledger = ledger
        self.pipeline = pipeline
        self.tally = tally
        # A full cycle checks its links against the users the target really has.
        self.target_ids: Collection[str] | None = None

    def request(
        self, items: Sequence[SourceItem], *, full: bool, resolved_pending: Sequence[str]
    ) -> PageRequest:
        ids = [item.id for item in items]
        vanished: list[str] = []
        links = None
        if self.target_ids is not None:
            links = self.ledger.links_for(self.spec.name, ids)
            vanished = [i for i, link in links.items() if self._vanished(link)]
        return PageRequest(
            items=list(items),
            full=full,
            resolved_pending=list(resolved_pending),
            assigned=sorted(self._assigned(ids)),
            vanished=vanished,
            links=links,
        )

    def process(
        self, items: Sequence[SourceItem], *, full: bool, resolved_pending: Sequence[str]
    ) -> None:
        """One page through the pipeline, here."""
        page = self.request(items, full=full, resolved_pending=resolved_pending)
        self.tally.add(self.pipeline.run(page))

    def _vanished(self, link: Link) -> bool:
        return (
            self.target_ids is not None
            and link.state is not LinkState.SOFT_DELETED
            and link.target_id not in self.target_ids
        )

    def _assigned(self, ids: Sequence[str]) -> set[str]:
        scope = self.spec.scope
        if not scope.assigned_only:
            return set(ids)
        return {i for i in ids if i in scope.user_ids} | self.ledger.assigned(self.spec.name, ids)
