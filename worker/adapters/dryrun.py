"""Dry runs at the I/O boundary: adapters that read for real and keep every write in memory.

A dry run is an ordinary cycle of the service wired to these adapters instead of the real ones
(see `dry_run_cycle`): the service has no notion of a dry run, so the preview plans exactly what
a real run of the same state would. What it writes stays in this process and is gone with it:

- `DryRunLedger` lays the cycle's writes over the real ledger: reads see the base as it is plus
  the writes made so far, as the SQL ledger would after committing them; nothing reaches SQL
  (no run record, no provisioning-log row, no link, escrow or staged deletion).
- `DryRunTarget` passes reads (lookups, matching, the full cycle's user ids) to the real target
  and answers every write without sending it: an invitation with a placeholder id and
  `simulated=True`, the other writes with `Simulated`, so the outcome says "would invite".
- `DryRunCursors` starts from the real watermark but never from a real run's saved progress,
  and never moves the real cursor.
- no live progress, no observers (nobody is told of a preview; metrics do not count it).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.domain.health import Escrow, JobState, StagedDeletion, WindowDeletions
from worker.domain.model import (
    Action,
    Link,
    LinkState,
    ObjectOutcome,
    Status,
    TargetUser,
    add_counts,
)
from worker.ports import (
    Cursor,
    CursorStore,
    DeleteUser,
    Invitation,
    Invite,
    Lease,
    Ledger,
    MembershipChange,
    NoLiveProgress,
    PageWrite,
    PatchUser,
    RestoreUser,
    RunRecord,
    Simulated,
    TargetDirectory,
    TargetRequest,
)
from worker.service.cycle import CycleService

DRY_RUN_ID = "(dry run)"
WRITES = (Invite, PatchUser, DeleteUser, RestoreUser)
LIVE = (LinkState.ACTIVE, LinkState.DISABLED)


def dry_run_cycle(service: CycleService) -> CycleService:
    """The same cycle of the same job, with its writes kept at the boundary."""
    return service.rewired(
        target=DryRunTarget(service.target),
        ledger=DryRunLedger(service.ledger),
        cursors=DryRunCursors(service.cursors),
        live=NoLiveProgress(),
        observers=(),
        # Pages sent to other workers would meet the real adapters there.
        dispatcher=None,
        dry_run=True,
        report_skipped=True,
    )


class DryRunTarget:
    """The real target for reads; writes are answered "would do" and never sent."""

    def __init__(self, base: TargetDirectory) -> None:
        self.base = base

    def sign_in(self) -> None:
        self.base.sign_in()

    def execute(self, requests: Sequence[TargetRequest]) -> list[Any]:
        answers: list[Any] = [None] * len(requests)
        reads = [i for i, r in enumerate(requests) if not isinstance(r, WRITES)]
        if reads:
            found = self.base.execute([requests[i] for i in reads])
            for i, answer in zip(reads, found, strict=True):
                answers[i] = answer
        for i, request in enumerate(requests):
            if isinstance(request, Invite):
                answers[i] = Invitation(user_id=DRY_RUN_ID, status="dry run", simulated=True)
            elif isinstance(request, WRITES):
                answers[i] = Simulated(request)
        return answers

    def find_users(self, attribute: str, value: str, select: Sequence[str]) -> list[TargetUser]:
        return self.base.find_users(attribute, value, select)

    def user_ids(self) -> set[str]:
        return self.base.user_ids()


class DryRunCursors:
    """The real watermark to start from; the cycle's own saves stay in memory."""

    def __init__(self, base: CursorStore) -> None:
        self.base = base
        self.saved: dict[str, Cursor] = {}

    def load(self, job: str) -> Cursor:
        if job in self.saved:
            return copy.deepcopy(self.saved[job])
        # A real run's saved progress is that run's to resume, not a preview's.
        return Cursor(watermark=self.base.load(job).watermark, progress=None)

    def save(self, job: str, cursor: Cursor, lease: Lease | None = None) -> None:
        self.saved[job] = copy.deepcopy(cursor)

    def clear(self, job: str) -> None:
        self.saved.pop(job, None)


@dataclass
class _Overlay:
    """One job's writes since the dry run began."""

    links: dict[str, Link] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # source id -> run id marked seen
    log: list[tuple[str, ObjectOutcome, datetime]] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)
    escrows: dict[str, Escrow] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    escrows_cleared: bool = False
    staged: dict[str, StagedDeletion] = field(default_factory=dict)
    unstaged: set[str] = field(default_factory=set)
    staged_cleared: bool = False
    replaced: set[tuple[str, str]] | None = None  # the assignments, when rewritten whole
    added: set[tuple[str, str]] = field(default_factory=set)
    removed: set[tuple[str, str]] = field(default_factory=set)
    state: JobState | None = None


