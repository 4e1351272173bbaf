"""The source and target directory ports on Microsoft Graph v1.0 (target writes through $batch)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from worker.adapters.graph.batch import BatchAnswer, BatchCall, BatchExecutor, BatchResult, Pacer
from worker.adapters.graph.client import GraphClient, parsing
from worker.domain import extension_attributes as ext
from worker.domain.errors import NotFound, StopSync, SyncError
from worker.domain.groups import SourceGroup
from worker.domain.idset import IdSet
from worker.domain.model import SourceItem, SourceRemoval, SourceUser, TargetUser
from worker.ports import (
    FOUND_AT_MOST,
    CreateGroup,
    DeleteGroup,
    DeleteUser,
    FindGroups,
    FindUsers,
    FindUsersIn,
    GetUser,
    GroupPage,
    Invitation,
    Invite,
    MembershipChange,
    PatchGroup,
    PatchUser,
    RemoveManagerRef,
    RemoveMember,
    SetManagerRef,
    TargetGroup,
    TargetRequest,
    UserPage,
)
from worker.schema import user_property_types

T = TypeVar("T")

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
# How members@odata.bind names a member (Graph resolves the id whatever the host it is given).
DIRECTORY_OBJECT_URL = "https://graph.microsoft.com/v1.0/directoryObjects/"
MAX_DELTA_ID_FILTER = 50  # Graph's limit on `id eq` clauses in a delta filter
OBJECT_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def odata_string(value: str) -> str:
    """An OData string literal: quotes doubled, so a value can neither break nor widen a query."""
    return "'" + value.replace("'", "''") + "'"


def each_page(
    client: GraphClient, url: str | None, what: str, read: Callable[[Mapping[str, Any]], list[T]]
) -> Iterator[T]:
    """What `read` takes from each page of a collection, from `url` on, following
    `@odata.nextLink`; a page `read` cannot take is a parsing error naming `what`."""
    while url:
        data = client.get_json(url)
        with parsing(what):
            taken = read(data)
            url = data.get("@odata.nextLink")
        yield from taken


def collect_ids(client: GraphClient, path: str, *, of_type: str | None = None) -> set[str]:
    """Every id of a collection, page after page (objects of another @odata.type left out)."""

    def ids(data: Mapping[str, Any]) -> list[str]:
        return [
            item["id"]
            for item in data.get("value", [])
            if of_type is None or item.get("@odata.type", of_type) == of_type
        ]

    return set(each_page(client, client.url(f"{path}?$select=id&$top=999"), f"GET {path}", ids))


def _attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    """An object's attributes as the engine names them (extension attributes spread out)."""
    attributes = {k: v for k, v in item.items() if "@" not in k and k != "id"}
    return ext.flatten(attributes) if ext.CONTAINER in attributes else attributes


def _select(names: Sequence[str]) -> str:
    """A `$select` value: extension attributes are read as their one Graph container."""
    return ",".join(ext.graph_select(names))


# `manager` is a navigation property: it is read with $expand, never $select (docs/manager.md).
MANAGER = "manager"


def _split_manager(select: Sequence[str]) -> tuple[list[str], bool]:
    """The $select without `manager`, and whether the manager was asked for."""
    return [name for name in select if name != MANAGER], MANAGER in select


def _source_user(item: Mapping[str, Any], *, manager: bool) -> SourceUser:
    """A source user from a read; with `manager` the read expanded it, so no manager means
    none and `attributes["manager"]` is always there (the manager's id, or None)."""
    attributes = _attributes(item)
    if manager:
        expanded = item.get(MANAGER)
        attributes[MANAGER] = expanded.get("id") if isinstance(expanded, dict) else None
    return SourceUser(id=item["id"], attributes=attributes)


def _delta_manager(entry: Mapping[str, Any], attributes: dict[str, Any]) -> None:
    """`manager@delta` names the manager when it changed (or the round is a fresh one): the
    new one, or the old one marked `@removed`. No mention: unchanged (or none, in a fresh
    round), so the key stays absent (worker/domain/manager.py)."""
    entries = entry.get("manager@delta")
    if not isinstance(entries, list):
        return
    # An empty list can only say "no manager now", however Graph chose to send it.
    current = [e.get("id") for e in entries if isinstance(e, dict) and "@removed" not in e]
    attributes[MANAGER] = current[-1] if current else None


def _user_page(data: Mapping[str, Any]) -> UserPage:
    items: list[SourceItem] = []
    for entry in data.get("value", []):
        if "@removed" in entry:
            reason = str((entry.get("@removed") or {}).get("reason", "deleted"))
            items.append(SourceRemoval(id=entry["id"], reason=reason))
        else:
            attributes = _attributes(entry)
            _delta_manager(entry, attributes)
            items.append(SourceUser(id=entry["id"], attributes=attributes))
    return UserPage(
        items=items,
        next_link=data.get("@odata.nextLink"),
        delta_link=data.get("@odata.deltaLink"),
    )


