"""Who is in scope: internal members, assignment, and Entra's scoping-filter clauses.

A job's filters are a list of clause groups: an object is in scope if ANY group matches, and a
group matches if ALL of its clauses do. String compares are case-sensitive. A clause on a null or
empty attribute is false, except the IS NULL and negative (NOT ...) forms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.domain.model import SourceUser


class Operator(StrEnum):
    EQUALS = "EQUALS"
    NOT_EQUALS = "NOT EQUALS"
    IS_TRUE = "IS TRUE"
    IS_FALSE = "IS FALSE"
    IS_NULL = "IS NULL"
    IS_NOT_NULL = "IS NOT NULL"
    REGEX_MATCH = "REGEX MATCH"
    NOT_REGEX_MATCH = "NOT REGEX MATCH"
    INCLUDES = "INCLUDES"
    STARTS_WITH = "STARTS_WITH"
    ENDS_WITH = "ENDS_WITH"
    GREATER_THAN = "GREATER_THAN"
    GREATER_THAN_OR_EQUALS = "GREATER_THAN_OR_EQUALS"
    LESS_THAN = "LESS_THAN"
    LESS_THAN_OR_EQUALS = "LESS_THAN_OR_EQUALS"
    IS_IN = "IS IN"
    IS_NOT_IN = "IS NOT IN"


# These hold for a null or empty attribute; every other operator is false on one.
NULL_TRUE_OPERATORS = frozenset(
    {Operator.IS_NULL, Operator.NOT_EQUALS, Operator.NOT_REGEX_MATCH, Operator.IS_NOT_IN}
)
VALUELESS_OPERATORS = frozenset(
    {Operator.IS_TRUE, Operator.IS_FALSE, Operator.IS_NULL, Operator.IS_NOT_NULL}
)


class ScopeError(ValueError):
    """A clause that cannot be evaluated as written (bad regex, missing value)."""


@dataclass(frozen=True)
class Clause:
    attribute: str
    operator: Operator
    value: Any = None

    def __post_init__(self) -> None:
        if self.operator in (Operator.REGEX_MATCH, Operator.NOT_REGEX_MATCH):
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ScopeError(f"invalid regular expression {self.value!r}: {exc}") from exc
        if self.operator not in VALUELESS_OPERATORS and self.value is None:
            raise ScopeError(f"operator {self.operator.value} needs a value")

    def describe(self) -> str:
        if self.operator in VALUELESS_OPERATORS:
            return f"{self.attribute} {self.operator.value}"
        return f"{self.attribute} {self.operator.value} {self.value!r}"

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        actual = attributes.get(self.attribute)
        if _is_empty(actual):
            return self.operator in NULL_TRUE_OPERATORS
        op = self.operator
        if op is Operator.IS_NULL:
            return False
        if op is Operator.IS_NOT_NULL:
            return True
        if op is Operator.IS_TRUE:
            return _as_bool(actual) is True
        if op is Operator.IS_FALSE:
            return _as_bool(actual) is False
        values = _as_strings(actual)
        if op is Operator.EQUALS:
            return str(self.value) in values
        if op is Operator.NOT_EQUALS:
            return str(self.value) not in values
        if op is Operator.INCLUDES:
            return any(str(self.value) in v for v in values)
        if op is Operator.STARTS_WITH:
            return any(v.startswith(str(self.value)) for v in values)
        if op is Operator.ENDS_WITH:
            return any(v.endswith(str(self.value)) for v in values)
        if op in (Operator.REGEX_MATCH, Operator.NOT_REGEX_MATCH):
            found = any(re.search(str(self.value), v) for v in values)
            return found if op is Operator.REGEX_MATCH else not found
        if op in (Operator.IS_IN, Operator.IS_NOT_IN):
            options = {str(v) for v in _as_list(self.value)}
            found = any(v in options for v in values)
            return found if op is Operator.IS_IN else not found
        return _compare(op, actual, self.value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_to_str(v) for v in value if v is not None]
    return [_to_str(value)]


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return [value]


def _compare(op: Operator, actual: Any, expected: Any) -> bool:
    left: Any
    right: Any
    try:
        left, right = float(actual), float(expected)
    except (TypeError, ValueError):
        left, right = _to_str(actual), _to_str(expected)
    if op is Operator.GREATER_THAN:
        return bool(left > right)
    if op is Operator.GREATER_THAN_OR_EQUALS:
        return bool(left >= right)
    if op is Operator.LESS_THAN:
        return bool(left < right)
    return bool(left <= right)


@dataclass(frozen=True)
class ScopeSpec:
    """A job's scope: all users or assigned ones, then the filter groups."""

    assigned_only: bool = False
    user_ids: frozenset[str] = frozenset()
    group_ids: tuple[str, ...] = ()
    nested_groups: bool = False
    filters: tuple[tuple[Clause, ...], ...] = ()

    @property
    def filter_attributes(self) -> set[str]:
        return {clause.attribute for group in self.filters for clause in group}


@dataclass(frozen=True)
class ScopeDecision:
    in_scope: bool
    reason: str = ""


IN_SCOPE = ScopeDecision(True, "")


def evaluate_scope(user: SourceUser, spec: ScopeSpec, *, assigned: bool) -> ScopeDecision:
    """Decide whether one source user is in the job's scope, and if not, say why."""
    if not user.is_internal_member:
        return ScopeDecision(False, "not an internal member of the source (a guest or B2B user)")
    if spec.assigned_only and not assigned:
        return ScopeDecision(False, "not assigned to the job (neither listed nor a group member)")
    return evaluate_filters(user.attributes, spec.filters)


def evaluate_filters(
    attributes: Mapping[str, Any], filters: Sequence[Sequence[Clause]]
) -> ScopeDecision:
    if not filters:
        return IN_SCOPE
    failures: list[str] = []
    for index, group in enumerate(filters, start=1):
        failed = next((clause for clause in group if not clause.matches(attributes)), None)
        if failed is None:
            return IN_SCOPE
        failures.append(f"filter group {index}: {failed.describe()} is false")
    return ScopeDecision(False, "; ".join(failures))
