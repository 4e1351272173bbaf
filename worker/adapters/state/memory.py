"""The Ledger port in memory, with the SQL ledger's semantics.

For what must not touch the state database (a dry run's overlay, tests of the service) and as
the reference the ledger contract test holds both implementations to
(tests/integration/test_ledger_contract.py). It behaves as `SqlLedger` does, row for row: a page
commits whole or not at all, reads return copies, datetimes come back in UTC, text is cut and
cleaned as the database columns would store it, and `unseen_links` pages by key so that marks
made while a sweep runs are seen by its later batches. Nothing is persisted; one process only.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.domain.errors import Conflict
from worker.domain.groups import GroupLink, GroupSkip, group_skips
from worker.domain.health import Escrow, JobState, StagedDeletion, WindowDeletions
from worker.domain.model import Action, Link, LinkState, Mode, ObjectOutcome, Status, add_counts
from worker.ports import MembershipChange, PageWrite, RunRecord

LIVE_STATES = (LinkState.ACTIVE, LinkState.DISABLED)
LABEL_LENGTH = 320  # the SQL columns' length for labels and mails


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    """As the SQL ledger's UTCDateTime gives it back: aware, in UTC (naive taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _text(value: str, length: int | None = None) -> str:
    """As the SQL ledger stores free text: NUL replaced, cut to the column's length."""
    value = value.replace("\x00", "\ufffd")
    return value[:length] if length is not None else value


@dataclass(frozen=True)
class LogEntry:
    """One provisioning-log row: what the cycle did to one object, and when it was recorded."""

    job: str
    run_id: str
    outcome: ObjectOutcome
    created_at: datetime


