"""The ports the service layer needs; adapters implement them, unit tests fake them.

Every method may raise the error vocabulary of `worker.domain.errors` and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from worker.domain.audit import AuditEntry
from worker.domain.event_kinds import EventKind
from worker.domain.groups import GroupLink, GroupSkip, SourceGroup
from worker.domain.health import Escrow, JobState, StagedDeletion, WindowDeletions
from worker.domain.model import Link, ObjectOutcome, SourceItem, SourceUser, TargetUser
from worker.domain.notification_text import Message
from worker.domain.notifications import Delivery
from worker.state_records import AlreadyRunning as AlreadyRunning
from worker.state_records import Cursor as Cursor
from worker.state_records import Lease as Lease
from worker.state_records import LockLost as LockLost
from worker.state_records import Phase as Phase
from worker.state_records import Progress as Progress
from worker.state_records import RunRecord as RunRecord
from worker.state_records import Watermark as Watermark


@dataclass(frozen=True)
class UserPage:
    """One page of a users delta round."""

    items: list[SourceItem]
    next_link: str | None = None
    delta_link: str | None = None


@dataclass(frozen=True)
class MembershipChange:
    group_id: str
    member_id: str
    added: bool


@dataclass(frozen=True)
class GroupPage:
    """One page of a groups delta round: member additions and removals of the job's groups."""

    changes: list[MembershipChange]
    removed_groups: list[str] = field(default_factory=list)
    next_link: str | None = None
    delta_link: str | None = None


class SourceDirectory(Protocol):
    def sign_in(self) -> None:
        """Obtain a token now, so bad credentials stop the cycle before any work."""

    def users_delta_start(self, select: Sequence[str]) -> str:
        """The URL that starts a users delta round selecting these attributes."""

    def users_page(self, url: str) -> UserPage:
        """Read one page of a users delta round (a start URL, a nextLink or a deltaLink)."""

    def groups_delta_start(self, group_ids: Sequence[str]) -> str:
        """The URL that starts a groups delta round tracking these groups' members."""

    def groups_page(self, url: str) -> GroupPage: ...

    def get_user(self, user_id: str, select: Sequence[str]) -> SourceUser | None:
        """One user, or None when it does not exist (or is deleted)."""

    def transitive_member_ids(self, group_id: str) -> set[str]:
        """The users in a group or in any group nested in it."""

    def member_of(self, user_id: str, *, transitive: bool) -> set[str]:
        """The ids of the groups a user is a member of (directly, or through nested groups)."""

    # Group provisioning (docs/groups.md).
    def get_group(self, group_id: str, select: Sequence[str]) -> SourceGroup | None:
        """One group, or None when it does not exist (or is deleted)."""

    def group_member_ids(self, group_id: str, *, transitive: bool = False) -> set[str]:
        """The users in a group: direct members, or also those of nested groups."""


@dataclass(frozen=True)
class Invitation:
    user_id: str
    status: str
    simulated: bool = False  # a dry run's answer: nobody was invited


@dataclass(frozen=True)
class Simulated:
    """The answer to a write that was not sent (a dry run's target): what it would have done."""

    request: Any


# What the service asks of the target, one object at a time. The directory may carry out many
# of them at once (Graph's $batch); each gets its own answer or error.

# How many users a FindUsers answers at most: two tell "one" from "ambiguous".
FOUND_AT_MOST = 2


@dataclass(frozen=True)
class FindUsers:
    """Answer: list[TargetUser] whose `attribute` equals `value` (safely quoted), at most
    `FOUND_AT_MOST`."""

    attribute: str
    value: str
    select: tuple[str, ...]


# Graph's default limit on the values of one `in` expression (more are refused with a 400).
MAX_IN_VALUES = 15


@dataclass(frozen=True)
class FindUsersIn:
    """Answer: list[TargetUser], every user whose `attribute` equals one of `values` (Graph's
    `in`, compared as `eq` compares: case-insensitively for strings), each read with `select`
    and `attribute` (to tell which value it has); every page of the answer is read. At most
    `MAX_IN_VALUES` values; only for string properties that are not collections."""

    attribute: str
    values: tuple[str, ...]
    select: tuple[str, ...]


@dataclass(frozen=True)
class GetUser:
    """Answer: TargetUser, or NotFound."""

    user_id: str
    select: tuple[str, ...] = ("id",)


@dataclass(frozen=True)
class Invite:
    """Answer: Invitation. Creates (or finds) the B2B user for the address; no mail is sent."""

    address: str
    display_name: str | None
    user_type: str


