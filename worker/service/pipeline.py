"""The page pipeline: one page decided, exported, committed and logged, wherever it runs.

`PagePipeline.run` is the only code that turns a page of source objects into target writes and
one SQL commit; `PagePipeline.commit` is the only code that commits a page's write and logs its
objects (the deletion phase's pages go through it too). The cycle hands its users pages to a
`PageDispatcher`: `InlineDispatcher` runs the pipeline in the cycle's own process; the Celery
dispatcher (worker/adapters/celery_dispatch.py) sends the page to any worker, which runs the same
pipeline there. Either way the cycle gets a `PageOutcome` back and adds it to its tally the same
way, so counts, failures and the outcomes a cycle reports do not depend on where a page ran.
`CommitAheadDispatcher` is the inline one with two pages in flight: a page is exported while the
one before it commits (on a thread of its own), so that the cycle's Graph rounds and its SQL
commits overlap instead of taking turns (docs/performance.md, "Time per created user").
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from worker.domain.errors import Conflict
from worker.domain.job import JobSpec
from worker.domain.mapping import Mapper
from worker.domain.model import Link, ObjectOutcome, Status, Step, add_counts
from worker.domain.plan import REDUNDANT_EXPORT
from worker.domain.records import outcome_from_record, outcome_record
from worker.ports import Ledger, PageWrite
from worker.service.apply import Exporter
from worker.service.page import PageDone, PageRequest, PageWorker

log = structlog.get_logger("tenant_sync.cycle")


@dataclass
class PageOutcome:
    """What one committed page did: its counts, the objects that failed, their outcomes."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    outcomes: list[ObjectOutcome] = field(default_factory=list)
    # Manager references left for the cycle's managers phase (worker/service/managers.py).
    managers: dict[str, str | None] = field(default_factory=dict)

    @staticmethod
    def of(done: PageDone) -> PageOutcome:
        counts: dict[str, int] = {}
        for outcome in done.write.outcomes:
            add_counts(counts, outcome.action, outcome.status)
        return PageOutcome(
            counts=counts,
            failed=set(done.failed),
            outcomes=list(done.write.outcomes),
            managers=dict(done.managers),
        )

    def to_json(self) -> dict[str, Any]:
        """To travel back from another worker. Skipped objects travel as counts only: the
        cycle reports them only in a dry run, whose pages never leave its process."""
        return {
            "counts": self.counts,
            "failed": sorted(self.failed),
            "outcomes": [
                outcome_record(o) for o in self.outcomes if o.status is not Status.SKIPPED
            ],
            "managers": self.managers,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> PageOutcome:
        return PageOutcome(
            counts={str(k): int(v) for k, v in data["counts"].items()},
            failed=set(data["failed"]),
            outcomes=[outcome_from_record(o) for o in data.get("outcomes", [])],
            managers=dict(data.get("managers") or {}),
        )


def _taken(outcome: ObjectOutcome, holder: Link) -> ObjectOutcome:
    """The outcome of a user whose target user another source user was linked to first."""
    who = f"{holder.source_label} ({holder.source_id})" if holder.source_label else holder.source_id
    message = (
        f"target user {holder.target_id} is already linked to source user {who}: two source "
        "users match one target user; fix the source or the matching mappings"
    )
    return replace(
        outcome,
        status=Status.FAILURE,
        error_code="AmbiguousMatch",
        error_message=message,
        target_id=None,
        steps=[*outcome.steps, Step("matching", Status.FAILURE, message)],
    )


def unchanged(outcome: ObjectOutcome) -> bool:
    """A linked user whose target already matches: counted as a skip, never logged."""
    return outcome.status is Status.SKIPPED and outcome.reason == REDUNDANT_EXPORT


class PageNotTaken(Exception):
    """No worker took the page in time (every slot busy): the cycle exports it itself."""


class PageDispatcher(Protocol):
    """Where a cycle's users pages run: here, or on other workers, `window` at a time."""

    window: int  # pages in flight at most

    def submit(self, job: str, run_id: str, page: PageRequest) -> object:
        """Hand the page on; returns a handle to wait on."""

    def wait(self, handle: object) -> PageOutcome:
        """Once the page is committed: what it did. Raises PageNotTaken when no worker started
        it in time (it will not run later), a SyncError when it failed."""

    def abandon(self) -> None:
        """The round stopped with pages in flight (an error): it will not wait for them. Returns
        once no page of this process is still being committed, so that nothing is written
        after the cycle let go of its job's lock."""


class PagePipeline:
    """Decide, export, commit and log pages of one job's cycle."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        run_id: str,
        ledger: Ledger,
        exporter: Exporter,
        mapper: Mapper,
        clock: Callable[[], datetime],
    ) -> None:
        self.spec = spec
        self.run_id = run_id
        self.ledger = ledger
        self.worker = PageWorker(spec, ledger=ledger, exporter=exporter, mapper=mapper, clock=clock)

    def run(self, page: PageRequest) -> PageOutcome:
        return self.commit(self.worker.work(page))

    def commit(self, done: PageDone) -> PageOutcome:
        """Commit a page's write in one transaction, then log its objects.

        An unchanged user leaves no provisioning-log row (docs/performance.md): like Entra's
        logs, the log records changes, failures and skips that say something (out of scope,
        an action turned off), not every linked user each full cycle. It is still counted."""
        write = done.write
        if any(unchanged(o) for o in write.outcomes):
            write = replace(write, outcomes=[o for o in write.outcomes if not unchanged(o)])
        try:
            self.ledger.commit_page(self.spec.name, self.run_id, write)
        except Conflict:
            # Another worker's page, exported at the same time, linked one of this page's
            # target users first (the ledger keeps one source user per target user).
            yielded = self._yield_taken(done)
            if yielded is None:
                raise
            return self.commit(yielded)
        for outcome in done.write.outcomes:
            # Ids, actions and error codes only: attribute values stay in the provisioning log.
            if outcome.status is Status.FAILURE:
                log.warning(
                    "object failed",
                    source_id=outcome.source_id,
                    target_id=outcome.target_id,
                    action=outcome.action.value,
                    error_code=outcome.error_code,
                )
            elif outcome.status is not Status.SKIPPED:
                log.debug(
                    "object exported",
                    source_id=outcome.source_id,
                    target_id=outcome.target_id,
                    action=outcome.action.value,
                )
        return PageOutcome.of(done)

    def _yield_taken(self, done: PageDone) -> PageDone | None:
        """The page without the links whose target user another source user of the job is
        linked to by now: those users fail as AmbiguousMatch and are escrowed, as they would
        have had the other page committed before this one was exported (worker/service/
        apply.py refuses them then). None if no link of the page is taken."""
        write = done.write
        linked = self.ledger.links_by_target(self.spec.name, [x.target_id for x in write.links])
        holders: dict[str, Link] = {}
        for link in write.links:
            others = [x for x in linked.get(link.target_id, []) if x.source_id != link.source_id]
            if others:
                holders[link.source_id] = others[0]
        if not holders:
            return None
        lost = [_taken(o, holders[o.source_id]) for o in write.outcomes if o.source_id in holders]
        escrows, released, expired, failed = self.worker.escrows(lost)
        replaced = {o.source_id: o for o in lost}
        return PageDone(
            write=replace(
                write,
                links=[x for x in write.links if x.source_id not in holders],
                outcomes=[replaced.get(o.source_id, o) for o in write.outcomes] + expired,
                escrows=[*write.escrows, *escrows],
                released=[*(r for r in write.released if r not in holders), *released],
            ),
            failed=done.failed | failed,
            managers=done.managers,
        )

    def write(self, write: PageWrite) -> PageOutcome:
        """Commit a write that carries out nothing (staged deletions, held ones)."""
        return self.commit(PageDone(write=write, failed=set()))


class InlineDispatcher:
    """The pipeline in the cycle's own process, one page at a time."""

    window = 1

    def __init__(self, pipeline: PagePipeline) -> None:
        self.pipeline = pipeline

    def submit(self, job: str, run_id: str, page: PageRequest) -> object:
        return page

    def wait(self, handle: object) -> PageOutcome:
        assert isinstance(handle, PageRequest)
        return self.pipeline.run(handle)

    def abandon(self) -> None:
        pass


class _Commit:
    """A page's commit on a thread of its own, started once the commit before it has ended
    (pages commit in their order)."""

    def __init__(self, commit: Callable[[], PageOutcome], before: _Commit | None) -> None:
        self._commit = commit
        self._before = before
        self._outcome: PageOutcome | None = None
        self._error: BaseException | None = None
        # The cycle's context goes with the commit: its log lines carry the job and run ids.
        context = contextvars.copy_context()
        # A daemon: a process that exits mid-commit loses the page as a crash would (its
        # transaction never commits, the cursor never moved past it).
        self._thread = threading.Thread(
            target=context.run, args=(self._main,), name="page-commit", daemon=True
        )
        self._thread.start()

    def _main(self) -> None:
        before, self._before = self._before, None  # its page is not kept alive by the chain
        if before is not None:
            before.join()
            if before._error is not None:
                # Pages commit in their order: none after a page whose commit failed.
                self._error = before._error
                return
        try:
            self._outcome = self._commit()
        except BaseException as exc:  # handed to the cycle's thread by `result`
            self._error = exc

    def join(self) -> None:
        self._thread.join()

    def result(self) -> PageOutcome:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome


class CommitAheadDispatcher:
    """The pipeline in the cycle's own process, two pages in flight: `submit` decides and
    exports a page here and starts its commit on a thread, so the cycle goes on to read and
    export the next page while this one commits; `wait` returns once it has committed. The
    users round moves the cursor past a page only after `wait`, so a crash loses at most the
    two pages in flight, which the next cycle exports again (they find their links or their
    target users). Needs a ledger that takes a commit and reads from two threads at once (the
    SQL ledger)."""

    window = 2

    def __init__(self, pipeline: PagePipeline) -> None:
        self.pipeline = pipeline
        self._last: _Commit | None = None

    def submit(self, job: str, run_id: str, page: PageRequest) -> object:
        try:
            done = self.pipeline.worker.work(page)
        except BaseException:
            self.abandon()
            raise
        self._last = _Commit(lambda: self.pipeline.commit(done), self._last)
        return self._last

    def wait(self, handle: object) -> PageOutcome:
        assert isinstance(handle, _Commit)
        return handle.result()

    def abandon(self) -> None:
        if self._last is not None:
            self._last.join()  # the commits before it have ended first
