"""Attribute mappings: from a source user to the target attributes a cycle writes.

Each mapping names a target attribute and one of a source attribute (direct), a constant or an
expression. Mappings are always evaluated against the whole source object. Null and empty values
are never written; `default` stands in for them when the user is created. `userPrincipalName` is
never written: the target keeps the `#EXT#` UPN its invitation gave it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from random import Random
from typing import Any, Protocol

from worker.domain.model import Change, SourceUser

NEVER_WRITTEN = frozenset({"userPrincipalName"})

# Read for every user whatever the mappings say: identity, type, and what scope needs.
CORE_SOURCE_ATTRIBUTES = ("id", "userPrincipalName", "mail", "userType", "accountEnabled")


class Apply(StrEnum):
    ALWAYS = "always"
    ON_CREATE = "on_create"


@dataclass(frozen=True)
class EvaluationContext:
    """What an expression may consult besides the source object; injectable for tests."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    random: Random = field(default_factory=Random)
    # SelectUniqueValue asks whether a candidate is free in the target: (attribute, value) -> bool.
    is_unique: Callable[[str, str], bool] | None = None
    target_attribute: str = ""


class Expression(Protocol):
    """A parsed mapping expression (see `worker.domain.expressions`)."""

    @property
    def source_attributes(self) -> frozenset[str]: ...

    def evaluate(self, attributes: Mapping[str, Any], context: EvaluationContext) -> Any: ...


class Ignored:
    """IgnoreFlowIfNullOrEmpty's verdict: this attribute does not flow at all."""

    _instance: Ignored | None = None

    def __new__(cls) -> Ignored:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IGNORED"


IGNORED = Ignored()


@dataclass(frozen=True)
class Redacted:
    """Redact()'s verdict: the value flows, but no log or output ever shows it."""

    value: Any


@dataclass(frozen=True)
class MappingSpec:
    target: str
    source: str | None = None
    constant: Any = None
    expression: Expression | None = None
    expression_text: str = ""
    default: Any = None
    apply: Apply = Apply.ALWAYS
    match: int | None = None
    target_type: str = "Edm.String"

    @property
    def kind(self) -> str:
        if self.expression is not None:
            return "expression"
        if self.source is not None:
            return "direct"
        return "constant"

    @property
    def source_attributes(self) -> frozenset[str]:
        if self.expression is not None:
            return self.expression.source_attributes
        if self.source is not None:
            return frozenset({self.source})
        return frozenset()

    def describe(self) -> str:
        if self.expression is not None:
            return self.expression_text
        if self.source is not None:
            return f"[{self.source}]"
        return repr(self.constant)


DEFAULT_DIRECT_ATTRIBUTES = (
    "accountEnabled",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "userPrincipalName",
    "jobTitle",
    "department",
    "companyName",
    "employeeId",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "preferredLanguage",
    "mobilePhone",
    "businessPhones",
)


def default_mappings(
    user_type: str = "Member", target_types: Mapping[str, str] | None = None
) -> list[MappingSpec]:
    """The mapping set a job uses when it lists none (DESIGN section 2)."""
    types = target_types or {}
    specs = [
        MappingSpec(target=name, source=name, target_type=types.get(name, "Edm.String"))
        for name in DEFAULT_DIRECT_ATTRIBUTES
    ]
    specs.append(MappingSpec(target="showInAddressList", constant=True, target_type="Edm.Boolean"))
    specs.append(MappingSpec(target="userType", constant=user_type, target_type="Edm.String"))
    return specs


@dataclass(frozen=True)
class MappedValues:
    """The target attributes one source user maps to, and which of them are redacted."""

    values: dict[str, Any]
    redacted: frozenset[str] = frozenset()


def is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def evaluate_mappings(
    user: SourceUser,
    mappings: Sequence[MappingSpec],
    *,
    creating: bool,
    context: EvaluationContext | None = None,
) -> MappedValues:
    """Evaluate every mapping that applies now; leave out nulls, empties and ignored flows."""
    ctx = context or EvaluationContext()
    values: dict[str, Any] = {}
    redacted: set[str] = set()
    for spec in mappings:
        if spec.apply is Apply.ON_CREATE and not creating:
            continue
        value = evaluate_one(spec, user, ctx)
        if value is IGNORED:
            continue
        if isinstance(value, Redacted):
            value = value.value
            redacted.add(spec.target)
        if is_empty(value) and creating and spec.default is not None:
            value = spec.default
        if is_empty(value):
            continue
        values[spec.target] = coerce(value, spec.target_type)
    return MappedValues(values=values, redacted=frozenset(redacted))


def evaluate_one(spec: MappingSpec, user: SourceUser, context: EvaluationContext) -> Any:
    if spec.expression is not None:
        scoped = EvaluationContext(
            now=context.now,
            random=context.random,
            is_unique=context.is_unique,
            target_attribute=spec.target,
        )
        return spec.expression.evaluate(user.attributes, scoped)
    if spec.source is not None:
        return user.get(spec.source)
    return spec.constant


def coerce(value: Any, target_type: str) -> Any:
    """Shape a value to the target property's Edm type, the way Entra's flows do."""
    if target_type.startswith("Collection("):
        inner = target_type.removeprefix("Collection(").removesuffix(")")
        items = value if isinstance(value, list | tuple) else [value]
        return [coerce(item, inner) for item in items if not is_empty(item)]
    if isinstance(value, list | tuple):
        value = next((item for item in value if not is_empty(item)), None)
        if value is None:
            return None
    if target_type == "Edm.Boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value
    if target_type in ("Edm.Int32", "Edm.Int64"):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value
    if target_type == "Edm.String" and isinstance(value, bool):
        return "True" if value else "False"
    if target_type == "Edm.String" and isinstance(value, int | float):
        return str(value)
    return value


def writable(values: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that are actually written to the target (never the UPN)."""
    return {k: v for k, v in values.items() if k not in NEVER_WRITTEN}


def diff(desired: Mapping[str, Any], last_written: Mapping[str, Any]) -> dict[str, Change]:
    """Attributes whose desired value differs from what was last written; nulls never flow."""
    return {
        name: Change(old=last_written.get(name), new=value)
        for name, value in writable(desired).items()
        if last_written.get(name) != value
    }


def required_source_attributes(
    mappings: Iterable[MappingSpec], extra: Iterable[str] = ()
) -> list[str]:
    """The `$select` of a source read: core attributes, every mapped source, every filter."""
    names = set(CORE_SOURCE_ATTRIBUTES)
    for spec in mappings:
        names |= spec.source_attributes
    names |= set(extra)
    return sorted(names)
