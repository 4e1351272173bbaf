"""Query-option handling shared by the Graph resources: `$select`, `$filter`, `$search`,
`$orderby`, `$top`, `$count`, type casts, paging, and the checks of POST/PATCH bodies against the
Graph types.

List endpoints page by object id (keyset), so pages stay correct while objects are created or
deleted between page requests; the `$skiptoken` carries the cursor and the original options.
Sorted lists (`$orderby`) are cut by position instead: an object created or deleted between two
pages may shift the later pages by one (Graph documents no guarantee either).

Advanced queries follow Graph's documented rules for directory objects ("Advanced query
capabilities on Microsoft Entra ID objects"): the `$count` segment (`/users/$count`) needs
`ConsistencyLevel: eventual` (else 400 "$count is not currently supported."); `$count=true`
without that header is silently ignored (no `@odata.count`); `ne`, `not` and `endsWith` in
`$filter`, and filters on `onPremisesExtensionAttributes`, need both the header and
`$count=true` (else 400 Request_UnsupportedQuery); `$search` needs the header (not `$count`);
`$orderby` works by default on `displayName` (users and groups) and `userPrincipalName`
(users), needs both advanced parameters on `createdDateTime` / `deletedDateTime`, and always
needs them together with `$filter` or `$search`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from . import odata, schema, search, tokens
from .router import GraphError, GraphRequest, GraphResponse, bad_request
from .state import project

MAX_PAGE = 999
DEFAULT_PAGE = 100

TypedObject = tuple[str, dict[str, Any]]  # (type name, stored object)
Source = Callable[[odata.Node | None, str | None], Iterator[TypedObject]]
# `$expand` text -> the function giving each object's expanded navigation properties.
Expander = Callable[[str], Callable[[dict[str, Any]], dict[str, Any]]]

# The types an OData cast may name on each directory-object collection (the types the CSDL
# allows there). The sandbox holds only users and groups: a valid cast to another type is an
# empty collection; a cast to a type that cannot be there is refused like an unknown segment.
CASTS: dict[str, frozenset[str]] = {
    "deletedItems": frozenset(
        {"administrativeUnit", "application", "device", "group", "servicePrincipal", "user"}
    ),
    "members": frozenset(
        {"application", "device", "group", "orgContact", "servicePrincipal", "user"}
    ),
    "memberOf": frozenset({"administrativeUnit", "directoryRole", "group"}),
}

ADVANCED_ONLY_PROPERTIES = frozenset({"onPremisesExtensionAttributes"})


def require_cast(req: GraphRequest, navigation: str) -> str | None:
    """The cast of the request (`params["type"]`), checked against the navigation's types."""
    cast = req.params.get("type")
    if cast is None:
        return None
    if cast not in CASTS[navigation]:
        segment = next(
            (s for s in req.path.split("/") if s.lower().endswith("graph." + cast.lower())), cast
        )
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    return cast


def resource_label(type_names: Iterable[str]) -> str:
    """What Graph's messages call the resource: `User`, `Group`, or `DirectoryObject`."""
    types = list(type_names)
    name = types[0] if len(types) == 1 else "directoryObject"
    return name[0].upper() + name[1:]


def type_map(type_names: Iterable[str]) -> Mapping[str, str]:
    """Property name -> Edm type over the types (the first type naming a property wins)."""
    return _type_map(tuple(type_names))


@cache
def _type_map(type_names: tuple[str, ...]) -> Mapping[str, str]:
    # Built once per combination of types, not per request; callers never change it.
    out: dict[str, str] = {}
    for name in type_names:
        for prop, edm in schema.edm_types(name).items():
            out.setdefault(prop, edm)
    return out


def validate_select(
    names: list[str] | None, type_names: Iterable[str], *, allow: Iterable[str] = ()
) -> list[str] | None:
    if names is None:
        return None
    types = list(type_names)
    known = type_map(types)
    extra = set(allow)
    for name in names:
        if name in known or name in extra or schema.is_extension_property(name):
            continue
        label = (
            "microsoft.graph." + types[0] if len(types) == 1 else "microsoft.graph.directoryObject"
        )
        raise bad_request(
            "Parsing OData Select and Expand failed: Could not find a property named "
            f"'{name}' on type '{label}'."
        )
    return names


def select_from_query(req: GraphRequest, type_names: Iterable[str]) -> list[str] | None:
    return validate_select(odata.parse_select(req.q("$select")), type_names)


def eventual(req: GraphRequest) -> bool:
    """The request carries `ConsistencyLevel: eventual` (advanced query)."""
    return req.headers.get("consistencylevel", "").strip().lower() == "eventual"


