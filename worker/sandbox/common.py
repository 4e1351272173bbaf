"""Query-option handling shared by the Graph resources: `$select`, `$filter`, `$top`, `$count`,
paging, and the checks of POST/PATCH bodies against the Graph types.

List endpoints page by object id (keyset), so pages stay correct while objects are created or
deleted between page requests; the `$skiptoken` carries the cursor and the original options.

Advanced queries follow Graph's documented rules for directory objects: the `$count` segment
(`/users/$count`) needs `ConsistencyLevel: eventual` (else 400 "$count is not currently
supported."); `$count=true` without that header is silently ignored (no `@odata.count`); `ne`,
`not` and `endsWith` in `$filter` need both the header and `$count=true` (else 400
Request_UnsupportedQuery).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from . import odata, schema, tokens
from .router import GraphError, GraphRequest, GraphResponse, bad_request
from .state import project

MAX_PAGE = 999
DEFAULT_PAGE = 100

TypedObject = tuple[str, dict[str, Any]]  # (type name, stored object)


def type_map(type_names: Iterable[str]) -> dict[str, str]:
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


def check_advanced(req: GraphRequest, node: odata.Node | None, *, count_segment: bool) -> None:
    """Refuse `ne`/`not`/`endsWith` unless the request is an advanced query (see module doc)."""
    if node is None:
        return
    op = odata.advanced_operator(node)
    if op is None:
        return
    if eventual(req) and (count_segment or count_option(req)):
        return
    raise GraphError(
        400,
        "Request_UnsupportedQuery",
        f"Operator '{op}' is not supported because the required parameters might be missing. "
        "Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to "
        "https://aka.ms/graph-docs/advanced-queries for more information",
    )


def count_collection(
    req: GraphRequest,
    type_names: tuple[str, ...],
    source: Callable[[odata.Node | None, str | None], Iterator[TypedObject]],
) -> GraphResponse:
    """`GET /{collection}/$count`: the number as text/plain (advanced queries only)."""
    if not eventual(req):
        raise bad_request("$count is not currently supported.")
    reject_unsupported_options(req, ("$filter", "$search"))
    if req.q("$search") is not None:
        raise GraphError(
            400, "Request_UnsupportedQuery", "$search is not supported by the sandbox."
        )
    node = compile_filter(req.q("$filter"), type_names)
    check_advanced(req, node, count_segment=True)
    n = sum(1 for _, obj in source(node, None) if node is None or odata.evaluate(node, obj))
    return GraphResponse(200, text=str(n), headers={"Content-Type": "text/plain"})


def compile_filter(text: str | None, type_names: Iterable[str]) -> odata.Node | None:
    if text is None or not text.strip():
        return None
    types = list(type_names)
    resource = "microsoft.graph." + types[0] if len(types) == 1 else "directoryObject"
    try:
        node = odata.parse_filter(text)
        odata.validate(node, type_map(types), schema.complex_types(), resource=resource)
    except odata.FilterError as exc:
        raise GraphError(400, exc.code, exc.message) from exc
    return node


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


def list_page(
    req: GraphRequest,
    *,
    route_key: str,
    type_names: tuple[str, ...],
    default_select: Callable[[str], Iterable[str]],
    source: Callable[[odata.Node | None, str | None], Iterator[TypedObject]],
    entity_set: str,
    annotate_type: bool = False,
    extra_select: Iterable[str] = (),
) -> GraphResponse:
    """One page of a collection, ordered by id, continued through an opaque `$skiptoken`."""
    skip = req.q("$skiptoken")
    count_requested = False
    if skip is not None:
        try:
            st = tokens.decode(skip)
        except tokens.TokenError as exc:
            raise bad_request(f"Invalid $skiptoken: {exc}") from exc
        if st.get("r") != route_key or st.get("t") != req.tenant.tenant_id:
            raise bad_request("The $skiptoken does not belong to this request.")
        after: str | None = st.get("a")
        filter_text: str | None = st.get("f")
        select: list[str] | None = st.get("s")
        top = int(st.get("n") or DEFAULT_PAGE)
    else:
        reject_unsupported_options(
            req, ("$select", "$filter", "$top", "$count", "$skiptoken", "$orderby")
        )
        if req.q("$orderby") is not None:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "$orderby is not supported by the sandbox; results are ordered by id.",
            )
        after = None
        filter_text = req.q("$filter")
        select = validate_select(
            odata.parse_select(req.q("$select")), type_names, allow=extra_select
        )
        top = page_size(req)
        count_requested = count_option(req) and eventual(req)
    node = compile_filter(filter_text, type_names)
    if skip is None:
        check_advanced(req, node, count_segment=False)

    items: list[dict[str, Any]] = []
    last_id: str | None = None
    more = False
    for type_name, obj in source(node, after):
        if node is not None and not odata.evaluate(node, obj):
            continue
        if len(items) == top:
            more = True
            break
        names = select if select is not None else list(default_select(type_name))
        item = project(obj, type_name, names)
        if annotate_type:
            item = {"@odata.type": f"#microsoft.graph.{type_name}", **item}
        items.append(item)
        last_id = obj["id"]

    body: dict[str, Any] = {"@odata.context": context_url(req, entity_set, select)}
    if count_requested:
        body["@odata.count"] = sum(
            1 for _, obj in source(node, None) if node is None or odata.evaluate(node, obj)
        )
    if more:
        token = tokens.encode(
            {
                "r": route_key,
                "t": req.tenant.tenant_id,
                "a": last_id,
                "f": filter_text,
                "s": select,
                "n": top,
            }
        )
        body["@odata.nextLink"] = req.url(f"{req.path}?$skiptoken={quote(token)}")
    body["value"] = items
    return GraphResponse(200, body)


def get_one(
    req: GraphRequest, type_name: str, obj: dict[str, Any], default: Iterable[str], entity_set: str
) -> GraphResponse:
    reject_unsupported_options(req, ("$select", "$expand"))
    if req.q("$expand") is not None:
        raise GraphError(
            400, "Request_UnsupportedQuery", "$expand is not supported by the sandbox here."
        )
    select = select_from_query(req, (type_name,))
    names = select if select is not None else list(default)
    body = {"@odata.context": context_url(req, entity_set, select) + "/$entity"}
    body.update(project(obj, type_name, names))
    return GraphResponse(200, body)


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
