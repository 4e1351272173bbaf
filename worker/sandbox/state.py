"""The sandbox's in-memory directory: tenants, users, groups, memberships and the change log.

Everything here is plain Python mutated only from the event loop; no method awaits, so each
mutation is atomic with respect to other requests. Every change to a user or group appends one
`Change` to its tenant's log; the log position is the tenant's delta sequence number.
"""

from __future__ import annotations

import bisect
import copy
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from . import schema
from .faults import new_rng
from .limits import Limiter
from .seed import DEFAULT_DELTA_MAX_AGE_S, now_iso

INDEXED = frozenset({"id", "mail", "userPrincipalName", "otherMails"})
DEFAULT_ACCESS_TOKEN_LIFETIME_S = 3599


class Conflict(ValueError):
    """A write Graph would refuse because of another object (duplicate UPN...)."""


@dataclass
class Client:
    client_id: str
    secret: str | None
    certificates: list[x509.Certificate]
    roles: tuple[str, ...]  # the application permissions its tokens carry


@dataclass
class Partner:
    tenant_id: str
    inbound_auto_redeem: bool
    outbound_auto_redeem: bool
    is_sync_allowed: bool


@dataclass(frozen=True)
class Change:
    seq: int
    kind: str  # "user" | "group"
    object_id: str
    event: str  # created | updated | deleted | restored | purged | members
    props: frozenset[str] = frozenset()
    member_id: str | None = None
    member_kind: str | None = None
    at: float = 0.0  # when it was made (the tenant's clock), for delta's replication lag


