"""Graph `/users` and `/directory/deletedItems`: list, get, create, update, soft delete, restore."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from . import delta, odata, schema
from .common import (
    GROUP_ORDER,
    MEMBER_ORDER,
    USER_ORDER,
    Expander,
    Source,
    TypedObject,
    count_collection,
    full_view,
    get_one,
    json_object_body,
    list_page,
    reference_id,
    require_cast,
    validate_select,
    validate_writable,
)
from .permissions import (
    READ_DELETED,
    READ_MEMBERSHIPS,
    READ_USERS,
    WRITE_DELETED,
    WRITE_USERS,
)
from .router import GraphError, GraphRequest, GraphResponse, Router, bad_request, not_found
from .state import INDEXED, Conflict, Tenant, project

USER_TYPES = ("Member", "Guest")


def register(router: Router) -> None:
    router.add("GET", "/users", list_users, cost=2, permissions=READ_USERS)
    router.add("GET", "/users/$count", count_users, permissions=READ_USERS)
    # `/delta` is short for the function's full name, which the SDKs use (`delta()`).
    for name in ("delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"):
        router.add("GET", f"/users/{name}", users_delta, permissions=READ_USERS)
    router.add("POST", "/users", create_user, permissions=WRITE_USERS)
    router.add("GET", "/users/{id}", get_user, permissions=READ_USERS)
    router.add("PATCH", "/users/{id}", patch_user, permissions=WRITE_USERS)
    router.add("DELETE", "/users/{id}", delete_user, permissions=WRITE_USERS)
    router.add("GET", "/users/{id}/manager", get_manager, permissions=READ_USERS)
    router.add("GET", "/users/{id}/manager/$ref", get_manager_ref, permissions=READ_USERS)
    router.add("PUT", "/users/{id}/manager/$ref", put_manager_ref, permissions=WRITE_USERS)
    router.add("DELETE", "/users/{id}/manager/$ref", delete_manager_ref, permissions=WRITE_USERS)
    router.add("GET", "/users/{id}/directReports", direct_reports, permissions=READ_USERS)
    for nav, transitive in (("memberOf", False), ("transitiveMemberOf", True)):
        handler = transitive_member_of if transitive else member_of
        counter = count_transitive_member_of if transitive else count_member_of
        # Graph's cost table: memberOf and transitiveMemberOf of a user cost 2.
        router.add("GET", f"/users/{{id}}/{nav}", handler, cost=2, permissions=READ_MEMBERSHIPS)
        router.add(
            "GET", f"/users/{{id}}/{nav}/{{type}}", handler, cost=2, permissions=READ_MEMBERSHIPS
        )
        router.add("GET", f"/users/{{id}}/{nav}/$count", counter, permissions=READ_MEMBERSHIPS)
        router.add(
            "GET", f"/users/{{id}}/{nav}/{{type}}/$count", counter, permissions=READ_MEMBERSHIPS
        )
    router.add("GET", "/directory/deletedItems/{type}", deleted_list, permissions=READ_DELETED)
    router.add(
        "GET", "/directory/deletedItems/{type}/$count", count_deleted, permissions=READ_DELETED
    )
    router.add("GET", "/directory/deletedItems/{id}", get_deleted, permissions=READ_DELETED)
    router.add("GET", "/directory/deletedItems/{id}/{type}", get_deleted, permissions=READ_DELETED)
    router.add(
        "POST", "/directory/deletedItems/{id}/restore", restore_deleted, permissions=WRITE_DELETED
    )
    router.add("DELETE", "/directory/deletedItems/{id}", purge_deleted, permissions=WRITE_DELETED)


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
        ordering=USER_ORDER,
        expander=manager_expander(req),
    )


# ---------------------------------------------------------------- manager

_EXPAND = re.compile(r"^\s*(\w+)\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*$", re.IGNORECASE)


def manager_expander(req: GraphRequest) -> Expander:
    """`$expand=manager` or `$expand=manager($select=id,displayName)` on users: a `manager`
    object (absent when the user has none), as Graph answers it."""
    tenant = req.tenant

    def build(text: str) -> Any:
        m = _EXPAND.match(text)
        if m is None or m.group(1) != "manager":
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"$expand={text} is not supported by the sandbox on users: only manager.",
            )
        select = validate_select(odata.parse_select(m.group(2)), (schema.USER,))
        names = select if select is not None else list(schema.DEFAULT_USER_SELECT)

        def extra(obj: dict[str, Any]) -> dict[str, Any]:
            manager = tenant.manager_of(obj["id"])
            if manager is None:
                return {}
            view = project(tenant.users[manager], schema.USER, names)
            return {"manager": {"@odata.type": "#microsoft.graph.user", **view}}

        return extra

    return build


def _no_manager() -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        "Resource 'manager' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def get_manager(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    manager = req.tenant.manager_of(user["id"])
    if manager is None:
        raise _no_manager()
    body = get_one(
        req, schema.USER, req.tenant.users[manager], schema.DEFAULT_USER_SELECT, "directoryObjects"
    ).body
    return GraphResponse(
        200,
        {
            "@odata.context": body.pop("@odata.context"),
            "@odata.type": "#microsoft.graph.user",
            **body,
        },
    )


def get_manager_ref(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    manager = req.tenant.manager_of(user["id"])
    if manager is None:
        raise _no_manager()
    return GraphResponse(
        200,
        {
            "@odata.context": f"{req.base_url}/v1.0/$metadata#directoryObjects/$entity",
            "@odata.id": f"{req.base_url}/v2/{req.tenant.tenant_id}/directoryObjects/{manager}"
            "/Microsoft.DirectoryServices.User",
        },
    )


def put_manager_ref(req: GraphRequest) -> GraphResponse:
    """`PUT /users/{id}/manager/$ref` with `{"@odata.id": ".../users/{managerId}"}`: 204."""
    user = _require_user(req)
    body = json_object_body(req)
    if "@odata.id" not in body:
        raise bad_request("The request body must contain '@odata.id'.")
    ref = reference_id(body["@odata.id"])
    manager = req.tenant.active_user(ref)
    if manager is None:
        if req.tenant.active_group(ref) is not None:
            raise bad_request("A manager must be a user or an organizational contact.")
        raise not_found(ref)
    if manager["id"] == user["id"]:
        raise bad_request("A user cannot be their own manager.")
    req.tenant.set_manager(user["id"], manager["id"])
    return GraphResponse(204)


def delete_manager_ref(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    if user["id"] not in req.tenant.managers:
        raise _no_manager()
    req.tenant.remove_manager(user["id"])
    return GraphResponse(204)


def direct_reports(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    tenant = req.tenant
    uid = user["id"]

    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        for report in tenant.direct_reports(uid):
            if after is None or report > after:
                yield schema.USER, tenant.users[report]

    return list_page(
        req,
        route_key=f"directReports:{uid}",
        type_names=(schema.USER,),
        default_select=_default_user,
        source=source,
        entity_set="directoryObjects",
        annotate_type=True,
        ordering=MEMBER_ORDER,
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
    return get_one(
        req, schema.USER, user, schema.DEFAULT_USER_SELECT, "users", manager_expander(req)
    )


# What Graph requires in POST /users (Microsoft Graph docs, "Create user": accountEnabled,
# displayName, mailNickname, passwordProfile and userPrincipalName are required).
REQUIRED_ON_CREATE = (
    "accountEnabled",
    "displayName",
    "mailNickname",
    "passwordProfile",
    "userPrincipalName",
)
# Characters Entra refuses in a mailNickname (its documented restrictions for the alias).
_NICKNAME_FORBIDDEN = set('@()\\[]";:<>,') | {" "}


def invalid_value(prop: str) -> GraphError:
    return bad_request(f"Invalid value specified for property '{prop}' of resource 'User'.")


def password_is_complex(password: str) -> bool:
    """Entra's password policy for cloud users: 8 to 256 characters, three of four classes."""
    classes = (
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    )
    return 8 <= len(password) <= 256 and sum(classes) >= 3


