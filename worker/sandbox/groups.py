"""Graph `/groups`: list, get, create, update, delete, members (direct and transitive), `$ref`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from . import delta, odata, schema
from .common import (
    GROUP_ORDER,
    MEMBER_ORDER,
    Source,
    TypedObject,
    count_collection,
    get_one,
    json_object_body,
    list_page,
    require_cast,
    validate_writable,
)
from .permissions import CREATE_GROUPS, READ_GROUPS, WRITE_GROUPS, WRITE_MEMBERS
from .router import GraphRequest, GraphResponse, Router, bad_request, not_found
from .users import full_view

MEMBER_TYPES = (schema.USER, schema.GROUP)


def register(router: Router) -> None:
    router.add("GET", "/groups", list_groups, permissions=READ_GROUPS)
    router.add("GET", "/groups/$count", count_groups, permissions=READ_GROUPS)
    for name in ("delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"):
        router.add("GET", f"/groups/{name}", groups_delta, permissions=READ_GROUPS)
    router.add("POST", "/groups", create_group, permissions=CREATE_GROUPS)
    router.add("GET", "/groups/{id}", get_group, permissions=READ_GROUPS)
    router.add("PATCH", "/groups/{id}", patch_group, permissions=WRITE_GROUPS + WRITE_MEMBERS)
    router.add("DELETE", "/groups/{id}", delete_group, permissions=WRITE_GROUPS)
    # Graph's cost table: members 3, transitiveMembers 5 (casts and $count included).
    for nav, cost in (("members", 3), ("transitiveMembers", 5)):
        handler = list_transitive_members if nav == "transitiveMembers" else list_members
        counter = count_transitive_members if nav == "transitiveMembers" else count_members
        router.add("GET", f"/groups/{{id}}/{nav}", handler, cost=cost, permissions=READ_GROUPS)
        router.add(
            "GET", f"/groups/{{id}}/{nav}/{{type}}", handler, cost=cost, permissions=READ_GROUPS
        )
        router.add(
            "GET", f"/groups/{{id}}/{nav}/$count", counter, cost=cost, permissions=READ_GROUPS
        )
        router.add(
            "GET",
            f"/groups/{{id}}/{nav}/{{type}}/$count",
            counter,
            cost=cost,
            permissions=READ_GROUPS,
        )
    router.add("POST", "/groups/{id}/members/$ref", add_member_ref, permissions=WRITE_MEMBERS)
    router.add(
        "DELETE",
        "/groups/{id}/members/{member_id}/$ref",
        remove_member_ref,
        permissions=WRITE_MEMBERS,
    )


def _default_for(type_name: str) -> tuple[str, ...]:
    return schema.DEFAULT_USER_SELECT if type_name == schema.USER else schema.DEFAULT_GROUP_SELECT


def _group_source(req: GraphRequest) -> Any:
    tenant = req.tenant

    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        for gid in sorted(g for g in tenant.groups if tenant.is_active(g)):
            if after is None or gid > after:
                yield schema.GROUP, tenant.groups[gid]

    return source


def list_groups(req: GraphRequest) -> GraphResponse:
    return list_page(
        req,
        route_key="groups",
        type_names=(schema.GROUP,),
        default_select=_default_for,
        source=_group_source(req),
        entity_set="groups",
        ordering=GROUP_ORDER,
    )


def count_groups(req: GraphRequest) -> GraphResponse:
    return count_collection(req, (schema.GROUP,), _group_source(req))


def groups_delta(req: GraphRequest) -> GraphResponse:
    return delta.handle(req, "groups")


def _require_group(req: GraphRequest) -> dict[str, Any]:
    group = req.tenant.active_group(req.params["id"])
    if group is None:
        raise not_found(req.params["id"])
    return group


def get_group(req: GraphRequest) -> GraphResponse:
    return get_one(req, schema.GROUP, _require_group(req), schema.DEFAULT_GROUP_SELECT, "groups")


def reference_id(value: Any) -> str:
    """The object id at the end of an `@odata.id` / `@odata.bind` URL (any host)."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request("Invalid object identifier: '@odata.id' must be a URL.")
    path = urlsplit(value.strip()).path or value.strip()
    last = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if last.endswith("')") and "('" in last:
        last = last[last.index("('") + 2 : -2]
    if not last or last.startswith("$"):
        raise bad_request(f"Invalid object identifier '{value}'.")
    return last


