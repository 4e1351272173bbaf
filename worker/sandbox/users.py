"""Graph `/users` and `/directory/deletedItems`: list, get, create, update, soft delete, restore."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import delta, odata, schema
from .common import (
    TypedObject,
    count_collection,
    get_one,
    json_object_body,
    list_page,
    validate_writable,
)
from .router import GraphRequest, GraphResponse, Router, bad_request, not_found
from .state import INDEXED, Conflict, Tenant, project

USER_TYPES = ("Member", "Guest")


def register(router: Router) -> None:
    router.add("GET", "/users", list_users, cost=2)
    router.add("GET", "/users/$count", count_users)
    router.add("GET", "/users/delta", users_delta)
    router.add("GET", "/users/delta()", users_delta)
    router.add("POST", "/users", create_user)
    router.add("GET", "/users/{id}", get_user)
    router.add("PATCH", "/users/{id}", patch_user)
    router.add("DELETE", "/users/{id}", delete_user)
    router.add("GET", "/users/{id}/memberOf", member_of, cost=2)
    router.add("GET", "/users/{id}/transitiveMemberOf", transitive_member_of, cost=2)
    router.add("GET", "/directory/deletedItems/microsoft.graph.user", deleted_users)
    router.add("GET", "/directory/deletedItems/microsoft.graph.group", deleted_groups)
    router.add("GET", "/directory/deletedItems/{id}", get_deleted)
    router.add("POST", "/directory/deletedItems/{id}/restore", restore_deleted)
    router.add("DELETE", "/directory/deletedItems/{id}", purge_deleted)


def _default_user(_: str) -> tuple[str, ...]:
    return schema.DEFAULT_USER_SELECT


def _user_source(tenant: Tenant) -> Any:
    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        if node is not None:
            terms = odata.equality_terms(node, INDEXED)
            if terms is not None:
                for oid in tenant.candidates(terms):
                    if after is None or oid > after:
                        yield schema.USER, tenant.users[oid]
                return
        for user in tenant.active_users_after(after):
            yield schema.USER, user

    return source


def list_users(req: GraphRequest) -> GraphResponse:
    return list_page(
        req,
        route_key="users",
        type_names=(schema.USER,),
        default_select=_default_user,
        source=_user_source(req.tenant),
        entity_set="users",
    )


def count_users(req: GraphRequest) -> GraphResponse:
    return count_collection(req, (schema.USER,), _user_source(req.tenant))


def users_delta(req: GraphRequest) -> GraphResponse:
    return delta.handle(req, "users")


def _require_user(req: GraphRequest) -> dict[str, Any]:
    user = req.tenant.active_user(req.params["id"])
    if user is None:
        raise not_found(req.params["id"])
    return user


def get_user(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    return get_one(req, schema.USER, user, schema.DEFAULT_USER_SELECT, "users")


def full_view(type_name: str, obj: dict[str, Any], default: tuple[str, ...]) -> dict[str, Any]:
    """What Graph echoes after a create: the default set plus everything that was set."""
    names = list(default) + [k for k in obj if k not in default and k != "passwordProfile"]
    return project(obj, type_name, names)


def create_user(req: GraphRequest) -> GraphResponse:
    body = json_object_body(req)
    props = validate_writable(schema.USER, body)
    for required in ("userPrincipalName", "displayName"):
        value = props.get(required)
        if not isinstance(value, str) or not value.strip():
            raise bad_request(
                f"Invalid value specified for property '{required}' of resource 'User'."
            )
    upn = props["userPrincipalName"]
    local, at, domain = upn.rpartition("@")
    if not at or not local or "." not in domain:
        raise bad_request(
            "Invalid value specified for property 'userPrincipalName' of resource 'User'."
        )
    if props.get("userType") is not None and props["userType"] not in USER_TYPES:
        raise bad_request("Invalid value specified for property 'userType' of resource 'User'.")
    try:
        user = req.tenant.create_user(props)
    except Conflict as exc:
        raise bad_request(str(exc)) from exc
    out = {"@odata.context": f"{req.base_url}/v1.0/$metadata#users/$entity"}
    out.update(full_view(schema.USER, user, schema.DEFAULT_USER_SELECT))
    return GraphResponse(201, out, headers={"Location": req.url(f"/users/{user['id']}")})


def patch_user(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    body = json_object_body(req)
    props = validate_writable(schema.USER, body)
    if "userPrincipalName" in props:
        upn = props["userPrincipalName"]
        if not isinstance(upn, str) or "@" not in upn:
            raise bad_request(
                "Invalid value specified for property 'userPrincipalName' of resource 'User'."
            )
    if props.get("userType") is not None and props["userType"] not in USER_TYPES:
        raise bad_request("Invalid value specified for property 'userType' of resource 'User'.")
    try:
        req.tenant.update_user(user["id"], props)
    except Conflict as exc:
        raise bad_request(str(exc)) from exc
    return GraphResponse(204)


def delete_user(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    req.tenant.soft_delete_user(user["id"])
    return GraphResponse(204)


def _groups_of(req: GraphRequest, transitive: bool) -> GraphResponse:
    obj = req.tenant.active_user(req.params["id"]) or req.tenant.active_group(req.params["id"])
    if obj is None:
        raise not_found(req.params["id"])
    tenant = req.tenant
    oid = obj["id"]

    def parents() -> list[str]:
        if not transitive:
            return sorted(g for g in tenant.member_of.get(oid, ()) if tenant.is_active(g))
        seen: set[str] = set()
        pending = [oid]
        while pending:
            current = pending.pop()
            for g in tenant.member_of.get(current, ()):
                if g not in seen and tenant.is_active(g):
                    seen.add(g)
                    pending.append(g)
        seen.discard(oid)
        return sorted(seen)

    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        for gid in parents():
            if after is None or gid > after:
                yield schema.GROUP, tenant.groups[gid]

    name = "transitiveMemberOf" if transitive else "memberOf"
    return list_page(
        req,
        route_key=f"{name}:{oid}",
        type_names=(schema.GROUP,),
        default_select=lambda _: schema.DEFAULT_GROUP_SELECT,
        source=source,
        entity_set="directoryObjects",
        annotate_type=True,
    )


def member_of(req: GraphRequest) -> GraphResponse:
    return _groups_of(req, transitive=False)


def transitive_member_of(req: GraphRequest) -> GraphResponse:
    return _groups_of(req, transitive=True)


# ---------------------------------------------------------------- deleted items


def _deleted_list(req: GraphRequest, type_name: str) -> GraphResponse:
    tenant = req.tenant
    pool = tenant.users if type_name == schema.USER else tenant.groups
    default = (
        schema.DEFAULT_USER_SELECT if type_name == schema.USER else schema.DEFAULT_GROUP_SELECT
    ) + ("deletedDateTime",)

    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        for oid in sorted(o for o, obj in pool.items() if obj.get("deletedDateTime") is not None):
            if after is None or oid > after:
                yield type_name, pool[oid]

    return list_page(
        req,
        route_key=f"deleted:{type_name}",
        type_names=(type_name,),
        default_select=lambda _: tuple(dict.fromkeys(default)),
        source=source,
        entity_set=f"directory/deletedItems/microsoft.graph.{type_name}",
    )


def deleted_users(req: GraphRequest) -> GraphResponse:
    return _deleted_list(req, schema.USER)


def deleted_groups(req: GraphRequest) -> GraphResponse:
    return _deleted_list(req, schema.GROUP)


def _require_deleted(req: GraphRequest) -> tuple[str, dict[str, Any]]:
    found = req.tenant.deleted_object(req.params["id"])
    if found is None:
        raise not_found(req.params["id"])
    return found


def _typed_view(req: GraphRequest, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    default = schema.DEFAULT_USER_SELECT if kind == schema.USER else schema.DEFAULT_GROUP_SELECT
    select = odata.parse_select(req.q("$select"))
    names = list(select) if select is not None else [*list(default), "deletedDateTime"]
    return {
        "@odata.context": f"{req.base_url}/v1.0/$metadata#directoryObjects/$entity",
        "@odata.type": f"#microsoft.graph.{kind}",
        **project(obj, kind, names),
    }


def get_deleted(req: GraphRequest) -> GraphResponse:
    kind, obj = _require_deleted(req)
    return GraphResponse(200, _typed_view(req, kind, obj))


def restore_deleted(req: GraphRequest) -> GraphResponse:
    found = _require_deleted(req)
    try:
        kind, obj = req.tenant.restore(found[1]["id"])
    except Conflict as exc:
        raise bad_request(str(exc)) from exc
    return GraphResponse(200, _typed_view(req, kind, obj))


def purge_deleted(req: GraphRequest) -> GraphResponse:
    _, obj = _require_deleted(req)
    req.tenant.purge(obj["id"])
    return GraphResponse(204)