def _check_user_values(props: dict[str, Any]) -> None:
    for name in ("displayName", "mailNickname", "userPrincipalName"):
        if name in props and (not isinstance(props[name], str) or not props[name].strip()):
            raise invalid_value(name)
    nickname = props.get("mailNickname")
    if isinstance(nickname, str) and (set(nickname) & _NICKNAME_FORBIDDEN or len(nickname) > 64):
        raise invalid_value("mailNickname")
    upn = props.get("userPrincipalName")
    if isinstance(upn, str):
        local, at, domain = upn.rpartition("@")
        if not at or not local or "." not in domain or " " in upn:
            raise invalid_value("userPrincipalName")
    if props.get("userType") is not None and props["userType"] not in USER_TYPES:
        raise invalid_value("userType")
    profile = props.get("passwordProfile")
    if "passwordProfile" in props:
        password = profile.get("password") if isinstance(profile, dict) else None
        if not isinstance(password, str) or not password:
            raise invalid_value("passwordProfile")
        if not password_is_complex(password):
            raise bad_request(
                "The specified password does not comply with password complexity "
                "requirements. Please provide a different password."
            )


def _refuse_binds(body: dict[str, Any]) -> None:
    """A reference in a user's body (`manager@odata.bind`, ...): the sandbox stores none, so
    rather than create the user without it, it refuses it (Graph refuses a value that is no
    object's URL with 400; the manager is set with PUT /users/{id}/manager/$ref)."""
    for key in body:
        if key.endswith("@odata.bind"):
            raise bad_request(
                f"'{key}' is not supported on a user here: set references with their own "
                "request (PUT /users/{id}/manager/$ref for the manager)."
            )


