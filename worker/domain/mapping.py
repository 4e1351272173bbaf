"""Attribute mappings: from a source user to the target attributes a cycle writes.

Each mapping names a target attribute and one of a source attribute (direct), a constant or an
expression. Mappings are always evaluated against the whole source object. Null and empty values
are never written; `default` stands in for them when the user is created. `userPrincipalName` is
never written: the target keeps the `#EXT#` UPN its invitation gave it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from random import Random
from typing import Any, NamedTuple, Protocol

from worker.domain.model import Change, SourceUser

NEVER_WRITTEN = frozenset({"userPrincipalName"})

# Read for every user whatever the mappings say: identity, type, and what scope needs
# (creationType and externalUserState tell a B2B user from a member: never synced onward).
CORE_SOURCE_ATTRIBUTES = (
    "id",
    "userPrincipalName",
    "mail",
    "userType",
    "accountEnabled",
    "creationType",
    "externalUserState",
)


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


# Graph's types for the default set (the schema says the same; the domain cannot read files).
DEFAULT_TYPES = {"accountEnabled": "Edm.Boolean", "businessPhones": "Collection(Edm.String)"}


def default_mappings(
    user_type: str = "Member", target_types: Mapping[str, str] | None = None
) -> list[MappingSpec]:
    """The mapping set a job uses when it lists none (docs/architecture.md, "Data flow")."""
    types = {**DEFAULT_TYPES, **(target_types or {})}
    specs = [
        MappingSpec(target=name, source=name, target_type=types.get(name, "Edm.String"))
        for name in DEFAULT_DIRECT_ATTRIBUTES
    ]
    specs.append(MappingSpec(target="showInAddressList", constant=True, target_type="Edm.Boolean"))
    specs.append(MappingSpec(target="userType", constant=user_type, target_type="Edm.String"))
    return specs


class MappedValues(NamedTuple):
    """The target attributes one source user maps to, and which of them are redacted.

    A NamedTuple rather than a frozen dataclass: one is built per user per cycle, and a tuple
    is the cheapest immutable record to build.
    """

    values: dict[str, Any]
    redacted: frozenset[str] = frozenset()


def is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


class _Step(NamedTuple):
    """One mapping, unpacked once so that `Mapper.map` reads locals, not attributes."""

    target: str
    source: str | None
    constant: Any
    expression: Expression | None
    context: EvaluationContext | None  # set for an expression
    default: Any
    target_type: str
    plain_string: bool  # an Edm.String target: a str value needs no coercion


def _is_plain(step: _Step) -> bool:
    """A direct mapping to a string property with no default: `map` takes its short path."""
    return (
        step.source is not None
        and step.context is None
        and step.default is None
        and step.plain_string
    )


_NOTHING_REDACTED: frozenset[str] = frozenset()


class Mapper:
    """Evaluates a job's mappings for many users; per-mapping setup is done once, here."""

    def __init__(
        self, mappings: Sequence[MappingSpec], context: EvaluationContext | None = None
    ) -> None:
        ctx = context or EvaluationContext()
        steps = [
            (
                spec.apply,
                _Step(
                    target=spec.target,
                    source=spec.source,
                    constant=spec.constant,
                    expression=spec.expression,
                    # Each expression sees its own target attribute (SelectUniqueValue needs it).
                    context=EvaluationContext(
                        now=ctx.now,
                        random=ctx.random,
                        is_unique=ctx.is_unique,
                        target_attribute=spec.target,
                    )
                    if spec.expression is not None
                    else None,
                    default=spec.default,
                    target_type=spec.target_type,
                    plain_string=spec.target_type == "Edm.String",
                ),
            )
            for spec in mappings
        ]
        targets = [spec.target for spec in mappings]
        if len(set(targets)) != len(targets):
            # The split below evaluates out of order, which is only sound for distinct targets.
            raise ValueError("a target attribute is mapped more than once")
        # The mapping set of a creation, and of an update (without the on-create mappings), each
        # split in two: direct mappings to a string property without a default (most of them),
        # kept as (target, source) pairs for `map`'s short loop, and every other step.
        self._creating = self._split([step for _, step in steps])
        self._updating = self._split(
            [step for apply, step in steps if apply is not Apply.ON_CREATE]
        )

    @staticmethod
    def _split(steps: list[_Step]) -> tuple[list[tuple[str, str]], list[_Step]]:
        plain: list[tuple[str, str]] = []
        others: list[_Step] = []
        for step in steps:
            if _is_plain(step):
                plain.append((step.target, step.source or ""))
            else:
                others.append(step)
        return plain, others

    def map(self, user: SourceUser, *, creating: bool) -> MappedValues:
        """Evaluate every mapping that applies now; leave out nulls, empties and ignored flows."""
        attributes = user.attributes
        values: dict[str, Any] = {}
        redacted: set[str] | None = None
        plain, steps = self._creating if creating else self._updating
        get = attributes.get
        for target, source in plain:
            value = get(source)
            if value.__class__ is str:
                if value:
                    values[target] = value
            elif value is not None and value != [] and value != "":
                value = coerce(value, "Edm.String")
                if not is_empty(value):
                    values[target] = value
        for target, direct, constant, expression, scoped, default, type_, plain_type in steps:
            if scoped is not None:
                value = expression.evaluate(attributes, scoped)  # type: ignore[union-attr]
                if value is IGNORED:
                    continue
                if isinstance(value, Redacted):
                    value = value.value
                    redacted = redacted or set()
                    redacted.add(target)
            elif direct is not None:
                value = get(direct)
            else:
                value = constant
            if creating and default is not None and is_empty(value):
                value = default
            if value is None or value == "" or value == []:
                continue
            if not (plain_type and type(value) is str):
                value = coerce(value, type_)
                if is_empty(value):
                    continue
            values[target] = value
        return MappedValues(values, frozenset(redacted) if redacted else _NOTHING_REDACTED)


