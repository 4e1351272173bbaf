"""One cycle of one job: lock, read, scope, map, plan, apply, record, advance the cursor.

A full cycle reads the job's groups (assigned scope) and every source user through a fresh delta
round, then sweeps the links it did not see. An incremental cycle reads the groups and users
deltas since the watermark, then the users whose membership changed. Each page's effects are
committed to SQL before the cursor moves past it, so a crash re-processes at most one page and
never skips one. A rejected delta token turns the cycle into a full one.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from worker.domain.errors import ResyncRequired, StopSync, SyncError, Transient
from worker.domain.health import (
    DeletionVerdict,
    JobState,
    QuarantineReason,
    StagedDeletion,
    after_cycle,
    cycle_verdict,
)
from worker.domain.job import JobSpec
from worker.domain.mapping import EvaluationContext, Mapper
from worker.domain.model import (
    Action,
    Link,
    LinkState,
    Mode,
    ObjectOutcome,
    SourceItem,
    SourceRemoval,
    SourceUser,
    Status,
    Step,
    add_counts,
    empty_counts,
)
from worker.domain.plan import Decision, decide_departure
from worker.ports import (
    CursorStore,
    CycleObserver,
    JobLock,
    JobPaused,
    JobSnapshot,
    Lease,
    Ledger,
    LiveProgress,
    MembershipChange,
    NoLiveProgress,
    NotDue,
    PageWrite,
    Progress,
    RunRecord,
    SourceDirectory,
    TargetDirectory,
    Watermark,
)
from worker.service.apply import Exporter, Task
from worker.service.page import (
    PageDispatcher,
    PageNotTaken,
    PageRequest,
    PageWorker,
    processing_step,
)

log = structlog.get_logger("tenant_sync.cycle")

PENDING_BATCH = 100
SWEEP_BATCH = 200
ESCROW_BATCH = 100
DELETION_BATCH = 100
# Catch-up rounds a cycle reads, at most, before it judges its deletions (see _recheck_phase).
MAX_CATCH_UP_ROUNDS = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class CycleResult:
    job: str
    run_id: str
    mode: str
    dry_run: bool
    counts: dict[str, int]
    duration_s: float
    status: str = "success"
    error: str = ""
    transient: bool = False
    outcomes: list[ObjectOutcome] = field(default_factory=list)
    # The deletion check, when the cycle had deletions to make: `DeletionVerdict.as_dict()`
    # (this cycle's and the staged deletions, those made within the window, the threshold and
    # the window) plus `held` and `message`.
    deletions: dict[str, Any] | None = None

    def outcome_rows(self) -> list[dict[str, Any]]:
        """Every object's outcome (a dry run keeps the skipped ones too), as plain data."""
        return [
            {
                "sourceId": o.source_id,
                "sourceIdentity": o.source_label,
                "targetId": o.target_id,
                "action": o.action.log_name,
                "status": o.status.value,
                "reason": o.reason,
                "errorCode": o.error_code or None,
                "modifiedProperties": {
                    name: {"old": change.old, "new": change.new}
                    for name, change in o.modified.items()
                },
            }
            for o in self.outcomes
        ]

    def summary(self) -> dict[str, Any]:
        """The `run --json` object of DESIGN section 3."""
        return {
            "job": self.job,
            "run_id": self.run_id,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "counts": {key: self.counts.get(key, 0) for key in empty_counts()},
            "duration_s": round(self.duration_s, 3),
        }


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
        self.dispatcher = dispatcher
        self.live: LiveProgress = live or NoLiveProgress()
        # Plain data for the run record and the report: the service behaves the same either
        # way; a dry run is made by wiring adapters that keep their writes (bootstrap).
        self.dry_run = dry_run
        # A preview lists every object, skipped ones too, with the reason.
        self.report_skipped = report_skipped
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
        }
        arguments.update(changes)
        return CycleService(self.spec, **arguments)

    def _is_unique(self, attribute: str, value: str) -> bool:
        return not self.target.find_users(attribute, value, ["id"])

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
            cycle = _Cycle(self, requested=mode, trigger=trigger, state=state, lease=lease)
            with structlog.contextvars.bound_contextvars(
                job_id=self.spec.name, run_id=cycle.progress.run_id
            ):
                log.info(
                    "cycle started",
                    mode=cycle.progress.mode,
                    phase=cycle.progress.phase,
                    trigger=trigger,
                    dry_run=self.dry_run,
                )
                result = cycle.execute()
                log.log(
                    logging.INFO if result.status == "success" else logging.WARNING,
                    "cycle finished",
                    status=result.status,
                    mode=result.mode,
                    counts={k: v for k, v in result.counts.items() if v},
                    duration_s=round(result.duration_s, 3),
                    error=result.error or None,
                )
            self._record_health(result, cycle)
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

    def _record_health(self, result: CycleResult, cycle: _Cycle) -> None:
        try:
            self._save_health(result, cycle)
        except SyncError as failure:
            log.warning("the job's health could not be recorded", error=str(failure))

    def _save_health(self, result: CycleResult, cycle: _Cycle) -> None:
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
        elif cycle.deletions_held:
            error = cycle.deletion_check.get("message", "") if cycle.deletion_check else ""
        self.ledger.save_job_state(
            after_cycle(
                state,
                reason=reason,
                error=error,
                staged_deletes=cycle.deletions_held,
                released_deletions=cycle.deletions_released,
                failed=failed,
                interval=self.spec.interval,
                now=self.clock(),
            )
        )