class Tenant:
    def __init__(self, seed: dict[str, Any]) -> None:
        self.tenant_id: str = seed["tenant_id"]
        self.domain: str = seed["domain"]
        self.display_name: str = seed["display_name"]
        self.clients: dict[str, Client] = {}
        for c in seed["clients"]:
            certs = (
                x509.load_pem_x509_certificates(c["certificate"].encode("utf-8"))
                if c.get("certificate")
                else []
            )
            self.clients[c["client_id"]] = Client(
                c["client_id"], c.get("client_secret"), certs, tuple(c["roles"])
            )
        self.partners: dict[str, Partner] = {
            p["tenant_id"]: Partner(
                p["tenant_id"],
                p["inbound_auto_redeem"],
                p["outbound_auto_redeem"],
                p["is_sync_allowed"],
            )
            for p in seed["cross_tenant_access"]["partners"]
        }
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.member_of: dict[str, set[str]] = {}
        self.active_user_ids: list[str] = []
        self.log: list[Change] = []
        # Stamps the changes (monotonic seconds); tests of delta's lag may set another clock.
        self.clock: Callable[[], float] = time.monotonic
        self.index: dict[str, dict[str, set[str]]] = {name: {} for name in INDEXED if name != "id"}
        for u in seed["users"]:
            self._insert_user(copy.deepcopy(u))
        for g in seed["groups"]:
            body = {k: copy.deepcopy(v) for k, v in g.items() if k != "members"}
            self.groups[body["id"]] = body
            self.members[body["id"]] = set()
        for g in seed["groups"]:
            for m in g["members"]:
                self._link(g["id"], m)

    # ------------------------------------------------------------ log

    @property
    def seq(self) -> int:
        return len(self.log)

    def _record(
        self,
        kind: str,
        object_id: str,
        event: str,
        props: Iterable[str] = (),
        member_id: str | None = None,
        member_kind: str | None = None,
    ) -> None:
        self.log.append(
            Change(
                self.seq + 1,
                kind,
                object_id,
                event,
                frozenset(props),
                member_id,
                member_kind,
                self.clock(),
            )
        )

    def seq_before(self, moment: float) -> int:
        """The sequence number of the last change made at or before `moment`."""
        return bisect.bisect_right(self.log, moment, key=lambda change: change.at)

    def changes(self, since: int, until: int) -> list[Change]:
        """Changes with since < seq <= until (sequence numbers are 1-based log positions)."""
        return self.log[max(since, 0) : max(until, 0)]

    # ------------------------------------------------------------ lookups

    def resolve_id(self, key: str) -> str | None:
        if key in self.users or key in self.groups:
            return key
        low = key.lower()
        if low in self.users or low in self.groups:
            return low
        return None

    def kind_of(self, object_id: str) -> str | None:
        if object_id in self.users:
            return "user"
        if object_id in self.groups:
            return "group"
        return None

    def is_active(self, object_id: str) -> bool:
        obj = self.users.get(object_id) or self.groups.get(object_id)
        return obj is not None and obj.get("deletedDateTime") is None

    def active_user(self, key: str) -> dict[str, Any] | None:
        """An active user by id or userPrincipalName."""
        oid = self.resolve_id(key)
        if oid is not None and oid in self.users and self.is_active(oid):
            return self.users[oid]
        ids = self.index["userPrincipalName"].get(key.casefold())
        if ids:
            return self.users[min(ids)]
        return None

    def active_group(self, key: str) -> dict[str, Any] | None:
        oid = self.resolve_id(key)
        if oid is not None and oid in self.groups and self.is_active(oid):
            return self.groups[oid]
        return None

    def deleted_object(self, key: str) -> tuple[str, dict[str, Any]] | None:
        oid = self.resolve_id(key)
        if oid is None or self.is_active(oid):
            return None
        kind = self.kind_of(oid)
        assert kind is not None
        return kind, (self.users if kind == "user" else self.groups)[oid]

    def users_by_address(self, address: str) -> list[dict[str, Any]]:
        """Active users whose mail, otherMails or UPN is the address (case-insensitive)."""
        key = address.casefold()
        ids: set[str] = set()
        for name in ("mail", "otherMails", "userPrincipalName"):
            ids |= self.index[name].get(key, set())
        return [self.users[i] for i in sorted(ids)]

    def candidates(self, terms: list[tuple[str, str]]) -> list[str]:
        """Sorted active user ids that may match index look-ups from odata.equality_terms."""
        ids: set[str] = set()
        for name, value in terms:
            if name == "id":
                oid = self.resolve_id(value)
                if oid is not None and oid in self.users and self.is_active(oid):
                    ids.add(oid)
            else:
                ids |= self.index[name].get(value, set())
        return sorted(ids)

    def active_users_after(self, after: str | None) -> Iterator[dict[str, Any]]:
        start = 0 if after is None else bisect.bisect_right(self.active_user_ids, after)
        ids = self.active_user_ids
        i = start
        while i < len(ids):
            yield self.users[ids[i]]
            i += 1

    def effective_members(self, group_id: str) -> list[str]:
        return sorted(m for m in self.members.get(group_id, ()) if self.is_active(m))

    def transitive_members(self, group_id: str) -> list[str]:
        seen: set[str] = set()
        visited_groups = {group_id}
        pending = [group_id]
        while pending:
            gid = pending.pop()
            for m in self.members.get(gid, ()):
                if not self.is_active(m):
                    continue
                seen.add(m)
                if m in self.groups and m not in visited_groups:
                    visited_groups.add(m)
                    pending.append(m)
        seen.discard(group_id)
        return sorted(seen)

    # ------------------------------------------------------------ indexes

    def _index_values(self, user: dict[str, Any]) -> Iterator[tuple[str, str]]:
        for name in ("mail", "userPrincipalName"):
            value = user.get(name)
            if isinstance(value, str) and value:
                yield name, value.casefold()
        for value in user.get("otherMails") or []:
            if isinstance(value, str) and value:
                yield "otherMails", value.casefold()

    def _index_add(self, user: dict[str, Any]) -> None:
        for name, key in self._index_values(user):
            self.index[name].setdefault(key, set()).add(user["id"])
        bisect.insort(self.active_user_ids, user["id"])

    def _index_remove(self, user: dict[str, Any]) -> None:
        for name, key in self._index_values(user):
            bucket = self.index[name].get(key)
            if bucket is not None:
                bucket.discard(user["id"])
                if not bucket:
                    del self.index[name][key]
        pos = bisect.bisect_left(self.active_user_ids, user["id"])
        if pos < len(self.active_user_ids) and self.active_user_ids[pos] == user["id"]:
            del self.active_user_ids[pos]

    def _insert_user(self, user: dict[str, Any]) -> None:
        self.users[user["id"]] = user
        self.member_of.setdefault(user["id"], set())
        if user.get("deletedDateTime") is None:
            self._index_add(user)

    def upn_taken(self, upn: str, except_id: str | None = None) -> bool:
        ids = self.index["userPrincipalName"].get(upn.casefold(), set())
        return any(i != except_id for i in ids)

    # ------------------------------------------------------------ user writes

    def create_user(self, props: dict[str, Any]) -> dict[str, Any]:
        upn = props.get("userPrincipalName")
        if isinstance(upn, str) and self.upn_taken(upn):
            raise Conflict(
                "Another object with the same value for property userPrincipalName already exists."
            )
        user = dict(props)
        user["id"] = str(uuid.uuid4())
        user.setdefault("accountEnabled", True)
        user.setdefault("userType", "Member")
        user.setdefault("creationType", None)
        user["createdDateTime"] = user.get("createdDateTime") or now_iso()
        self._insert_user(user)
        self._record("user", user["id"], "created", user.keys())
        return user

    def update_user(self, user_id: str, changes: dict[str, Any]) -> set[str]:
        """Apply changes; return the names of the properties whose value actually changed."""
        user = self.users[user_id]
        upn = changes.get("userPrincipalName")
        if isinstance(upn, str) and self.upn_taken(upn, except_id=user_id):
            raise Conflict(
                "Another object with the same value for property userPrincipalName already exists."
            )
        changed = {k for k, v in changes.items() if user.get(k) != v}
        if not changed:
            return changed
        self._index_remove(user)
        for key in changed:
            user[key] = copy.deepcopy(changes[key])
        self._index_add(user)
        self._record("user", user_id, "updated", changed)
        return changed

    def soft_delete_user(self, user_id: str) -> None:
        user = self.users[user_id]
        self._index_remove(user)
        user["deletedDateTime"] = now_iso()
        self._record("user", user_id, "deleted")
        for gid in sorted(self.member_of.get(user_id, ())):
            if self.is_active(gid):
                self._record("group", gid, "members", member_id=user_id, member_kind="user")

    # ------------------------------------------------------------ group writes

    def create_group(self, props: dict[str, Any], members: Iterable[str] = ()) -> dict[str, Any]:
        group = dict(props)
        group["id"] = str(uuid.uuid4())
        group["createdDateTime"] = now_iso()
        group.setdefault("groupTypes", [])
        self.groups[group["id"]] = group
        self.members[group["id"]] = set()
        self.member_of.setdefault(group["id"], set())
        for m in members:
            self._link(group["id"], m)
        self._record("group", group["id"], "created", group.keys())
        return group

    def update_group(self, group_id: str, changes: dict[str, Any]) -> set[str]:
        group = self.groups[group_id]
        changed = {k for k, v in changes.items() if group.get(k) != v}
        for key in changed:
            group[key] = copy.deepcopy(changes[key])
        if changed:
            self._record("group", group_id, "updated", changed)
        return changed

    def soft_delete_group(self, group_id: str) -> None:
        self.groups[group_id]["deletedDateTime"] = now_iso()
        self._record("group", group_id, "deleted")
        for parent in sorted(self.member_of.get(group_id, ())):
            if self.is_active(parent):
                self._record("group", parent, "members", member_id=group_id, member_kind="group")

    def _link(self, group_id: str, member_id: str) -> None:
        self.members.setdefault(group_id, set()).add(member_id)
        self.member_of.setdefault(member_id, set()).add(group_id)

    def add_member(self, group_id: str, member_id: str) -> None:
        self._link(group_id, member_id)
        kind = self.kind_of(member_id)
        self._record("group", group_id, "members", member_id=member_id, member_kind=kind)

    def remove_member(self, group_id: str, member_id: str) -> None:
        self.members.get(group_id, set()).discard(member_id)
        self.member_of.get(member_id, set()).discard(group_id)
        kind = self.kind_of(member_id)
        self._record("group", group_id, "members", member_id=member_id, member_kind=kind)

    # ------------------------------------------------------------ deleted items

    def restore(self, object_id: str) -> tuple[str, dict[str, Any]]:
        kind = self.kind_of(object_id)
        assert kind is not None
        if kind == "user":
            user = self.users[object_id]
            upn = user.get("userPrincipalName")
            if isinstance(upn, str) and self.upn_taken(upn):
                raise Conflict(
                    "Another object with the same value for property userPrincipalName "
                    "already exists."
                )
            user["deletedDateTime"] = None
            self._index_add(user)
            obj = user
        else:
            obj = self.groups[object_id]
            obj["deletedDateTime"] = None
        self._record(kind, object_id, "restored")
        for gid in sorted(self.member_of.get(object_id, ())):
            if self.is_active(gid):
                self._record("group", gid, "members", member_id=object_id, member_kind=kind)
        return kind, obj

    def purge(self, object_id: str) -> str:
        """Permanently delete a soft-deleted object; its memberships go with it."""
        kind = self.kind_of(object_id)
        assert kind is not None
        for gid in self.member_of.pop(object_id, set()):
            self.members.get(gid, set()).discard(object_id)
        if kind == "user":
            del self.users[object_id]
        else:
            for m in self.members.pop(object_id, set()):
                self.member_of.get(m, set()).discard(object_id)
            del self.groups[object_id]
        self._record(kind, object_id, "purged")
        return kind