class DryRunLedger:
    """The real ledger with this process's writes laid over it; SQL is never written."""

    def __init__(self, base: Ledger, clock: Any = None) -> None:
        self.base = base
        self.clock = clock or (lambda: datetime.now(UTC))
        self.runs: dict[str, RunRecord] = {}
        self._jobs: dict[str, _Overlay] = {}

    def _o(self, job: str) -> _Overlay:
        return self._jobs.setdefault(job, _Overlay())

    # runs -------------------------------------------------------------------------------------
    def start_run(self, run: RunRecord) -> None:
        self.runs[run.run_id] = copy.deepcopy(run)

    def finish_run(self, run: RunRecord) -> None:
        self.runs[run.run_id] = copy.deepcopy(run)

    def run_counts(self, job: str, run_id: str) -> dict[str, int]:
        counts = self.base.run_counts(job, run_id)
        for rid, outcome, _ in self._o(job).log:
            if rid == run_id:
                add_counts(counts, outcome.action, outcome.status)
        return counts

    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        mine = [r for r in self.runs.values() if r.job == job]
        runs = mine + self.base.recent_runs(job, limit)
        return sorted(runs, key=lambda r: r.started_at, reverse=True)[:limit]

    # links ------------------------------------------------------------------------------------
    def _effective(self, o: _Overlay, link: Link) -> Link:
        seen = o.seen.get(link.source_id)
        return dataclasses.replace(link, last_seen_run=seen) if seen is not None else link

    def links_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Link]:
        o = self._o(job)
        ids = list(dict.fromkeys(source_ids))
        found = self.base.links_for(job, [i for i in ids if i not in o.links])
        found.update({i: copy.deepcopy(o.links[i]) for i in ids if i in o.links})
        return {i: self._effective(o, link) for i, link in found.items()}

    def link_count(self, job: str) -> int:
        o = self._o(job)
        before = self.base.links_for(job, list(o.links))
        live_before = sum(1 for link in before.values() if link.state in LIVE)
        live_now = sum(1 for link in o.links.values() if link.state in LIVE)
        return self.base.link_count(job) - live_before + live_now

    def unseen_links(self, job: str, run_id: str, batch: int) -> Iterator[list[Link]]:
        o = self._o(job)
        for links in self.base.unseen_links(job, run_id, batch):
            ids = [link.source_id for link in links]
            current = self.links_for(job, ids)
            unseen = [
                current[i]
                for i in ids
                if i in current and current[i].state in LIVE and current[i].last_seen_run != run_id
            ]
            if unseen:
                yield unseen
        # Links this run created, which the base has never seen.
        base = self.base.links_for(job, list(o.links))
        new = [
            self._effective(o, link)
            for i, link in sorted(o.links.items())
            if i not in base and link.state in LIVE
        ]
        new = [link for link in new if link.last_seen_run != run_id]
        for start in range(0, len(new), batch):
            yield new[start : start + batch]

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        """What the SQL ledger's commit does, in memory."""
        o = self._o(job)
        now = self.clock()
        if write.links:
            before = self.links_for(job, [link.source_id for link in write.links])
            for link in write.links:
                stored = copy.deepcopy(link)
                existing = before.get(link.source_id)
                if existing is not None:
                    stored.source_label = link.source_label or existing.source_label
                    stored.source_mail = link.source_mail or existing.source_mail
                o.links[link.source_id] = stored
                o.seen.pop(link.source_id, None)
        for source_id in write.seen:
            o.seen[source_id] = run_id
        o.log.extend((run_id, copy.deepcopy(outcome), now) for outcome in write.outcomes)
        o.pending.difference_update(write.resolved_pending)
        o.resolved.update(write.resolved_pending)
        for source_id in write.released:
            o.escrows.pop(source_id, None)
            o.released.add(source_id)
        for escrow in write.escrows:
            o.escrows[escrow.source_id] = escrow
            o.released.discard(escrow.source_id)
        for source_id in write.unstaged:
            o.staged.pop(source_id, None)
            o.unstaged.add(source_id)
        earlier = {s.source_id: s for s in self.staged(job)}
        for staged in write.staged:
            before_staged = earlier.get(staged.source_id)
            if before_staged is not None and before_staged.approved:
                staged = dataclasses.replace(staged, approved=True)
            o.staged[staged.source_id] = staged
            o.unstaged.discard(staged.source_id)

    # job state, escrows and staged deletions --------------------------------------------------
    def job_state(self, job: str) -> JobState:
        o = self._o(job)
        return o.state if o.state is not None else self.base.job_state(job)

    def save_job_state(self, state: JobState) -> None:
        self._o(state.job).state = state

    def _hidden_escrows(self, o: _Overlay) -> set[str]:
        return o.released | set(o.escrows)

    def escrows_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Escrow]:
        o = self._o(job)
        ids = list(source_ids)
        found: dict[str, Escrow] = {}
        if not o.escrows_cleared:
            hidden = self._hidden_escrows(o)
            found = {
                k: v
                for k, v in self.base.escrows_for(job, [i for i in ids if i not in hidden]).items()
            }
        found.update({i: o.escrows[i] for i in ids if i in o.escrows})
        return found

    def due_escrows(self, job: str, now: datetime, limit: int) -> list[str]:
        o = self._o(job)
        due: list[tuple[datetime, str]] = []
        if not o.escrows_cleared:
            hidden = self._hidden_escrows(o)
            ids = [
                i for i in self.base.due_escrows(job, now, limit + len(hidden)) if i not in hidden
            ]
            due = [(e.next_attempt_at, i) for i, e in self.base.escrows_for(job, ids).items()]
        due += [(e.next_attempt_at, i) for i, e in o.escrows.items() if e.next_attempt_at <= now]
        return [i for _, i in sorted(due)][:limit]

    def escrow_count(self, job: str) -> int:
        o = self._o(job)
        if o.escrows_cleared:
            return len(o.escrows)
        hidden = self.base.escrows_for(job, list(self._hidden_escrows(o)))
        return self.base.escrow_count(job) - len(hidden) + len(o.escrows)

    def staged(self, job: str) -> list[StagedDeletion]:
        o = self._o(job)
        merged = {} if o.staged_cleared else {s.source_id: s for s in self.base.staged(job)}
        for source_id in o.unstaged:
            merged.pop(source_id, None)
        merged.update(o.staged)
        return [merged[k] for k in sorted(merged)]

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions:
        done = self.base.deletions_since(job, since)
        made = [
            outcome.action
            for _, outcome, at in self._o(job).log
            if at > since
            and not outcome.approved
            and outcome.action in (Action.DELETE, Action.DISABLE)
            and outcome.status is not Status.FAILURE
        ]
        return WindowDeletions(
            deleted=done.deleted + made.count(Action.DELETE),
            disabled=done.disabled + made.count(Action.DISABLE),
        )

    def clear(self, job: str, *, escrows: bool = False, staged: bool = False) -> None:
        o = self._o(job)
        if escrows:
            o.escrows.clear()
            o.released.clear()
            o.escrows_cleared = True
        if staged:
            o.staged.clear()
            o.unstaged.clear()
            o.staged_cleared = True

    # assignments ------------------------------------------------------------------------------
    def assigned(self, job: str, user_ids: Iterable[str]) -> set[str]:
        return {u for _, u in self.memberships(job, list(user_ids))}

    def memberships(self, job: str, user_ids: Iterable[str] | None = None) -> set[tuple[str, str]]:
        o = self._o(job)
        wanted = None if user_ids is None else set(user_ids)
        if o.replaced is not None:
            base = set(o.replaced)
        else:
            base = self.base.memberships(job, None if wanted is None else sorted(wanted))
        pairs = (base - o.removed) | o.added
        return {(g, u) for g, u in pairs if wanted is None or u in wanted}

    def replace_assignments(self, job: str, members: Mapping[str, set[str]]) -> None:
        o = self._o(job)
        o.replaced = {(g, u) for g, users in members.items() for u in users}
        o.added.clear()
        o.removed.clear()

    def apply_membership_changes(
        self, job: str, changes: Sequence[MembershipChange], removed_groups: Sequence[str] = ()
    ) -> None:
        o = self._o(job)
        touched: set[str] = set()
        if removed_groups:
            gone = {(g, u) for g, u in self.memberships(job) if g in set(removed_groups)}
            for pair in gone:
                o.removed.add(pair)
                o.added.discard(pair)
                touched.add(pair[1])
        for change in changes:
            pair = (change.group_id, change.member_id)
            if change.added:
                o.added.add(pair)
                o.removed.discard(pair)
            else:
                o.removed.add(pair)
                o.added.discard(pair)
            touched.add(change.member_id)
        o.pending |= touched
        o.resolved -= touched

    def pending(self, job: str, limit: int) -> list[str]:
        o = self._o(job)
        base = [u for u in self.base.pending(job, limit + len(o.resolved)) if u not in o.resolved]
        return sorted(set(base) | o.pending)[:limit]