def count_option(req: GraphRequest) -> bool:
    raw = req.q("$count")
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise bad_request(f"Invalid value '{raw}' for the $count query option: true or false.")
    return value == "true"


def _advanced_refusal(what: str) -> GraphError:
    return GraphError(
        400,
        "Request_UnsupportedQuery",
        f"{what} is not supported because the required parameters might be missing. "
        "Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to "
        "https://aka.ms/graph-docs/advanced-queries for more information",
    )


def is_advanced(req: GraphRequest, *, count_segment: bool = False) -> bool:
    """Both advanced query parameters: the header, and `$count=true` (or the `$count` segment)."""
    return eventual(req) and (count_segment or count_option(req))


def check_advanced(req: GraphRequest, node: odata.Node | None, *, count_segment: bool) -> None:
    """Refuse `ne`/`not`/`endsWith`, and properties only the advanced index has, unless the
    request is an advanced query (see module doc)."""
    if node is None or is_advanced(req, count_segment=count_segment):
        return
    op = odata.advanced_operator(node)
    if op is not None:
        raise _advanced_refusal(f"Operator '{op}'")
    for path in odata.paths(node):
        if path[0] in ADVANCED_ONLY_PROPERTIES:
            # Graph's message for this case is not documented; the operator one is reused.
            raise _advanced_refusal(f"Property '{'/'.join(path)}'")


def compile_filter(
    text: str | None, type_names: Iterable[str], *, advanced: bool = False
) -> odata.Node | None:
    """The parsed and checked `$filter` (None when absent); `advanced` queries may list more
    than 15 values in an `in` expression."""
    if text is None or not text.strip():
        return None
    types = list(type_names)
    try:
        node = odata.parse_filter(text)
        root = type_map(types)
        extensions = {
            path[0]: "Edm.Untyped"  # directory extensions: any JSON type
            for path in odata.paths(node)
            if path[0] not in root and schema.is_extension_property(path[0])
        }
        if extensions:
            root = {**root, **extensions}
        odata.validate(
            node,
            root,
            schema.complex_types(),
            resource=resource_label(types),
            max_in_values=None if advanced else odata.MAX_IN_VALUES,
        )
    except odata.FilterError as exc:
        raise GraphError(400, exc.code, exc.message) from exc
    return node


def compile_search(req: GraphRequest, text: str | None, types: Iterable[str]) -> Any:
    """The parsed `$search`, or None. Directory objects answer it only with the header."""
    if text is None:
        return None
    if not eventual(req):
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special "
            "request header: 'ConsistencyLevel: eventual'",
        )
    names = list(types)
    raw = text.strip()
    try:
        node = search.parse_search(raw)
        search.validate(node, type_map(names), resource_label(names))
    except search.SearchError as exc:
        raise GraphError(400, exc.code, exc.message) from exc
    return node


@dataclass(frozen=True)
class Ordering:
    """The properties `$orderby` accepts on a collection, by default and in advanced queries."""

    default: frozenset[str] = frozenset()
    advanced: frozenset[str] = frozenset()


USER_ORDER = Ordering(
    frozenset({"displayName", "userPrincipalName"}),
    frozenset({"createdDateTime", "deletedDateTime"}),
)
GROUP_ORDER = Ordering(frozenset({"displayName"}), frozenset({"deletedDateTime"}))
# Relationships (members, memberOf) sort only in advanced queries: Graph's table lists the
# default support for the /users and /groups collections only, so the sandbox asks for more.
MEMBER_ORDER = Ordering(
    frozenset(), frozenset({"displayName", "createdDateTime", "deletedDateTime"})
)


def _sorting_refused() -> GraphError:
    # Graph's answer when a sort needs the advanced parameters or the property has no sort index.
    return GraphError(400, "Request_UnsupportedQuery", "Sorting not supported for current query.")


def parse_orderby(
    req: GraphRequest,
    text: str | None,
    types: Iterable[str],
    ordering: Ordering | None,
    *,
    filtered: bool,
) -> list[tuple[str, bool]] | None:
    """`$orderby=a,b desc` -> [(a, False), (b, True)], checked against the collection's rules."""
    if text is None:
        return None
    names = list(types)
    known = type_map(names)
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in DIRS):
            raise bad_request(f"Invalid $orderby clause: '{part.strip()}'.")
        prop = words[0]
        if prop not in known:
            label = "microsoft.graph." + names[0] if len(names) == 1 else "directoryObject"
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{prop}' on type '{label}'.",
            )
        keys.append((prop, len(words) == 2 and words[1].lower() == "desc"))
    rules = ordering or Ordering()
    advanced = is_advanced(req)
    for prop, _ in keys:
        if prop in rules.default and (advanced or not filtered):
            continue
        if prop in rules.advanced | rules.default and advanced:
            continue
        raise _sorting_refused()
    return keys


DIRS = ("asc", "desc")


def _sort_key(obj: dict[str, Any], prop: str) -> tuple[int, Any]:
    # Nulls sort first in ascending order (Graph does not document it: the sandbox's choice).
    value = obj.get(prop)
    if value is None:
        return (0, "")
    return (1, value.casefold() if isinstance(value, str) else value)


def sort_objects(items: list[TypedObject], keys: list[tuple[str, bool]]) -> list[TypedObject]:
    out = sorted(items, key=lambda t: t[1]["id"])
    for prop, desc in reversed(keys):
        out.sort(key=lambda t, p=prop: _sort_key(t[1], p), reverse=desc)  # type: ignore[misc]
    return out


def count_collection(
    req: GraphRequest,
    type_names: tuple[str, ...],
    source: Source,
) -> GraphResponse:
    """`GET /{collection}/$count`: the number as text/plain (advanced queries only)."""
    if not eventual(req):
        raise bad_request("$count is not currently supported.")
    reject_unsupported_options(req, ("$filter", "$search"))
    # Only an advanced query reaches here (the header is checked above, $count is the path).
    node = compile_filter(req.q("$filter"), type_names, advanced=True)
    check_advanced(req, node, count_segment=True)
    found = compile_search(req, req.q("$search"), type_names)
    n = sum(1 for _, obj in source(node, None) if _keep(obj, node, found))
    return GraphResponse(200, text=str(n), headers={"Content-Type": "text/plain"})


def _keep(obj: dict[str, Any], node: odata.Node | None, found: Any) -> bool:
    if node is not None and not odata.evaluate(node, obj):
        return False
    return found is None or search.matches(found, obj)


def page_size(req: GraphRequest, default: int = DEFAULT_PAGE) -> int:
    raw = req.q("$top")
    if raw is not None:
        try:
            top = int(raw)
        except ValueError as exc:
            raise bad_request(f"Invalid page size specified: '{raw}'.") from exc
        if top < 1 or top > MAX_PAGE:
            raise bad_request(
                f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_PAGE} inclusive."
            )
        return top
    prefer = preferred_page_size(req)
    return prefer if prefer is not None else default


def preferred_page_size(req: GraphRequest) -> int | None:
    for part in req.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, min(MAX_PAGE, int(value.strip().strip('"'))))
            except ValueError:
                return None
    return None


def context_url(req: GraphRequest, entity_set: str, select: list[str] | None) -> str:
    suffix = f"({','.join(select)})" if select else ""
    return f"{req.base_url}/v1.0/$metadata#{entity_set}{suffix}"


def reject_unsupported_options(req: GraphRequest, allowed: Iterable[str]) -> None:
    ok = set(allowed)
    for key in req.query:
        if key.startswith("$") and key not in ok:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"The query option '{key}' is not supported by the sandbox on this resource.",
            )


LIST_OPTIONS = ("$select", "$filter", "$top", "$count", "$skiptoken", "$orderby", "$search")


def expansion(req: GraphRequest, text: str | None, expander: Expander | None) -> Any:
    """The function that adds a `$expand`ed navigation property to each object, or None."""
    if text is None:
        return None
    if expander is None:
        raise GraphError(
            400, "Request_UnsupportedQuery", "$expand is not supported by the sandbox here."
        )
    return expander(text)