def _group_page(data: Mapping[str, Any]) -> GroupPage:
    changes: list[MembershipChange] = []
    removed_groups: list[str] = []
    for group in data.get("value", []):
        if "@removed" in group:
            removed_groups.append(group["id"])
            continue
        for member in group.get("members@delta", []):
            if member.get("@odata.type", USER_TYPE) != USER_TYPE:
                continue
            changes.append(
                MembershipChange(
                    group_id=group["id"], member_id=member["id"], added="@removed" not in member
                )
            )
    return GroupPage(
        changes=changes,
        removed_groups=removed_groups,
        next_link=data.get("@odata.nextLink"),
        delta_link=data.get("@odata.deltaLink"),
    )


def _query(select: Sequence[str], manager: bool) -> dict[str, str]:
    query = {"$select": _select(select)}
    if manager:
        query["$expand"] = f"{MANAGER}($select=id)"
    return query


class GraphSourceDirectory:
    """Reads of the source tenant: delta rounds of users and of the job's groups."""

    def __init__(self, client: GraphClient, *, page_size: int | None = 500) -> None:
        self.client = client
        self.page_size = page_size

    def _headers(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.page_size}"} if self.page_size else {}

    def sign_in(self) -> None:
        self.client.tokens.token()

    def users_delta_start(self, select: Sequence[str]) -> str:
        names, manager = _split_manager(select)
        params = {"$select": _select(names)}
        if manager:
            # Graph's users delta expands only the manager, and answers `manager@delta`.
            params["$expand"] = MANAGER
        return self.client.url("/users/delta?" + urlencode(params))

    def users_page(self, url: str) -> UserPage:
        data = self.client.get_json(url, headers=self._headers())
        with parsing("GET /users/delta"):
            return _user_page(data)

    def groups_delta_start(self, group_ids: Sequence[str]) -> str:
        params = {"$select": "members"}
        if len(group_ids) <= MAX_DELTA_ID_FILTER:
            params["$filter"] = " or ".join(f"id eq {odata_string(g)}" for g in group_ids)
        return self.client.url("/groups/delta?" + urlencode(params))

    def groups_page(self, url: str) -> GroupPage:
        data = self.client.get_json(url, headers=self._headers())
        with parsing("GET /groups/delta"):
            return _group_page(data)

    def get_user(self, user_id: str, select: Sequence[str]) -> SourceUser | None:
        names, manager = _split_manager(select)
        try:
            data = self.client.get_json(f"/users/{user_id}", _query(names, manager))
        except NotFound:
            return None
        with parsing(f"GET /users/{user_id}"):
            return _source_user(data, manager=manager)

    def search_users(self, text: str, select: Sequence[str], limit: int = 25) -> list[SourceUser]:
        """Users whose display name, UPN or mail starts with `text` (or whose id it is), for an
        operator looking someone up: filters Graph answers without an advanced query."""
        text = text.strip()
        if OBJECT_ID_RE.match(text):
            found = self.get_user(text.lower(), select)
            return [found] if found is not None else []
        literal = odata_string(text)
        names, manager = _split_manager(select)
        query = {
            "$filter": " or ".join(
                f"startswith({name},{literal})"
                for name in ("displayName", "userPrincipalName", "mail")
            ),
            **_query(names, manager),
            "$top": str(limit),
        }
        data = self.client.get_json("/users", query)
        with parsing("GET /users"):
            return [_source_user(i, manager=manager) for i in data["value"]]

    def transitive_member_ids(self, group_id: str) -> set[str]:
        return self.group_member_ids(group_id, transitive=True)

    def member_of(self, user_id: str, *, transitive: bool) -> set[str]:
        relation = "transitiveMemberOf" if transitive else "memberOf"
        return collect_ids(self.client, f"/users/{user_id}/{relation}", of_type=GROUP_TYPE)

    def group_member_ids(self, group_id: str, *, transitive: bool = False) -> set[str]:
        """User members of a group: direct ones, or also those of nested groups."""
        relation = "transitiveMembers" if transitive else "members"
        return collect_ids(self.client, f"/groups/{group_id}/{relation}", of_type=USER_TYPE)

    def get_group(self, group_id: str, select: Sequence[str]) -> SourceGroup | None:
        try:
            data = self.client.get_json(f"/groups/{group_id}", {"$select": ",".join(select)})
        except NotFound:
            return None
        with parsing(f"GET /groups/{group_id}"):
            return SourceGroup(id=data["id"], attributes=_attributes(data))