def create_user(req: GraphRequest) -> GraphResponse:
    body = json_object_body(req)
    _refuse_binds(body)
    props = validate_writable(schema.USER, body)
    for required in REQUIRED_ON_CREATE:
        if props.get(required) is None:
            raise invalid_value(required)
    _check_user_values(props)
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
    _refuse_binds(body)
    props = validate_writable(schema.USER, body)
    _check_user_values(props)
    attributes = props.get("onPremisesExtensionAttributes")
    if "onPremisesExtensionAttributes" in props:
        if user.get("onPremisesSyncEnabled") is True:
            raise bad_request(
                "Unable to update the specified properties for on-premises mastered Directory "
                "Sync objects or objects currently undergoing migration."
            )
        # Graph sets the attributes the body names and keeps the others.
        current = user.get("onPremisesExtensionAttributes") or {}
        props["onPremisesExtensionAttributes"] = {**current, **(attributes or {})}
    try:
        req.tenant.update_user(user["id"], props)
    except Conflict as exc:
        raise bad_request(str(exc)) from exc
    return GraphResponse(204)


def delete_user(req: GraphRequest) -> GraphResponse:
    user = _require_user(req)
    req.tenant.soft_delete_user(user["id"])
    return GraphResponse(204)


def _groups_source(req: GraphRequest, transitive: bool) -> tuple[str, Source]:
    """The groups the user (or group) is a member of, directly or at any depth, by id."""
    obj = req.tenant.active_user(req.params["id"]) or req.tenant.active_group(req.params["id"])
    if obj is None:
        raise not_found(req.params["id"])
    tenant = req.tenant
    oid = obj["id"]
    require_cast(req, "memberOf")
    wanted = req.params.get("type")

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
        if wanted not in (None, schema.GROUP):
            return  # directory roles and administrative units: the sandbox has none
        for gid in parents():
            if after is None or gid > after:
                yield schema.GROUP, tenant.groups[gid]

    return oid, source


