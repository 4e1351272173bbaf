"""Extension attributes: their names in a config, inside the engine, and on the wire to Graph.

Two kinds (docs/extension-attributes.md):

- the fifteen on-premises extension attributes, which Graph nests in one complex property
  (`onPremisesExtensionAttributes: {"extensionAttribute1": ...}`). Inside the engine (scope,
  mappings, links, logs) each is a flat attribute named as Entra's attribute mapping names it,
  `extensionAttribute1`..`extensionAttribute15`; a config may also write the Graph path
  `onPremisesExtensionAttributes.extensionAttribute1`, which `canonical_name` turns into that.
- directory extensions, `extension_{appId without dashes}_{name}`: top-level properties in Graph
  and in the engine alike.

The Graph adapters translate at the edge: `graph_select` for a `$select`, `flatten` for what Graph
answers, `graph_payload` for a PATCH body (several extension attributes merge into one object).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

CONTAINER = "onPremisesExtensionAttributes"
COUNT = 15
NAMES = tuple(f"extensionAttribute{i}" for i in range(1, COUNT + 1))
_NAME_SET = frozenset(NAMES)
_PATH_PREFIX = CONTAINER + "."

# Graph names a directory extension `extension_` + the owning app's client id without its dashes
# (32 hex digits) + `_` + the extension property's name (letters, digits, underscores).
DIRECTORY_EXTENSION_RE = re.compile(r"^extension_[0-9a-fA-F]{32}_[A-Za-z0-9_]+$")

VALID_FORMS = (
    "extensionAttribute1..extensionAttribute15 or onPremisesExtensionAttributes."
    "extensionAttribute1..15; directory extensions extension_<appId>_<name>, appId the app's "
    "client id without dashes (32 hex digits), name letters, digits and underscores"
)


def canonical_name(name: str) -> str:
    """The engine's name for an attribute: the Graph path of an extension attribute becomes
    `extensionAttributeN`; every other name is returned as it is."""
    if name.startswith(_PATH_PREFIX):
        inner = name.removeprefix(_PATH_PREFIX)
        if inner in _NAME_SET:
            return inner
    return name


def is_extension_attribute(name: str) -> bool:
    """One of the fifteen on-premises extension attributes, by its engine name."""
    return name in _NAME_SET


def is_directory_extension(name: str) -> bool:
    return bool(DIRECTORY_EXTENSION_RE.match(name))


def looks_like_extension(name: str) -> bool:
    """A name that tries to be an extension attribute (to explain the valid forms when not)."""
    lowered = name.lower()
    return lowered.startswith(("extension", CONTAINER.lower()))


def graph_select(names: Iterable[str]) -> list[str]:
    """A `$select` list for Graph: extension attributes are read as their one container."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        wire = CONTAINER if name in _NAME_SET else name
        if wire not in seen:
            seen.add(wire)
            out.append(wire)
    return out


def flatten(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Graph's answer with `onPremisesExtensionAttributes` spread into `extensionAttributeN`."""
    container = attributes.get(CONTAINER)
    if CONTAINER not in attributes:
        return dict(attributes)
    out = {k: v for k, v in attributes.items() if k != CONTAINER}
    if isinstance(container, Mapping):
        for key, value in container.items():
            if key in _NAME_SET:
                out[key] = value
    return out


def graph_payload(values: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH body for Graph: extension attributes merged into one `onPremisesExtensionAttributes`
    object (Graph sets the ones named and keeps the others); everything else as it is."""
    if not any(key in _NAME_SET for key in values):
        return dict(values)
    body: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if key in _NAME_SET:
            nested[key] = value
        else:
            body[key] = value
    body[CONTAINER] = nested
    return body


def canonical_expression(text: str) -> str:
    """An expression with each `[onPremisesExtensionAttributes.extensionAttributeN]` reference
    written `[extensionAttributeN]`; string constants are left alone. Text that does not tokenize
    is returned as it is (the parser then says what is wrong)."""
    if _PATH_PREFIX not in text:
        return text
    from worker.domain.expressions.errors import ExpressionError
    from worker.domain.expressions.lexer import Kind, tokenize

    try:
        tokens = tokenize(text)
    except ExpressionError:
        return text
    out = text
    for token in reversed(tokens):
        if token.kind is not Kind.ATTRIBUTE or not isinstance(token.value, str):
            continue
        name = canonical_name(token.value)
        if name != token.value:
            end = out.index("]", token.position) + 1
            out = f"{out[: token.position]}[{name}]{out[end:]}"
    return out
