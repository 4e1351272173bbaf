"""Small in-memory fakes of the service's ports, for unit tests of the cycle logic.

They model just enough of Graph's delta semantics (pages, deltaLinks, @removed) and of the SQL
ledger to let tests drive whole cycles without any I/O.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from worker.adapters.state.memory import MemoryLedger
from worker.domain.audit import AuditEntry
from worker.domain.errors import (
    BadRequest,
    NotFound,
    ResyncRequired,
    StopSync,
    SyncError,
    Transient,
)
from worker.domain.groups import SourceGroup
from worker.domain.model import (
    SourceRemoval,
    SourceUser,
    TargetUser,
)
from worker.ports import (
    AlreadyRunning,
    CreateGroup,
    Cursor,
    DeleteGroup,
    DeleteUser,
    FindGroups,
    FindUsers,
    FindUsersIn,
    GetUser,
    GroupPage,
    Invitation,
    Invite,
    Lease,
    LockLost,
    MembershipChange,
    PageWrite,
    PatchGroup,
    PatchUser,
    RemoveManagerRef,
    RemoveMember,
    SetManagerRef,
    TargetGroup,
    TargetRequest,
    UserPage,
)


class FakeSource:
    """A source tenant whose changes are logged with sequence numbers, like delta tokens."""

    def __init__(self, page_size: int = 3) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, set[str]] = {}
        self.group_attributes: dict[str, dict[str, Any]] = {}
        self.seq = 0
        self.user_log: list[tuple[int, str]] = []
        self.group_log: list[tuple[int, str, str, bool]] = []
        self.page_size = page_size
        self.expired_before = 0
        self.reads: list[str] = []
        self.fail_reads = False

    # admin side -------------------------------------------------------------------------------
    def add(self, **attrs: Any) -> str:
        user_id = attrs.pop("id", None) or str(uuid.uuid4())
        attrs.setdefault("userType", "Member")
        attrs.setdefault("accountEnabled", True)
        self.users[user_id] = attrs
        self._changed(user_id)
        return user_id

    def update(self, user_id: str, **attrs: Any) -> None:
        self.users[user_id].update(attrs)
        self._changed(user_id)

    def delete(self, user_id: str) -> None:
        del self.users[user_id]
        self._changed(user_id)

    def group_add(self, group_id: str, user_id: str) -> None:
        self.groups.setdefault(group_id, set()).add(user_id)
        self.seq += 1
        self.group_log.append((self.seq, group_id, user_id, True))

    def group_remove(self, group_id: str, user_id: str) -> None:
        self.groups[group_id].discard(user_id)
        self.seq += 1
        self.group_log.append((self.seq, group_id, user_id, False))

    def _changed(self, user_id: str) -> None:
        self.seq += 1
        self.user_log.append((self.seq, user_id))

    # port -------------------------------------------------------------------------------------
    def sign_in(self) -> None:
        if self.fail_reads:
            raise Transient("source unreachable")

    def users_delta_start(self, select: Sequence[str]) -> str:
        return "users:0:-1"

    def users_page(self, url: str) -> UserPage:
        self.reads.append(url)
        if self.fail_reads:
            raise Transient("source unreachable")
        _, offset_s, since_s = url.split(":")
        offset, since = int(offset_s), int(since_s)
        if 0 <= since < self.expired_before:
            raise ResyncRequired("token expired", code="syncStateNotFound")
        if since < 0:
            ids = sorted(self.users)
        else:
            ids = sorted({uid for seq, uid in self.user_log if seq > since})
        chunk = ids[offset : offset + self.page_size]
        items = [
            SourceUser(uid, copy.deepcopy(self.users[uid]))
            if uid in self.users
            else SourceRemoval(uid, "changed")
            for uid in chunk
        ]
        if offset + self.page_size < len(ids):
            return UserPage(items, next_link=f"users:{offset + self.page_size}:{since}")
        return UserPage(items, delta_link=f"users:0:{self.seq}")

    def groups_delta_start(self, group_ids: Sequence[str]) -> str:
        return "groups:-1"

    def groups_page(self, url: str) -> GroupPage:
        since = int(url.split(":")[1])
        if since < 0:
            changes = [
                MembershipChange(g, m, True) for g, members in self.groups.items() for m in members
            ]
        else:
            changes = [
                MembershipChange(g, m, added) for seq, g, m, added in self.group_log if seq > since
            ]
        return GroupPage(changes, delta_link=f"groups:{self.seq}")

    def get_user(self, user_id: str, select: Sequence[str]) -> SourceUser | None:
        if user_id not in self.users:
            return None
        return SourceUser(user_id, copy.deepcopy(self.users[user_id]))

    def member_of(self, user_id: str, *, transitive: bool) -> set[str]:
        if not transitive:
            return {g for g, members in self.groups.items() if user_id in members}
        return {g for g in self.groups if user_id in self.transitive_member_ids(g)}

    def get_group(self, group_id: str, select: Sequence[str]) -> SourceGroup | None:
        if group_id not in self.groups:
            return None
        attributes = self.group_attributes.get(group_id, {"displayName": group_id})
        return SourceGroup(group_id, {k: v for k, v in attributes.items() if k in select})

    def group_member_ids(self, group_id: str, *, transitive: bool = False) -> set[str]:
        if transitive:
            return self.transitive_member_ids(group_id)
        return {m for m in self.groups.get(group_id, set()) if m in self.users}

    def transitive_member_ids(self, group_id: str) -> set[str]:
        found: set[str] = set()
        stack, visited = [group_id], set()
        while stack:
            group = stack.pop()
            if group in visited:
                continue
            visited.add(group)
            for member in self.groups.get(group, set()):
                if member in self.groups:
                    stack.append(member)
                elif member in self.users:
                    found.add(member)
        return found


class FakeTarget:
    """A target tenant: invitations create B2B users, deletes go to a recycle bin."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, Any]] = []
        self.fail_patch_for: set[str] = set()
        self.fail_delete_for: set[str] = set()
        # Group requests of these types are refused as Graph refuses an app without the
        # permission (403 Authorization_RequestDenied, a failed $batch item).
        self.denied_requests: set[type] = set()
        self.failing_requests: set[type] = set()  # answered 500, nothing done
        self.refused_requests: set[type] = set()  # answered 400 (a query Graph does not take)
        self.refused_values: set[str] = set()  # a lookup asking one is answered 400 (too long)
        self.credentials_rejected = False
        self.rounds: list[int] = []  # how many requests each execute() call carried
        self.asked: list[TargetRequest] = []  # every request, in the order they came
        self.managers: dict[str, str] = {}  # user id -> its manager's id
        self.groups: dict[str, dict[str, Any]] = {}
        self.group_members: dict[str, set[str]] = {}

    def execute(self, requests: Sequence[TargetRequest]) -> list[Any]:
        """Each request in turn, as the Graph adapter's $batch would answer them."""
        self.rounds.append(len(requests))
        self.asked.extend(requests)
        results: list[Any] = []
        for request in requests:
            try:
                results.append(self._one(request))
            except StopSync:
                raise
            except SyncError as error:
                results.append(error)
        return results

    def _one(self, request: TargetRequest) -> Any:
        if isinstance(request, FindUsers):
            return self.find_users(request.attribute, request.value, request.select)
        if isinstance(request, FindUsersIn):
            if FindUsersIn in self.failing_requests:
                raise Transient("InternalServerError", code="InternalServerError", status=500)
            if FindUsersIn in self.refused_requests or self.refused_values & set(request.values):
                raise BadRequest("Unsupported query.", code="Request_UnsupportedQuery", status=400)
            # Graph's `in`: case-insensitive (as find_users compares, a character at a time),
            # every match, the attribute read with the rest.
            wanted = {v.lower() for v in request.values}
            select = (*request.select, request.attribute)
            return [
                TargetUser(uid, {k: u.get(k) for k in select})
                for uid, u in self.users.items()
                if isinstance(u.get(request.attribute), str)
                and u[request.attribute].lower() in wanted
            ]
        if isinstance(request, GetUser):
            user = self.get_user(request.user_id, request.select)
            if user is None:
                raise NotFound(f"no user {request.user_id}")
            return user
        if isinstance(request, Invite):
            return self.invite(request.address, request.display_name, request.user_type)
        if isinstance(request, PatchUser):
            return self.update_user(request.user_id, request.attributes)
        if isinstance(request, DeleteUser):
            return self.delete_user(request.user_id)
        if isinstance(request, SetManagerRef):
            if request.manager_id not in self.users or request.user_id not in self.users:
                raise NotFound(f"no user {request.manager_id} or {request.user_id}")
            self.writes.append(("manager", request.user_id, request.manager_id))
            self.managers[request.user_id] = request.manager_id
            return None
        if isinstance(request, RemoveManagerRef):
            if request.user_id not in self.managers:
                raise NotFound(f"user {request.user_id} has no manager")
            self.writes.append(("manager", request.user_id, None))
            del self.managers[request.user_id]
            return None
        if isinstance(request, FindGroups | CreateGroup | PatchGroup | RemoveMember | DeleteGroup):
            return self._group(request)
        return self.restore_user(request.user_id)

    # groups (docs/groups.md) ------------------------------------------------------------------
    def _group(
        self, request: FindGroups | CreateGroup | PatchGroup | RemoveMember | DeleteGroup
    ) -> Any:
        if type(request) in self.failing_requests:
            raise Transient("InternalServerError", code="InternalServerError", status=500)
        if type(request) in self.denied_requests:
            raise BadRequest(
                "Insufficient privileges to complete the operation.",
                code="Authorization_RequestDenied",
                status=403,
            )
        if isinstance(request, FindGroups) and request.unique_name:
            return [
                TargetGroup(gid, g["displayName"])
                for gid, g in self.groups.items()
                if g.get("uniqueName") == request.unique_name
            ]
        if isinstance(request, FindGroups):
            return [
                TargetGroup(gid, g["displayName"], unique_name=str(g.get("uniqueName") or ""))
                for gid, g in self.groups.items()
                if g["displayName"].lower() == request.display_name.lower()
            ][:2]
        if isinstance(request, CreateGroup):
            unique = request.attributes.get("uniqueName")
            if unique and any(g.get("uniqueName") == unique for g in self.groups.values()):
                raise BadRequest(
                    "Another object with the same value for property uniqueName already exists."
                )
            gid = str(uuid.uuid4())
            self.groups[gid] = dict(request.attributes)
            self.group_members[gid] = set()
            self.writes.append(("create_group", gid, dict(request.attributes)))
            return TargetGroup(gid, str(request.attributes["displayName"]))
        if request.group_id not in self.groups:
            raise NotFound(f"no group {request.group_id}")
        if isinstance(request, PatchGroup):
            if len(request.add_members) > 20:
                raise BadRequest("more than 20 members in one request")
            for member in request.add_members:
                if member not in self.users:  # Graph refuses the whole request
                    raise NotFound(f"Resource '{member}' does not exist")
            self.groups[request.group_id].update(request.attributes)
            self.group_members[request.group_id] |= set(request.add_members)
            self.writes.append(("patch_group", request.group_id, request))
            return None
        if isinstance(request, RemoveMember):
            if request.member_id not in self.group_members[request.group_id]:
                raise NotFound(f"no member {request.member_id}")
            self.group_members[request.group_id].discard(request.member_id)
            self.writes.append(("remove_member", request.group_id, request.member_id))
            return None
        del self.groups[request.group_id]
        self.writes.append(("delete_group", request.group_id, None))
        return None

    def group_member_ids(self, group_id: str) -> set[str]:
        if group_id not in self.groups:
            raise NotFound(f"no group {group_id}")
        return set(self.group_members[group_id])

    def group_named(self, name: str) -> tuple[str, dict[str, Any]]:
        (found,) = [(gid, g) for gid, g in self.groups.items() if g["displayName"] == name]
        return found

    def sign_in(self) -> None:
        if self.credentials_rejected:
            raise StopSync("invalid_client: AADSTS7000215", code="invalid_client")

    def add_existing(self, **attrs: Any) -> str:
        user_id = str(uuid.uuid4())
        self.users[user_id] = attrs
        return user_id

    def find_users(self, attribute: str, value: str, select: Sequence[str]) -> list[TargetUser]:
        if value in self.refused_values:
            raise BadRequest("Unsupported query.", code="Request_UnsupportedQuery", status=400)
        return [
            TargetUser(uid, {k: u.get(k) for k in select})
            for uid, u in self.users.items()
            if str(u.get(attribute, "")).lower() == value.lower()
        ]

    def get_user(self, user_id: str, select: Sequence[str]) -> TargetUser | None:
        user = self.users.get(user_id)
        return TargetUser(user_id, dict(user)) if user is not None else None

    def user_ids(self) -> set[str]:
        return set(self.users)

    def invite(self, address: str, display_name: str | None, user_type: str) -> Invitation:
        self.writes.append(("invite", address, user_type))
        for uid, user in self.users.items():
            if str(user.get("mail", "")).lower() == address.lower():
                return Invitation(uid, "Completed")
        user_id = str(uuid.uuid4())
        self.users[user_id] = {
            "mail": address,
            "userPrincipalName": address.replace("@", "_") + "#EXT#@target.example",
            "userType": user_type,
            "displayName": display_name,
        }
        return Invitation(user_id, "PendingAcceptance")

    def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        if user_id in self.fail_patch_for:
            raise BadRequest("rejected", code="Request_BadRequest")
        if user_id not in self.users:
            raise NotFound(f"no user {user_id}")
        self.writes.append(("patch", user_id, dict(attributes)))
        self.users[user_id].update(attributes)

    def delete_user(self, user_id: str) -> None:
        if user_id in self.fail_delete_for:
            raise Transient("the service is unavailable", code="ServiceUnavailable")
        if user_id not in self.users:
            raise NotFound(f"no user {user_id}")
        self.writes.append(("delete", user_id, None))
        self.deleted[user_id] = self.users.pop(user_id)

    def restore_user(self, user_id: str) -> None:
        if user_id not in self.deleted:
            raise NotFound(f"no deleted user {user_id}")
        self.writes.append(("restore", user_id, None))
        self.users[user_id] = self.deleted.pop(user_id)