class MemoryLedger:
    """The Ledger port on dicts. Its attributes are its tables (read them, do not write them)."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self.clock = clock  # when log rows are written and staged deletions made
        self.runs: dict[str, RunRecord] = {}
        self.links: dict[tuple[str, str], Link] = {}
        self.link_targets: dict[tuple[str, str], str] = {}  # (job, target id) -> source id
        self.log: list[LogEntry] = []
        self.assignments: dict[str, set[tuple[str, str]]] = {}  # job -> (group, user)
        self.pending_users: dict[str, set[str]] = {}
        self.states: dict[str, JobState] = {}
        self.escrow_rows: dict[tuple[str, str], Escrow] = {}
        self.staged_rows: dict[tuple[str, str], StagedDeletion] = {}
        self.group_link_rows: dict[tuple[str, str], GroupLink] = {}
        self.seen_rows: dict[tuple[str, str], set[str]] = {}  # (job, run) -> ids its pages read

    # runs -------------------------------------------------------------------------------------
    def start_run(self, run: RunRecord) -> None:
        before = self.runs.get(run.run_id)
        # As the SQL upsert: a run started again keeps when it finished, if it did.
        self.runs[run.run_id] = dataclasses.replace(
            copy.deepcopy(run),
            started_at=_utc(run.started_at),
            finished_at=before.finished_at if before else None,
            error="",
        )

    def finish_run(self, run: RunRecord) -> None:
        stored = self.runs.get(run.run_id)
        if stored is None:  # as an UPDATE of no row
            return
        stored.status = run.status
        stored.finished_at = _utc_or_none(run.finished_at)
        stored.counts = dict(run.counts)
        stored.error = _text(run.error)
        stored.mode = run.mode
        if run.status == "success" and run.mode in (Mode.FULL.value, Mode.INCREMENTAL.value):
            # As the SQL ledger: a cycle's successful end forgets every seen mark of the job.
            self.seen_rows = {k: v for k, v in self.seen_rows.items() if k[0] != stored.job}

    def run_counts(self, job: str, run_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.log:
            if entry.job == job and entry.run_id == run_id:
                add_counts(counts, entry.outcome.action, entry.outcome.status)
        return counts

    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        runs = [r for r in self.runs.values() if r.job == job]
        runs.sort(key=lambda r: r.started_at, reverse=True)
        return [copy.deepcopy(r) for r in runs[:limit]]

    # links ------------------------------------------------------------------------------------
    def links_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Link]:
        return {
            sid: copy.deepcopy(self.links[(job, sid)])
            for sid in dict.fromkeys(source_ids)
            if (job, sid) in self.links
        }

    def links_by_target(self, job: str, target_ids: Iterable[str]) -> dict[str, list[Link]]:
        wanted = set(target_ids)
        found: dict[str, list[Link]] = {}
        for (j, _), link in sorted(self.links.items()):
            if j == job and link.target_id in wanted:
                found.setdefault(link.target_id, []).append(copy.deepcopy(link))
        return found

    def link_count(self, job: str) -> int:
        return sum(
            1 for (j, _), link in self.links.items() if j == job and link.state in LIVE_STATES
        )

    def group_links(self, job: str) -> list[GroupLink]:
        return [
            copy.deepcopy(link) for (j, _), link in sorted(self.group_link_rows.items()) if j == job
        ]

    def group_skips(self, job: str) -> list[GroupSkip]:
        rows = [e.outcome for e in reversed(self.log) if e.job == job]
        return group_skips(
            (o.source_id, o.source_label, o.action.value, o.status.value, o.reason)
            for o in rows
            if o.object_type == "Group"
        )

    def unseen_links(self, job: str, run_id: str, batch: int) -> Iterator[list[Link]]:
        after = ""
        while True:
            found = sorted(
                (
                    link
                    for (j, sid), link in self.links.items()
                    if j == job
                    and sid > after
                    and link.state in LIVE_STATES
                    and not self.marked(job, run_id, link)
                ),
                key=lambda link: link.source_id,
            )[:batch]
            if not found:
                return
            after = found[-1].source_id
            yield [copy.deepcopy(link) for link in found]

    def marked(self, job: str, run_id: str, link: Link) -> bool:
        """Whether a page of the run read the link's user (or, as before migration 0009, the
        link carries the run's mark)."""
        return link.last_seen_run == run_id or link.source_id in self.seen_rows.get(
            (job, run_id), ()
        )

    def _replaced_rows(self, job: str, run_id: str, source_ids: Iterable[str]) -> dict[str, int]:
        """The index of the newest row of this run for each of these objects."""
        wanted = set(source_ids)
        return {
            entry.outcome.source_id: index
            for index, entry in enumerate(self.log)
            if entry.job == job and entry.run_id == run_id and entry.outcome.source_id in wanted
        }

    def run_rows(
        self, job: str, run_id: str, source_ids: Iterable[str]
    ) -> dict[str, ObjectOutcome]:
        rows = self._replaced_rows(job, run_id, source_ids)
        return {sid: copy.deepcopy(self.log[index].outcome) for sid, index in rows.items()}

    def reports_of(self, job: str, target_ids: Iterable[str]) -> list[Link]:
        wanted = set(target_ids)
        return [
            copy.deepcopy(link)
            for (j, sid), link in sorted(self.links.items())
            if j == job
            and link.state in (LinkState.ACTIVE, LinkState.DISABLED)
            and link.attributes.get("manager") in wanted
        ]

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        now = self.clock()
        with self._transaction():
            for link in write.links:
                stored = copy.deepcopy(link)
                stored.job = job
                stored.source_label = _text(link.source_label, LABEL_LENGTH)
                stored.source_mail = _text(link.source_mail, LABEL_LENGTH)
                existing = self.links.get((job, link.source_id))
                if existing is not None:
                    # A page that did not read the label keeps the one known.
                    stored.source_label = stored.source_label or existing.source_label
                    stored.source_mail = stored.source_mail or existing.source_mail
                # As the SQL ledger's unique index: one source user per target user and job.
                holder = self.link_targets.get((job, stored.target_id))
                if holder is not None and holder != stored.source_id:
                    raise Conflict(
                        f"target user {stored.target_id} is already linked to source user "
                        f"{holder} in job {job}"
                    )
                if existing is not None:
                    self.link_targets.pop((job, existing.target_id), None)
                self.link_targets[(job, stored.target_id)] = stored.source_id
                self.links[(job, link.source_id)] = stored
            replaced = self._replaced_rows(job, run_id, write.replaces)
            for outcome in write.outcomes:
                kept = replaced.get(outcome.source_id)
                if kept is None:
                    self.log.append(LogEntry(job, run_id, copy.deepcopy(outcome), _utc(now)))
                else:  # in place, as the SQL ledger keeps the row's id and time
                    entry = self.log[kept]
                    self.log[kept] = dataclasses.replace(entry, outcome=copy.deepcopy(outcome))
            self.pending_users.setdefault(job, set()).difference_update(write.resolved_pending)
            for sid in write.released:
                self.escrow_rows.pop((job, sid), None)
            for escrow in write.escrows:
                self.escrow_rows[(job, escrow.source_id)] = _stored_escrow(job, escrow)
            for sid in write.unstaged:
                self.staged_rows.pop((job, sid), None)
            for staged in write.staged:
                before = self.staged_rows.get((job, staged.source_id))
                # Staged again by a later page, an approved deletion stays approved.
                approved = staged.approved or (before is not None and before.approved)
                self.staged_rows[(job, staged.source_id)] = dataclasses.replace(
                    staged, reason=_text(staged.reason), approved=approved
                )
            for sid in write.dropped_groups:
                self.group_link_rows.pop((job, sid), None)
            for group in write.group_links:
                self.group_link_rows[(job, group.source_id)] = dataclasses.replace(
                    copy.deepcopy(group), job=job, display_name=_text(group.display_name, 256)
                )
            if write.seen:
                # A set of its own, not a mark in the link (the SQL ledger's seen rows); last,
                # as nothing after it can fail, so a failed page never leaves it changed.
                self.seen_rows.setdefault((job, run_id), set()).update(write.seen)

    # job state, escrows and staged deletions --------------------------------------------------
    def job_state(self, job: str) -> JobState:
        return self.states.get(job, JobState(job=job))

    def save_job_state(self, state: JobState) -> None:
        self.states[state.job] = dataclasses.replace(
            state,
            quarantine_since=_utc_or_none(state.quarantine_since),
            quarantine_error=_text(state.quarantine_error),
            next_attempt_at=_utc_or_none(state.next_attempt_at),
            deletions_approved_at=_utc_or_none(state.deletions_approved_at),
        )

    def escrows_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Escrow]:
        return {
            sid: self.escrow_rows[(job, sid)]
            for sid in dict.fromkeys(source_ids)
            if (job, sid) in self.escrow_rows
        }

    def due_escrows(self, job: str, now: datetime, limit: int) -> list[str]:
        due = sorted(
            (escrow.next_attempt_at, sid)
            for (j, sid), escrow in self.escrow_rows.items()
            if j == job and escrow.next_attempt_at <= now
        )
        return [sid for _, sid in due[:limit]]

    def escrow_count(self, job: str) -> int:
        return sum(1 for j, _ in self.escrow_rows if j == job)

    def staged(self, job: str) -> list[StagedDeletion]:
        return [s for (j, _), s in sorted(self.staged_rows.items()) if j == job]

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions:
        # As the SQL ledger counts them: anything but a failure made the deprovisioning, and
        # those an operator allowed over the threshold are not counted.
        made = [
            entry.outcome.action
            for entry in self.log
            if entry.job == job
            and entry.created_at > since
            and entry.outcome.action in (Action.DELETE, Action.DISABLE)
            and entry.outcome.status is not Status.FAILURE
            and not entry.outcome.approved
        ]
        return WindowDeletions(
            deleted=made.count(Action.DELETE), disabled=made.count(Action.DISABLE)
        )

    def clear(self, job: str, *, escrows: bool = False, staged: bool = False) -> None:
        if escrows:
            self.escrow_rows = {k: v for k, v in self.escrow_rows.items() if k[0] != job}
        if staged:
            self.staged_rows = {k: v for k, v in self.staged_rows.items() if k[0] != job}

    # assignments ------------------------------------------------------------------------------
    def assigned(self, job: str, user_ids: Iterable[str]) -> set[str]:
        members = {user for _, user in self.assignments.get(job, set())}
        return {user for user in user_ids if user in members}

    def memberships(self, job: str, user_ids: Iterable[str] | None = None) -> set[tuple[str, str]]:
        pairs = self.assignments.get(job, set())
        if user_ids is None:
            return set(pairs)
        wanted = set(user_ids)
        return {(group, user) for group, user in pairs if user in wanted}

    def replace_assignments(self, job: str, members: Mapping[str, set[str]]) -> None:
        self.assignments[job] = {(g, u) for g, users in members.items() for u in users}

    def apply_membership_changes(
        self, job: str, changes: Sequence[MembershipChange], removed_groups: Sequence[str] = ()
    ) -> None:
        current = self.assignments.setdefault(job, set())
        touched: set[str] = set()
        for group_id in removed_groups:
            gone = {(g, u) for g, u in current if g == group_id}
            current.difference_update(gone)
            touched.update(u for _, u in gone)
        for change in changes:
            if change.added:
                current.add((change.group_id, change.member_id))
            else:
                current.discard((change.group_id, change.member_id))
            touched.add(change.member_id)
        self.pending_users.setdefault(job, set()).update(touched)

    def pending(self, job: str, limit: int) -> list[str]:
        return sorted(self.pending_users.get(job, set()))[:limit]

    # provisioning log -------------------------------------------------------------------------
    def purge_logs(self, before: datetime) -> int:
        kept = [entry for entry in self.log if entry.created_at >= before]
        removed = len(self.log) - len(kept)
        self.log = kept
        return removed

    # helpers ----------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """All of the block's changes, or none: the tables it may touch are restored if it fails."""
        # Rows are replaced, never changed in place, so copies of the tables are snapshots.
        links, targets = dict(self.links), dict(self.link_targets)
        log_length = len(self.log)
        pending = {job: set(users) for job, users in self.pending_users.items()}
        escrows, staged = dict(self.escrow_rows), dict(self.staged_rows)
        groups = dict(self.group_link_rows)
        try:
            yield
        except BaseException:
            self.links, self.link_targets, self.pending_users = links, targets, pending
            self.escrow_rows, self.staged_rows = escrows, staged
            self.group_link_rows = groups
            del self.log[log_length:]
            raise


def _stored_escrow(job: str, escrow: Escrow) -> Escrow:
    return dataclasses.replace(
        escrow,
        job=job,
        first_failed_at=_utc(escrow.first_failed_at),
        next_attempt_at=_utc(escrow.next_attempt_at),
        last_error=_text(escrow.last_error),
    )