class _Cycle:
    """The state of one running cycle."""

    def __init__(
        self,
        service: CycleService,
        *,
        requested: str,
        trigger: str,
        state: JobState,
        lease: Lease | None = None,
    ) -> None:
        self.s = service
        self.state = state
        self.lease = lease
        self.spec = service.spec
        self.trigger = trigger
        self.requested = requested
        self.started = service.monotonic()
        self.cursor = service.cursors.load(self.spec.name)
        self.progress = self._initial_progress()
        self.live: LiveProgress = service.live
        self.exporter = Exporter(
            self.spec,
            service.target,
            run_id=self.progress.run_id,
            monotonic=service.monotonic,
            live=self.live,
        )
        self.mapper = Mapper(self.spec.mappings, service.context)
        self.pages = PageWorker(
            self.spec,
            ledger=service.ledger,
            exporter=self.exporter,
            mapper=self.mapper,
            clock=service.clock,
        )
        self.outcomes: list[ObjectOutcome] = []
        self.assignments = _Assignments(service.ledger, self.spec.name)
        # A full cycle checks its links against the users the target really has.
        self.target_ids: set[str] | None = None
        self.deletion_check: dict[str, Any] | None = None
        self.deletions_held = False  # over the threshold: staged, not sent
        self.deletions_released = False  # an operator's allow-deletes was used
        self.cycle_started_at = service.clock()
        self.failed_now: set[str] = set()

    # setup --------------------------------------------------------------------------------------
    def _initial_progress(self) -> Progress:
        fingerprint = self.spec.fingerprint
        previous = self.cursor.progress
        if (
            previous is not None
            and previous.fingerprint == fingerprint
            and self.requested in ("auto", previous.mode)
        ):
            # Resume the interrupted cycle where its last committed page ended. Its counts are
            # what SQL holds for it: the page committed just before the crash may not have
            # reached the counts saved with the cursor.
            previous.counts = {
                **empty_counts(),
                **self.s.ledger.run_counts(self.spec.name, previous.run_id),
            }
            return previous
        return Progress(
            run_id=str(uuid.uuid4()),
            mode=self._choose_mode(fingerprint).value,
            fingerprint=fingerprint,
            phase="groups",
            started_at=self.s.clock().isoformat(),
            counts=empty_counts(),
        )

    def _choose_mode(self, fingerprint: str) -> Mode:
        watermark = self.cursor.watermark
        if self.requested == Mode.FULL or watermark is None or watermark.fingerprint != fingerprint:
            return Mode.FULL
        if self.requested == "auto" and self.spec.full_every is not None:
            last_full = datetime.fromisoformat(watermark.last_full_at)
            if self.s.clock() - last_full >= self.spec.full_every:
                return Mode.FULL
        return Mode.INCREMENTAL

    # the cycle ----------------------------------------------------------------------------------
    def execute(self) -> CycleResult:
        p = self.progress
        run = RunRecord(
            run_id=p.run_id,
            job=self.spec.name,
            mode=p.mode,
            dry_run=self.s.dry_run,
            trigger=self.trigger,
            started_at=datetime.fromisoformat(p.started_at),
        )
        self.live.start(
            self.spec.name, run_id=p.run_id, mode=p.mode, phase=p.phase, read=p.seen_users
        )
        try:
            self.s.ledger.start_run(run)
            self._save()
            try:
                self._run_phases()
            except ResyncRequired:
                if p.mode == Mode.FULL:
                    raise
                # The delta token is no longer valid: only a full read can know the state.
                self.progress = p = Progress(
                    run_id=p.run_id,
                    mode=Mode.FULL.value,
                    fingerprint=p.fingerprint,
                    phase="groups",
                    started_at=p.started_at,
                    counts=p.counts,
                )
                self._save()
                self._run_phases()
        except SyncError as error:
            return self._finish(
                run, status="failed", error=str(error), transient=isinstance(error, Transient)
            )
        except Exception as error:
            self._finish(run, status="failed", error=f"internal error: {error!r}")
            raise
        self._complete()
        return self._finish(run, status="success")

    def _run_phases(self) -> None:
        self.s.source.sign_in()
        self.s.target.sign_in()
        p = self.progress
        full = p.mode == Mode.FULL
        if p.phase == "groups":
            self._groups_phase(full)
        if p.phase == "users":
            self._users_phase(full)
        if p.phase == "pending":
            self._pending_phase()
        if p.phase == "escrow":
            self._escrow_phase()
        if p.phase == "sweep":
            self._sweep_phase()
        if p.phase == "recheck":
            self._recheck_phase()
        if p.phase == "deletions":
            self._deletions_phase()

    def _advance(self, phase: str) -> None:
        self.progress.phase = phase
        self.progress.next_link = None
        self._save()
        self.live.phase(self.spec.name, phase)

    def _groups_phase(self, full: bool) -> None:
        scope = self.spec.scope
        if not (scope.assigned_only and scope.group_ids):
            self._advance("users")
            return
        if scope.nested_groups:
            # Delta cannot see a change deep in a nested group: read the transitive members.
            members = {g: self.s.source.transitive_member_ids(g) for g in scope.group_ids}
            if full:
                self.assignments.replace(members)
            else:
                self.assignments.reconcile(members)
            self._advance("users")
            return
        if full:
            members = {g: set() for g in scope.group_ids}
            url: str | None = self.s.source.groups_delta_start(scope.group_ids)
            while url:
                page = self.s.source.groups_page(url)
                for change in page.changes:
                    if change.group_id in members:
                        bucket = members[change.group_id]
                        (bucket.add if change.added else bucket.discard)(change.member_id)
                url = page.next_link
                if page.delta_link:
                    self.progress.groups_delta_link = page.delta_link
            self.assignments.replace(members)
            self._advance("users")
            return
        watermark = self.cursor.watermark
        url = self.progress.next_link or (watermark.groups_delta_link if watermark else None)
        if url is None:
            raise ResyncRequired("no groups delta link is recorded for this job")
        wanted = set(scope.group_ids)
        while url:
            page = self.s.source.groups_page(url)
            self.assignments.apply(
                [c for c in page.changes if c.group_id in wanted],
                [g for g in page.removed_groups if g in wanted],
            )
            if page.next_link:
                self.progress.next_link = page.next_link
                self._save()
            else:
                self.progress.groups_delta_link = page.delta_link
            url = page.next_link
        self._advance("users")

    def _users_phase(self, full: bool) -> None:
        p = self.progress
        watermark = self.cursor.watermark
        if p.next_link:
            url = p.next_link
        elif full:
            url = self.s.source.users_delta_start(self.spec.select)
        elif watermark is not None:
            url = watermark.users_delta_link
        else:
            raise ResyncRequired("no users delta link is recorded for this job")
        if full:
            self.target_ids = self.s.target.user_ids()
        if self.s.dispatcher is not None:
            self._users_fanned_out(url, full)
            return
        while True:
            page = self.s.source.users_page(url)
            users = sum(1 for item in page.items if isinstance(item, SourceUser))
            p.seen_users += users
            self.live.add(self.spec.name, read=users)
            if full and page.next_link is None and p.seen_users == 0:
                self._refuse_empty_source()
            self._process(
                page.items, full=full, resolved_pending=[] if full else [i.id for i in page.items]
            )
            if page.next_link:
                p.next_link = page.next_link
                self._save()
                url = page.next_link
                continue
            if not page.delta_link:
                raise StopSync("the users delta round ended without a deltaLink")
            p.users_delta_link = page.delta_link
            self._advance("sweep" if full else "pending")
            return

    def _users_fanned_out(self, url: str, full: bool) -> None:
        """The users round with its pages exported by other workers, several at a time.

        Pages may be committed in any order; the cursor moves past a page only when it and every
        page before it are committed, so a crash re-exports at most the pages in flight.
        """
        dispatcher = self.s.dispatcher
        assert dispatcher is not None
        p = self.progress
        in_flight: deque[tuple[object, PageRequest, str | None]] = deque()

        def settle_oldest() -> None:
            handle, request, next_link = in_flight.popleft()
            try:
                counts, failed = dispatcher.wait(handle)
                for key, count in counts.items():
                    p.counts[key] = p.counts.get(key, 0) + count
            except PageNotTaken:
                log.warning("no worker took a page in time: exporting it here")
                done = self.pages.work(request)
                failed = done.failed
                self._commit(done.write)
            self.failed_now |= failed
            if next_link:
                p.next_link = next_link
                self._save()
            if self.s.on_progress:
                self.s.on_progress(p.phase, dict(p.counts))

        while True:
            page = self.s.source.users_page(url)
            users = sum(1 for item in page.items if isinstance(item, SourceUser))
            p.seen_users += users
            self.live.add(self.spec.name, read=users)
            if full and page.next_link is None and p.seen_users == 0:
                self._refuse_empty_source()
            request = self._page_request(
                page.items,
                full=full,
                resolved_pending=[] if full else [i.id for i in page.items],
            )
            handle = dispatcher.submit(self.spec.name, p.run_id, request)
            in_flight.append((handle, request, page.next_link))
            while len(in_flight) >= max(1, dispatcher.window):
                settle_oldest()
            if page.next_link:
                url = page.next_link
                continue
            while in_flight:
                settle_oldest()
            if not page.delta_link:
                raise StopSync("the users delta round ended without a deltaLink")
            p.users_delta_link = page.delta_link
            self._advance("sweep" if full else "pending")
            return

    def _refuse_empty_source(self) -> None:
        live = self.s.ledger.link_count(self.spec.name)
        if live:
            raise StopSync(
                f"the source returned no users while {live} target users are linked; "
                "refusing to treat that as everyone being deleted"
            )

    def _pending_phase(self) -> None:
        """Users whose group membership changed but whose attributes did not."""
        self._pending_users()
        self._advance("escrow")

    def _pending_users(self) -> None:
        done: set[str] = set()
        while True:
            batch = self.s.ledger.pending(self.spec.name, PENDING_BATCH)
            if not batch:
                break
            items: list[SourceItem] = []
            for user_id in batch:
                user = self.s.source.get_user(user_id, self.spec.select)
                items.append(user if user is not None else SourceRemoval(user_id, "deleted"))
            self._process(items, full=False, resolved_pending=batch)
            done.update(batch)

    def _sweep_phase(self) -> None:
        """Links a full read did not see: confirm each user is gone, then deprovision."""
        for links in self._unseen():
            items: list[SourceItem] = []
            for link in links:
                user = self.s.source.get_user(link.source_id, self.spec.select)
                items.append(user if user is not None else SourceRemoval(link.source_id, "deleted"))
            self._process(items, full=True, resolved_pending=[])
        self._advance("recheck")

    def _escrow_phase(self) -> None:
        """Objects whose export failed before and whose next attempt is due."""
        # What failed in this very cycle waits for the next one.
        done: set[str] = set(self.failed_now)
        while True:
            due = self.s.ledger.due_escrows(
                self.spec.name, self.cycle_started_at, ESCROW_BATCH + len(done)
            )
            batch = [source_id for source_id in due if source_id not in done][:ESCROW_BATCH]
            if not batch:
                break
            items: list[SourceItem] = []
            for source_id in batch:
                user = self.s.source.get_user(source_id, self.spec.select)
                items.append(user if user is not None else SourceRemoval(source_id, "deleted"))
            self._process(items, full=False, resolved_pending=[])
            done.update(batch)
        self._advance("recheck")

    def _recheck_phase(self) -> None:
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
            self._catch_up()
            if {s.source_id for s in self._counted()} <= before:
                break  # nothing more to delete: the view is current enough
        self._advance("deletions")

    def _catch_up(self) -> None:
        """One incremental pass from the cycle's new deltaLinks: groups, users, changed members."""
        p = self.progress
        scope = self.spec.scope
        if scope.assigned_only and scope.group_ids:
            if scope.nested_groups:
                self.assignments.reconcile(
                    {g: self.s.source.transitive_member_ids(g) for g in scope.group_ids}
                )
            elif p.groups_delta_link is not None:
                wanted = set(scope.group_ids)
                url: str | None = p.groups_delta_link
                while url:
                    group_page = self.s.source.groups_page(url)
                    self.assignments.apply(
                        [c for c in group_page.changes if c.group_id in wanted],
                        [g for g in group_page.removed_groups if g in wanted],
                    )
                    if group_page.delta_link:
                        p.groups_delta_link = group_page.delta_link
                    url = group_page.next_link
        url = p.users_delta_link
        while url:
            page = self.s.source.users_page(url)
            users = sum(1 for item in page.items if isinstance(item, SourceUser))
            p.seen_users += users
            self.live.add(self.spec.name, read=users)
            self._process(page.items, full=False, resolved_pending=[i.id for i in page.items])
            if page.delta_link:
                p.users_delta_link = page.delta_link
            url = page.next_link
        # Replays are harmless, so a crash here just reads the pass again from the saved links.
        self._save()
        self._pending_users()

    def _judge(self, staged: Sequence[StagedDeletion]) -> DeletionVerdict:
        """The threshold's verdict on these deletions with those the job made in the window."""
        threshold = self.spec.deletion_threshold
        start = threshold.window_start(self.s.clock(), self.state.deletions_approved_at)
        return threshold.judge(
            pending=len(staged),
            linked=self.s.ledger.link_count(self.spec.name),
            done=self.s.ledger.deletions_since(self.spec.name, start),
            window_start=start,
        )

    def _deletions_phase(self) -> None:
        """Count the cycle's deletions before sending any; over the threshold, hold them all.

        Deletions an operator already released (and that failed since) are made without being
        counted again.
        """
        staged = self._staged()
        approved = [s for s in staged if s.approved]
        counted = [s for s in staged if not s.approved]
        if counted:
            verdict = self._judge(counted)
            allowed = not verdict.exceeded or self.state.allow_deletes
            message = verdict.describe()
            if verdict.exceeded and allowed:
                message += "; released by allow-deletes"
            elif verdict.exceeded:
                message += f"; held until `tenant-sync allow-deletes {self.spec.name}`"
            self.deletion_check = {
                **verdict.as_dict(),
                "approved": len(approved),
                "held": not allowed,
                "message": message,
            }
            if not allowed:
                self.deletions_held = True
                self._hold(counted, message)
                counted = []
            elif verdict.exceeded:
                # Released: recorded before any is made, so that one that fails, or a cycle
                # that dies half-way, leaves the rest approved rather than held again.
                self.deletions_released = True
                counted = [replace(s, approved=True) for s in counted]
                self._commit(PageWrite(staged=counted))
        todo = sorted([*approved, *counted], key=lambda s: s.source_id)
        for start in range(0, len(todo), DELETION_BATCH):
            self._delete(todo[start : start + DELETION_BATCH])
        self._advance("done")

    def _counted(self) -> list[StagedDeletion]:
        """The staged deletions the threshold counts: all but those already approved."""
        return [s for s in self._staged() if not s.approved]

    def _staged(self) -> list[StagedDeletion]:
        return self.s.ledger.staged(self.spec.name)

    def _hold(self, staged: Sequence[StagedDeletion], message: str) -> None:
        links = self.s.ledger.links_for(self.spec.name, [s.source_id for s in staged])
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
        self._commit(PageWrite(outcomes=outcomes))

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
        links = self.s.ledger.links_for(self.spec.name, ids)
        tasks = []
        for s in staged:
            link = links.get(s.source_id)
            item: SourceItem = SourceRemoval(s.source_id, "deleted")
            decision, steps = self._departure(s, link)
            tasks.append(Task(decision=decision, item=item, link=link, steps=steps))
        done = self.pages.carry_out(tasks, unstaged=ids)
        approved = {s.source_id for s in staged if s.approved}
        for outcome in done.write.outcomes:
            outcome.approved = outcome.source_id in approved
        # An approved deletion that failed stays staged, approved: a later cycle makes it
        # without counting it again (its escrow re-reads the user, who may have come back).
        kept = done.failed & approved
        done.write.unstaged = [i for i in ids if i not in kept]
        self.failed_now |= done.failed
        self._commit(done.write)

    def _unseen(self) -> Any:
        yield from self.s.ledger.unseen_links(self.spec.name, self.progress.run_id, SWEEP_BATCH)

    # one page -----------------------------------------------------------------------------------
    def _process(
        self, items: Sequence[SourceItem], *, full: bool, resolved_pending: Sequence[str]
    ) -> None:
        """Decide for every item of a page, carry the decisions out together, commit the page."""
        done = self.pages.work(
            self._page_request(items, full=full, resolved_pending=resolved_pending)
        )
        self.failed_now |= done.failed
        self._commit(done.write)

    def _page_request(
        self, items: Sequence[SourceItem], *, full: bool, resolved_pending: Sequence[str]
    ) -> PageRequest:
        ids = [item.id for item in items]
        vanished: list[str] = []
        if self.target_ids is not None:
            links = self.s.ledger.links_for(self.spec.name, ids)
            vanished = [i for i, link in links.items() if self._vanished(link)]
        return PageRequest(
            items=list(items),
            full=full,
            resolved_pending=list(resolved_pending),
            assigned=sorted(self._assigned(ids)),
            vanished=vanished,
        )

    def _commit(self, write: PageWrite) -> None:
        for outcome in write.outcomes:
            self._count(outcome)
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
        self.s.ledger.commit_page(self.spec.name, self.progress.run_id, write)
        self.outcomes.extend(
            o for o in write.outcomes if self.s.report_skipped or o.status is not Status.SKIPPED
        )
        if self.s.on_progress:
            self.s.on_progress(self.progress.phase, dict(self.progress.counts))

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
        return {i for i in ids if i in scope.user_ids} | self.assignments.assigned(ids)

    def _count(self, outcome: ObjectOutcome) -> None:
        add_counts(self.progress.counts, outcome.action, outcome.status)

    # end ----------------------------------------------------------------------------------------
    def _save(self) -> None:
        self.cursor.progress = self.progress
        self.s.cursors.save(self.spec.name, self.cursor, self.lease)

    def _complete(self) -> None:
        p = self.progress
        now = self.s.clock().isoformat()
        previous = self.cursor.watermark
        if p.users_delta_link is None:
            raise StopSync("the cycle ended without a users delta link")
        self.cursor.watermark = Watermark(
            users_delta_link=p.users_delta_link,
            groups_delta_link=p.groups_delta_link
            or (previous.groups_delta_link if previous else None),
            fingerprint=p.fingerprint,
            completed_at=now,
            last_full_at=now
            if p.mode == Mode.FULL
            else (previous.last_full_at if previous else now),
        )
        self.cursor.progress = None
        self.s.cursors.save(self.spec.name, self.cursor)

    def _finish(
        self, run: RunRecord, *, status: str, error: str = "", transient: bool = False
    ) -> CycleResult:
        p = self.progress
        self.live.finish(self.spec.name)
        run.mode = p.mode
        run.status = status
        run.error = error
        run.counts = dict(p.counts)
        run.finished_at = self.s.clock()
        try:
            self.s.ledger.finish_run(run)
        except SyncError as failure:
            # The state database is gone too: the result still reaches the caller, and the
            # run, left open, is resumed by the next cycle from the saved position.
            log.warning("the end of the run could not be recorded", error=str(failure))
            if status == "success":
                status, error, transient = "failed", str(failure), True
        return CycleResult(
            job=self.spec.name,
            run_id=p.run_id,
            mode=p.mode,
            dry_run=self.s.dry_run,
            counts={**empty_counts(), **p.counts},
            duration_s=self.s.monotonic() - self.started,
            status=status,
            error=error,
            transient=transient,
            outcomes=self.outcomes,
            deletions=self.deletion_check,
        )


class _Assignments:
    """Which users the job's groups assign, as the ledger last recorded them."""

    def __init__(self, ledger: Ledger, job: str) -> None:
        self.ledger = ledger
        self.job = job

    def replace(self, members: dict[str, set[str]]) -> None:
        self.ledger.replace_assignments(self.job, members)

    def apply(self, changes: Sequence[MembershipChange], removed_groups: Sequence[str]) -> None:
        """Member additions and removals: the users concerned are reviewed this cycle."""
        self.ledger.apply_membership_changes(self.job, changes, removed_groups)

    def reconcile(self, members: dict[str, set[str]]) -> None:
        """Turn a fresh reading of every group into additions and removals."""
        current = self.ledger.memberships(self.job)
        wanted = {(g, u) for g, users in members.items() for u in users}
        changes = [MembershipChange(g, u, True) for g, u in sorted(wanted - current)]
        changes += [MembershipChange(g, u, False) for g, u in sorted(current - wanted)]
        self.apply(changes, [])

    def assigned(self, user_ids: Sequence[str]) -> set[str]:
        return self.ledger.assigned(self.job, user_ids)
