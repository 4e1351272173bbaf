"""From syntax tree to a ready-to-run expression: checks, then closures.

Owns the checks that need the function registry (known names, arity, per-function rules,
SelectUniqueValue only at the top) and the compilation of the tree into nested Python
closures, so evaluating a user costs a handful of calls and no tree walking, no re-parsing,
no regex compilation. `ParsedExpression` is what the rest of the worker holds.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from worker.domain.expressions.errors import ExpressionError, FunctionFailure, IgnoreFlow
from worker.domain.expressions.functions import FUNCTIONS, Compiled, FunctionSpec, failure
from worker.domain.expressions.parser import (
    Attribute,
    Call,
    Comparison,
    Literal,
    Missing,
    Node,
    attribute_names,
    parse_tree,
    walk,
)
from worker.domain.expressions.values import compare, finalize
from worker.domain.mapping import IGNORED, EvaluationContext, Redacted


def _unknown_function(call: Call) -> ExpressionError:
    message = f"unknown function '{call.name}'"
    by_lower = {name.lower(): name for name in FUNCTIONS}
    if call.name.lower() in by_lower:
        message += f" (names are case-sensitive: did you mean '{by_lower[call.name.lower()]}'?)"
    else:
        close = difflib.get_close_matches(call.name, FUNCTIONS, n=1)
        if close:
            message += f" (did you mean '{close[0]}'?)"
    return ExpressionError(message, call.position)


def _check_arity(call: Call, spec: FunctionSpec) -> None:
    count = len(call.args)
    too_few = count < spec.min_args
    too_many = spec.max_args is not None and count > spec.max_args
    odd = spec.even_args and count % 2 == 1
    if too_few or too_many or odd:
        raise ExpressionError(
            f"{call.name} takes {spec.describe_arity()}, got {count}", call.position
        )


def check(tree: Node) -> None:
    for node in walk(tree):
        if not isinstance(node, Call):
            continue
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            raise _unknown_function(node)
        _check_arity(node, spec)
        if spec.check is not None:
            spec.check(node)
        if node.name == "SelectUniqueValue" and node is not tree:
            raise ExpressionError(
                "SelectUniqueValue must be the whole expression, it cannot be nested",
                node.position,
            )


def _constant(value: Any) -> Compiled:
    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        return value

    return run


def _attribute(name: str) -> Compiled:
    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        return attributes.get(name)

    return run


def _comparison(node: Comparison) -> Compiled:
    left, right, op = compile_node(node.left), compile_node(node.right), node.op

    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        return compare(op, left(attributes, context), right(attributes, context))

    return run


def _eager(call: Call, spec: FunctionSpec, fns: list[Compiled]) -> Compiled:
    """A closure that evaluates the arguments and calls the implementation.

    Specialised by arity, because building an argument list per call is most of the cost.
    """
    impl = spec.impl
    assert impl is not None
    name, position = call.name, call.position
    if len(fns) == 0:

        def run0(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
            try:
                return impl(context)
            except (ExpressionError, IgnoreFlow):
                raise
            except Exception as exc:
                raise failure(name, position, exc) from None

        return run0
    if len(fns) == 1:
        (f0,) = fns

        def run1(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
            try:
                return impl(context, f0(attributes, context))
            except (ExpressionError, IgnoreFlow):
                raise
            except Exception as exc:
                raise failure(name, position, exc) from None

        return run1
    if len(fns) == 2:
        f0, f1 = fns

        def run2(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
            try:
                return impl(context, f0(attributes, context), f1(attributes, context))
            except (ExpressionError, IgnoreFlow):
                raise
            except Exception as exc:
                raise failure(name, position, exc) from None

        return run2
    if len(fns) == 3:
        f0, f1, f2 = fns

        def run3(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
            try:
                return impl(
                    context,
                    f0(attributes, context),
                    f1(attributes, context),
                    f2(attributes, context),
                )
            except (ExpressionError, IgnoreFlow):
                raise
            except Exception as exc:
                raise failure(name, position, exc) from None

        return run3
    frozen = tuple(fns)

    def run_n(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        try:
            return impl(context, *[fn(attributes, context) for fn in frozen])
        except (ExpressionError, IgnoreFlow):
            raise
        except Exception as exc:
            raise failure(name, position, exc) from None

    return run_n


def _guarded(call: Call, run: Compiled) -> Compiled:
    """Give a special function's unexpected failures the call's name and position."""
    name, position = call.name, call.position

    def guarded(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        try:
            return run(attributes, context)
        except (ExpressionError, IgnoreFlow):
            raise
        except Exception as exc:
            raise failure(name, position, exc) from None

    return guarded


# Special functions whose closures can raise something other than ExpressionError.
_NEEDS_GUARD = frozenset({"Replace"})


def compile_node(node: Node) -> Compiled:
    if isinstance(node, Literal):
        return _constant(node.value)
    if isinstance(node, Attribute):
        return _attribute(node.name)
    if isinstance(node, Missing):
        return _constant(None)
    if isinstance(node, Comparison):
        return _comparison(node)
    spec = FUNCTIONS[node.name]
    fns = [compile_node(arg) for arg in node.args]
    if spec.compiler is not None:
        run = spec.compiler(node, fns)
        return _guarded(node, run) if node.name in _NEEDS_GUARD else run
    return _eager(node, spec, fns)


# Functions whose value depends on more than the attributes (the clock, chance, the target's
# other users): an expression calling one is evaluated afresh every time.
_CONTEXTUAL = frozenset({"Guid", "Now", "RandomString", "SelectUniqueValue"})
# How many distinct inputs an expression remembers. The memo is emptied when it is full; if it
# answered fewer than a quarter of the lookups since it was last emptied, the values do not
# repeat enough to pay for it, and it rests for MEMO_REST evaluations before it tries again.
MEMO_SIZE = 1024
MEMO_REST = 16 * MEMO_SIZE
_MEMOIZABLE = (str, int, bool, type(None))
_UNSEEN = object()


class ParsedExpression:
    """An expression parsed and compiled once, evaluated per user.

    An expression of the attributes alone gives the same value for the same attribute values,
    and directories repeat them (departments, countries, offices, titles, given names): such an
    expression remembers its last MEMO_SIZE results by the values of the attributes it reads.
    """

    __slots__ = (
        "_hits",
        "_ignorable",
        "_keys",
        "_memo",
        "_redacts",
        "_resting",
        "_run",
        "source_attributes",
        "text",
        "tree",
    )

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        self.tree = tree
        self.source_attributes: frozenset[str] = attribute_names(tree)
        calls = {node.name for node in walk(tree) if isinstance(node, Call)}
        # Over-redacting (a Redact in a branch not taken) is the safe side of the rule.
        self._redacts = "Redact" in calls
        self._ignorable = "IgnoreFlowIfNullOrEmpty" in calls
        self._run = compile_node(tree)
        self._keys = tuple(sorted(self.source_attributes))
        self._memo: dict[tuple[Any, ...], Any] | None = (
            {} if calls.isdisjoint(_CONTEXTUAL) else None
        )
        self._hits = 0
        self._resting = 0

    def evaluate(self, attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        """The value to flow: plain value, None (null), IGNORED, or Redacted(value)."""
        memo = self._memo
        if memo is None:
            value = self._value(attributes, context)
        elif self._resting:
            self._resting -= 1
            value = self._value(attributes, context)
        else:
            get = attributes.get
            key = tuple([get(name) for name in self._keys])
            for item in key:
                # Only text and nulls as keys: 1 and True are equal keys with unequal values,
                # and a list cannot be a key at all.
                if item is not None and item.__class__ is not str:
                    value = self._value(attributes, context)
                    break
            else:
                value = memo.get(key, _UNSEEN)
                if value is _UNSEEN:
                    value = self._value(attributes, context)
                    # Only immutable results: a list given to two users could be changed by one.
                    if type(value) in _MEMOIZABLE or value is IGNORED:
                        if len(memo) >= MEMO_SIZE:
                            self._forget()
                        memo[key] = value
                else:
                    self._hits += 1
        if self._redacts and value is not None and value is not IGNORED:
            return Redacted(value)
        return value

    def _forget(self) -> None:
        assert self._memo is not None
        if self._hits < MEMO_SIZE // 4:
            self._resting = MEMO_REST
        self._memo.clear()
        self._hits = 0

    def _value(self, attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        if self._ignorable:
            try:
                value = self._run(attributes, context)
            except IgnoreFlow:
                return IGNORED
        else:
            value = self._run(attributes, context)
        kind = type(value)
        if not (kind is str or value is None or kind is bool or kind is int):
            value = finalize(value)
        return value

    def __repr__(self) -> str:
        return f"ParsedExpression({self.text!r})"


def parse(text: str) -> ParsedExpression:
    """Parse, check and compile an expression; ExpressionError says what is wrong and where."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be text", 0)
    tree = parse_tree(text)
    check(tree)
    try:
        return ParsedExpression(text, tree)
    except FunctionFailure as exc:
        raise ExpressionError(str(exc), 0) from None
