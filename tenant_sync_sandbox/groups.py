"""Graph `/groups`: list, get, create, update, delete, members (direct and transitive), `$ref`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import delta, odata, rules, schema, seed
from .common import (
    GROUP_ORDER,
    MEMBER_ORDER,
    Source,
    TypedObject,
    count_collection,
    full_view,
    get_one,
    json_object_body,
    list_page,
    reference_id,
    require_cast,
    validate_writable,
)
from .permissions import (
    CREATE_GROUPS,
    DELETE_GROUPS,
    READ_GROUPS,
    WRITE_GROUPS,
    WRITE_MEMBERS,
)
from .router import GraphError, GraphRequest, GraphResponse, Router, bad_request, not_found
from .state import Conflict

MEMBER_TYPES = (schema.USER, schema.GROUP)


def register(router: Router) -> None:
    router.add("GET", "/groups", list_groups, permissions=READ_GROUPS)
    router.add("GET", "/groups/$count", count_groups, permissions=READ_GROUPS)
    for name in ("delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"):
        router.add("GET", f"/groups/{name}", groups_delta, permissions=READ_GROUPS)
    router.add("POST", "/groups", create_group, permissions=CREATE_GROUPS)
    router.add("GET", "/groups/{id}", get_group, permissions=READ_GROUPS)
    # The alternate key: GET /groups(uniqueName='...').
    router.add(
        "GET", "/groups(uniqueName={key})", get_group_by_unique_name, permissions=READ_GROUPS
    )
    router.add("PATCH", "/groups/{id}", patch_group, permissions=WRITE_GROUPS + WRITE_MEMBERS)
    router.add("DELETE", "/groups/{id}", delete_group, permissions=DELETE_GROUPS)
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


def get_group_by_unique_name(req: GraphRequest) -> GraphResponse:
    group = req.tenant.group_by_unique_name(req.params["key"])
    if group is None:
        raise not_found(f"groups(uniqueName='{req.params['key']}')")
    return get_one(req, schema.GROUP, group, schema.DEFAULT_GROUP_SELECT, "groups")


MAX_BINDS = 20  # Graph: "up to 20 members" per request with members@odata.bind
REQUIRED_ON_CREATE = ("displayName", "mailEnabled", "mailNickname", "securityEnabled")


def invalid_group_value(prop: str) -> GraphError:
    return bad_request(f"Invalid value specified for property '{prop}' of resource 'Group'.")


# Graph's group resource: mailNickname is at most 64 characters, ASCII (0-127) only, without
# @ ( ) \ [ ] " ; : < > , or a space; Graph answers 400 for anything else.
MAIL_NICKNAME_MAX = 64
MAIL_NICKNAME_REFUSED = frozenset('@()\\[]";:<>, ')


def valid_mail_nickname(value: str) -> bool:
    return (
        0 < len(value) <= MAIL_NICKNAME_MAX
        and value.isascii()
        and not MAIL_NICKNAME_REFUSED.intersection(value)
    )


def _binds(req: GraphRequest, body: dict[str, Any], key: str) -> list[str]:
    """The active objects a `key@odata.bind` list names (404 for an unknown one)."""
    refs = body.get(f"{key}@odata.bind", [])
    if not isinstance(refs, list):
        raise bad_request(f"'{key}@odata.bind' must be a list of URLs.")
    out: list[str] = []
    for ref in refs:
        oid = req.tenant.resolve_id(reference_id(ref))
        if oid is None or not req.tenant.is_active(oid):
            raise not_found(reference_id(ref))
        out.append(oid)
    return out


def _check_bind_count(members: list[str], owners: list[str]) -> None:
    if len(members) + len(owners) > MAX_BINDS:
        raise bad_request(
            f"A single request can add at most {MAX_BINDS} members and owners with "
            f"@odata.bind; this one has {len(members) + len(owners)}."
        )


def _check_kind(props: dict[str, Any], group: dict[str, Any] | None = None) -> None:
    """The group kinds Graph creates: security, Microsoft 365, and dynamic ones of either."""
    merged = {**(group or {}), **props}
    types = merged.get("groupTypes") or []
    for kind in types:
        if kind not in seed.GROUP_TYPES:
            raise invalid_group_value("groupTypes")
    if merged.get("mailEnabled") and "Unified" not in types:
        # Graph creates neither mail-enabled security groups nor distribution lists.
        raise bad_request(
            "Mail-enabled security groups and distribution lists cannot be created or updated "
            'through Microsoft Graph: use groupTypes ["Unified"] or mailEnabled false.'
        )
    if not merged.get("mailEnabled") and "Unified" in types:
        raise invalid_group_value("mailEnabled")
    rule = merged.get("membershipRule")
    if "DynamicMembership" in types:
        if not isinstance(rule, str):
            raise invalid_group_value("membershipRule")
        try:
            rules.check_properties(rules.parse_rule(rule), seed.is_user_property)
        except rules.RuleError as exc:
            raise bad_request(
                f"Invalid value specified for property 'membershipRule': {exc}."
            ) from exc
        state = merged.get("membershipRuleProcessingState")
        if state is not None and state not in ("On", "Paused"):
            raise invalid_group_value("membershipRuleProcessingState")
    elif "membershipRule" in props and rule is not None:
        raise invalid_group_value("membershipRule")


def _refuse_dynamic(req: GraphRequest, group_id: str) -> None:
    if req.tenant.is_dynamic(group_id):
        # Graph does not document its message here; the sandbox names the reason.
        raise bad_request(
            "The members of a group with dynamic membership cannot be changed: its "
            "membershipRule decides them."
        )


def create_group(req: GraphRequest) -> GraphResponse:
    body = json_object_body(req)
    props = validate_writable(schema.GROUP, body)
    for required in REQUIRED_ON_CREATE:
        if props.get(required) is None:
            raise invalid_group_value(required)
    for name in ("displayName", "mailNickname"):
        if not isinstance(props[name], str) or not props[name].strip():
            raise invalid_group_value(name)
    if not valid_mail_nickname(props["mailNickname"]):
        raise invalid_group_value("mailNickname")
    _check_kind(props)
    members = _binds(req, body, "members")
    owners = _binds(req, body, "owners")
    _check_bind_count(members, owners)
    types = props.get("groupTypes") or []
    if "DynamicMembership" in types:
        if members:
            raise bad_request("A group with dynamic membership cannot have members@odata.bind.")
        props.setdefault("membershipRuleProcessingState", "On")
    if "Unified" in types:
        props.setdefault("mail", f"{props['mailNickname']}@{req.tenant.domain}")
        props.setdefault("visibility", "Public")
    if "uniqueName" in props and (
        not isinstance(props["uniqueName"], str) or not props["uniqueName"].strip()
    ):
        raise invalid_group_value("uniqueName")
    try:
        group = req.tenant.create_group(props, members)
    except Conflict as exc:
        raise bad_request(str(exc)) from exc
    out = {"@odata.context": f"{req.base_url}/v1.0/$metadata#groups/$entity"}
    out.update(full_view(schema.GROUP, group, schema.DEFAULT_GROUP_SELECT))
    return GraphResponse(201, out, headers={"Location": req.url(f"/groups/{group['id']}")})


def patch_group(req: GraphRequest) -> GraphResponse:
    """Properties, and members added in bulk with `members@odata.bind` (up to 20)."""
    group = _require_group(req)
    body = json_object_body(req)
    props = validate_writable(schema.GROUP, body)
    for name in ("displayName", "mailNickname"):
        if name in props and (not isinstance(props[name], str) or not props[name].strip()):
            raise invalid_group_value(name)
    if "mailNickname" in props and not valid_mail_nickname(props["mailNickname"]):
        raise invalid_group_value("mailNickname")
    if "uniqueName" in props and props["uniqueName"] != group.get("uniqueName"):
        # Graph: set on creation only, immutable afterwards.
        raise bad_request("Property 'uniqueName' is immutable and cannot be changed.")
    _check_kind(props, group)
    members = _binds(req, body, "members")
    owners = _binds(req, body, "owners")
    _check_bind_count(members, owners)
    gid = group["id"]
    if members:
        _refuse_dynamic(req, gid)
        current = req.tenant.members.get(gid, set())
        if any(m in current for m in members) or len(set(members)) < len(members):
            raise bad_request(
                "One or more added object references already exist for the following "
                "modified properties: 'members'."
            )
        if gid in members:
            raise bad_request("A group cannot be a member of itself.")
    req.tenant.update_group(gid, props)
    for mid in members:
        req.tenant.add_member(gid, mid)
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
    _refuse_dynamic(req, group["id"])
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
    _refuse_dynamic(req, group["id"])
    req.tenant.remove_member(group["id"], mid)
    return GraphResponse(204)
