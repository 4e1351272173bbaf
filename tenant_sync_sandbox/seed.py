"""Seed files: reading, validating and normalising them (the format: docs/sandbox-seed.md).

`load_seed(path)` returns the normalised seed: every user and group has an id, defaults are
filled in and timestamps fixed, so resetting the sandbox to the seed gives the same ids again.
Problems raise `SeedError` with one message naming the file and what is wrong.

Per tenant, besides users, groups and partners: `clients` and `apis` (app registrations, see
`seed_apps.py`), and users may carry a `password` for the sign-in page (never shown by Graph or
the admin API).

Besides `tenants`, a seed may carry three optional sections (each also changeable at run time
through the admin API, see `admin.py`); every default is harmless:

`limits` (throttling, see `throttling.py`): `resource_units_per_10s` (8000), `write_per_150s`
(3000), `invitations_per_5s` (150), and `window_scale` (1.0): every window length is multiplied
by it, so `{"write_per_150s": 2, "window_scale": 0.01}` gives 2 writes per 1.5 s for fast tests.

`faults` (see `faults.py`): `error_rate` (0.0, share of Graph requests answered with a 5xx),
`error_statuses` ([500, 502, 503, 504], picked at random), `error_retry_after_s` (1, the
`Retry-After` of injected 503/504), `latency_ms` (0, added to every Graph request),
`drop_rate` (0.0, connection closed without any response, nothing done), `commit_then_drop_rate`
(0.0, request carried out, then the connection closed instead of the response),
`commit_then_drop_paths` (null = every Graph route; else patterns like
`"POST /v1.0/invitations"` or `"PATCH /v1.0/users/*"`, fnmatch on the route template or the
actual path), `commit_then_error_rate` (0.0, request or `$batch` item carried out, then answered
with one of `error_statuses`) and `seed` (null; an integer makes the fault sequence reproducible).

`delta`: `token_max_age_s` (604800 = 7 days): older delta/skip tokens get 410 syncStateNotFound;
`lag_s` (0): a round leaves out the changes made in the `lag_s` seconds before it started, and
the next round reports them, as Graph's replication may (see `delta.py`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from . import rules, schema
from .seed_apps import Principals, validate_apis, validate_client
from .seed_errors import SeedError as SeedError
from .seed_errors import guid, warn

DEFAULT_LIMITS: dict[str, float] = {
    "write_per_150s": 3000,
    "resource_units_per_10s": 8000,
    "invitations_per_5s": 150,
    "window_scale": 1.0,
}
FAULT_STATUSES = (500, 502, 503, 504)
DEFAULT_FAULTS: dict[str, Any] = {
    "error_rate": 0.0,
    "error_statuses": list(FAULT_STATUSES),
    "error_retry_after_s": 1,
    "latency_ms": 0,
    "drop_rate": 0.0,
    "commit_then_drop_rate": 0.0,
    "commit_then_drop_paths": None,
    "commit_then_error_rate": 0.0,
    "seed": None,
}
DEFAULT_DELTA_MAX_AGE_S = 7 * 24 * 3600
DEFAULT_DELTA: dict[str, Any] = {"token_max_age_s": DEFAULT_DELTA_MAX_AGE_S, "lag_s": 0.0}
MAX_DELTA_LAG_S = 3600

_TOP_KEYS = {"tenants", "limits", "faults", "delta"}
_TENANT_KEYS = {
    "tenant_id",
    "domain",
    "display_name",
    "clients",
    "users",
    "groups",
    "cross_tenant_access",
    "apis",
}


_now_cache: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The current second in UTC, as Graph writes timestamps; formatted once a second (a
    million seed users and every created object ask for it)."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _now_cache[1]


# A GUID already in its canonical form (lower-case 8-4-4-4-12), which str(uuid.UUID(...))
# would give back unchanged: generated seeds hold only these, a million and more.
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def load_seed(path: Path | str) -> dict[str, Any]:
    """Read, validate and normalise a seed file."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedError(f"seed file {p}: cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError(
            f"seed file {p}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    del text  # a large seed's text is hundreds of MB: not kept while it is validated
    try:
        return validate_seed(data, consume=True)
    except SeedError as exc:
        raise SeedError(f"seed file {p}: {exc}") from exc


def _object_id(value: Any, where: str) -> str:
    if value is None:
        return str(uuid.uuid4())
    if isinstance(value, str) and _CANONICAL_GUID.fullmatch(value):
        return value
    if not isinstance(value, str) or not value.strip() or "/" in value:
        raise SeedError(f"{where}.id must be a non-empty string without '/', got {value!r}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value  # non-GUID ids are accepted to keep hand-written seeds short


def _number(value: Any, where: str, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SeedError(f"{where} must be a number, got {json.dumps(value)}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise SeedError(f"{where} must be {bound}, got {value}")
    return value


def validate_limits(value: Any, where: str = "limits") -> dict[str, float]:
    if value is None:
        return dict(DEFAULT_LIMITS)
    if not isinstance(value, dict):
        raise SeedError(f"{where} must be an object")
    out = dict(DEFAULT_LIMITS)
    for key, item in value.items():
        if key not in DEFAULT_LIMITS:
            raise SeedError(f"{where}.{key} is not a known limit ({', '.join(DEFAULT_LIMITS)})")
        if key == "window_scale":
            scale = _number(item, f"{where}.{key}", low=0, high=100)
            if scale <= 0:
                raise SeedError(f"{where}.{key} must be > 0, got {scale}")
            out[key] = scale
        else:
            out[key] = _number(item, f"{where}.{key}", low=1)
    return out


def _rate(value: Any, where: str) -> float:
    return _number(value, where, low=0, high=1)


def _fault_statuses(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise SeedError(f"{where} must be a non-empty list of {list(FAULT_STATUSES)}")
    out: list[int] = []
    for item in value:
        if isinstance(item, bool) or item not in FAULT_STATUSES:
            raise SeedError(f"{where} may only hold {list(FAULT_STATUSES)}, got {item!r}")
        if item not in out:
            out.append(int(item))
    return out


def _route_patterns(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise SeedError(f'{where} must be null or a list like ["POST /v1.0/invitations"]')
    out: list[str] = []
    for raw in value:
        method, _, path = raw.strip().partition(" ")
        if not path.strip().startswith("/"):
            raise SeedError(f"{where}: {raw!r} must be 'METHOD /path' (path may use * and ?)")
        out.append(f"{method.upper()} {path.strip()}")
    return out


def validate_faults(value: Any, where: str = "faults") -> dict[str, Any]:
    if value is None:
        return dict(DEFAULT_FAULTS)
    if not isinstance(value, dict):
        raise SeedError(f"{where} must be an object")
    out = dict(DEFAULT_FAULTS)
    for key, item in value.items():
        at = f"{where}.{key}"
        if key in ("error_rate", "drop_rate", "commit_then_drop_rate", "commit_then_error_rate"):
            out[key] = _rate(item, at)
        elif key == "latency_ms":
            out[key] = _number(item, at, low=0, high=600_000)
        elif key == "error_retry_after_s":
            if isinstance(item, bool) or not isinstance(item, int):
                raise SeedError(f"{at} must be a whole number of seconds, got {item!r}")
            out[key] = int(_number(item, at, low=0, high=3600))
        elif key == "error_statuses":
            out[key] = _fault_statuses(item, at)
        elif key == "commit_then_drop_paths":
            out[key] = _route_patterns(item, at)
        elif key == "seed":
            if item is not None and (isinstance(item, bool) or not isinstance(item, int)):
                raise SeedError(f"{at} must be null or an integer, got {item!r}")
            out[key] = item
        else:
            raise SeedError(f"{at} is not a known fault ({', '.join(DEFAULT_FAULTS)})")
    return out


def validate_delta(value: Any, where: str = "delta") -> dict[str, Any]:
    if value is None:
        return dict(DEFAULT_DELTA)
    if not isinstance(value, dict):
        raise SeedError(f"{where} must be an object")
    out = dict(DEFAULT_DELTA)
    for key, item in value.items():
        if key == "lag_s":
            out[key] = _number(item, f"{where}.{key}", low=0, high=MAX_DELTA_LAG_S)
            continue
        if key != "token_max_age_s":
            raise SeedError(
                f"{where}.{key} is not a known delta setting ({', '.join(DEFAULT_DELTA)})"
            )
        age = _number(item, f"{where}.{key}", low=0)
        if age <= 0:
            raise SeedError(f"{where}.{key} must be > 0, got {age}")
        out[key] = age
    return out


def validate_seed(data: Any, *, consume: bool = False) -> dict[str, Any]:
    """Validate and normalise a parsed seed; raise SeedError on the first problem.

    `consume`: the caller is done with `data` (a seed file just parsed): each user is let go
    of as soon as its normalised copy is made, so a large seed is never held twice."""
    if not isinstance(data, dict):
        raise SeedError("the top level must be a JSON object with a 'tenants' list")
    for key in data:
        if key not in _TOP_KEYS and not key.startswith(("$", "_")):
            warn(f"has an unknown top-level key {key!r}; it is ignored")
    tenants = data.get("tenants")
    if not isinstance(tenants, list) or not tenants:
        raise SeedError("'tenants' must be a non-empty list")
    out_tenants: list[dict[str, Any]] = []
    seen_tenants: dict[str, int] = {}
    for i, raw in enumerate(tenants):
        tenant = _tenant(raw, f"tenants[{i}]", consume)
        tid = tenant["tenant_id"]
        if tid in seen_tenants:
            raise SeedError(
                f"tenants[{i}].tenant_id {tid} is a duplicate of tenants[{seen_tenants[tid]}]"
            )
        seen_tenants[tid] = i
        out_tenants.append(tenant)
    return {
        "tenants": out_tenants,
        "limits": validate_limits(data.get("limits")),
        "faults": validate_faults(data.get("faults")),
        "delta": validate_delta(data.get("delta")),
    }


def _tenant(raw: Any, where: str, consume: bool = False) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError(f"{where} must be an object")
    if "tenant_id" not in raw:
        raise SeedError(f"{where} is missing 'tenant_id'")
    tid = guid(raw["tenant_id"], f"{where}.tenant_id")
    for key in raw:
        if key not in _TENANT_KEYS and not key.startswith(("$", "_")):
            warn(f"{where} has an unknown key {key!r}; it is ignored")
    domain = raw.get("domain") or f"tenant-{tid[:8]}.onmicrosoft.com"
    if not isinstance(domain, str) or "." not in domain or "@" in domain:
        raise SeedError(f"{where}.domain must be a domain name like contoso.onmicrosoft.com")
    display_name = raw.get("display_name") or domain.split(".")[0].capitalize()
    if not isinstance(display_name, str):
        raise SeedError(f"{where}.display_name must be a string")

    clients = _list(raw, "clients", where)
    out_clients: list[dict[str, Any]] = []
    seen_clients: set[str] = set()
    for j, c in enumerate(clients):
        client = validate_client(c, f"{where}.clients[{j}]")
        if client["client_id"] in seen_clients:
            raise SeedError(f"{where}.clients[{j}].client_id {client['client_id']} is a duplicate")
        seen_clients.add(client["client_id"])
        out_clients.append(client)

    # Each id's owner, as an index: users at j, groups at -1 - j (a million where-strings
    # would cost more than the check).
    ids: dict[str, int] = {}

    def owner(at: int) -> str:
        return f"{where}.users[{at}]" if at >= 0 else f"{where}.groups[{-1 - at}]"

    users: list[dict[str, Any]] = []
    upns: dict[str, int] = {}
    raw_users = _list(raw, "users", where)
    for j, u in enumerate(raw_users):
        user = _user(u, f"{where}.users[{j}]", consume=consume)
        if consume:
            raw_users[j] = None
        uid = user["id"]
        if uid in ids:
            raise SeedError(f"{where}.users[{j}]: duplicate id {uid} (also {owner(ids[uid])})")
        ids[uid] = j
        upn = user["userPrincipalName"].casefold()
        if upn in upns:
            raise SeedError(
                f"{where}.users[{j}]: duplicate userPrincipalName {user['userPrincipalName']!r} "
                f"(also {owner(upns[upn])})"
            )
        upns[upn] = j
        if not user.get("identities"):
            # Entra gives every user a sign-in identity for its UPN, issued by the tenant.
            user["identities"] = [
                {
                    "signInType": "userPrincipalName",
                    "issuer": domain,
                    "issuerAssignedId": user["userPrincipalName"],
                }
            ]
        users.append(user)
    del upns

    groups: list[dict[str, Any]] = []
    for j, g in enumerate(_list(raw, "groups", where)):
        group_where = f"{where}.groups[{j}]"
        group = _group(g, group_where, domain)
        if group["id"] in ids:
            raise SeedError(
                f"{group_where}: duplicate id {group['id']} (also {owner(ids[group['id']])})"
            )
        ids[group["id"]] = -1 - j
        groups.append(group)
    for j, user in enumerate(users):
        manager = user.get("manager")
        if manager is None:
            continue
        at = ids.get(manager)
        if at is None or manager == user["id"]:
            raise SeedError(
                f"{where}.users[{j}].manager: {manager!r} is not another user of this tenant"
            )
        if at < 0:
            raise SeedError(f"{where}.users[{j}].manager: {manager!r} is a group, not a user")
    for j, group in enumerate(groups):
        if group.get("membershipRule") is not None and group["members"]:
            raise SeedError(
                f"{where}.groups[{j}]: a dynamic group's members come from its membershipRule; "
                "remove 'members'"
            )
        for k, member in enumerate(group["members"]):
            if member not in ids:
                raise SeedError(
                    f"{where}.groups[{j}].members[{k}]: {member!r} is not a user or group "
                    "of this tenant"
                )
            if member == group["id"]:
                raise SeedError(f"{where}.groups[{j}].members[{k}]: a group cannot contain itself")

    cta = raw.get("cross_tenant_access") or {}
    if not isinstance(cta, dict):
        raise SeedError(f"{where}.cross_tenant_access must be an object")
    partners: list[dict[str, Any]] = []
    seen_partners: set[str] = set()
    for j, p in enumerate(_list(cta, "partners", f"{where}.cross_tenant_access")):
        pw = f"{where}.cross_tenant_access.partners[{j}]"
        if not isinstance(p, dict) or "tenant_id" not in p:
            raise SeedError(f"{pw} must be an object with a 'tenant_id'")
        partner: dict[str, Any] = {"tenant_id": guid(p["tenant_id"], f"{pw}.tenant_id")}
        if partner["tenant_id"] in seen_partners:
            raise SeedError(f"{pw}: duplicate partner {partner['tenant_id']}")
        seen_partners.add(partner["tenant_id"])
        for flag in ("inbound_auto_redeem", "outbound_auto_redeem", "is_sync_allowed"):
            value = p.get(flag, False)
            if not isinstance(value, bool):
                raise SeedError(f"{pw}.{flag} must be true or false")
            partner[flag] = value
        partners.append(partner)

    raw_apis = raw.get("apis")
    # Only a seed with APIs needs the look-up of every user (two dicts of a million entries).
    principals = Principals(
        users if raw_apis else [], groups if raw_apis else [], [c["client_id"] for c in out_clients]
    )
    apis = validate_apis(raw_apis, f"{where}.apis", principals)

    return {
        "tenant_id": tid,
        "domain": domain,
        "display_name": display_name,
        "clients": out_clients,
        "users": users,
        "groups": groups,
        "cross_tenant_access": {"partners": partners},
        "apis": apis,
    }


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(f"{where}.{key} must be a list")
    return value


# Per user property, the Python type its every value of that type passes the Edm check with
# (Edm.String, Edm.Guid, Edm.Boolean), and the same for collections of them: the check of a
# seed's users is then one isinstance for most properties, not the schema walk.
_PLAIN_TYPES = {"Edm.String": str, "Edm.Guid": str, "Edm.Boolean": bool}


@cache
def _plain_user_types() -> tuple[dict[str, type], dict[str, type]]:
    scalars: dict[str, type] = {}
    collections: dict[str, type] = {}
    for name, prop in schema.properties(schema.USER).items():
        if name == "id":
            continue  # normalised apart (see _object_id), and put last
        if prop.type in _PLAIN_TYPES:
            scalars[name] = _PLAIN_TYPES[prop.type]
        elif prop.is_collection and prop.element_type in _PLAIN_TYPES:
            collections[name] = _PLAIN_TYPES[prop.element_type]
    return scalars, collections


# Objects of text values (onPremisesExtensionAttributes...) that passed their check, so the
# same object on the next user is not checked again; bounded, since they may not repeat.
_CHECKED_OBJECTS: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
_CHECKED_OBJECTS_MAX = 4096


def _checked_object(key: str, value: Any) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The memo key of an object of text values, else None."""
    if not isinstance(value, dict):
        return None
    items = tuple(value.items())
    if not all(isinstance(v, str) for _, v in items):
        return None
    return key, items


def _user(raw: Any, where: str, *, consume: bool = False) -> dict[str, Any]:
    """The normalised user; `consume`: `raw` is the caller's to give away, and becomes it
    (same keys in the same order as a copy would have, without making one)."""
    if not isinstance(raw, dict):
        raise SeedError(f"{where} must be an object")
    props = schema.properties(schema.USER)
    scalars, collections = _plain_user_types()
    raw_id = raw.get("id")
    user: dict[str, Any] = raw if consume else {}
    if consume:
        raw.pop("id", None)
    for key, value in list(raw.items()) if consume else raw.items():
        kind = scalars.get(key)
        if kind is not None and isinstance(value, kind):
            if not consume:
                user[key] = value
            continue
        if key == "id":
            continue
        kind = collections.get(key)
        if kind is not None and isinstance(value, list) and all(isinstance(v, kind) for v in value):
            if not consume:
                user[key] = value
            continue
        if key == "password":
            # Not a Graph property: the sandbox's sign-in page checks it (see signin.py).
            if not isinstance(value, str) or not value:
                raise SeedError(f"{where}.password must be a non-empty string")
            user[key] = value
            continue
        if key == "manager":  # the manager relationship: another user's id
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise SeedError(f"{where}.manager must be a user id")
            if value is not None:
                user["manager"] = _object_id(value, f"{where}.manager")
            elif consume:
                del user["manager"]
            continue
        prop = props.get(key)
        if prop is None:
            if schema.is_extension_property(key):
                user[key] = value
                continue
            raise SeedError(
                f"{where}: property '{key}' does not exist on type 'microsoft.graph.user'"
            )
        memo = _checked_object(key, value)
        if memo is None or memo not in _CHECKED_OBJECTS:
            try:
                schema.check_value(prop, value)
            except schema.TypeMismatch as exc:
                raise SeedError(f"{where}: {exc}") from exc
            if memo is not None and len(_CHECKED_OBJECTS) < _CHECKED_OBJECTS_MAX:
                _CHECKED_OBJECTS.add(memo)
        user[key] = value
    upn = user.get("userPrincipalName")
    if not isinstance(upn, str) or "@" not in upn:
        raise SeedError(f"{where} needs a 'userPrincipalName' like ann@contoso.onmicrosoft.com")
    if user.get("deletedDateTime") is not None:
        raise SeedError(f"{where}: seed users cannot be deleted (deletedDateTime is set)")
    user["id"] = _object_id(raw_id, where)
    user.setdefault("displayName", upn.split("@")[0])
    user.setdefault("userType", "Member")
    user.setdefault("accountEnabled", True)
    user.setdefault("creationType", None)
    user.setdefault("createdDateTime", now_iso())
    return user


GROUP_TYPES = ("Unified", "DynamicMembership")


def _group(raw: Any, where: str, domain: str) -> dict[str, Any]:
    """A group of the seed: security (default), Microsoft 365 (`groupTypes: ["Unified"]`) or
    dynamic (`"DynamicMembership"` with a `membershipRule`), its defaults as Entra sets them."""
    if not isinstance(raw, dict):
        raise SeedError(f"{where} must be an object")
    props = schema.properties(schema.GROUP)
    group: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("id", "members"):
            continue
        prop = props.get(key)
        if prop is None:
            raise SeedError(
                f"{where}: property '{key}' does not exist on type 'microsoft.graph.group'"
            )
        try:
            schema.check_value(prop, value)
        except schema.TypeMismatch as exc:
            raise SeedError(f"{where}: {exc}") from exc
        group[key] = value
    group["id"] = _object_id(raw.get("id"), where)
    members = raw.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise SeedError(f"{where}.members must be a list of user or group ids")
    # Order-preserving and linear: seeds of large tenants have groups of 100,000 members.
    group["members"] = list(dict.fromkeys(_object_id(m, f"{where}.members") for m in members))
    types = group.setdefault("groupTypes", [])
    for kind in types:
        if kind not in GROUP_TYPES:
            raise SeedError(f"{where}.groupTypes: {kind!r} is not one of {list(GROUP_TYPES)}")
    display = group.setdefault("displayName", f"Group {group['id'][:8]}")
    nickname = group.setdefault(
        # ASCII letters and digits only, as Graph's mailNickname rule allows (groups.py).
        "mailNickname",
        "".join(ch for ch in str(display) if ch.isascii() and ch.isalnum())[:64] or "group",
    )
    unified = "Unified" in types
    group.setdefault("securityEnabled", not unified)
    group.setdefault("mailEnabled", unified)
    if unified:
        group.setdefault("mail", f"{nickname}@{domain}")
        group.setdefault("visibility", "Public")
    if "DynamicMembership" in types:
        text = group.get("membershipRule")
        if not isinstance(text, str):
            raise SeedError(f"{where}: a DynamicMembership group needs a 'membershipRule'")
        try:
            rules.check_properties(rules.parse_rule(text), is_user_property)
        except rules.RuleError as exc:
            raise SeedError(f"{where}.membershipRule: {exc}") from exc
        group.setdefault("membershipRuleProcessingState", "On")
    elif group.get("membershipRule") is not None:
        raise SeedError(f'{where}: a membershipRule needs groupTypes ["DynamicMembership"]')
    group.setdefault("createdDateTime", now_iso())
    return group


def is_user_property(name: str) -> bool:
    return name in schema.properties(schema.USER) or schema.is_extension_property(name)
