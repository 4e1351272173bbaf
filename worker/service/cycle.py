"""One cycle of one job: lock, read, scope, map, plan, apply, record, advance the cursor.

A full cycle reads the job's groups (assigned scope) and every source user through a fresh delta
round, then sweeps the links it did not see. An incremental cycle reads the groups and users
deltas since the watermark, then the users whose membership changed and the escrows due. Each
page's effects are committed to SQL before the cursor moves past it, so a crash re-processes at
most one page (or the pages in flight, fanned out) and never skips one. `CycleService` takes the
lock, builds the cycle's pieces from its collaborators (see `cycle_run.py` and the modules it
names) and records the job's health afterwards. It knows nothing of dry runs: a dry run is this
same service wired to adapters that keep their writes (worker/adapters/dryrun.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from worker.domain.errors import SyncError
from worker.domain.health import JobState, QuarantineReason, after_cycle, cycle_verdict
from worker.domain.job import JobSpec
from worker.domain.mapping import EvaluationContext, Mapper
from worker.ports import (
    CursorStore,
    CycleObserver,
    JobLock,
    JobPaused,
    JobSnapshot,
    Lease,
    Ledger,
    LiveProgress,
    NoLiveProgress,
    NotDue,
    RunRecord,
    SourceDirectory,
    TargetDirectory,
)
from worker.service.apply import Exporter
from worker.service.cycle_run import CycleRun
from worker.service.deletions import DeletionCheck, Deletions
from worker.service.feed import PageFeed, Tally
from worker.service.group_provision import GroupProvisioner
from worker.service.groups import GroupsRead
from worker.service.managers_phase import ManagersPhase
from worker.service.pipeline import (
    CommitAheadDispatcher,
    InlineDispatcher,
    PageDispatcher,
    PagePipeline,
)
from worker.service.position import starting_position
from worker.service.rereads import Rereads
from worker.service.result import CycleResult
from worker.service.users_round import UsersRound

__all__ = ["CycleResult", "CycleService", "ProgressListener"]

log = structlog.get_logger("tenant_sync.cycle")


def utcnow() -> datetime:
    return datetime.now(UTC)


ProgressListener = Callable[[str, dict[str, int]], None]


class CycleService:
    def __init__(
        self,
        spec: JobSpec,
        *,
        source: SourceDirectory,
        target: TargetDirectory,
        cursors: CursorStore,
        lock: JobLock,
        ledger: Ledger,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        context: EvaluationContext | None = None,
        on_progress: ProgressListener | None = None,
        observers: Sequence[CycleObserver] = (),
        dispatcher: PageDispatcher | None = None,
        live: LiveProgress | None = None,
        dry_run: bool = False,
        report_skipped: bool = False,
        commit_ahead: bool = False,
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.cursors = cursors
        self.lock = lock
        self.ledger = ledger
        self.clock = clock
        self.monotonic = monotonic
        # SelectUniqueValue asks the target whether a candidate value is free.
        self.context = context or EvaluationContext(now=clock, is_unique=self._is_unique)
        self.on_progress = on_progress
        self.observers = list(observers)
        # Where the users round's pages run (None: here, one at a time).
        self.dispatcher = dispatcher
        self.live: LiveProgress = live or NoLiveProgress()
        # Plain data for the run record and the report: the service behaves the same either
        # way; a dry run is made by wiring adapters that keep their writes (bootstrap).
        self.dry_run = dry_run
        # A preview lists every object, skipped ones too, with the reason.
        self.report_skipped = report_skipped
        # With no dispatcher: export a page while the one before it commits (on a ledger
        # that takes two threads at once: worker/service/pipeline.py, CommitAheadDispatcher).
        self.commit_ahead = commit_ahead
        self._given_context = context

    def rewired(self, **changes: Any) -> CycleService:
        """The same service with some collaborators replaced (a dry run's adapters)."""
        arguments: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "cursors": self.cursors,
            "lock": self.lock,
            "ledger": self.ledger,
            "clock": self.clock,
            "monotonic": self.monotonic,
            "context": self._given_context,
            "on_progress": self.on_progress,
            "observers": self.observers,
            "dispatcher": self.dispatcher,
            "live": self.live,
            "dry_run": self.dry_run,
            "report_skipped": self.report_skipped,
            "commit_ahead": self.commit_ahead,
        }
        arguments.update(changes)
        return CycleService(self.spec, **arguments)

    def _is_unique(self, attribute: str, value: str) -> bool:
        return not self.target.find_users(attribute, value, ["id"])

    def _inline(self, pipeline: PagePipeline) -> PageDispatcher:
        return CommitAheadDispatcher(pipeline) if self.commit_ahead else InlineDispatcher(pipeline)

    def pipeline(self, run_id: str) -> PagePipeline:
        """The page pipeline of one run of this job, on this service's collaborators."""
        exporter = Exporter(
            self.spec,
            self.target,
            ledger=self.ledger,
            run_id=run_id,
            monotonic=self.monotonic,
            live=self.live,
        )
        return PagePipeline(
            self.spec,
            run_id=run_id,
            ledger=self.ledger,
            exporter=exporter,
            mapper=Mapper(self.spec.mappings, self.context),
            clock=self.clock,
        )

    def run(self, *, mode: str = "auto", trigger: str = "manual") -> CycleResult:
        """Run one cycle now.

        Raises AlreadyRunning if another cycle holds the job's lock, JobPaused if the job is
        paused, and NotDue for a scheduled cycle of a quarantined job whose next attempt is later.
        """
        state = self.ledger.job_state(self.spec.name)
        if state.paused:
            raise JobPaused(f"job {self.spec.name!r} is paused (tenant-sync resume to go on)")
        now = self.clock()
        # Only a person's request runs a quarantined job before its next attempt; a worker
        # resuming a killed cycle waits like the schedule does.
        unattended = trigger in ("schedule", "resume")
        if unattended and state.next_attempt_at and now < state.next_attempt_at:
            raise NotDue(
                f"job {self.spec.name!r} is in quarantine ({state.quarantine_reason}); "
                f"next attempt at {state.next_attempt_at.isoformat()}"
            )
        with self.lock.hold(self.spec.name) as lease:
            cycle = self._cycle(requested=mode, trigger=trigger, state=state, lease=lease)
            progress = cycle.position.progress
            with structlog.contextvars.bound_contextvars(
                job_id=self.spec.name, run_id=progress.run_id
            ):
                log.info(
                    "cycle started",
                    mode=progress.mode,
                    phase=progress.phase.value,
                    trigger=trigger,
                    dry_run=self.dry_run,
                )
                result = cycle.execute()
                # The one line that tells a cycle's end (the Celery task does not repeat it).
                log.log(
                    logging.INFO if result.status == "success" else logging.WARNING,
                    "cycle finished",
                    status=result.status,
                    mode=result.mode,
                    trigger=trigger,
                    counts={k: v for k, v in result.counts.items() if v},
                    duration_s=round(result.duration_s, 3),
                    error=result.error or None,
                )
            # An approval the cycle started with is spent once its deletion phase has run,
            # whether it released anything or not (docs/safety.md): it never waits for a later,
            # unrelated mass deletion.
            spent = state.allow_deletes and result.status == "success"
            self._record_health(result, result.deletion_check, approval_spent=spent)
            snapshot = self._snapshot(result, previous=state)
            for observer in self.observers:
                observer.cycle_finished(
                    job=self.spec.name,
                    mode=result.mode,
                    status=result.status,
                    counts=result.counts,
                    duration_s=result.duration_s,
                    snapshot=snapshot,
                )
            return result

    def _cycle(self, *, requested: str, trigger: str, state: JobState, lease: Lease) -> CycleRun:
        """The cycle's pieces, each given the collaborators it needs."""
        started = self.monotonic()
        spec, ledger, source = self.spec, self.ledger, self.source
        position = starting_position(
            spec,
            requested=requested,
            cursors=self.cursors,
            ledger=ledger,
            live=self.live,
            lease=lease,
            clock=self.clock,
        )
        progress = position.progress
        pipeline = self.pipeline(progress.run_id)
        listener = self.on_progress

        def progressed() -> None:
            if listener is not None:
                listener(position.progress.phase.value, dict(position.progress.counts))

        tally = Tally(
            progress.counts,
            report_skipped=self.report_skipped,
            on_change=progressed,
            managers=progress.managers,
            on_managers=position.save,
        )
        feed = PageFeed(spec, ledger=ledger, pipeline=pipeline, tally=tally)
        groups = GroupsRead(spec, source=source, ledger=ledger, position=position)
        users = UsersRound(
            spec,
            source=source,
            target=self.target,
            ledger=ledger,
            position=position,
            feed=feed,
            dispatcher=self.dispatcher or self._inline(pipeline),
            live=self.live,
        )
        rereads = Rereads(
            spec,
            source=source,
            ledger=ledger,
            feed=feed,
            run_id=progress.run_id,
            started_at=self.clock(),
        )
        provisioner = GroupProvisioner(
            spec,
            source=source,
            target=self.target,
            ledger=ledger,
            pipeline=pipeline,
            tally=tally,
            monotonic=self.monotonic,
        )
        managers = ManagersPhase(
            spec,
            source=source,
            ledger=ledger,
            target=self.target,
            pipeline=pipeline,
            tally=tally,
            position=position,
            clock=self.clock,
        )
        run = CycleRun(
            job=spec.name,
            source=source,
            target=self.target,
            ledger=ledger,
            live=self.live,
            position=position,
            groups=groups,
            users=users,
            rereads=rereads,
            managers=managers,
            deletions=Deletions(
                spec,
                ledger=ledger,
                state=state,
                pipeline=pipeline,
                tally=tally,
                clock=self.clock,
                catch_up=lambda: run.catch_up(),
                groups=provisioner,
                reports=managers.clear_reports,
            ),
            provisioner=provisioner,
            tally=tally,
            run=RunRecord(
                run_id=progress.run_id,
                job=spec.name,
                mode=progress.mode,
                dry_run=self.dry_run,
                trigger=trigger,
                started_at=datetime.fromisoformat(progress.started_at),
            ),
            clock=self.clock,
            elapsed=lambda: self.monotonic() - started,
        )
        return run

    def _snapshot(self, result: CycleResult, *, previous: JobState) -> JobSnapshot | None:
        try:
            state = self.ledger.job_state(self.spec.name)
            code = "Paused" if state.paused else "Quarantine" if state.in_quarantine else "Active"
            return JobSnapshot(
                job=self.spec.name,
                code=code,
                escrows=self.ledger.escrow_count(self.spec.name),
                staged_deletes=len(self.ledger.staged(self.spec.name)),
                run_id=result.run_id,
                error=result.error,
                previous=previous,
                state=state,
                deletions=result.deletions,
            )
        except SyncError:
            return None

    def _record_health(
        self, result: CycleResult, deletions: DeletionCheck | None, *, approval_spent: bool
    ) -> None:
        try:
            self._save_health(result, deletions, approval_spent=approval_spent)
        except SyncError as failure:
            log.warning("the job's health could not be recorded", error=str(failure))

    def _save_health(
        self, result: CycleResult, deletions: DeletionCheck | None, *, approval_spent: bool
    ) -> None:
        # Read again: an operator may have paused or released the job while the cycle ran.
        state = self.ledger.job_state(self.spec.name)
        failed = result.status != "success"
        reason = cycle_verdict(
            result.counts,
            failed_as_a_whole=failed,
            transient=result.transient,
            failures_before=state.failures,
        )
        error = result.error
        if reason is QuarantineReason.ESCROW_PROPORTION:
            error = f"{result.counts.get('failure', 0)} of the cycle's exports failed"
        elif deletions is not None and deletions.held:
            error = deletions.message
        self.ledger.save_job_state(
            after_cycle(
                state,
                reason=reason,
                error=error,
                staged_deletes=deletions is not None and deletions.held,
                released_deletions=deletions is not None and deletions.released,
                approval_spent=approval_spent,
                failed=failed,
                interval=self.spec.interval,
                now=self.clock(),
            )
        )