def _groups_of(req: GraphRequest, transitive: bool) -> GraphResponse:
    oid, source = _groups_source(req, transitive)
    name = "transitiveMemberOf" if transitive else "memberOf"
    cast = req.params.get("type")
    return list_page(
        req,
        route_key=f"{name}:{oid}:{cast or ''}",
        type_names=(schema.GROUP,),
        default_select=lambda _: schema.DEFAULT_GROUP_SELECT,
        source=source,
        entity_set="groups" if cast else "directoryObjects",
        annotate_type=True,
        ordering=MEMBER_ORDER,
    )


def member_of(req: GraphRequest) -> GraphResponse:
    return _groups_of(req, transitive=False)


def transitive_member_of(req: GraphRequest) -> GraphResponse:
    return _groups_of(req, transitive=True)


def count_member_of(req: GraphRequest) -> GraphResponse:
    return count_collection(req, (schema.GROUP,), _groups_source(req, transitive=False)[1])


def count_transitive_member_of(req: GraphRequest) -> GraphResponse:
    return count_collection(req, (schema.GROUP,), _groups_source(req, transitive=True)[1])


# ---------------------------------------------------------------- deleted items


def _deleted_source(req: GraphRequest) -> tuple[str, Source]:
    """The type of a `deletedItems/{cast}` request and its soft-deleted objects, by id."""
    cast = require_cast(req, "deletedItems")
    assert cast is not None  # the routes always carry one
    tenant = req.tenant
    pool = {schema.USER: tenant.users, schema.GROUP: tenant.groups}.get(cast, {})

    def source(node: odata.Node | None, after: str | None) -> Iterator[TypedObject]:
        for oid in sorted(o for o, obj in pool.items() if obj.get("deletedDateTime") is not None):
            if after is None or oid > after:
                yield cast, pool[oid]

    return cast, source


def deleted_list(req: GraphRequest) -> GraphResponse:
    """`/directory/deletedItems/graph.user` (and any other cast). v1.0 has no untyped list."""
    cast, source = _deleted_source(req)
    known = cast in (schema.USER, schema.GROUP)
    base = schema.DEFAULT_USER_SELECT if cast == schema.USER else schema.DEFAULT_GROUP_SELECT
    default = tuple(dict.fromkeys((*base, "deletedDateTime")))
    return list_page(
        req,
        route_key=f"deleted:{cast}",
        type_names=(cast if known else schema.USER,),
        default_select=lambda _: default,
        source=source,
        entity_set=f"directory/deletedItems/microsoft.graph.{cast}",
        ordering=USER_ORDER if cast == schema.USER else GROUP_ORDER,
    )


def count_deleted(req: GraphRequest) -> GraphResponse:
    cast, source = _deleted_source(req)
    known = cast in (schema.USER, schema.GROUP)
    return count_collection(req, (cast if known else schema.USER,), source)


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
    """`deletedItems/{id}`, or `deletedItems/{id}/graph.user`: 404 unless it is a user."""
    kind, obj = _require_deleted(req)
    cast = require_cast(req, "deletedItems")
    if cast is not None and cast != kind:
        raise not_found(req.params["id"])
    return GraphResponse(200, _typed_view(req, kind, obj))


def restore_deleted(req: GraphRequest) -> GraphResponse:
    found = _require_deleted(req)
    kind, deleted = found
    unique = deleted.get("uniqueName") if kind == schema.GROUP else None
    if isinstance(unique, str) and req.tenant.group_by_unique_name(unique) is not None:
        # A group's uniqueName is unique in the tenant: a newer group took it while this one
        # was deleted, so the restore is refused, as for a user whose UPN was taken
        # (docs/groups.md says what is confirmed of Graph's behaviour).
        raise bad_request(
            "Another object with the same value for property uniqueName already exists."
        )
    try:
        kind, obj = req.tenant.restore(found[1]["id"])
    except Conflict as exc:
        raise bad_request(str(exc)) from exc
    return GraphResponse(200, _typed_view(req, kind, obj))


def purge_deleted(req: GraphRequest) -> GraphResponse:
    _, obj = _require_deleted(req)
    req.tenant.purge(obj["id"])
    return GraphResponse(204)
