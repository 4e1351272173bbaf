"""Contract checks of Graph JSON against the CSDL types kept in `worker/schema/graph_v1.json`.

    problems = validate_entity("user", body)                      # a response object
    problems = validate_entity("user", patch, request_body=True)  # what a client sends
    problems = validate_collection("user", page)                  # a list or delta page
    assert not problems, problems

Each function returns a list of problems ("user.identities[0].issuer: expected Edm.String,
got 3"), empty when the JSON fits. Rules:

- every property must exist on the type (inherited ones included) or be a directory extension
  property (`extension_<appid>_<name>`), unless the type is an open complex type;
  navigation properties are accepted in responses as objects / lists of objects (their type
  is not in the subset, so only `id` is checked);
- values must match the Edm type: String/Guid -> str (Guid shaped), Boolean -> bool,
  Int16/32/64/Byte -> int, Double/Single/Decimal -> number, DateTimeOffset -> ISO 8601 string
  with a zone, Date -> YYYY-MM-DD, TimeOfDay -> hh:mm[:ss[.f]], Duration -> ISO 8601 duration,
  enums -> a member name, complex types -> objects checked recursively, Collection(T) -> list
  without nulls; null only where the property is nullable;
- OData annotations are allowed: `@odata.*` (`@odata.type` must name the type or a type
  derived from it, and selects that type for the check), `@removed` (`{"reason": "changed" |
  "deleted"}`), `@microsoft.graph.*`, and property annotations `prop@...` on known properties
  (`members@delta` lists are checked entry by entry);
- with `request_body=True` (what a client may send in POST/PATCH), read-only properties
  (`worker.schema.READ_ONLY_PROPERTIES`), navigation properties (use `prop@odata.bind`) and
  response-only annotations (`@odata.context`, `@removed`, ...) are problems too.

Type names may be given as `user`, `graph.user`, `microsoft.graph.user` or `#microsoft.graph.user`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.schema import READ_ONLY_PROPERTIES, graph_types

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_OF_DAY = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?$")
_DURATION = re.compile(r"^-?P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_EXTENSION = re.compile(r"^extension_[0-9a-fA-F]{32}_\w+$")
_INT_RANGES = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}
REMOVED_REASONS = frozenset({"changed", "deleted"})
# Annotations a client may send; every other `@odata.*` is response-only.
REQUEST_ANNOTATIONS = frozenset({"@odata.type", "@odata.id"})


def type_name_of(name: str) -> str:
    """`#microsoft.graph.user` / `microsoft.graph.user` / `graph.user` -> `user`."""
    bare = name.lstrip("#")
    for prefix in ("microsoft.graph.", "graph."):
        if bare.startswith(prefix):
            return bare[len(prefix) :]
    return bare


def _node(type_name: str) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = graph_types().get(type_name_of(type_name))
    return node


def structural_properties(type_name: str) -> dict[str, tuple[str, bool]]:
    """name -> (Edm type, nullable), inherited properties included."""
    out: dict[str, tuple[str, bool]] = {}
    name: str | None = type_name_of(type_name)
    while name:
        node = _node(name)
        if node is None:
            break
        for prop, spec in node.get("properties", {}).items():
            out.setdefault(prop, (str(spec["type"]), bool(spec["nullable"])))
        name = node.get("base")
    return out


def navigation_properties(type_name: str) -> frozenset[str]:
    out: set[str] = set()
    name: str | None = type_name_of(type_name)
    while name:
        node = _node(name)
        if node is None:
            break
        out.update(node.get("navigation", []))
        name = node.get("base")
    return frozenset(out)


def is_derived(type_name: str, base: str) -> bool:
    """True when `type_name` is `base` or inherits from it."""
    target = type_name_of(base)
    name: str | None = type_name_of(type_name)
    while name:
        if name == target:
            return True
        node = _node(name)
        name = node.get("base") if node is not None else None
    return False


def validate_entity(
    type_name: str, obj: Any, *, request_body: bool = False, path: str = ""
) -> list[str]:
    """Problems of one entity (or complex) object against its CSDL type; [] when it fits."""
    checker = _Checker(request_body)
    checker.object(type_name_of(type_name), obj, path or type_name_of(type_name), top=True)
    return checker.problems


def validate_collection(type_name: str, body: Any, *, path: str = "") -> list[str]:
    """Problems of a collection response (list page or delta page) of `type_name` items."""
    where = path or f"{type_name_of(type_name)}[]"
    if not isinstance(body, dict):
        return [f"{where}: expected a JSON object with 'value', got {_short(body)}"]
    problems: list[str] = []
    for key, value in body.items():
        if key == "value":
            continue
        if key in ("@odata.context", "@odata.nextLink", "@odata.deltaLink"):
            if not isinstance(value, str) or not value:
                problems.append(f"{where}.{key}: expected a non-empty string, got {_short(value)}")
        elif key == "@odata.count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{where}.{key}: expected a count, got {_short(value)}")
        elif not key.startswith("@"):
            problems.append(f"{where}: unexpected member '{key}' in a collection response")
    items = body.get("value")
    if not isinstance(items, list):
        problems.append(f"{where}.value: expected a list, got {_short(items)}")
        return problems
    for i, item in enumerate(items):
        problems += validate_entity(type_name, item, path=f"{where}.value[{i}]")
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    def __init__(self, request_body: bool) -> None:
        self.request_body = request_body
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # ------------------------------------------------------------ objects

    def object(self, type_name: str, obj: Any, where: str, *, top: bool = False) -> None:
        node = _node(type_name)
        if node is None:
            self.add(where, f"type 'microsoft.graph.{type_name}' is not in the schema")
            return
        if not isinstance(obj, dict):
            self.add(where, f"expected an object of type {type_name}, got {_short(obj)}")
            return
        actual = type_name
        declared = obj.get("@odata.type")
        if declared is not None:
            if not isinstance(declared, str) or _node(declared) is None:
                self.add(f"{where}.@odata.type", f"unknown type {_short(declared)}")
            elif not is_derived(declared, type_name):
                self.add(f"{where}.@odata.type", f"{declared} is not a {type_name}")
            else:
                actual = type_name_of(declared)
        props = structural_properties(actual)
        navigation = navigation_properties(actual)
        for key, value in obj.items():
            at = f"{where}.{key}"
            if "@" in key:
                self.annotation(actual, key, value, at, props, navigation)
            elif key in props:
                if self.request_body and top and key in READ_ONLY_PROPERTIES:
                    self.add(at, f"property '{key}' is read-only and cannot be set")
                edm, nullable = props[key]
                self.value(edm, nullable, value, at)
            elif key in navigation:
                if self.request_body:
                    self.add(
                        at, f"navigation property '{key}' cannot be set (use {key}@odata.bind)"
                    )
                else:
                    self.navigation_value(value, at)
            elif _EXTENSION.match(key) or (node.get("open") and node.get("kind") == "complex"):
                # An open complex type (detailsInfo, identity) takes dynamic properties; open
                # entities (user, group) are held to their declared ones, as Graph answers.
                continue
            else:
                self.add(at, f"Property '{key}' does not exist on type 'microsoft.graph.{actual}'.")

    def navigation_value(self, value: Any, where: str) -> None:
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if isinstance(value, list) else where
            if item is None and not isinstance(value, list):
                continue
            if not isinstance(item, dict):
                self.add(at, f"expected a related object, got {_short(item)}")
            elif "id" in item and not isinstance(item["id"], str):
                self.add(f"{at}.id", f"expected Edm.String, got {_short(item['id'])}")

    # ------------------------------------------------------------ annotations

    def annotation(
        self,
        type_name: str,
        key: str,
        value: Any,
        where: str,
        props: Mapping[str, tuple[str, bool]],
        navigation: frozenset[str],
    ) -> None:
        target, _, term = key.partition("@")
        if target:
            if target not in props and target not in navigation:
                self.add(where, f"annotation on unknown property '{target}' of {type_name}")
                return
            if term == "odata.bind":
                ok = isinstance(value, str) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)
                )
                if not ok:
                    self.add(where, f"expected a URL or a list of URLs, got {_short(value)}")
            elif term == "delta":
                if self.request_body:
                    self.add(where, "response-only annotation")
                self.delta_entries(value, where)
            elif self.request_body:
                self.add(where, "response-only annotation")
            return
        if term == "removed":
            if self.request_body:
                self.add(where, "response-only annotation")
            if not isinstance(value, dict) or value.get("reason") not in REMOVED_REASONS:
                self.add(where, f'expected {{"reason": "changed"|"deleted"}}, got {_short(value)}')
            return
        if term.startswith("odata."):
            if self.request_body and key not in REQUEST_ANNOTATIONS:
                self.add(where, "response-only annotation")
            if term in ("odata.type", "odata.context", "odata.id", "odata.etag") and not (
                isinstance(value, str)
            ):
                self.add(where, f"expected a string, got {_short(value)}")
            return
        if not term.startswith("microsoft.graph."):
            self.add(where, f"unknown annotation '{key}'")

    def delta_entries(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            self.add(where, f"expected a list of changed links, got {_short(value)}")
            return
        for i, entry in enumerate(value):
            at = f"{where}[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                self.add(at, f"expected an object with a string 'id', got {_short(entry)}")
                continue
            self.object("directoryObject", entry, at)

    # ------------------------------------------------------------ values

    def value(self, edm: str, nullable: bool, value: Any, where: str) -> None:
        if value is None:
            if not nullable:
                self.add(where, f"null is not allowed ({edm} is not nullable)")
            return
        if edm.startswith("Collection(") and edm.endswith(")"):
            inner = edm[len("Collection(") : -1]
            if not isinstance(value, list):
                self.add(where, f"expected a list for {edm}, got {_short(value)}")
                return
            for i, item in enumerate(value):
                if item is None:
                    self.add(f"{where}[{i}]", f"null item in {edm}")
                else:
                    self.single(inner, item, f"{where}[{i}]")
            return
        self.single(edm, value, where)

    def single(self, edm: str, value: Any, where: str) -> None:
        if edm.startswith("graph."):
            self.graph_type(edm, value, where)
            return
        if not _edm_fits(edm, value):
            self.add(where, f"expected {edm}, got {_short(value)}")

    def graph_type(self, edm: str, value: Any, where: str) -> None:
        node = _node(edm)
        if node is None:
            self.add(where, f"type '{edm}' is not in the schema")
            return
        if node.get("kind") == "enum":
            members = node.get("members", [])
            parts = value.split(",") if isinstance(value, str) else None
            if not parts or any(p.strip() not in members for p in parts):
                self.add(where, f"expected one of {members} ({edm}), got {_short(value)}")
            return
        self.object(type_name_of(edm), value, where)


def _edm_fits(edm: str, value: Any) -> bool:
    if edm == "Edm.String":
        return isinstance(value, str)
    if edm == "Edm.Guid":
        return isinstance(value, str) and bool(_GUID.match(value))
    if edm == "Edm.Boolean":
        return isinstance(value, bool)
    if edm in _INT_RANGES:
        low, high = _INT_RANGES[edm]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if edm in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if edm == "Edm.DateTimeOffset":
        return isinstance(value, str) and _is_datetime_offset(value)
    if edm == "Edm.Date":
        return isinstance(value, str) and bool(_DATE.match(value)) and _parses_date(value)
    if edm == "Edm.TimeOfDay":
        return isinstance(value, str) and bool(_TIME_OF_DAY.match(value))
    if edm == "Edm.Duration":
        return isinstance(value, str) and bool(_DURATION.match(value))
    if edm == "Edm.Binary":
        return isinstance(value, str) and _is_base64(value)
    return isinstance(value, str | int | float | bool | dict | list)


def _is_datetime_offset(value: str) -> bool:
    if "T" not in value:
        return False
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _parses_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:
            base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            return False
    return True