@dataclass(frozen=True)
class PatchUser:
    """Answer: None."""

    user_id: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteUser:
    """Answer: None. A soft delete: the user goes to the recycle bin for 30 days."""

    user_id: str


@dataclass(frozen=True)
class RestoreUser:
    """Answer: None. Restores a soft-deleted user with its object id."""

    user_id: str


@dataclass(frozen=True)
class SetManagerRef:
    """Answer: None. `PUT /users/{user_id}/manager/$ref`: the user's manager becomes
    `manager_id` (docs/manager.md)."""

    user_id: str
    manager_id: str


@dataclass(frozen=True)
class RemoveManagerRef:
    """Answer: None, or NotFound when the user has no manager (already done)."""

    user_id: str


# Group provisioning (docs/groups.md) ---------------------------------------------------------
@dataclass(frozen=True)
class TargetGroup:
    """A group of the target tenant, as much of it as was read."""

    id: str
    display_name: str = ""
    simulated: bool = False  # a dry run's answer: no group was created
    unique_name: str = ""  # when read (a group tenant-sync made carries one)


@dataclass(frozen=True)
class FindGroups:
    """Answer: list[TargetGroup] whose displayName equals `display_name` (at most two); with
    `unique_name`, the group whose uniqueName is that one instead (none or one)."""

    display_name: str
    unique_name: str = ""


@dataclass(frozen=True)
class CreateGroup:
    """Answer: TargetGroup. `attributes` include the fixed kind (a static security group)."""

    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class PatchGroup:
    """Answer: None. Attributes, and up to 20 members added (members@odata.bind)."""

    group_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    add_members: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoveMember:
    """Answer: None (a member already gone is a success)."""

    group_id: str
    member_id: str


@dataclass(frozen=True)
class DeleteGroup:
    """Answer: None."""

    group_id: str


GroupRequest = FindGroups | CreateGroup | PatchGroup | RemoveMember | DeleteGroup
TargetRequest = (
    FindUsers
    | FindUsersIn
    | GetUser
    | Invite
    | PatchUser
    | DeleteUser
    | RestoreUser
    | SetManagerRef
    | RemoveManagerRef
    | GroupRequest
)


class TargetDirectory(Protocol):
    def sign_in(self) -> None:
        """Obtain a token now, so bad credentials stop the cycle even with nothing to write."""

    def execute(self, requests: Sequence[TargetRequest]) -> list[Any]:
        """Carry out the requests, batched where possible: each result is the request's answer
        or the SyncError it met, in order. Only StopSync is raised."""

    def find_users(self, attribute: str, value: str, select: Sequence[str]) -> list[TargetUser]:
        """FindUsers on its own (raises its error)."""

    def user_ids(self) -> Collection[str]:
        """The ids of every (not deleted) user of the target, for a full cycle's reconciliation
        (asked with `in`; the Graph adapter keeps them compactly, worker/domain/idset.py)."""

    def group_member_ids(self, group_id: str) -> set[str]:
        """The direct members of a target group; NotFound when the group is gone."""


class CursorStore(Protocol):
    def load(self, job: str) -> Cursor: ...

    def save(self, job: str, cursor: Cursor, lease: Lease | None = None) -> None:
        """Store the cursor; with a lease, only while the lease still holds (else LockLost),
        so a cycle that lost its lock can never move the cursor of the one that took it."""

    def clear(self, job: str) -> None: ...


class LiveProgress(Protocol):
    """What a running cycle is doing right now, for people watching (status, the console).

    Updated as the work happens (each page read, each round of exports, each $batch of writes),
    unlike the cursor, which moves only when a page is committed. Best effort: it never fails a
    cycle, and it is not used to resume one.
    """

    def start(self, job: str, *, run_id: str, mode: str, phase: str, read: int) -> None: ...

    def phase(self, job: str, phase: str) -> None: ...

    def add(self, job: str, **amounts: int) -> None:
        """Add to the counters: read (source objects), planned and exported (objects with a
        write decided / carried out), writes (Graph write requests answered)."""

    def finish(self, job: str) -> None: ...

    def load(self, job: str) -> dict[str, Any] | None: ...


class NoLiveProgress:
    """For dry runs and tests: nobody watches."""

    def start(self, job: str, *, run_id: str, mode: str, phase: str, read: int) -> None:
        pass

    def phase(self, job: str, phase: str) -> None:
        pass

    def add(self, job: str, **amounts: int) -> None:
        pass

    def finish(self, job: str) -> None:
        pass

    def load(self, job: str) -> dict[str, Any] | None:
        return None