def list_page(
    req: GraphRequest,
    *,
    route_key: str,
    type_names: tuple[str, ...],
    default_select: Callable[[str], Iterable[str]],
    source: Source,
    entity_set: str,
    annotate_type: bool = False,
    extra_select: Iterable[str] = (),
    ordering: Ordering | None = None,
    expander: Expander | None = None,
) -> GraphResponse:
    """One page of a collection, ordered by id (or `$orderby`), continued by a `$skiptoken`."""
    skip = req.q("$skiptoken")
    count_requested = False
    offset = 0
    if skip is not None:
        try:
            st = tokens.decode(skip)
        except tokens.TokenError as exc:
            raise bad_request(f"Invalid $skiptoken: {exc}") from exc
        if st.get("r") != route_key or st.get("t") != req.tenant.tenant_id:
            raise bad_request("The $skiptoken does not belong to this request.")
        after: str | None = st.get("a")
        filter_text: str | None = st.get("f")
        search_text: str | None = st.get("q")
        select: list[str] | None = st.get("s")
        top = int(st.get("n") or DEFAULT_PAGE)
        order = [(str(p), bool(d)) for p, d in st["o"]] if st.get("o") else None
        offset = int(st.get("i") or 0)
        found = search.parse_search(search_text) if search_text else None
        expand_text: str | None = st.get("x")
    else:
        reject_unsupported_options(req, (*LIST_OPTIONS, "$expand"))
        expand_text = req.q("$expand")
        after = None
        filter_text = req.q("$filter")
        search_text = req.q("$search")
        select = validate_select(
            odata.parse_select(req.q("$select")), type_names, allow=extra_select
        )
        top = page_size(req)
        count_requested = count_option(req) and eventual(req)
        found = compile_search(req, search_text, type_names)
        order = parse_orderby(
            req,
            req.q("$orderby"),
            type_names,
            ordering,
            filtered=bool(filter_text) or found is not None,
        )
    # A continuation's filter was checked by its first page (which may have been advanced).
    node = compile_filter(filter_text, type_names, advanced=skip is not None or is_advanced(req))
    if skip is None:
        check_advanced(req, node, count_segment=False)
    expand = expansion(req, expand_text, expander)

    def project_one(type_name: str, obj: dict[str, Any]) -> dict[str, Any]:
        names = select if select is not None else list(default_select(type_name))
        item = project(obj, type_name, names)
        if annotate_type:
            item = {"@odata.type": f"#microsoft.graph.{type_name}", **item}
        if expand is not None:
            item.update(expand(obj))
        return item

    items: list[dict[str, Any]] = []
    last_id: str | None = None
    more = False
    if order is not None:
        ranked = sort_objects([t for t in source(node, None) if _keep(t[1], node, found)], order)
        window = ranked[offset : offset + top]
        items = [project_one(type_name, obj) for type_name, obj in window]
        more = offset + top < len(ranked)
    else:
        for type_name, obj in source(node, after):
            if not _keep(obj, node, found):
                continue
            if len(items) == top:
                more = True
                break
            items.append(project_one(type_name, obj))
            last_id = obj["id"]

    body: dict[str, Any] = {"@odata.context": context_url(req, entity_set, select)}
    if count_requested:
        body["@odata.count"] = sum(1 for _, obj in source(node, None) if _keep(obj, node, found))
    if more:
        state: dict[str, Any] = {
            "r": route_key,
            "t": req.tenant.tenant_id,
            "a": last_id,
            "f": filter_text,
            "s": select,
            "n": top,
        }
        if search_text:
            state["q"] = search_text
        if expand_text:
            state["x"] = expand_text
        if order is not None:
            state["o"] = [list(k) for k in order]
            state["i"] = offset + top
        body["@odata.nextLink"] = req.url(f"{req.path}?$skiptoken={quote(tokens.encode(state))}")
    body["value"] = items
    return GraphResponse(200, body)


def get_one(
    req: GraphRequest,
    type_name: str,
    obj: dict[str, Any],
    default: Iterable[str],
    entity_set: str,
    expander: Expander | None = None,
) -> GraphResponse:
    reject_unsupported_options(req, ("$select", "$expand"))
    expand = expansion(req, req.q("$expand"), expander)
    select = select_from_query(req, (type_name,))
    names = select if select is not None else list(default)
    body = {"@odata.context": context_url(req, entity_set, select) + "/$entity"}
    body.update(project(obj, type_name, names))
    if expand is not None:
        body.update(expand(obj))
    return GraphResponse(200, body)


def full_view(type_name: str, obj: dict[str, Any], default: tuple[str, ...]) -> dict[str, Any]:
    """What Graph echoes after a create: the default set plus everything that was set."""
    names = list(default) + [k for k in obj if k not in default and k != "passwordProfile"]
    return project(obj, type_name, names)


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


def json_object_body(req: GraphRequest) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
        )
    return req.body


def validate_writable(
    type_name: str, body: dict[str, Any], *, allow_read_only: Iterable[str] = ()
) -> dict[str, Any]:
    """Check a POST/PATCH body against the type; return the properties to store."""
    props = schema.properties(type_name)
    allowed_ro = set(allow_read_only)
    out: dict[str, Any] = {}
    for key, value in body.items():
        if "@" in key:
            continue  # instance annotations and @odata.bind are handled by the caller
        prop = props.get(key)
        if prop is None:
            if schema.is_extension_property(key):
                out[key] = value
                continue
            raise bad_request(
                f"Property '{key}' does not exist on type 'microsoft.graph.{type_name}'."
            )
        if schema.is_read_only(type_name, key) and key not in allowed_ro:
            raise bad_request(f"Property '{key}' is read-only and cannot be set.")
        try:
            schema.check_value(prop, value)
        except schema.TypeMismatch as exc:
            raise bad_request(str(exc)) from exc
        out[key] = value
    return out
