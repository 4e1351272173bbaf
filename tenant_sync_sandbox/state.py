"""The sandbox's in-memory directory: tenants, users, groups, memberships and the change log.

Everything here is plain Python mutated only from the event loop; no method awaits, so each
mutation is atomic with respect to other requests. Every change to a user or group appends one
`Change` to its tenant's log; the log position is the tenant's delta sequence number.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
import secrets
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from sortedcontainers import SortedList

from . import rules, schema
from .faults import new_rng
from .grants import GrantStore
from .ids import new_guid
from .limits import Limiter
from .seed import DEFAULT_DELTA_MAX_AGE_S, now_iso
from .signing import Signer

INDEXED = frozenset({"id", "mail", "userPrincipalName", "otherMails"})
DEFAULT_ACCESS_TOKEN_LIFETIME_S = 3599
_EXTENSION_ATTRIBUTES = "graph.onPremisesExtensionAttributes"


def upn_identity(upn: str, domain: str) -> dict[str, str]:
    """The sign-in identity Entra gives every member user: its UPN, issued by the tenant."""
    return {"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": upn}


class Conflict(ValueError):
    """A write Graph would refuse because of another object (duplicate UPN...)."""


@dataclass
class Client:
    client_id: str
    secret: str | None
    certificates: list[x509.Certificate]
    roles: tuple[str, ...]  # the Graph application permissions its Graph tokens carry
    display_name: str = ""
    redirect_uris: tuple[str, ...] = ()

    @property
    def public(self) -> bool:
        """A public client (native or single-page app): no credential, signs users in only."""
        return self.secret is None and not self.certificates


@dataclass(frozen=True)
class ApiApp:
    """An app registration exposing an API (seed `apis`, see seed_apps.py)."""

    app_id: str
    identifier_uri: str
    display_name: str
    app_roles: tuple[str, ...]
    scopes: tuple[str, ...]  # delegated permissions (`scp`)
    assignments: tuple[tuple[str, str], ...]  # (principal: object id or client id, role)

    def roles_of(self, principals: set[str]) -> list[str]:
        """The app roles assigned to any of these principals, in app_roles order."""
        held = {role for principal, role in self.assignments if principal in principals}
        return [role for role in self.app_roles if role in held]


@dataclass
class Partner:
    tenant_id: str
    inbound_auto_redeem: bool
    outbound_auto_redeem: bool
    is_sync_allowed: bool
    # Whether the partner has an identitySynchronization policy: a seeded partner has one, one
    # created with POST has none until it is PUT (see policies.py).
    has_sync_policy: bool = True
    sync_display_name: str | None = None
    # The other crossTenantAccessPolicyConfigurationPartner properties written to it, as sent.
    other: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str  # "user" | "group"
    object_id: str
    event: str  # created | updated | deleted | restored | purged | members
    props: frozenset[str] = frozenset()
    member_id: str | None = None
    member_kind: str | None = None
    at: float = 0.0  # when it was made (the tenant's clock), for delta's replication lag


def _folded(value: str) -> str:
    """The casefolded value, the same string object when folding changes nothing (most
    addresses are lower case already: the index then keeps no second copy)."""
    key = value.casefold()
    return value if key == value else key


# How many distinct values a property may have before the tenant stops sharing them.
SHARED_VALUES = 4096

# Property-name sets the change log names, each kept once (a few hundred distinct at most).
_PROPS: dict[frozenset[str], frozenset[str]] = {}
# The user properties `Tenant.index` keys (see `_index_values`).
INDEXED_ADDRESSES = frozenset({"mail", "userPrincipalName", "otherMails"})
_ATOMIC = (str, int, float, bool, type(None))  # values stored as they come (no deep copy)
_UNSEEN: dict[str, str] = {}  # marks a property _share has not met yet (never filled)


class Links:
    """Each key's linked ids (an address's users, a member's groups): one id is kept as the
    string itself, a set only for two or more, since a set per key would cost 216 bytes (most
    keys have one)."""

    def __init__(self) -> None:
        self._links: dict[str, str | set[str]] = {}

    def get(self, key: str, default: Collection[str] = ()) -> Collection[str]:
        found = self._links.get(key)
        if found is None:
            return default
        return (found,) if isinstance(found, str) else found

    def add(self, key: str, value: str) -> None:
        found = self._links.setdefault(key, value)
        if isinstance(found, set):
            found.add(value)
        elif found != value:
            self._links[key] = {found, value}

    def discard(self, key: str, value: str) -> None:
        found = self._links.get(key)
        if found == value:
            del self._links[key]
        elif isinstance(found, set):
            found.discard(value)
            if len(found) == 1:
                self._links[key] = found.pop()
            elif not found:
                del self._links[key]

    def pop(self, key: str) -> Collection[str]:
        found = self._links.pop(key, None)
        if found is None:
            return ()
        return (found,) if isinstance(found, str) else found


# One encoder for every packed batch (json.dumps with options makes a new one per call).
_PACK_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class Packed:
    """A list of JSON values kept deflated, as JSON lines of up to `_BATCH` values each (one
    array a line: encoded and decoded a batch at a time, not a value at a time); iterating
    decodes one line at a time (so reading it back never holds the whole text)."""

    _BATCH = 1000
    _CHUNK = 1 << 20

    def __init__(self, items: Iterable[Any]) -> None:
        compressor = zlib.compressobj(1)
        parts: list[bytes] = []
        batch: list[Any] = []
        for item in items:
            batch.append(item)
            if len(batch) == self._BATCH:
                parts.append(compressor.compress(self._line(batch)))
                batch.clear()
        if batch:
            parts.append(compressor.compress(self._line(batch)))
        parts.append(compressor.flush())
        self.data = b"".join(parts)

    @staticmethod
    def _line(batch: list[Any]) -> bytes:
        return (_PACK_ENCODER.encode(batch) + "\n").encode("utf-8")

    def __iter__(self) -> Iterator[Any]:
        decompressor = zlib.decompressobj()
        rest = b""
        for start in range(0, len(self.data), self._CHUNK):
            lines = (rest + decompressor.decompress(self.data[start : start + self._CHUNK])).split(
                b"\n"
            )
            rest = lines.pop()
            for line in lines:
                yield from json.loads(line)
        for line in (rest + decompressor.flush()).split(b"\n"):
            if line:
                yield from json.loads(line)


class Tenant:
    def __init__(
        self, seed: dict[str, Any], *, owned: bool = False, kept_users: Packed | None = None
    ) -> None:
        """`owned`: the seed's users and groups are this tenant's from now on, not copied.
        `kept_users`: the seed's users already packed (a reset passes them on), else they are
        packed from the directory before its first write (see `kept_users`)."""
        self._kept_users = kept_users
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
                c["client_id"],
                c.get("client_secret"),
                certs,
                tuple(c["roles"]),
                c.get("display_name") or c["client_id"],
                tuple(c.get("redirect_uris") or ()),
            )
        self.apis: dict[str, ApiApp] = {
            a["app_id"]: ApiApp(
                a["app_id"],
                a["identifier_uri"],
                a["display_name"],
                tuple(a["app_roles"]),
                tuple(a["scopes"]),
                tuple((x["principal"], x["role"]) for x in a["assignments"]),
            )
            for a in seed.get("apis") or []
        }
        # Sign-in passwords, kept apart from the user objects so Graph and the admin API's
        # dumps can never show them.
        self.passwords: dict[str, str] = {}
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
        self.member_of = Links()  # member id -> the groups it is a direct member of
        self.managers: dict[str, str] = {}  # user id -> its manager's id
        self.rules: dict[str, rules.Rule] = {}  # dynamic group id -> its membership rule
        # Sorted, for paging by id: inserting and removing cost O(log n), not a memory move of
        # the whole list (a millisecond a write at 1,000,000 users).
        self.active_user_ids: SortedList = SortedList()
        self.log: list[Change] = []
        # Stamps the changes (monotonic seconds); tests of delta's lag may set another clock.
        self.clock: Callable[[], float] = time.monotonic
        # Per property, its distinct text values (see _share), or None once they stop repeating.
        self._values: dict[str, dict[str, str] | None] = {}
        # Casefolded address -> the ids of the users that have it (nearly always one).
        self.index: dict[str, Links] = {name: Links() for name in INDEXED if name != "id"}
        active: list[str] = []
        for u in seed["users"]:
            user = u if owned else copy.deepcopy(u)
            password = user.pop("password", None)
            if password is not None:
                self.passwords[user["id"]] = password
            manager = user.pop("manager", None)
            if manager is not None:
                self.managers[user["id"]] = manager
            if self._insert_user(user, sorted_ids=False):
                active.append(user["id"])
        # Sorted once, in bulk: a million add()s cost several times as much.
        self.active_user_ids.update(active)
        del active
        for g in seed["groups"]:
            body = {k: v if owned else copy.deepcopy(v) for k, v in g.items() if k != "members"}
            self.groups[body["id"]] = body
            self.members[body["id"]] = set()
        for g in seed["groups"]:
            for m in g["members"]:
                self._link(g["id"], m)
            self._apply_rule(g["id"], record=False)

    # ------------------------------------------------------------ the seed, for reset

    def kept_users(self) -> Packed:
        """The seed's users, as deflated JSON (about 90 bytes a generated user), for reset.

        Packed from the directory itself while it is still the seed, on its first write:
        a tenant nobody writes to (a benchmark's source of a million users) never pays for
        it. A user comes back with its password and manager, which the tenant keeps apart."""
        if self._kept_users is None:
            self._kept_users = Packed(self._seed_user(u) for u in self.users.values())
        return self._kept_users

    def _seed_user(self, user: dict[str, Any]) -> dict[str, Any]:
        uid = user["id"]
        password, manager = self.passwords.get(uid), self.managers.get(uid)
        if password is None and manager is None:
            return user
        out = dict(user)
        if password is not None:
            out["password"] = password
        if manager is not None:
            out["manager"] = manager
        return out

    def _before_write(self) -> None:
        """Every write calls this first: the seed's users are packed before any changes."""
        if self._kept_users is None:
            self.kept_users()

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
        # One change per write, kept for delta: its property names are shared with every
        # change that names the same ones (most do), not a set per change.
        names = frozenset(props)
        names = _PROPS.setdefault(names, names)
        self.log.append(
            Change(
                self.seq + 1,
                kind,
                object_id,
                event,
                names,
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

    def api(self, resource: str) -> ApiApp | None:
        """An API app by identifier URI (case-insensitive) or app id."""
        key = resource.casefold()
        for api in self.apis.values():
            if api.identifier_uri.casefold() == key or api.app_id == key:
                return api
        return None

    def password_of(self, user_id: str) -> str | None:
        """The password a user signs in with: the seed's, else one set through Graph."""
        if user_id in self.passwords:
            return self.passwords[user_id]
        profile = self.users.get(user_id, {}).get("passwordProfile")
        password = profile.get("password") if isinstance(profile, dict) else None
        return password if isinstance(password, str) and password else None

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
        ids = self.indexed("userPrincipalName", key.casefold())
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
            ids.update(self.indexed(name, key))
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
                ids.update(self.indexed(name, value))
        return sorted(ids)

    def active_users_after(self, after: str | None) -> Iterator[dict[str, Any]]:
        ids = self.active_user_ids.irange(minimum=after, inclusive=(False, True))
        for oid in ids:
            yield self.users[oid]

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

    def manager_of(self, user_id: str) -> str | None:
        """The user's manager, when it has one that is not deleted."""
        manager = self.managers.get(user_id)
        return manager if manager is not None and self.is_active(manager) else None

    def direct_reports(self, user_id: str) -> list[str]:
        return sorted(u for u, m in self.managers.items() if m == user_id and self.is_active(u))

    def is_dynamic(self, group_id: str) -> bool:
        return group_id in self.rules

    # ------------------------------------------------------------ indexes

    def _index_values(self, user: dict[str, Any]) -> Iterator[tuple[str, str]]:
        for name in ("mail", "userPrincipalName"):
            value = user.get(name)
            if isinstance(value, str) and value:
                yield name, _folded(value)
        for value in user.get("otherMails") or []:
            if isinstance(value, str) and value:
                yield "otherMails", _folded(value)

    def indexed(self, name: str, key: str) -> Collection[str]:
        """The ids of the users whose `name` (mail, userPrincipalName, otherMails) is `key`
        (casefolded)."""
        return self.index[name].get(key)

    def _index_add(self, user: dict[str, Any], *, sorted_ids: bool = True) -> None:
        for name, key in self._index_values(user):
            self.index[name].add(key, user["id"])
        if sorted_ids:
            self.active_user_ids.add(user["id"])

    def _index_remove(self, user: dict[str, Any]) -> None:
        for name, key in self._index_values(user):
            self.index[name].discard(key, user["id"])
        self.active_user_ids.discard(user["id"])

    def _share(self, obj: dict[str, Any], keys: Iterable[str]) -> None:
        """Make the object's text values (and those one level down: list items, nested
        properties) the tenant's one copy of that value, where the property's values repeat.

        A directory repeats its values (departments, cities, titles, given names, sign-in
        types, the creation second): one string object per value instead of one per user saves
        about half a kilobyte a user. A property stops being shared once it has had
        `SHARED_VALUES` distinct values (ids, addresses, employee ids never repeat)."""
        values = self._values
        for key in keys:
            value = obj.get(key)
            if isinstance(value, str):
                # _shared, inlined: this runs for every property of every user loaded.
                memo = values.get(key, _UNSEEN)
                if memo is None:
                    continue
                if memo is _UNSEEN:
                    memo = values[key] = {}
                found = memo.setdefault(value, value)
                if found is not value:
                    obj[key] = found
                elif len(memo) > SHARED_VALUES:
                    values[key] = None  # this property's values do not repeat: stop
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, str):
                        value[i] = self._shared(key, item)
                    elif isinstance(item, dict):
                        for name, inner in item.items():
                            if isinstance(inner, str):
                                item[name] = self._shared(f"{key}/{name}", inner)
            elif isinstance(value, dict):
                for name, inner in value.items():
                    if isinstance(inner, str):
                        value[name] = self._shared(f"{key}/{name}", inner)

    def _shared(self, key: str, value: str) -> str:
        memo = self._values.get(key, _UNSEEN)
        if memo is None:
            return value
        if memo is _UNSEEN:
            memo = self._values[key] = {}
        found: str = memo.setdefault(value, value)
        if len(memo) > SHARED_VALUES:
            self._values[key] = None  # this property's values do not repeat: stop
        return found

    def _insert_user(self, user: dict[str, Any], *, sorted_ids: bool = True) -> bool:
        """Store (and index, when active) a user; whether it is active. `sorted_ids`: also
        into active_user_ids (a bulk load adds them all at once instead)."""
        self._share(user, list(user))
        self.users[user["id"]] = user
        if user.get("deletedDateTime") is None:
            self._index_add(user, sorted_ids=sorted_ids)
            return True
        return False

    def upn_taken(self, upn: str, except_id: str | None = None) -> bool:
        return any(i != except_id for i in self.indexed("userPrincipalName", upn.casefold()))

    # ------------------------------------------------------------ user writes

    def create_user(self, props: dict[str, Any]) -> dict[str, Any]:
        self._before_write()
        upn = props.get("userPrincipalName")
        if isinstance(upn, str) and self.upn_taken(upn):
            raise Conflict(
                "Another object with the same value for property userPrincipalName already exists."
            )
        user = dict(props)
        user["id"] = new_guid()
        if isinstance(upn, str) and not user.get("identities"):
            user["identities"] = [upn_identity(upn, self.domain)]
        user.setdefault("accountEnabled", True)
        user.setdefault("userType", "Member")
        user.setdefault("creationType", None)
        user["createdDateTime"] = user.get("createdDateTime") or now_iso()
        self._insert_user(user)
        self._record("user", user["id"], "created", user.keys())
        self._refresh_dynamic(user["id"])
        return user

    def set_manager(self, user_id: str, manager_id: str) -> None:
        self._before_write()
        if self.managers.get(user_id) == manager_id:
            return
        self.managers[user_id] = manager_id
        self._record("user", user_id, "updated", {"manager"})

    def remove_manager(self, user_id: str) -> None:
        self._before_write()
        old = self.managers.pop(user_id, None)
        self._record("user", user_id, "updated", {"manager"}, member_id=old, member_kind="user")

    def update_user(self, user_id: str, changes: dict[str, Any]) -> set[str]:
        """Apply changes; return the names of the properties whose value actually changed."""
        self._before_write()
        user = self.users[user_id]
        upn = changes.get("userPrincipalName")
        if isinstance(upn, str) and self.upn_taken(upn, except_id=user_id):
            raise Conflict(
                "Another object with the same value for property userPrincipalName already exists."
            )
        changed = {k for k, v in changes.items() if user.get(k) != v}
        if not changed:
            return changed
        # Re-index only when an indexed address changes (or the id is not in the sorted
        # ids): taking every address out and back in, and the id out of and back into the
        # sorted ids, left the indexes as they were at twice the cost of the rest of a patch.
        reindex = not changed.isdisjoint(INDEXED_ADDRESSES) or user_id not in self.active_user_ids
        if reindex:
            self._index_remove(user)
        for key in changed:
            value = changes[key]
            user[key] = value if isinstance(value, _ATOMIC) else copy.deepcopy(value)
        self._share(user, changed)
        if "userPrincipalName" in changed and "identities" not in changes:
            # Entra keeps the userPrincipalName sign-in identity in step with the UPN.
            for identity in user.get("identities") or []:
                if identity.get("signInType") == "userPrincipalName":
                    identity["issuerAssignedId"] = user["userPrincipalName"]
                    changed.add("identities")
        if reindex:
            self._index_add(user)
        self._record("user", user_id, "updated", changed)
        self._refresh_dynamic(user_id)
        return changed

    def soft_delete_user(self, user_id: str) -> None:
        self._before_write()
        user = self.users[user_id]
        self._index_remove(user)
        user["deletedDateTime"] = now_iso()
        self._record("user", user_id, "deleted")
        for gid in sorted(self.member_of.get(user_id, ())):
            if self.is_active(gid):
                self._record("group", gid, "members", member_id=user_id, member_kind="user")

    # ------------------------------------------------------------ group writes

    def group_by_unique_name(self, unique_name: str) -> dict[str, Any] | None:
        """The active group with this uniqueName (Graph's alternate key; case-insensitive)."""
        key = unique_name.casefold()
        for gid, group in self.groups.items():
            name = group.get("uniqueName")
            if isinstance(name, str) and name.casefold() == key and self.is_active(gid):
                return group
        return None

    def create_group(self, props: dict[str, Any], members: Iterable[str] = ()) -> dict[str, Any]:
        self._before_write()
        unique = props.get("uniqueName")
        if isinstance(unique, str) and self.group_by_unique_name(unique) is not None:
            raise Conflict(
                "Another object with the same value for property uniqueName already exists."
            )
        group = dict(props)
        group["id"] = new_guid()
        group["createdDateTime"] = now_iso()
        group.setdefault("groupTypes", [])
        self.groups[group["id"]] = group
        self.members[group["id"]] = set()
        for m in members:
            self._link(group["id"], m)
        self._record("group", group["id"], "created", group.keys())
        self._apply_rule(group["id"], record=False)
        return group

    def update_group(self, group_id: str, changes: dict[str, Any]) -> set[str]:
        self._before_write()
        group = self.groups[group_id]
        changed = {k for k, v in changes.items() if group.get(k) != v}
        for key in changed:
            group[key] = copy.deepcopy(changes[key])
        if changed:
            self._record("group", group_id, "updated", changed)
        if changed & {"groupTypes", "membershipRule", "membershipRuleProcessingState"}:
            self._apply_rule(group_id, record=True)
        return changed

    # ------------------------------------------------------------ dynamic membership

    def _apply_rule(self, group_id: str, *, record: bool) -> None:
        """(Re)compute a dynamic group's members from its rule; a static group is left alone.

        A group is dynamic when its groupTypes hold DynamicMembership and its rule processing
        is On (the default). Pausing processing keeps the members it has, as Entra does.
        """
        group = self.groups[group_id]
        text = group.get("membershipRule")
        dynamic = "DynamicMembership" in (group.get("groupTypes") or []) and isinstance(text, str)
        if not dynamic:
            self.rules.pop(group_id, None)
            return
        rule = rules.parse_rule(str(text))  # validated before it is stored
        self.rules[group_id] = rule
        if (group.get("membershipRuleProcessingState") or "On") != "On":
            return
        for uid, user in self.users.items():
            self._place(group_id, rule, uid, user, record=record)

    def _place(
        self, group_id: str, rule: rules.Rule, uid: str, user: dict[str, Any], *, record: bool
    ) -> None:
        want = rules.evaluate(rule, user)
        have = uid in self.members.get(group_id, set())
        if want == have:
            return
        if want:
            self._link(group_id, uid)
        else:
            self.members[group_id].discard(uid)
            self.member_of.discard(uid, group_id)
        if record and self.is_active(group_id):
            self._record("group", group_id, "members", member_id=uid, member_kind="user")

    def _refresh_dynamic(self, user_id: str) -> None:
        """Entra re-evaluates the rules when a user changes: join or leave dynamic groups."""
        user = self.users[user_id]
        for gid, rule in self.rules.items():
            if (self.groups[gid].get("membershipRuleProcessingState") or "On") == "On":
                self._place(gid, rule, user_id, user, record=True)

    def soft_delete_group(self, group_id: str) -> None:
        self._before_write()
        self.groups[group_id]["deletedDateTime"] = now_iso()
        self._record("group", group_id, "deleted")
        for parent in sorted(self.member_of.get(group_id, ())):
            if self.is_active(parent):
                self._record("group", parent, "members", member_id=group_id, member_kind="group")

    def _link(self, group_id: str, member_id: str) -> None:
        self.members.setdefault(group_id, set()).add(member_id)
        self.member_of.add(member_id, group_id)

    def add_member(self, group_id: str, member_id: str) -> None:
        self._before_write()
        self._link(group_id, member_id)
        kind = self.kind_of(member_id)
        self._record("group", group_id, "members", member_id=member_id, member_kind=kind)

    def remove_member(self, group_id: str, member_id: str) -> None:
        self._before_write()
        self.members.get(group_id, set()).discard(member_id)
        self.member_of.discard(member_id, group_id)
        kind = self.kind_of(member_id)
        self._record("group", group_id, "members", member_id=member_id, member_kind=kind)

    # ------------------------------------------------------------ deleted items

    def restore(self, object_id: str) -> tuple[str, dict[str, Any]]:
        self._before_write()
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
        self._before_write()
        kind = self.kind_of(object_id)
        assert kind is not None
        for gid in self.member_of.pop(object_id):
            self.members.get(gid, set()).discard(object_id)
        if kind == "user":
            del self.users[object_id]
            self.managers.pop(object_id, None)
            for report in [u for u, m in self.managers.items() if m == object_id]:
                self.remove_manager(report)
        else:
            for m in self.members.pop(object_id, set()):
                self.member_of.discard(m, object_id)
            del self.groups[object_id]
            self.rules.pop(object_id, None)
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

    def __init__(self, seed: dict[str, Any], *, owned: bool = False) -> None:
        self.signer = Signer()
        self.grants = GrantStore()
        self.stats = Stats()
        self.limiter = Limiter()
        self.delta_max_age_s = float(DEFAULT_DELTA_MAX_AGE_S)
        self.delta_lag_s = 0.0
        self.access_token_lifetime_s = DEFAULT_ACCESS_TOKEN_LIFETIME_S
        self.delta_cache: dict[tuple[Any, ...], Any] = {}
        # The seed without its tenants' users and groups (kept packed, for reset: the groups
        # in _kept_groups, the users by each tenant).
        self.seed: dict[str, Any] = {}
        self._kept_groups: dict[str, Packed] = {}
        self.tenants: dict[str, Tenant] = {}
        self.limits: dict[str, float] = {}
        self.faults: dict[str, Any] = {}
        self.fault_rng = random.Random()
        self.batch_rng = random.Random()  # the run order of parallel $batch items
        self.epoch = ""
        self.token_age_offset = 0.0
        self.load(seed, owned=owned)

    def load(self, seed: dict[str, Any], *, owned: bool = False) -> None:
        """Replace the whole directory with a (normalised) seed; old delta tokens become stale.

        `owned`: the seed's users and groups become the directory's own objects (the caller
        never uses them again: a seed just read from a file), instead of copies."""
        # Kept to reset to as deflated JSON, where the seed's own objects would cost 2 to 3 KB
        # a user besides the directory's: the groups now, each tenant's users before its
        # first write (Tenant.kept_users).
        kept = {t["tenant_id"]: Packed(t["groups"]) for t in seed["tenants"]}
        self._build(seed, owned=owned)
        self._kept_groups = kept
        self.seed = {
            **seed,
            "tenants": [
                {k: v for k, v in t.items() if k not in ("users", "groups")}
                for t in seed["tenants"]
            ],
        }

    def _build(
        self, seed: dict[str, Any], *, owned: bool, kept_users: dict[str, Packed] | None = None
    ) -> None:
        self.tenants = {}  # the old directory goes first: never two at once
        kept = kept_users or {}
        self.tenants = {
            t["tenant_id"]: Tenant(t, owned=owned, kept_users=kept.get(t["tenant_id"]))
            for t in seed["tenants"]
        }
        self.limits = dict(seed["limits"])
        self.set_faults(dict(seed["faults"]), reseed=True)
        self.epoch = secrets.token_hex(6)
        self.token_age_offset = 0.0
        delta = seed.get("delta") or {}
        self.delta_max_age_s = float(delta.get("token_max_age_s", DEFAULT_DELTA_MAX_AGE_S))
        self.delta_lag_s = float(delta.get("lag_s", 0.0))
        self.access_token_lifetime_s = DEFAULT_ACCESS_TOKEN_LIFETIME_S
        self.grants = GrantStore()
        self.delta_cache.clear()
        self.limiter = Limiter()

    def reset(self) -> None:
        """Back to the seed, read again a user at a time from what load() kept."""
        users = {tid: tenant.kept_users() for tid, tenant in self.tenants.items()}
        tenants = [
            {**t, "users": users[t["tenant_id"]], "groups": self._kept_groups[t["tenant_id"]]}
            for t in self.seed["tenants"]
        ]
        self._build({**self.seed, "tenants": tenants}, owned=True, kept_users=users)

    def snapshot(self) -> dict[str, Any]:
        """The directory as it is now, as a seed: a later sandbox started from it serves the
        same users (ids, attributes, passwords, managers), groups and memberships. Deleted
        objects are left out (a seed cannot hold them), and so are the change log and delta
        tokens."""
        tenants = []
        for entry in self.seed["tenants"]:
            tenant = self.tenants[entry["tenant_id"]]
            users = []
            for oid in tenant.active_user_ids:
                user = copy.deepcopy(tenant.users[oid])
                if oid in tenant.passwords:
                    user["password"] = tenant.passwords[oid]
                manager = tenant.managers.get(oid)
                if manager is not None and tenant.is_active(manager):
                    user["manager"] = manager
                users.append(user)
            groups = []
            for gid, group in tenant.groups.items():
                if not tenant.is_active(gid):
                    continue
                body = copy.deepcopy(group)
                if "DynamicMembership" not in (group.get("groupTypes") or ()):
                    # A deleted member keeps its membership for a restore; a seed cannot. A
                    # dynamic group's members follow its rule, so they are not listed.
                    body["members"] = sorted(
                        m for m in tenant.members.get(gid, ()) if tenant.is_active(m)
                    )
                groups.append(body)
            tenants.append({**copy.deepcopy(entry), "users": users, "groups": groups})
        return {**copy.deepcopy(self.seed), "tenants": tenants}

    def set_faults(self, faults: dict[str, Any], *, reseed: bool) -> None:
        """Install validated fault settings; `reseed` restarts the RNG from `faults["seed"]`."""
        self.faults = faults
        if reseed:
            self.fault_rng = new_rng(faults.get("seed"))
            self.batch_rng = new_rng(faults.get("seed"))

    def tenant(self, tenant_id: str) -> Tenant | None:
        t = self.tenants.get(tenant_id)
        if t is None:
            t = self.tenants.get(tenant_id.lower())
        return t

    def virtual_now(self) -> float:
        """The clock delta tokens are aged against (moved by /_sandbox/delta-tokens/age)."""
        return time.time() + self.token_age_offset


def _copied(value: Any) -> Any:
    """A value no answer shares with the directory: what `copy.deepcopy` gives, without its
    dispatch for the JSON shapes a directory holds (a fifth of serving a page of users:
    docs/performance.md, "The no-change cycle"); anything else still goes to deepcopy."""
    cls = value.__class__
    if cls is str or cls is bool or cls is int or cls is float or value is None:
        return value
    if cls is list:
        return [_copied(item) for item in value]
    if cls is dict:
        return {key: _copied(item) for key, item in value.items()}
    return copy.deepcopy(value)


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
        elif prop is None and obj.get(name) is None:
            continue  # a directory extension without a value is left out, even when selected
        elif name in obj:
            value = _copied(obj[name])
            if prop is not None and isinstance(value, dict) and prop.type == _EXTENSION_ATTRIBUTES:
                # Graph shows all fifteen, null where unset, however few were written.
                value = {**schema.default_value(prop), **value}
        else:
            value = schema.default_value(prop) if prop is not None else None
        if value is None and omit_nulls and name not in keep:
            continue
        out[name] = value
    return out