@dataclass(frozen=True)
class JobSnapshot:
    """A job's health after a cycle, for whoever watches (metrics, notifications)."""

    job: str
    code: str  # Active | Quarantine | Paused
    escrows: int
    staged_deletes: int
    run_id: str = ""
    error: str = ""  # the cycle's error, if it failed
    previous: JobState | None = None  # the job's state when the cycle started
    state: JobState | None = None  # and once the cycle's health was recorded
    # The last deletion check (`DeletionVerdict.as_dict()` plus `held` and `message`), when the
    # cycle had deletions to make: how many were counted against which threshold and window.
    deletions: Mapping[str, Any] | None = None


class CycleObserver(Protocol):
    def cycle_finished(
        self,
        *,
        job: str,
        mode: str,
        status: str,
        counts: Mapping[str, int],
        duration_s: float,
        snapshot: JobSnapshot | None,
    ) -> None: ...


class JobPaused(Exception):
    """The job is paused: no cycle runs until it is resumed."""


class NotDue(Exception):
    """A scheduled cycle of a quarantined job before its next attempt: skipped."""


class JobLock(Protocol):
    def hold(self, job: str) -> AbstractContextManager[Lease]:
        """Hold the job's cluster-wide lock for the block; raise AlreadyRunning if taken."""

    def is_held(self, job: str) -> bool:
        """Whether a cycle that may be alive holds the job's lock."""


@dataclass
class PageWrite:
    """Everything one page changes in SQL, written in one transaction."""

    links: Sequence[Link] = ()
    seen: Sequence[str] = ()  # source ids a full cycle has read
    outcomes: Sequence[ObjectOutcome] = ()  # provisioning-log rows
    resolved_pending: Sequence[str] = ()  # users whose membership change has been handled
    escrows: Sequence[Escrow] = ()  # failed objects: new or updated escrow
    released: Sequence[str] = ()  # objects that succeeded, or whose escrow expired
    staged: Sequence[StagedDeletion] = ()  # deletions decided, to carry out at the end
    unstaged: Sequence[str] = ()  # objects no longer to delete (or deleted now)
    group_links: Sequence[GroupLink] = ()  # provisioned groups: new or updated links
    dropped_groups: Sequence[str] = ()  # source group ids whose target group is gone
    # Objects whose row of this run the outcomes replace, kept in place (the managers phase
    # joins a reference to the user's row: one row per object per cycle, docs/manager.md).
    replaces: Sequence[str] = ()


class LedgerReads(Protocol):
    """The Ledger's reads behind a job's status (`tenant-sync status`): a Ledger has them all,
    and worker/adapters/state/sql_reads.py has them alone, on the database driver."""

    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]: ...

    def job_state(self, job: str) -> JobState: ...

    def link_count(self, job: str) -> int: ...

    def group_links(self, job: str) -> list[GroupLink]: ...

    def group_skips(self, job: str) -> list[GroupSkip]: ...

    def escrow_count(self, job: str) -> int: ...

    def staged(self, job: str) -> list[StagedDeletion]: ...

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions: ...