class FakeCursors:
    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}
        self.revoked: set[str] = set()  # leases whose lock expired under them
        self.saves_left: int | None = None  # then saving fails, as when Redis goes away

    def load(self, job: str) -> Cursor:
        return copy.deepcopy(self.cursors.get(job, Cursor()))

    def save(self, job: str, cursor: Cursor, lease: Lease | None = None) -> None:
        if lease is not None and lease.token in self.revoked:
            raise LockLost("the lease was taken over")
        if self.saves_left is not None:
            if self.saves_left <= 0:
                raise Transient("cannot write the cursor to Redis")
            self.saves_left -= 1
        self.cursors[job] = copy.deepcopy(cursor)

    def clear(self, job: str) -> None:
        self.cursors.pop(job, None)


class FakeLock:
    def __init__(self) -> None:
        self.held: set[str] = set()
        self.leases = 0

    @contextmanager
    def hold(self, job: str) -> Iterator[Lease]:
        if job in self.held:
            raise AlreadyRunning(job)
        self.held.add(job)
        self.leases += 1
        try:
            yield Lease(job, f"lease-{self.leases}")
        finally:
            self.held.discard(job)

    def is_held(self, job: str) -> bool:
        return job in self.held


class CrashAfter(Exception):
    """Raised by FakeLedger to simulate the process dying after N page commits."""


class FakeLedger(MemoryLedger):
    """The product's in-memory ledger, with a process that can die between page commits."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0
        self.crash_after_commits: int | None = None

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        if self.crash_after_commits is not None and self.commits >= self.crash_after_commits:
            raise CrashAfter(f"crash after {self.commits} commits")
        self.commits += 1
        super().commit_page(job, run_id, write)


class FakeAuditLog:
    """The AuditLog port in memory; `broken` makes every write fail as a database would."""

    def __init__(self) -> None:
        self.stored: list[AuditEntry] = []
        self.broken: Transient | None = None

    def record(self, entry: AuditEntry) -> AuditEntry:
        if self.broken is not None:
            raise self.broken
        stored = dataclasses.replace(entry, id=len(self.stored) + 1)
        self.stored.append(stored)
        return stored

    def entries(
        self, job: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        chosen = [
            e
            for e in reversed(self.stored)
            if (job is None or e.job == job) and (before_id is None or (e.id or 0) < before_id)
        ]
        return chosen[:limit]
