"""Dynamic membership rules of groups (`membershipRule`), the subset of Entra's syntax for users.

Pure: no state, no I/O. Entra documents the syntax in "Dynamic membership rules for groups":

    rule    := or
    or      := and ("-or" and)*
    and     := unary ("-and" unary)*
    unary   := "-not" unary | primary
    primary := "(" rule ")" | "user." property operator value

Operators: `-eq -ne -startsWith -notStartsWith -contains -notContains -match -notMatch -in
-notIn` (case-insensitive, as Entra's are); values are double-quoted strings, `true`/`false`,
`null`, or for `-in`/`-notIn` a list `["a","b"]`. Properties are the user's (`user.department`),
`user.extensionAttribute1`..`15` (Entra's names for `onPremisesExtensionAttributes`) and
directory extensions (`user.extension_<appId>_<name>`). Device rules, `-any`/`-all` on
multi-valued properties and `memberOf` rules are not supported: such a rule is refused with
the position of what is not understood.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

OPERATORS = (
    "eq",
    "ne",
    "startswith",
    "notstartswith",
    "contains",
    "notcontains",
    "match",
    "notmatch",
    "in",
    "notin",
)
_EXTENSION_ATTRIBUTE = re.compile(r"^extensionAttribute(1[0-5]|[1-9])$")


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class Test:
    prop: str
    op: str
    value: Any


@dataclass(frozen=True)
class AndR:
    left: Rule
    right: Rule


@dataclass(frozen=True)
class OrR:
    left: Rule
    right: Rule


@dataclass(frozen=True)
class NotR:
    operand: Rule


Rule = Union[Test, AndR, OrR, NotR]  # noqa: UP007 - forward refs in dataclasses

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<op>-[A-Za-z]+)
      | (?P<punct>[()\[\],])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if m is None or m.lastgroup is None:
            raise RuleError(f"unexpected {text[i]!r} at position {i}")
        out.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        i = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise RuleError(f"the rule ends where {what} was expected")
        self.i += 1
        return tok

    def is_op(self, name: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1].lower() == name

    def parse(self) -> Rule:
        rule = self.parse_or()
        tok = self.peek()
        if tok is not None:
            raise RuleError(f"unexpected {tok[1]!r} at position {tok[2]}")
        return rule

    def parse_or(self) -> Rule:
        rule = self.parse_and()
        while self.is_op("-or"):
            self.i += 1
            rule = OrR(rule, self.parse_and())
        return rule

    def parse_and(self) -> Rule:
        rule = self.parse_unary()
        while self.is_op("-and"):
            self.i += 1
            rule = AndR(rule, self.parse_unary())
        return rule

    def parse_unary(self) -> Rule:
        if self.is_op("-not"):
            self.i += 1
            return NotR(self.parse_unary())
        tok = self.next("a condition")
        if tok[0] == "punct" and tok[1] == "(":
            rule = self.parse_or()
            close = self.next("')'")
            if close[1] != ")":
                raise RuleError(f"expected ')' at position {close[2]}")
            return rule
        if tok[0] != "word" or not tok[1].lower().startswith("user."):
            raise RuleError(f"expected user.<property> at position {tok[2]}, got {tok[1]!r}")
        prop = tok[1][len("user.") :]
        op_tok = self.next("an operator")
        op = op_tok[1][1:].lower() if op_tok[0] == "op" else ""
        if op not in OPERATORS:
            raise RuleError(f"unknown operator {op_tok[1]!r} at position {op_tok[2]}")
        value = self.parse_list() if op in ("in", "notin") else self.parse_value()
        return Test(prop, op, value)

    def parse_value(self) -> Any:
        tok = self.next("a value")
        if tok[0] == "str":
            return re.sub(r"\\(.)", r"\1", tok[1][1:-1])
        if tok[0] == "word" and tok[1].lower() in ("true", "false"):
            return tok[1].lower() == "true"
        if tok[0] == "word" and tok[1].lower() == "null":
            return None
        raise RuleError(f"expected a quoted value at position {tok[2]}, got {tok[1]!r}")

    def parse_list(self) -> list[Any]:
        tok = self.next("'['")
        if tok[1] != "[":
            raise RuleError(f'expected a list ["a","b"] at position {tok[2]}')
        values = [self.parse_value()]
        while True:
            sep = self.next("']'")
            if sep[1] == "]":
                return values
            if sep[1] != ",":
                raise RuleError(f"expected ',' or ']' at position {sep[2]}")
            values.append(self.parse_value())


def parse_rule(text: str) -> Rule:
    """Parse a membership rule; raise RuleError with the position of what is wrong."""
    if not text.strip():
        raise RuleError("the rule is empty")
    return _Parser(text).parse()


def properties(rule: Rule) -> set[str]:
    if isinstance(rule, Test):
        return {rule.prop}
    if isinstance(rule, NotR):
        return properties(rule.operand)
    return properties(rule.left) | properties(rule.right)


def check_properties(rule: Rule, known: Callable[[str], bool]) -> None:
    for prop in sorted(properties(rule)):
        if not (known(prop) or _EXTENSION_ATTRIBUTE.match(prop)):
            raise RuleError(f"user.{prop} is not a property of users")


def _value(user: Mapping[str, Any], prop: str) -> Any:
    if _EXTENSION_ATTRIBUTE.match(prop):
        return (user.get("onPremisesExtensionAttributes") or {}).get(prop)
    return user.get(prop)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _test(test: Test, user: Mapping[str, Any]) -> bool:
    actual = _fold(_value(user, test.prop))
    op = test.op
    negate = op.startswith("not") or op == "ne"
    base = {"ne": "eq"}.get(op, op.removeprefix("not"))
    if base == "eq":
        result = actual == _fold(test.value)
    elif base == "in":
        result = actual in {_fold(v) for v in test.value}
    elif not isinstance(actual, str) or not isinstance(test.value, str):
        result = False
    elif base == "startswith":
        result = actual.startswith(test.value.casefold())
    elif base == "contains":
        result = test.value.casefold() in actual
    else:  # match
        result = re.search(test.value, str(_value(user, test.prop)), re.IGNORECASE) is not None
    return not result if negate else result


def evaluate(rule: Rule, user: Mapping[str, Any]) -> bool:
    if isinstance(rule, Test):
        return _test(rule, user)
    if isinstance(rule, NotR):
        return not evaluate(rule.operand, user)
    if isinstance(rule, AndR):
        return evaluate(rule.left, user) and evaluate(rule.right, user)
    return evaluate(rule.left, user) or evaluate(rule.right, user)