@dataclass
class Stats:
    total: int = 0
    by_tenant: dict[str, int] = field(default_factory=dict)
    by_method_path: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    errors: int = 0
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    batch_items: int = 0

    def count_request(self, key: str, tenant_id: str | None) -> None:
        self.total += 1
        self.by_method_path[key] = self.by_method_path.get(key, 0) + 1
        if tenant_id:
            self.by_tenant[tenant_id] = self.by_tenant.get(tenant_id, 0) + 1

    def count_write(self, tenant_id: str) -> None:
        self.writes[tenant_id] = self.writes.get(tenant_id, 0) + 1

    def count_fault(self, kind: str) -> None:
        """kind: latency | drop | commit_then_drop | error_500 | error_502 | error_503 | ..."""
        if kind != "latency":
            self.faults_injected += 1
        self.faults_by_kind[kind] = self.faults_by_kind.get(kind, 0) + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": {
                "total": self.total,
                "by_tenant": dict(self.by_tenant),
                "by_method_path": dict(self.by_method_path),
                "batch_items": self.batch_items,
            },
            "writes": dict(self.writes),
            "throttled": self.throttled,
            "errors": self.errors,
            "faults_injected": self.faults_injected,
            "faults_by_kind": dict(self.faults_by_kind),
        }


class SandboxState:
    """All tenants plus the knobs (limits, faults, token ages) and counters."""

    def __init__(self, seed: dict[str, Any]) -> None:
        self.token_key = secrets.token_bytes(32)
        self.stats = Stats()
        self.limiter = Limiter()
        self.delta_max_age_s = float(DEFAULT_DELTA_MAX_AGE_S)
        self.delta_lag_s = 0.0
        self.access_token_lifetime_s = DEFAULT_ACCESS_TOKEN_LIFETIME_S
        self.delta_cache: dict[tuple[Any, ...], Any] = {}
        self.seed: dict[str, Any] = {}
        self.tenants: dict[str, Tenant] = {}
        self.limits: dict[str, float] = {}
        self.faults: dict[str, Any] = {}
        self.fault_rng = random.Random()
        self.epoch = ""
        self.token_age_offset = 0.0
        self.load(seed)

    def load(self, seed: dict[str, Any]) -> None:
        """Replace the whole directory with a (normalised) seed; old delta tokens become stale."""
        self.seed = seed
        self.tenants = {t["tenant_id"]: Tenant(t) for t in seed["tenants"]}
        self.limits = dict(seed["limits"])
        self.set_faults(dict(seed["faults"]), reseed=True)
        self.epoch = secrets.token_hex(6)
        self.token_age_offset = 0.0
        delta = seed.get("delta") or {}
        self.delta_max_age_s = float(delta.get("token_max_age_s", DEFAULT_DELTA_MAX_AGE_S))
        self.delta_lag_s = float(delta.get("lag_s", 0.0))
        self.access_token_lifetime_s = DEFAULT_ACCESS_TOKEN_LIFETIME_S
        self.delta_cache.clear()
        self.limiter = Limiter()

    def reset(self) -> None:
        self.load(self.seed)

    def set_faults(self, faults: dict[str, Any], *, reseed: bool) -> None:
        """Install validated fault settings; `reseed` restarts the RNG from `faults["seed"]`."""
        self.faults = faults
        if reseed:
            self.fault_rng = new_rng(faults.get("seed"))

    def tenant(self, tenant_id: str) -> Tenant | None:
        t = self.tenants.get(tenant_id)
        if t is None:
            t = self.tenants.get(tenant_id.lower())
        return t

    def virtual_now(self) -> float:
        """The clock delta tokens are aged against (moved by /_sandbox/delta-tokens/age)."""
        return time.time() + self.token_age_offset


def project(
    obj: dict[str, Any],
    type_name: str,
    select: Iterable[str],
    *,
    omit_nulls: bool = False,
    keep_nulls: Iterable[str] = (),
) -> dict[str, Any]:
    """The object as Graph shows it for the selected properties (id first)."""
    props = schema.properties(type_name)
    keep = set(keep_nulls)
    out: dict[str, Any] = {}
    names = list(select)
    if "id" not in names:
        names.insert(0, "id")
    for name in names:
        prop = props.get(name)
        if prop is None and not schema.is_extension_property(name):
            continue
        if name == "passwordProfile":
            value = None  # Graph never returns passwords
        elif name in obj:
            value = copy.deepcopy(obj[name])
        else:
            value = schema.default_value(prop) if prop is not None else None
        if value is None and omit_nulls and name not in keep:
            continue
        out[name] = value
    return out