class GraphTargetDirectory:
    """Reads and writes of the target tenant, sent through $batch."""

    def __init__(
        self,
        client: GraphClient,
        *,
        invite_redirect_url: str,
        pacer: Pacer | None = None,
        concurrency: int = 4,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.invite_redirect_url = invite_redirect_url
        self.batches = BatchExecutor(
            client, pacer=pacer, concurrency=concurrency, on_written=on_written
        )
        self._types = user_property_types()
        self._find_tails: dict[tuple[str, ...], str] = {}  # a FindUsers select -> its URL's end

    def sign_in(self) -> None:
        self.client.tokens.token()

    def execute(self, requests: Sequence[TargetRequest]) -> list[Any]:
        calls = [self._call(r) for r in requests]
        answers = self.batches.run(calls)
        results = [_answer(r, a) for r, a in zip(requests, answers, strict=True)]
        for index, (request, answer) in enumerate(zip(requests, answers, strict=True)):
            if not isinstance(request, FindUsersIn) or not isinstance(results[index], list):
                continue
            more = _next_link(answer)
            if more:
                results[index] = self._more_users(results[index], more)
        return results

    def _more_users(self, found: list[TargetUser], url: str | None) -> list[TargetUser] | Any:
        """A grouped lookup's further pages (more users than one page holds match its values:
        none may be missed, or a source user would be created again); the error a page met
        stands for the whole lookup."""
        users = list(found)
        try:
            users.extend(each_page(self.client, url, "GET /users", _target_users))
        except StopSync:
            raise
        except SyncError as error:
            return error
        return users

    def find_users(self, attribute: str, value: str, select: Sequence[str]) -> list[TargetUser]:
        (result,) = self.execute([FindUsers(attribute, value, tuple(select))])
        if isinstance(result, SyncError):
            raise result
        found: list[TargetUser] = result
        return found

    def user_ids(self) -> IdSet:
        # Every target user's id, 16 bytes each (worker/domain/idset.py), page after page.
        url = self.client.url("/users?$select=id&$top=999")
        return IdSet(each_page(self.client, url, "GET /users", _ids))

    def group_member_ids(self, group_id: str) -> set[str]:
        # Every member, whatever its type: a provisioned group holds only the linked users.
        return collect_ids(self.client, f"/groups/{group_id}/members")

    def _filter(self, attribute: str, value: str) -> str:
        if self._types.get(attribute, "").startswith("Collection("):
            return f"{attribute}/any(x:x eq {odata_string(value)})"
        return f"{attribute} eq {odata_string(value)}"

    def _call(self, request: TargetRequest) -> BatchCall:
        if isinstance(request, FindUsers):
            # The same URL as urlencode({"$filter": ..., "$select": ..., "$top": ...},
            # quote_via=quote) gives, with the part every create shares encoded once.
            tail = self._find_tails.get(request.select)
            if tail is None:
                query = {"$select": _select(["id", *request.select]), "$top": str(FOUND_AT_MOST)}
                tail = "&" + urlencode(query, quote_via=quote)
                self._find_tails[request.select] = tail
            where = quote(self._filter(request.attribute, request.value), safe="")
            return BatchCall("GET", f"/users?%24filter={where}{tail}")
        if isinstance(request, FindUsersIn):
            # The attribute is read to tell which value each user has; 999 (Graph's largest
            # page) leaves a further page to the rare value many users share.
            literals = ",".join(odata_string(v) for v in request.values)
            query = {
                "$filter": f"{request.attribute} in ({literals})",
                "$select": _select(["id", *request.select, request.attribute]),
                "$top": "999",
            }
            return BatchCall("GET", "/users?" + urlencode(query, quote_via=quote))
        if isinstance(request, GetUser):
            query = {"$select": _select(["id", *request.select])}
            return BatchCall(
                "GET", f"/users/{request.user_id}?" + urlencode(query, quote_via=quote)
            )
        if isinstance(request, Invite):
            body: dict[str, Any] = {
                "invitedUserEmailAddress": request.address,
                "inviteRedirectUrl": self.invite_redirect_url,
                "sendInvitationMessage": False,
                "invitedUserType": request.user_type,
            }
            if request.display_name:
                body["invitedUserDisplayName"] = request.display_name
            address = request.address
            return BatchCall("POST", "/invitations", body, recover=lambda: self._invited(address))
        if isinstance(request, PatchUser):
            body = ext.graph_payload(request.attributes)
            return BatchCall("PATCH", f"/users/{request.user_id}", body)
        if isinstance(request, DeleteUser):
            return BatchCall("DELETE", f"/users/{request.user_id}")
        if isinstance(request, SetManagerRef):
            ref = {"@odata.id": self.client.url(f"/users/{request.manager_id}")}
            return BatchCall("PUT", f"/users/{request.user_id}/manager/$ref", ref)
        if isinstance(request, RemoveManagerRef):
            return BatchCall("DELETE", f"/users/{request.user_id}/manager/$ref")
        if isinstance(request, CreateGroup) and request.attributes.get("uniqueName"):
            # Repeated when its answer is lost (Graph makes one group per uniqueName); a
            # repeat refused as "already exists", or a lost answer, reads the group it made.
            unique = str(request.attributes["uniqueName"])
            return BatchCall(
                "POST", "/groups", dict(request.attributes), recover=lambda: self._made(unique)
            )
        if isinstance(request, FindGroups | CreateGroup | PatchGroup | RemoveMember | DeleteGroup):
            return _group_call(request)
        # Graph refuses a whole $batch holding a write without a body and a Content-Type
        # ("Write request id : N does not contain Content-Type header or body."): send {}.
        return BatchCall("POST", f"/directory/deletedItems/{request.user_id}/restore", {})

    def _made(self, unique_name: str) -> dict[str, Any] | None:
        """After a lost group creation: the group carrying its uniqueName, as a POST answer."""
        data = self.client.get_json("/groups", _unique_query(unique_name))
        found = data.get("value", [])
        return dict(found[0]) if len(found) == 1 else None

    def _invited(self, address: str) -> dict[str, Any] | None:
        """After a lost invitation: the user it may have created, as an invitation answer."""
        data = self.client.get_json(
            "/users", {"$filter": f"mail eq {odata_string(address)}", "$select": "id", "$top": "2"}
        )
        found = data.get("value", [])
        if len(found) != 1:
            return None
        return {"invitedUser": {"id": found[0]["id"]}, "status": "Existing"}


def _unique_query(unique_name: str) -> dict[str, str]:
    # uniqueName is an alternate key: $filter (eq) finds it, and an empty page says "none".
    return {"$filter": f"uniqueName eq {odata_string(unique_name)}", "$select": "id,displayName"}


def _group_call(
    request: FindGroups | CreateGroup | PatchGroup | RemoveMember | DeleteGroup,
) -> BatchCall:
    """Group provisioning's calls (docs/groups.md)."""
    if isinstance(request, FindGroups) and request.unique_name:
        query = _unique_query(request.unique_name)
        return BatchCall("GET", "/groups?" + urlencode(query, quote_via=quote))
    if isinstance(request, FindGroups):
        query = {
            "$filter": f"displayName eq {odata_string(request.display_name)}",
            "$select": "id,displayName,uniqueName",
            "$top": "2",
        }
        return BatchCall("GET", "/groups?" + urlencode(query, quote_via=quote))
    if isinstance(request, CreateGroup):
        # Not repeated blindly: a lost creation is found by its name in the next cycle.
        return BatchCall("POST", "/groups", dict(request.attributes), idempotent=False)
    if isinstance(request, PatchGroup):
        body: dict[str, Any] = dict(request.attributes)
        if request.add_members:
            body["members@odata.bind"] = [DIRECTORY_OBJECT_URL + m for m in request.add_members]
        # Members bound twice are refused (400): an addition is not repeated blindly.
        return BatchCall(
            "PATCH", f"/groups/{request.group_id}", body, idempotent=not request.add_members
        )
    if isinstance(request, RemoveMember):
        return BatchCall("DELETE", f"/groups/{request.group_id}/members/{request.member_id}/$ref")
    return BatchCall("DELETE", f"/groups/{request.group_id}")


def _answer(request: TargetRequest, result: BatchResult) -> Any:
    if isinstance(result, SyncError):
        return result
    try:
        with parsing(type(request).__name__):
            return _parsed(request, result)
    except SyncError as error:
        return error  # this object's failure, not the page's


def _next_link(result: BatchResult) -> str | None:
    if isinstance(result, BatchAnswer) and isinstance(result.body, dict):
        link = result.body.get("@odata.nextLink")
        return link if isinstance(link, str) else None
    return None


def _ids(body: Mapping[str, Any]) -> list[str]:
    return [item["id"] for item in body.get("value", [])]


def _target_users(body: Mapping[str, Any]) -> list[TargetUser]:
    return [TargetUser(id=u["id"], attributes=_attributes(u)) for u in body.get("value", [])]


def _parsed(request: TargetRequest, result: BatchAnswer) -> Any:
    body = result.body if isinstance(result.body, dict) else {}
    if isinstance(request, FindUsers | FindUsersIn):
        return _target_users(body)
    if isinstance(request, GetUser):
        return TargetUser(id=body["id"], attributes=_attributes(body))
    if isinstance(request, Invite):
        return Invitation(user_id=body["invitedUser"]["id"], status=str(body.get("status", "")))
    if isinstance(request, FindGroups):
        return [
            TargetGroup(
                g["id"], str(g.get("displayName") or ""), unique_name=str(g.get("uniqueName") or "")
            )
            for g in body["value"]
        ]
    if isinstance(request, CreateGroup):
        return TargetGroup(body["id"], str(body.get("displayName") or ""))
    return None