def create_group(req: GraphRequest) -> GraphResponse:
    body = json_object_body(req)
    props = validate_writable(schema.GROUP, body)
    display = props.get("displayName")
    if not isinstance(display, str) or not display.strip():
        raise bad_request("Invalid value specified for property 'displayName' of resource 'Group'.")
    props.setdefault("mailNickname", "".join(c for c in display if c.isalnum()) or "group")
    props.setdefault("securityEnabled", True)
    props.setdefault("mailEnabled", False)
    binds = body.get("members@odata.bind", [])
    if not isinstance(binds, list):
        raise bad_request("'members@odata.bind' must be a list of URLs.")
    member_ids: list[str] = []
    for ref in binds:
        mid = req.tenant.resolve_id(reference_id(ref))
        if mid is None or not req.tenant.is_active(mid):
            raise not_found(reference_id(ref))
        member_ids.append(mid)
    group = req.tenant.create_group(props, member_ids)
    out = {"@odata.context": f"{req.base_url}/v1.0/$metadata#groups/$entity"}
    out.update(full_view(schema.GROUP, group, schema.DEFAULT_GROUP_SELECT))
    return GraphResponse(201, out, headers={"Location": req.url(f"/groups/{group['id']}")})


def patch_group(req: GraphRequest) -> GraphResponse:
    group = _require_group(req)
    props = validate_writable(schema.GROUP, json_object_body(req))
    req.tenant.update_group(group["id"], props)
    return GraphResponse(204)


def delete_group(req: GraphRequest) -> GraphResponse:
    group = _require_group(req)
    req.tenant.soft_delete_group(group["id"])
    return GraphResponse(204)


def _members_source(req: GraphRequest, transitive: bool) -> tuple[str, Source]:
    """The group's members (direct, or at any depth), by id, of the request's cast if any."""
    group = _require_group(req)
    tenant = req.tenant
    gid = group["id"]
    wanted = require_cast(req, "members")

    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        ids = tenant.transitive_members(gid) if transitive else tenant.effective_members(gid)
        for mid in ids:
            if after is not None and mid <= after:
                continue
            kind = tenant.kind_of(mid)
            if wanted is not None and kind != wanted:
                continue
            if kind == schema.USER:
                yield schema.USER, tenant.users[mid]
            elif kind == schema.GROUP:
                yield schema.GROUP, tenant.groups[mid]

    return gid, source


def _member_types(req: GraphRequest) -> tuple[str, ...]:
    cast = req.params.get("type")
    return (cast,) if cast in MEMBER_TYPES else MEMBER_TYPES


def _members(req: GraphRequest, transitive: bool) -> GraphResponse:
    gid, source = _members_source(req, transitive)
    name = "transitiveMembers" if transitive else "members"
    cast = req.params.get("type")
    return list_page(
        req,
        route_key=f"{name}:{gid}:{cast or ''}",
        type_names=_member_types(req),
        default_select=_default_for,
        source=source,
        entity_set=f"{cast}s" if cast in MEMBER_TYPES else "directoryObjects",
        annotate_type=True,
        ordering=MEMBER_ORDER,
    )


def list_members(req: GraphRequest) -> GraphResponse:
    return _members(req, transitive=False)


def list_transitive_members(req: GraphRequest) -> GraphResponse:
    return _members(req, transitive=True)


def count_members(req: GraphRequest) -> GraphResponse:
    return count_collection(req, _member_types(req), _members_source(req, transitive=False)[1])


def count_transitive_members(req: GraphRequest) -> GraphResponse:
    return count_collection(req, _member_types(req), _members_source(req, transitive=True)[1])


def add_member_ref(req: GraphRequest) -> GraphResponse:
    group = _require_group(req)
    body = json_object_body(req)
    if "@odata.id" not in body:
        raise bad_request("The request body must contain '@odata.id'.")
    ref = reference_id(body["@odata.id"])
    mid = req.tenant.resolve_id(ref)
    if mid is None or not req.tenant.is_active(mid):
        raise not_found(ref)
    if mid == group["id"]:
        raise bad_request("A group cannot be a member of itself.")
    if mid in req.tenant.members.get(group["id"], set()):
        raise bad_request(
            "One or more added object references already exist for the following modified "
            "properties: 'members'."
        )
    req.tenant.add_member(group["id"], mid)
    return GraphResponse(204)


def remove_member_ref(req: GraphRequest) -> GraphResponse:
    group = _require_group(req)
    raw = req.params["member_id"]
    mid = req.tenant.resolve_id(raw)
    if mid is None or mid not in req.tenant.members.get(group["id"], set()):
        raise not_found(raw)
    if not req.tenant.is_active(mid):
        raise not_found(raw)
    req.tenant.remove_member(group["id"], mid)
    return GraphResponse(204)
