"""One cycle of one job: lock, read, scope, map, plan, apply, record, advance the cursor.

A full cycle reads the job's groups (assigned scope) and every source user through a fresh delta
round, then sweeps the links it did not see. An incremental cycle reads the groups and users
deltas since the watermark, then the users whose membership changed. Each page's effects are
committed to SQL before the cursor moves past it, so a crash re-processes at most one page and
never skips one. A rejected delta token turns the cycle into a full one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from worker.domain.errors import ResyncRequired, StopSync, SyncError, Transient
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
    empty_counts,
)
from worker.domain.plan import decide
from worker.domain.scope import evaluate_scope
from worker.ports import (
    CursorStore,
    JobLock,
    Ledger,
    MembershipChange,
    Progress,
    RunRecord,
    SourceDirectory,
    TargetDirectory,
    Watermark,
)
from worker.service.apply import Exporter, Task

PENDING_BATCH = 100
SWEEP_BATCH = 200


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

    def outcome_rows(self) -> list[dict[str, Any]]:
        """Every object's outcome (a dry run keeps the skipped ones too), as plain data."""
        return [
            {
                "sourceId": o.source_id,
                "sourceIdentity": o.source_label,
                "targetId": o.target_id,
                "action": o.action.value,
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

    def _is_unique(self, attribute: str, value: str) -> bool:
        return not self.target.find_users(attribute, value, ["id"])

    def run(
        self, *, mode: str = "auto", dry_run: bool = False, trigger: str = "manual"
    ) -> CycleResult:
        """Run one cycle now; raises AlreadyRunning if another one holds the job's lock."""
        with self.lock.hold(self.spec.name):
            return _Cycle(self, requested=mode, dry_run=dry_run, trigger=trigger).execute()


class _Cycle:
    """The state of one running cycle."""

    def __init__(self, service: CycleService, *, requested: str, dry_run: bool, trigger: str):
        self.s = service
        self.spec = service.spec
        self.dry_run = dry_run
        self.trigger = trigger
        self.requested = requested
        self.started = service.monotonic()
        self.cursor = service.cursors.load(self.spec.name)
        self.progress = self._initial_progress()
        self.exporter = Exporter(
            self.spec,
            service.target,
            run_id=self.progress.run_id,
            dry_run=dry_run,
            monotonic=service.monotonic,
        )
        self.mapper = Mapper(self.spec.mappings, service.context)
        self.outcomes: list[ObjectOutcome] = []
        # Dry runs keep what a real run would write in memory instead.
        self.memory_seen: set[str] = set()
        self.assignments = _Assignments(service.ledger, self.spec.name, dry_run=dry_run)
        # A full cycle checks its links against the users the target really has.
        self.target_ids: set[str] | None = None

    # setup --------------------------------------------------------------------------------------
    def _initial_progress(self) -> Progress:
        fingerprint = self.spec.fingerprint
        previous = self.cursor.progress
        if (
            previous is not None
            and not self.dry_run
            and previous.fingerprint == fingerprint
            and self.requested in ("auto", previous.mode)
        ):
            return previous  # resume the interrupted cycle where its last committed page ended
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
            dry_run=self.dry_run,
            trigger=self.trigger,
            started_at=datetime.fromisoformat(p.started_at),
        )
        if not self.dry_run:
            self.s.ledger.start_run(run)
            self._save()
        try:
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
        if p.phase == "sweep":
            self._sweep_phase()

    def _advance(self, phase: str) -> None:
        self.progress.phase = phase
        self.progress.next_link = None
        self._save()

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
        while True:
            page = self.s.source.users_page(url)
            users = sum(1 for item in page.items if isinstance(item, SourceUser))
            p.seen_users += users
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

    def _refuse_empty_source(self) -> None:
        live = self.s.ledger.link_count(self.spec.name)
        if live:
            raise StopSync(
                f"the source returned no users while {live} target users are linked; "
                "refusing to treat that as everyone being deleted"
            )

    def _pending_phase(self) -> None:
        """Users whose group membership changed but whose attributes did not."""
        done: set[str] = set()
        while True:
            if self.dry_run:
                batch = sorted(self.assignments.pending - done)[:PENDING_BATCH]
            else:
                batch = self.s.ledger.pending(self.spec.name, PENDING_BATCH)
            if not batch:
                break
            items: list[SourceItem] = []
            for user_id in batch:
                user = self.s.source.get_user(user_id, self.spec.select)
                items.append(user if user is not None else SourceRemoval(user_id, "deleted"))
            self._process(items, full=False, resolved_pending=batch)
            done.update(batch)
        self._advance("done")

    def _sweep_phase(self) -> None:
        """Links a full read did not see: confirm each user is gone, then deprovision."""
        for links in self._unseen():
            items: list[SourceItem] = []
            for link in links:
                user = self.s.source.get_user(link.source_id, self.spec.select)
                items.append(user if user is not None else SourceRemoval(link.source_id, "deleted"))
            self._process(items, full=True, resolved_pending=[])
        self._advance("done")

    def _unseen(self) -> Any:
        if not self.dry_run:
            yield from self.s.ledger.unseen_links(self.spec.name, self.progress.run_id, SWEEP_BATCH)
            return
        # A dry run marks nothing in SQL; what it saw is in memory.
        for batch in self.s.ledger.unseen_links(self.spec.name, "", SWEEP_BATCH):
            unseen = [link for link in batch if link.source_id not in self.memory_seen]
            if unseen:
                yield unseen

    # one page -----------------------------------------------------------------------------------
    def _process(
        self, items: Sequence[SourceItem], *, full: bool, resolved_pending: Sequence[str]
    ) -> None:
        """Decide for every item of a page, carry the decisions out together, commit the page."""
        spec = self.spec
        # A page names each object once; should a replay repeat one, its latest state wins.
        latest = list({item.id: item for item in items}.values())
        ids = [item.id for item in latest]
        links = self.s.ledger.links_for(spec.name, ids)
        assigned = self._assigned(ids)
        changed_links: dict[str, Link] = {}
        outcomes: list[ObjectOutcome] = []
        tasks: list[Task] = []
        for item in latest:
            link = links.get(item.id)
            if link is not None and self._vanished(link):
                # Gone from the target's users (deleted there by hand, or the tenant was reset):
                # treat it as soft-deleted, so the user is restored if possible, else recreated.
                link = replace(link, state=LinkState.SOFT_DELETED)
                changed_links[item.id] = link
            prepared = self._prepare(item, link, assigned)
            if isinstance(prepared, Task):
                tasks.append(prepared)
            else:
                outcomes.append(prepared)
        for applied in self.exporter.apply(tasks):
            outcomes.append(applied.outcome)
            if applied.link is not None and applied.link_changed:
                changed_links[applied.link.source_id] = applied.link
        for outcome in outcomes:
            self._count(outcome)
        seen = [item.id for item in latest if isinstance(item, SourceUser)] if full else []
        if self.dry_run:
            self.memory_seen.update(seen)
            self.outcomes.extend(outcomes)
        else:
            self.s.ledger.commit_page(
                spec.name,
                self.progress.run_id,
                links=list(changed_links.values()),
                seen=seen,
                outcomes=outcomes,
                resolved_pending=resolved_pending,
            )
            self.outcomes.extend(o for o in outcomes if o.status is not Status.SKIPPED)
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

    def _prepare(
        self, item: SourceItem, link: Link | None, assigned: set[str]
    ) -> Task | ObjectOutcome:
        """Scope, map and decide for one object: the task to carry out, or a failed outcome."""
        steps = [Step("import", Status.SUCCESS, "read from the source")]
        values = None
        redacted: frozenset[str] = frozenset()
        in_scope = False
        reason = ""
        if isinstance(item, SourceUser):
            verdict = evaluate_scope(item, self.spec.scope, assigned=item.id in assigned)
            in_scope, reason = verdict.in_scope, verdict.reason
            steps.append(
                Step(
                    "scoping", Status.SUCCESS if in_scope else Status.SKIPPED, reason or "in scope"
                )
            )
            if in_scope:
                try:
                    mapped = self.mapper.map(item, creating=link is None)
                except ValueError as error:
                    steps.append(Step("processing", Status.FAILURE, str(error)))
                    return ObjectOutcome(
                        source_id=item.id,
                        source_label=item.label,
                        action=_planned_action(link),
                        status=Status.FAILURE,
                        target_id=link.target_id if link else None,
                        reason=f"mapping failed: {error}",
                        error_code="MappingError",
                        error_message=str(error),
                        steps=steps,
                    )
                values, redacted = mapped, mapped.redacted
        decision = decide(
            item,
            link,
            in_scope=in_scope,
            scope_reason=reason,
            values=values,
            policy=self.spec.policy,
        )
        return Task(decision=decision, item=item, link=link, steps=steps, redacted=redacted)

    def _count(self, outcome: ObjectOutcome) -> None:
        counts = self.progress.counts
        counts[outcome.count_key] = counts.get(outcome.count_key, 0) + 1

    # end ----------------------------------------------------------------------------------------
    def _save(self) -> None:
        if not self.dry_run:
            self.cursor.progress = self.progress
            self.s.cursors.save(self.spec.name, self.cursor)

    def _complete(self) -> None:
        if self.dry_run:
            return
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
        run.mode = p.mode
        run.status = status
        run.error = error
        run.counts = dict(p.counts)
        run.finished_at = self.s.clock()
        if not self.dry_run:
            self.s.ledger.finish_run(run)
        return CycleResult(
            job=self.spec.name,
            run_id=p.run_id,
            mode=p.mode,
            dry_run=self.dry_run,
            counts={**empty_counts(), **p.counts},
            duration_s=self.s.monotonic() - self.started,
            status=status,
            error=error,
            transient=transient,
            outcomes=self.outcomes,
        )


class _Assignments:
    """Which users the job's groups assign: SQL as last written, or in memory for a dry run."""

    def __init__(self, ledger: Ledger, job: str, *, dry_run: bool) -> None:
        self.ledger = ledger
        self.job = job
        self.dry_run = dry_run
        self.replaced: set[tuple[str, str]] | None = None
        self.added: set[tuple[str, str]] = set()
        self.removed: set[tuple[str, str]] = set()
        self.removed_groups: set[str] = set()
        self.pending: set[str] = set()

    def replace(self, members: dict[str, set[str]]) -> None:
        if self.dry_run:
            self.replaced = {(g, u) for g, users in members.items() for u in users}
        else:
            self.ledger.replace_assignments(self.job, members)

    def apply(self, changes: Sequence[MembershipChange], removed_groups: Sequence[str]) -> None:
        """Member additions and removals: the users concerned are reviewed this cycle."""
        if not self.dry_run:
            self.ledger.apply_membership_changes(self.job, changes, removed_groups)
            return
        for change in changes:
            pair = (change.group_id, change.member_id)
            (self.added if change.added else self.removed).add(pair)
            (self.removed if change.added else self.added).discard(pair)
            self.pending.add(change.member_id)
        self.removed_groups.update(removed_groups)

    def reconcile(self, members: dict[str, set[str]]) -> None:
        """Turn a fresh reading of every group into additions and removals."""
        current = self._pairs(None)
        wanted = {(g, u) for g, users in members.items() for u in users}
        changes = [MembershipChange(g, u, True) for g, u in sorted(wanted - current)]
        changes += [MembershipChange(g, u, False) for g, u in sorted(current - wanted)]
        self.apply(changes, [])

    def assigned(self, user_ids: Sequence[str]) -> set[str]:
        if not self.dry_run:
            return self.ledger.assigned(self.job, user_ids)
        return {u for _, u in self._pairs(set(user_ids))}

    def _pairs(self, user_ids: set[str] | None) -> set[tuple[str, str]]:
        if self.replaced is not None:
            base = self.replaced
        else:
            base = self.ledger.memberships(self.job, user_ids)
        pairs = (base - self.removed) | self.added
        return {
            (g, u)
            for g, u in pairs
            if g not in self.removed_groups and (user_ids is None or u in user_ids)
        }


def _planned_action(link: Link | None) -> Action:
    if link is None:
        return Action.CREATE
    return Action.RESTORE if link.state is LinkState.SOFT_DELETED else Action.UPDATE