class Ledger(Protocol):
    """The SQL state of a job: links, assignments, runs and the provisioning log."""

    def start_run(self, run: RunRecord) -> None: ...

    def finish_run(self, run: RunRecord) -> None:
        """Record the run's end. A cycle's successful end (full or incremental) also forgets
        the seen marks of the job's full cycles (docs/performance.md)."""

    def run_counts(self, job: str, run_id: str) -> dict[str, int]:
        """What the committed pages of a run did, counted from its provisioning-log rows."""

    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]: ...

    def links_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Link]: ...

    def links_by_target(self, job: str, target_ids: Iterable[str]) -> dict[str, list[Link]]:
        """The job's links (in any state) to these target users, by target id, each list in
        source id order; a target user nobody links to is absent."""

    def link_count(self, job: str) -> int: ...

    def group_links(self, job: str) -> list[GroupLink]:
        """The target groups tenant-sync created for the job (docs/groups.md), by source id."""

    def group_skips(self, job: str) -> list[GroupSkip]:
        """The source groups whose newest log row is a skip with a warning (a name taken in
        the target by a group tenant-sync did not create), or a held deletion (`held`), by
        source id."""

    def unseen_links(self, job: str, run_id: str, batch: int) -> Iterator[list[Link]]:
        """Live links (active or disabled) a full cycle has not marked as seen."""

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        """Write one page's effects in one transaction. Raises Conflict, writing nothing, when
        a link would give a target user a second source user of the job."""

    def run_rows(
        self, job: str, run_id: str, source_ids: Iterable[str]
    ) -> dict[str, ObjectOutcome]:
        """The provisioning-log rows a run wrote for these objects (the newest of each)."""

    def reports_of(self, job: str, target_ids: Iterable[str]) -> list[Link]:
        """Live links whose last written manager (docs/manager.md) is one of these target
        users, in source id order."""

    def assigned(self, job: str, user_ids: Iterable[str]) -> set[str]:
        """Which of these users are members of one of the job's groups (as last read)."""

    def memberships(self, job: str, user_ids: Iterable[str] | None = None) -> set[tuple[str, str]]:
        """(group id, user id) pairs as last read, for these users or all of them."""

    def replace_assignments(self, job: str, members: Mapping[str, set[str]]) -> None: ...

    def apply_membership_changes(
        self, job: str, changes: Sequence[MembershipChange], removed_groups: Sequence[str] = ()
    ) -> None:
        """Apply member additions/removals (and deleted groups); mark those users pending."""

    def pending(self, job: str, limit: int) -> list[str]: ...

    def job_state(self, job: str) -> JobState: ...

    def save_job_state(self, state: JobState) -> None: ...

    def escrows_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Escrow]: ...

    def due_escrows(self, job: str, now: datetime, limit: int) -> list[str]:
        """Escrowed objects whose next attempt is due, oldest first."""

    def escrow_count(self, job: str) -> int: ...

    def staged(self, job: str) -> list[StagedDeletion]:
        """Deletions waiting for the end of a cycle (or for an operator, over the threshold)."""

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions:
        """The soft deletes and disables the job carried out after `since` (cycles and
        provisioning on demand), counted from its provisioning log."""

    def clear(self, job: str, *, escrows: bool = False, staged: bool = False) -> None:
        """Forget a job's escrows and/or staged deletions (restart)."""


class AuditLog(Protocol):
    """The audit trail of operator actions (docs/audit.md), kept in SQL and never purged."""

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Store the entry; returns it with its id. Raises Transient when it cannot be stored."""

    def entries(
        self, job: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Entries newest first: of one job (or of all), at most `limit`, and with `before_id`
        only those recorded before that entry (the next page: the last id of this one)."""


class NotificationOutbox(Protocol):
    """Notifications on their way, kept where every process can deliver them (durable)."""

    def add(self, deliveries: Sequence[Delivery], now: datetime) -> list[Delivery]:
        """Queue the deliveries, due now; one whose id was queued before (even if sent since)
        is left alone. Returns those newly queued."""

    def claim(self, now: datetime, lease: timedelta) -> Delivery | None:
        """The next delivery due at `now`, hidden from other claimers for `lease` (after which
        it is due again, should its claimer die)."""

    def done(self, delivery: Delivery) -> None:
        """Forget a delivery: sent, or given up."""

    def retry(self, delivery: Delivery, at: datetime) -> None:
        """Keep a delivery (with its attempts and last error) until `at`."""

    def pending(self) -> list[tuple[Delivery, datetime]]:
        """Every queued delivery with when it is due, soonest first."""


class Notifier(Protocol):
    """One configured receiver (a webhook, a Teams channel, a mailbox)."""

    @property
    def key(self) -> str:
        """Stable while its configuration is unchanged; names it in the outbox."""

    @property
    def label(self) -> str:
        """For logs: kind, position and host (e.g. `webhook#0 (hooks.example)`), no secret."""

    def wants(self, kind: EventKind, job: str) -> bool: ...

    def send(self, message: Message, *, timeout_s: float) -> None:
        """Deliver now; raise Transient to be retried later, BadRequest when retrying cannot
        help (the receiver refuses the message)."""


class CrossTenantPolicy(Protocol):
    """One tenant's cross-tenant access policy (`check --fix`, docs/onboarding.md)."""

    def partner(self, partner_id: str) -> Mapping[str, Any] | None:
        """The partner entry for that tenant, or None when there is none."""

    def identity_sync(self, partner_id: str) -> Mapping[str, Any] | None:
        """The partner's identity synchronization policy, or None when there is none."""

    def write(self, method: str, path: str, body: Mapping[str, Any]) -> None:
        """Send one write of the plan (POST, PATCH or PUT)."""
