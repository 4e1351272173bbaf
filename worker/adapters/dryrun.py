"""Dry runs at the I/O boundary: adapters that read for real and keep every write in memory.

A dry run is an ordinary cycle of the service wired to these adapters instead of the real ones
(see `dry_run_cycle`): the service has no notion of a dry run, so the preview plans exactly what
a real run of the same state would. What it writes stays in this process and is gone with it:

- `DryRunLedger` lays the cycle's writes over the real ledger: they go to a `MemoryLedger` of
  their own, and reads merge it with the base, as the SQL ledger would read after committing
  them (held to the ledger contract, tests/integration/test_ledger_contract.py); nothing reaches
  SQL (no run record, no provisioning-log row, no link, escrow or staged deletion).
- `DryRunTarget` passes reads (lookups, matching, the full cycle's user ids) to the real target
  and answers every write without sending it: an invitation with a placeholder id and
  `simulated=True`, the other writes with `Simulated`, so the outcome says "would invite".
- `DryRunCursors` starts from the real watermark but never from a real run's saved progress,
  and never moves the real cursor.
- no live progress, no observers (nobody is told of a preview; metrics do not count it).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.adapters.state.memory import MemoryLedger
from worker.domain.groups import GroupLink, GroupSkip
from worker.domain.health import Escrow, JobState, StagedDeletion, WindowDeletions
from worker.domain.model import Link, LinkState, ObjectOutcome, TargetUser
from worker.ports import (
    CreateGroup,
    Cursor,
    CursorStore,
    DeleteGroup,
    DeleteUser,
    Invitation,
    Invite,
    Lease,
    Ledger,
    MembershipChange,
    NoLiveProgress,
    PageWrite,
    PatchGroup,
    PatchUser,
    RemoveManagerRef,
    RemoveMember,
    RestoreUser,
    RunRecord,
    SetManagerRef,
    Simulated,
    TargetDirectory,
    TargetGroup,
    TargetRequest,
)
from worker.service.cycle import CycleService

# What stands for an object a dry run would create: one id per object, so that counting them
# (a group's new members) counts each once.
DRY_RUN_PREFIX = "(dry run"


def dry_run_id(what: str) -> str:
    return f"{DRY_RUN_PREFIX}: {what})"


WRITES = (
    Invite,
    PatchUser,
    DeleteUser,
    RestoreUser,
    SetManagerRef,
    RemoveManagerRef,
    CreateGroup,
    PatchGroup,
    RemoveMember,
    DeleteGroup,
)
LIVE = (LinkState.ACTIVE, LinkState.DISABLED)


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        commit_ahead=False,  # the in-memory overlay takes one thread at a time
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
                answers[i] = Invitation(
                    user_id=dry_run_id(request.address), status="dry run", simulated=True
                )
            elif isinstance(request, CreateGroup):
                name = str(request.attributes.get("displayName") or "")
                answers[i] = TargetGroup(dry_run_id(f"group {name}"), name, simulated=True)
            elif isinstance(request, WRITES):
                answers[i] = Simulated(request)
        return answers

    def find_users(self, attribute: str, value: str, select: Sequence[str]) -> list[TargetUser]:
        return self.base.find_users(attribute, value, select)

    def user_ids(self) -> Collection[str]:
        return self.base.user_ids()

    def group_member_ids(self, group_id: str) -> set[str]:
        # A group the dry run "created" has no members yet.
        if group_id.startswith(DRY_RUN_PREFIX):
            return set()
        return self.base.group_member_ids(group_id)


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


class DryRunLedger:
    """The real ledger with this process's writes laid over it; the base is never written.

    The writes go to a `MemoryLedger` of their own (`mine`), which gives them the SQL ledger's
    semantics; a read merges it with the base, `mine` winning. A row of the base that a write
    builds on (a link relabelled, a staged deletion's approval, a job's
    assignments) is copied into `mine` first, and what a write removes from the base (a released
    escrow, an unstaged deletion, a resolved pending user, a cleared table) is remembered as
    hidden. Runs are the dry run's own (it starts them with fresh ids): finishing a run only the
    base knows changes nothing, and `purge_logs` forgets the overlay's log rows only.
    """

    def __init__(self, base: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.base = base
        self.mine = MemoryLedger(clock or _utcnow)
        self._released: dict[str, set[str]] = defaultdict(set)  # job -> escrows released
        self._unstaged: dict[str, set[str]] = defaultdict(set)  # job -> deletions unstaged
        self._resolved: dict[str, set[str]] = defaultdict(set)  # job -> pending users resolved
        self._dropped_groups: dict[str, set[str]] = defaultdict(set)  # job -> group links gone
        self._cleared: set[tuple[str, str]] = set()  # (job, "escrows" | "staged") of the base

    # runs -------------------------------------------------------------------------------------
    def start_run(self, run: RunRecord) -> None:
        self.mine.start_run(run)

    def finish_run(self, run: RunRecord) -> None:
        self.mine.finish_run(run)

    def run_counts(self, job: str, run_id: str) -> dict[str, int]:
        counts = self.base.run_counts(job, run_id)
        for key, n in self.mine.run_counts(job, run_id).items():
            counts[key] = counts.get(key, 0) + n
        return counts

    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        mine = self.mine.recent_runs(job, limit)
        base = self.base.recent_runs(job, limit + len(mine))
        runs = mine + [r for r in base if r.run_id not in self.mine.runs]
        return sorted(runs, key=lambda r: r.started_at, reverse=True)[:limit]

    # links ------------------------------------------------------------------------------------
    def links_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Link]:
        ids = list(dict.fromkeys(source_ids))
        found = self.base.links_for(job, [i for i in ids if (job, i) not in self.mine.links])
        found.update(self.mine.links_for(job, ids))
        return {i: found[i] for i in ids if i in found}

    def links_by_target(self, job: str, target_ids: Iterable[str]) -> dict[str, list[Link]]:
        """The base's links to these targets, less those the overlay holds (it may point them
        elsewhere), with the overlay's."""
        ids = list(dict.fromkeys(target_ids))
        merged: dict[str, list[Link]] = {}
        for target, links in self.base.links_by_target(job, ids).items():
            kept = [x for x in links if (job, x.source_id) not in self.mine.links]
            if kept:
                merged[target] = kept
        for target, links in self.mine.links_by_target(job, ids).items():
            merged[target] = sorted(merged.get(target, []) + links, key=lambda link: link.source_id)
        return merged

    def group_links(self, job: str) -> list[GroupLink]:
        """The base's group links, less those the overlay dropped, with the overlay's."""
        dropped = self._dropped_groups[job]
        merged = {g.source_id: g for g in self.base.group_links(job) if g.source_id not in dropped}
        merged.update({g.source_id: g for g in self.mine.group_links(job)})
        return [merged[k] for k in sorted(merged)]

    def group_skips(self, job: str) -> list[GroupSkip]:
        """The overlay's verdict on a group wins over the base's (its rows are newer)."""
        merged = {s.source_id: s for s in self.base.group_skips(job)}
        for source_id in {e.outcome.source_id for e in self.mine.log if e.job == job}:
            merged.pop(source_id, None)
        merged.update({s.source_id: s for s in self.mine.group_skips(job)})
        return [merged[k] for k in sorted(merged)]

    def link_count(self, job: str) -> int:
        shadowed = self.base.links_for(job, [i for j, i in self.mine.links if j == job])
        hidden = sum(1 for link in shadowed.values() if link.state in LIVE)
        return self.base.link_count(job) - hidden + self.mine.link_count(job)

    def unseen_links(self, job: str, run_id: str, batch: int) -> Iterator[list[Link]]:
        """Both ledgers' unseen links merged by key, one batch at a time: each batch is chosen
        when it is asked for, after the pages committed since the last one, as the SQL ledger's
        keyset paging does (a sweep of a dry run must go as a real run's goes)."""
        base_links = (
            link for links in self.base.unseen_links(job, run_id, batch) for link in links
        )
        ahead: list[Link] = []  # the base's next unseen links, in key order

        def undecided(source_id: str) -> bool:
            # Not overridden by the overlay (which then decides), nor seen by its pages.
            seen = self.mine.seen_rows.get((job, run_id), ())
            return (job, source_id) not in self.mine.links and source_id not in seen

        after = ""
        while True:
            ahead = [x for x in ahead if undecided(x.source_id)]
            while len(ahead) < batch:
                more = next(base_links, None)
                if more is None:
                    break
                if more.source_id > after and undecided(more.source_id):
                    ahead.append(more)
            mine = sorted(
                (
                    link
                    for (j, i), link in self.mine.links.items()
                    if j == job
                    and i > after
                    and link.state in LIVE
                    and not self.mine.marked(job, run_id, link)
                ),
                key=lambda link: link.source_id,
            )[:batch]
            found = sorted(ahead + mine, key=lambda link: link.source_id)[:batch]
            if not found:
                return
            after = found[-1].source_id
            ahead = [x for x in ahead if x.source_id > after]
            yield [copy.deepcopy(link) for link in found]

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        """The overlay's commit, after copying in the base's rows it builds on (copies that read
        as the base does, so they may stay should the commit fail; what it hides is noted only
        once it has committed)."""
        # (Its seen marks are the overlay's own rows: the links they name need no copy.)
        self._own_links(job, [link.source_id for link in write.links])
        # Staged again, a deletion the base has approved stays approved: the overlay must know it.
        visible = {s.source_id: s for s in self.staged(job)}
        own = [
            visible[s.source_id]
            for s in write.staged
            if s.source_id in visible and (job, s.source_id) not in self.mine.staged_rows
        ]
        if own:
            self.mine.commit_page(job, run_id, PageWrite(staged=own))
        self.mine.commit_page(job, run_id, write)
        self._released[job].update(write.released)
        self._unstaged[job].update(write.unstaged)
        self._resolved[job].update(write.resolved_pending)
        self._dropped_groups[job].update(write.dropped_groups)
        self._dropped_groups[job].difference_update(g.source_id for g in write.group_links)

    def run_rows(
        self, job: str, run_id: str, source_ids: Iterable[str]
    ) -> dict[str, ObjectOutcome]:
        """The overlay's: a dry run's rows are all its own."""
        return self.mine.run_rows(job, run_id, source_ids)

    def reports_of(self, job: str, target_ids: Iterable[str]) -> list[Link]:
        """The base's, less those the overlay holds (which decides for them), with the
        overlay's."""
        ids = list(target_ids)
        base = [
            x for x in self.base.reports_of(job, ids) if (job, x.source_id) not in self.mine.links
        ]
        merged = base + self.mine.reports_of(job, ids)
        return sorted(merged, key=lambda link: link.source_id)

    def _own_links(self, job: str, source_ids: Iterable[str]) -> None:
        """Copy the base's links among these into the overlay (the copies read the same)."""
        wanted = [i for i in dict.fromkeys(source_ids) if (job, i) not in self.mine.links]
        found = self.base.links_for(job, wanted)
        if found:
            self.mine.commit_page(job, "", PageWrite(links=[found[i] for i in sorted(found)]))

    # job state, escrows and staged deletions --------------------------------------------------
    def job_state(self, job: str) -> JobState:
        return self.mine.job_state(job) if job in self.mine.states else self.base.job_state(job)

    def save_job_state(self, state: JobState) -> None:
        self.mine.save_job_state(state)

    def _base_escrows_hidden(self, job: str) -> set[str]:
        """The base's escrows the overlay has released or written again."""
        return self._released[job] | {i for j, i in self.mine.escrow_rows if j == job}

    def escrows_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Escrow]:
        ids = list(dict.fromkeys(source_ids))
        found: dict[str, Escrow] = {}
        if (job, "escrows") not in self._cleared:
            hidden = self._base_escrows_hidden(job)
            found = self.base.escrows_for(job, [i for i in ids if i not in hidden])
        found.update(self.mine.escrows_for(job, ids))
        return {i: found[i] for i in ids if i in found}

    def due_escrows(self, job: str, now: datetime, limit: int) -> list[str]:
        due = self.mine.due_escrows(job, now, limit)
        if (job, "escrows") not in self._cleared:
            hidden = self._base_escrows_hidden(job)
            base = self.base.due_escrows(job, now, limit + len(hidden))
            due += [i for i in base if i not in hidden]
        escrows = self.escrows_for(job, due)
        return sorted(due, key=lambda i: (escrows[i].next_attempt_at, i))[:limit]

    def escrow_count(self, job: str) -> int:
        count = self.mine.escrow_count(job)
        if (job, "escrows") not in self._cleared:
            hidden = self.base.escrows_for(job, self._base_escrows_hidden(job))
            count += self.base.escrow_count(job) - len(hidden)
        return count

    def staged(self, job: str) -> list[StagedDeletion]:
        merged: dict[str, StagedDeletion] = {}
        if (job, "staged") not in self._cleared:
            merged = {s.source_id: s for s in self.base.staged(job)}
            for source_id in self._unstaged[job]:
                merged.pop(source_id, None)
        merged.update({s.source_id: s for s in self.mine.staged(job)})
        return [merged[k] for k in sorted(merged)]

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions:
        done, made = self.base.deletions_since(job, since), self.mine.deletions_since(job, since)
        return WindowDeletions(
            deleted=done.deleted + made.deleted, disabled=done.disabled + made.disabled
        )

    def clear(self, job: str, *, escrows: bool = False, staged: bool = False) -> None:
        self.mine.clear(job, escrows=escrows, staged=staged)
        self._cleared |= {(job, t) for t, on in (("escrows", escrows), ("staged", staged)) if on}

    # assignments ------------------------------------------------------------------------------
    def _assignments(self, job: str) -> Ledger:
        """Whichever ledger holds the job's assignments: the overlay once it has changed them."""
        return self.mine if job in self.mine.assignments else self.base

    def assigned(self, job: str, user_ids: Iterable[str]) -> set[str]:
        return self._assignments(job).assigned(job, user_ids)

    def memberships(self, job: str, user_ids: Iterable[str] | None = None) -> set[tuple[str, str]]:
        return self._assignments(job).memberships(job, user_ids)

    def replace_assignments(self, job: str, members: Mapping[str, set[str]]) -> None:
        self.mine.replace_assignments(job, members)

    def apply_membership_changes(
        self, job: str, changes: Sequence[MembershipChange], removed_groups: Sequence[str] = ()
    ) -> None:
        if job not in self.mine.assignments:
            # Changes apply to the assignments as last read: the base's, copied whole.
            groups: dict[str, set[str]] = defaultdict(set)
            for group, user in self.base.memberships(job):
                groups[group].add(user)
            self.mine.replace_assignments(job, groups)
        self.mine.apply_membership_changes(job, changes, removed_groups)

    def pending(self, job: str, limit: int) -> list[str]:
        resolved = self._resolved[job]
        base = self.base.pending(job, limit + len(resolved))
        mine = self.mine.pending_users.get(job, set())
        return sorted({u for u in base if u not in resolved} | mine)[:limit]

    # provisioning log -------------------------------------------------------------------------
    def purge_logs(self, before: datetime) -> int:
        """Forget the overlay's log rows older than `before`; a dry run never deletes from the
        base."""
        return self.mine.purge_logs(before)
