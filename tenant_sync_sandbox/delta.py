"""Delta query (`/users/delta`, `/groups/delta`): tokens and rounds.

A round is a sequence of pages ending with a deltaLink. The token of every link records the
change-log window of its round: `since` (exclusive; None for the initial round) and `until`,
the tenant's sequence number when the round started. Pages are cut by object id, and each page
shows the objects' current state, so a change made while a round is being paged is reported
again by the next round (replays are possible, losses are not).

Graph spreads changes over rounds for another reason too: replication. A change made shortly
before a round starts may only be reported by the next one. The sandbox does that with
`delta.lag_s` (seed, or `PUT /_sandbox/delta`; 0 by default): a round's window ends at the last
change made `lag_s` seconds or more before the round started, so a burst of changes (a mass
deletion, say) made just before a round reaches a client over two rounds.

Tokens carry the round's `$select` (and id `$filter`), so later pages and rounds project the
same properties. A token older than the maximum age (seed `"delta": {"token_max_age_s": N}`,
default 7 days, also `PUT /_sandbox/delta`; `POST /_sandbox/delta-tokens/age` moves the clock
tokens are aged against) or issued before a reset gets 410 `syncStateNotFound` with a
`Location` header holding a fresh initial delta URL with the same options.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from . import odata, schema, tokens
from .common import DEFAULT_PAGE, MAX_PAGE, preferred_page_size, validate_select
from .router import GraphError, GraphRequest, GraphResponse, bad_request
from .state import Change, Tenant, project

LIFECYCLE = frozenset({"created", "deleted", "restored", "purged"})
MAX_FILTER_IDS = 50
_CACHE_SIZE = 32


@dataclass(frozen=True)
class DeltaToken:
    epoch: str
    tenant_id: str
    kind: str  # "users" | "groups"
    since: int | None
    until: int | None  # None in a deltaLink: the next round fixes it when it starts
    after: str | None
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    page_size: int
    issued_at: float

    def encode(self) -> str:
        return tokens.encode(
            {
                "v": 1,
                "e": self.epoch,
                "t": self.tenant_id,
                "k": self.kind,
                "s": self.since,
                "u": self.until,
                "a": self.after,
                "sel": list(self.select) if self.select is not None else None,
                "ids": list(self.ids) if self.ids is not None else None,
                "n": self.page_size,
                "i": round(self.issued_at, 3),
            }
        )

    @staticmethod
    def decode(text: str) -> DeltaToken:
        data = tokens.decode(text)
        try:
            if data.get("v") != 1:
                raise tokens.TokenError("unknown token version")
            sel = data["sel"]
            ids = data["ids"]
            return DeltaToken(
                epoch=str(data["e"]),
                tenant_id=str(data["t"]),
                kind=str(data["k"]),
                since=None if data["s"] is None else int(data["s"]),
                until=None if data["u"] is None else int(data["u"]),
                after=None if data["a"] is None else str(data["a"]),
                select=None if sel is None else tuple(str(s) for s in sel),
                ids=None if ids is None else tuple(str(i) for i in ids),
                page_size=int(data["n"]),
                issued_at=float(data["i"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise tokens.TokenError("The token is malformed.") from exc


@dataclass
class ObjectChanges:
    events: set[str] = field(default_factory=set)
    props: set[str] = field(default_factory=set)
    members: dict[str, str] = field(default_factory=dict)  # member id -> kind
    old_manager: str | None = None  # the manager a user had when the window's first removal came


def summarize(changes: Iterable[Change], kind: str) -> dict[str, ObjectChanges]:
    out: dict[str, ObjectChanges] = {}
    for ch in changes:
        if ch.kind != kind:
            continue
        entry = out.setdefault(ch.object_id, ObjectChanges())
        entry.events.add(ch.event)
        entry.props |= ch.props
        if ch.event == "members" and ch.member_id is not None:
            entry.members[ch.member_id] = ch.member_kind or "user"
        if "manager" in ch.props and ch.member_id is not None and entry.old_manager is None:
            entry.old_manager = ch.member_id
    return out


# ---------------------------------------------------------------- request handling


def _resource_props(kind: str) -> str:
    return schema.USER if kind == "users" else schema.GROUP


def _initial_token(req: GraphRequest, kind: str) -> DeltaToken:
    allowed = {"$select", "$filter", "$top", "$expand", "$deltatoken", "$skiptoken"}
    for key in req.query:
        if key.startswith("$") and key not in allowed:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"The query option '{key}' is not supported on delta.",
            )
    type_name = _resource_props(kind)
    # The navigation delta tracks: a group's members, a user's manager (`manager@delta`).
    navigation = "members" if kind == "groups" else "manager"
    select = validate_select(
        odata.parse_select(req.q("$select")), (type_name,), allow=(navigation,)
    )
    expand = req.q("$expand")
    if expand is not None:
        if expand.strip() != navigation:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Delta supports $expand=members on groups and $expand=manager on users only.",
            )
        default = ["displayName"] if kind == "groups" else list(schema.DEFAULT_USER_SELECT)
        select = list(select or default)
        if navigation not in select:
            select.append(navigation)
    ids: list[str] | None = None
    filter_text = req.q("$filter")
    if filter_text:
        try:
            node = odata.parse_filter(filter_text)
        except odata.FilterError as exc:
            raise GraphError(400, exc.code, exc.message) from exc
        ids = odata.id_terms(node)
        if ids is None:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Delta queries only support $filter on id: id eq 'x' or id eq 'y' ...",
            )
        if len(ids) > MAX_FILTER_IDS:
            raise bad_request(
                f"Too many ids in $filter: {len(ids)} (delta accepts at most {MAX_FILTER_IDS})."
            )
        ids = sorted({(req.tenant.resolve_id(i) or i) for i in ids})
    size = DEFAULT_PAGE
    top = req.q("$top")
    if top is not None:
        try:
            size = int(top)
        except ValueError as exc:
            raise bad_request(f"Invalid page size specified: '{top}'.") from exc
        if not 1 <= size <= MAX_PAGE:
            raise bad_request(
                f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive."
            )
    else:
        size = preferred_page_size(req) or DEFAULT_PAGE
    return DeltaToken(
        epoch=req.state.epoch,
        tenant_id=req.tenant.tenant_id,
        kind=kind,
        since=None,
        until=None,
        after=None,
        select=tuple(select) if select is not None else None,
        ids=tuple(ids) if ids is not None else None,
        page_size=size,
        issued_at=req.state.virtual_now(),
    )


def _fresh_location(req: GraphRequest, tok: DeltaToken) -> str:
    params: dict[str, str] = {}
    if tok.select is not None:
        params["$select"] = ",".join(tok.select)
    if tok.ids is not None:
        params["$filter"] = " or ".join(f"id eq '{i}'" for i in tok.ids)
    query = "?" + urlencode(params, quote_via=quote, safe="$,'") if params else ""
    return req.url(f"/{tok.kind}/delta{query}")


def _sync_state_not_found(req: GraphRequest, tok: DeltaToken, why: str) -> GraphError:
    return GraphError(
        410,
        "syncStateNotFound",
        f"{why} Restart the synchronization with a new initial delta request.",
        headers={"Location": _fresh_location(req, tok)},
    )


def _token_from_request(req: GraphRequest, kind: str) -> DeltaToken:
    text = req.q("$deltatoken") or req.q("$skiptoken")
    if text is None:
        return _initial_token(req, kind)
    if req.q("$deltatoken") is not None and text.lower() == "latest":
        # Graph's shortcut: no initial round, just a deltaLink for what changes from now on.
        return _replace(_initial_token(req, kind), since=req.tenant.seq)
    try:
        tok = DeltaToken.decode(text)
    except tokens.TokenError as exc:
        raise bad_request(f"Invalid delta token: {exc}", code="BadRequest") from exc
    if tok.kind != kind:
        raise bad_request(f"The token was issued for {tok.kind}/delta, not {kind}/delta.")
    if tok.tenant_id != req.tenant.tenant_id:
        raise bad_request("The token was issued for another tenant.", code="BadRequest")
    if tok.epoch != req.state.epoch:
        raise _sync_state_not_found(
            req, tok, "The directory was reset since this token was issued."
        )
    age = req.state.virtual_now() - tok.issued_at
    if age > req.state.delta_max_age_s:
        raise _sync_state_not_found(
            req,
            tok,
            "The sync state generation is not found. The delta token is expired and data must "
            "be synchronized again.",
        )
    override = preferred_page_size(req)
    if override is not None and req.q("$deltatoken") is not None:
        tok = _replace(tok, page_size=override)
    return tok


def _round_end(req: GraphRequest, tok: DeltaToken) -> int:
    lag = req.state.delta_lag_s
    if lag <= 0:
        return req.tenant.seq
    visible = req.tenant.seq_before(req.tenant.clock() - lag)
    return max(visible, tok.since or 0)


def _replace(tok: DeltaToken, **changes: Any) -> DeltaToken:
    data = {**tok.__dict__, **changes}
    return DeltaToken(**data)


def handle(req: GraphRequest, kind: str) -> GraphResponse:
    tok = _token_from_request(req, kind)
    if tok.until is None:
        # A new round starts now: it covers changes up to the current sequence number, or, with
        # a replication lag, up to the last change old enough to have replicated.
        tok = _replace(tok, until=_round_end(req, tok))
    until = tok.until
    assert until is not None
    if kind == "users":
        items, last = _users_page(req.tenant, tok, req.state.delta_cache)
        context = "users"
    else:
        items, last = _groups_page(req.tenant, tok, req.state.delta_cache)
        context = "groups"
    select = list(tok.select) if tok.select is not None else None
    body: dict[str, Any] = {
        "@odata.context": f"{req.base_url}/v1.0/$metadata#{context}"
        + (f"({','.join(select)})" if select else "")
    }
    now = req.state.virtual_now()
    if last is not None:
        nxt = _replace(tok, after=last, issued_at=now)
        body["@odata.nextLink"] = req.url(f"/{kind}/delta?$skiptoken={nxt.encode()}")
    else:
        done = _replace(tok, since=until, until=None, after=None, issued_at=now)
        body["@odata.deltaLink"] = req.url(f"/{kind}/delta?$deltatoken={done.encode()}")
    body["value"] = items
    return GraphResponse(200, body)


# ---------------------------------------------------------------- users


def _user_select(tok: DeltaToken) -> list[str]:
    return list(tok.select) if tok.select is not None else list(schema.DEFAULT_USER_SELECT)


def _users_page(
    tenant: Tenant, tok: DeltaToken, cache: dict[tuple[Any, ...], Any]
) -> tuple[list[dict[str, Any]], str | None]:
    select = _user_select(tok)
    items: list[dict[str, Any]] = []
    if tok.since is None:
        source: Iterator[dict[str, Any]]
        if tok.ids is not None:
            source = (
                tenant.users[i]
                for i in tok.ids
                if i in tenant.users
                and tenant.is_active(i)
                and (tok.after is None or i > tok.after)
            )
        else:
            source = tenant.active_users_after(tok.after)
        last: str | None = None
        for active in source:
            if len(items) == tok.page_size:
                return items, last
            item = project(active, schema.USER, select, omit_nulls=True)
            if "manager" in select:
                manager = tenant.manager_of(active["id"])
                if manager is not None:
                    item["manager@delta"] = [_manager_entry(manager, removed=False)]
            items.append(item)
            last = active["id"]
        return items, None

    assert tok.until is not None
    ids, summary = _changed(tenant, tok, cache, "user", set(select))
    start = _after_index(ids, tok.after)
    page = ids[start : start + tok.page_size]
    for oid in page:
        user = tenant.users.get(oid)
        if user is None:
            items.append({"id": oid, "@removed": {"reason": "deleted"}})
        elif user.get("deletedDateTime") is not None:
            items.append({"id": oid, "@removed": {"reason": "changed"}})
        else:
            ch = summary[oid]
            changed_nulls = ch.props & set(select)
            item = project(user, schema.USER, select, omit_nulls=True, keep_nulls=changed_nulls)
            if "manager" in select and ("manager" in ch.props or ch.events & LIFECYCLE):
                manager = tenant.manager_of(oid)
                if manager is not None:
                    item["manager@delta"] = [_manager_entry(manager, removed=False)]
                elif ch.old_manager is not None:
                    item["manager@delta"] = [_manager_entry(ch.old_manager, removed=True)]
            items.append(item)
    more = start + tok.page_size < len(ids)
    return items, (page[-1] if more and page else None)


def _manager_entry(manager_id: str, *, removed: bool) -> dict[str, Any]:
    """One `manager@delta` entry. Graph does not document how a removed manager shows; the
    sandbox answers the old manager with `@removed`, as for removed group members."""
    entry: dict[str, Any] = {"@odata.type": "#microsoft.graph.user", "id": manager_id}
    if removed:
        entry["@removed"] = {"reason": "deleted"}
    return entry


def _after_index(ids: list[str], after: str | None) -> int:
    if after is None:
        return 0
    return bisect.bisect_right(ids, after)


def _changed(
    tenant: Tenant,
    tok: DeltaToken,
    cache: dict[tuple[Any, ...], Any],
    kind: str,
    relevant_props: set[str],
    members: bool = False,
) -> tuple[list[str], dict[str, ObjectChanges]]:
    """Ids (sorted) of the objects a round must report, with what changed for each."""
    # The log is append-only, so a window's answer never changes: cache it for the pages.
    key = (
        tenant.tenant_id,
        kind,
        tok.since,
        tok.until,
        tuple(sorted(relevant_props)),
        tok.ids,
        members,
    )
    hit = cache.get(key)
    if hit is not None:
        result: tuple[list[str], dict[str, ObjectChanges]] = hit
        return result
    assert tok.since is not None
    assert tok.until is not None
    summary = summarize(tenant.changes(tok.since, tok.until), kind)
    wanted = set(tok.ids) if tok.ids is not None else None
    ids = sorted(
        oid
        for oid, ch in summary.items()
        if (wanted is None or oid in wanted)
        and (ch.events & LIFECYCLE or ch.props & relevant_props or (members and ch.members))
    )
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = (ids, summary)
    return ids, summary


# ---------------------------------------------------------------- groups


def _group_selection(tok: DeltaToken) -> tuple[list[str], bool]:
    if tok.select is None:
        return ["displayName"], True
    props = [s for s in tok.select if s != "members"]
    return props, "members" in tok.select


def _member_entry(
    tenant: Tenant, member_id: str, kind: str | None, removed: bool
) -> dict[str, Any]:
    actual = tenant.kind_of(member_id) or kind or "user"
    entry: dict[str, Any] = {"@odata.type": f"#microsoft.graph.{actual}", "id": member_id}
    if removed:
        entry["@removed"] = {"reason": "deleted"}
    return entry


def _groups_page(
    tenant: Tenant, tok: DeltaToken, cache: dict[tuple[Any, ...], Any]
) -> tuple[list[dict[str, Any]], str | None]:
    props, with_members = _group_selection(tok)
    items: list[dict[str, Any]] = []
    if tok.since is None:
        candidates = sorted(
            gid
            for gid in (tok.ids if tok.ids is not None else tenant.groups)
            if gid in tenant.groups and tenant.is_active(gid)
        )
        start = _after_index(candidates, tok.after)
        page = candidates[start : start + tok.page_size]
        for gid in page:
            item = project(tenant.groups[gid], schema.GROUP, props, omit_nulls=True)
            if with_members:
                entries = [
                    _member_entry(tenant, m, None, removed=False)
                    for m in tenant.effective_members(gid)
                ]
                if entries:
                    item["members@delta"] = entries
            items.append(item)
        more = start + tok.page_size < len(candidates)
        return items, (page[-1] if more and page else None)

    ids, summary = _changed(tenant, tok, cache, "group", set(props), members=with_members)
    start = _after_index(ids, tok.after)
    page = ids[start : start + tok.page_size]
    for gid in page:
        group = tenant.groups.get(gid)
        if group is None:
            items.append({"id": gid, "@removed": {"reason": "deleted"}})
            continue
        if group.get("deletedDateTime") is not None:
            items.append({"id": gid, "@removed": {"reason": "changed"}})
            continue
        ch = summary[gid]
        item = project(
            group, schema.GROUP, props, omit_nulls=True, keep_nulls=ch.props & set(props)
        )
        if with_members:
            current = set(tenant.effective_members(gid))
            changes: list[dict[str, Any]] = []
            if ch.events & {"created", "restored"}:
                touched = sorted(current | set(ch.members))
            else:
                touched = sorted(ch.members)
            for m in touched:
                changes.append(
                    _member_entry(tenant, m, ch.members.get(m), removed=m not in current)
                )
            if changes:
                item["members@delta"] = changes
        items.append(item)
    more = start + tok.page_size < len(ids)
    return items, (page[-1] if more and page else None)