def coerce(value: Any, target_type: str) -> Any:
    """Shape a value to the target property's Edm type, the way Entra's flows do."""
    if target_type == "Edm.Untyped":  # a directory extension: its app defines the type
        return value
    if target_type == "Collection(Edm.String)" and type(value) is list:
        # The common case (phone numbers, proxy addresses): strings already, empties left out.
        kept = [item for item in value if type(item) is str and item]
        if len(kept) == len(value) or all(type(item) is str or item is None for item in value):
            return kept
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
    if target_type == "Edm.DateTimeOffset":
        return iso_datetime(value)
    if target_type in ("Edm.Int32", "Edm.Int64"):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value
    if target_type == "Edm.String" and isinstance(value, bool):
        return "True" if value else "False"
    if target_type == "Edm.String" and isinstance(value, int | float):
        return str(value)
    return value


# The shapes date values arrive in: ISO 8601, and the .NET general format expressions produce.
_DATE_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y", "%Y-%m-%d", "%Y%m%d%H%M%S.0Z", "%Y%m%d%H%M%SZ")


def iso_datetime(value: Any) -> Any:
    """A date for an Edm.DateTimeOffset property: ISO 8601 in UTC (`2020-03-16T07:00:00Z`).

    Values that cannot be read as a date are left as they are (Graph will say why).
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            for fmt in _DATE_FORMATS:
                try:
                    parsed = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
            else:
                return value
    else:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def written(name: str) -> bool:
    """Whether an attribute is actually written to the target (never the UPN)."""
    return name not in NEVER_WRITTEN


def writable(values: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that are actually written to the target."""
    return {k: v for k, v in values.items() if written(k)}


def fingerprint(value: Any) -> str:
    """What the link remembers of a redacted value: enough to see a change, never the value."""
    canonical = json.dumps(value, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def remembered(values: Mapping[str, Any], redacted: frozenset[str]) -> dict[str, Any]:
    """Written values as the link keeps them: redacted ones only as fingerprints."""
    return {k: fingerprint(v) if k in redacted else v for k, v in values.items()}


def diff(
    desired: Mapping[str, Any],
    last_written: Mapping[str, Any],
    redacted: frozenset[str] = frozenset(),
) -> dict[str, Change]:
    """Attributes whose desired value differs from what was last written; nulls never flow."""
    # One pass over `desired` (not a `writable` copy first): asked for every linked user of a
    # full cycle.
    return {
        name: Change(old=last_written.get(name), new=value)
        for name, value in desired.items()
        if written(name)
        and last_written.get(name) != (fingerprint(value) if name in redacted else value)
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
