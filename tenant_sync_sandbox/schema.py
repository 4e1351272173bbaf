"""Graph v1.0 type information for the sandbox: property types, defaults, read-only sets.

Owns the reading of `worker/schema/graph_v1.json` and the JSON-vs-Edm type checks used by
seed validation and by POST/PATCH handlers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from worker.schema import READ_ONLY_PROPERTIES, graph_types

USER = "user"
GROUP = "group"

DEFAULT_USER_SELECT: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

DEFAULT_GROUP_SELECT: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "uniqueName",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
)


_EXTENSION_PROPERTY = re.compile(r"^extension_[0-9a-fA-F]{32}_\w+$")


@dataclass(frozen=True)
class Property:
    name: str
    type: str
    nullable: bool

    @property
    def is_collection(self) -> bool:
        return self.type.startswith("Collection(")

    @property
    def element_type(self) -> str:
        return self.type[len("Collection(") : -1] if self.is_collection else self.type


def _raw() -> dict[str, Any]:
    return graph_types()


@cache
def properties(type_name: str) -> dict[str, Property]:
    """All structural properties of a type, inherited ones included."""
    raw = _raw()
    out: dict[str, Property] = {}
    name: str | None = type_name
    while name:
        node = raw.get(name)
        if node is None:
            break
        for prop, spec in node.get("properties", {}).items():
            out.setdefault(prop, Property(prop, spec["type"], bool(spec["nullable"])))
        name = node.get("base")
    return out


@cache
def navigation(type_name: str) -> frozenset[str]:
    node = _raw().get(type_name, {})
    return frozenset(node.get("navigation", []))


@cache
def edm_types(type_name: str) -> Mapping[str, str]:
    """Property name -> Edm type of a type (built once per type: every query reads it)."""
    return {name: p.type for name, p in properties(type_name).items()}


@cache
def complex_types() -> Mapping[str, Mapping[str, str]]:
    """Every complex/entity type by name, for resolving lambda paths like `i/issuer` (built
    once: every `$filter` reads it)."""
    out: dict[str, Mapping[str, str]] = {}
    for name, node in _raw().items():
        if node.get("kind") in ("complex", "entity"):
            out[name] = edm_types(name)
    return out


def is_read_only(type_name: str, prop: str) -> bool:
    return prop in READ_ONLY_PROPERTIES


def is_extension_property(prop: str) -> bool:
    return bool(_EXTENSION_PROPERTY.match(prop))


# What Graph shows for non-nullable scalar properties nobody set (e.g. `user.birthday`).
_NOT_NULL_DEFAULTS: dict[str, Any] = {
    "Edm.DateTimeOffset": "0001-01-01T08:00:00Z",
    "Edm.Boolean": False,
    "Edm.Int32": 0,
    "Edm.Int64": 0,
    "Edm.String": "",
}
_NOT_NULL_BY_NAME: dict[str, Any] = {"deviceEnrollmentLimit": 5}


def default_value(prop: Property) -> Any:
    """The value of an unset property: null, except where the type is not nullable (Graph
    shows an empty list for collections and a fixed value for scalars), and the on-premises
    extension attributes, which Graph always shows as an object of fifteen nulls."""
    if prop.type == "graph.onPremisesExtensionAttributes":
        return {f"extensionAttribute{i}": None for i in range(1, 16)}
    if prop.nullable:
        return None
    if prop.is_collection:
        return []
    if prop.name in _NOT_NULL_BY_NAME:
        return _NOT_NULL_BY_NAME[prop.name]
    return _NOT_NULL_DEFAULTS.get(prop.type)


class TypeMismatch(ValueError):
    pass


def check_value(prop: Property, value: Any, *, where: str = "") -> None:
    """Raise TypeMismatch when `value` is not valid JSON for the property's Edm type."""
    label = where or prop.name
    if value is None:
        if not prop.nullable:
            raise TypeMismatch(f"Property '{label}' cannot be null.")
        return
    if prop.is_collection:
        if not isinstance(value, list):
            raise TypeMismatch(
                f"Invalid value for property '{label}': expected a JSON array for {prop.type}."
            )
        element = Property(label, prop.element_type, True)
        for item in value:
            if item is None:
                raise TypeMismatch(f"Property '{label}' cannot contain null items.")
            _check_single(element, item, label)
        return
    _check_single(prop, value, label)


def _check_single(prop: Property, value: Any, label: str) -> None:
    t = prop.element_type
    ok: bool
    if t == "Edm.String" or t == "Edm.Guid":
        ok = isinstance(value, str)
    elif t == "Edm.Boolean":
        ok = isinstance(value, bool)
    elif t in ("Edm.Int32", "Edm.Int64", "Edm.Int16", "Edm.Byte"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif t == "Edm.DateTimeOffset":
        ok = isinstance(value, str) and parse_datetime(value) is not None
    elif t == "Edm.Date":
        ok = isinstance(value, str) and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
    elif t.startswith("graph."):
        ok = _check_graph_type(t.removeprefix("graph."), value, label)
    else:
        ok = True
    if not ok:
        raise TypeMismatch(
            f"Invalid value for property '{label}': cannot convert {json.dumps(value)[:60]} to {t}."
        )


def _check_graph_type(name: str, value: Any, label: str) -> bool:
    node = _raw().get(name)
    if node is None:
        return True
    if node.get("kind") == "enum":
        members = node.get("members", [])
        return isinstance(value, str) and all(part.strip() in members for part in value.split(","))
    if not isinstance(value, dict):
        return False
    props = properties(name)
    for key, item in value.items():
        if key.startswith("@"):
            continue
        sub = props.get(key)
        if sub is None:
            if node.get("open"):
                continue
            raise TypeMismatch(f"Property '{key}' does not exist on type 'microsoft.graph.{name}'.")
        check_value(sub, item, where=f"{label}/{key}")
    return True


def parse_datetime(value: str) -> datetime | None:
    try:
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed
