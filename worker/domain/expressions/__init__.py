"""Entra's attribute-mapping expression language: parse once into a tree, evaluate without eval.

The language and its functions are those of Microsoft Entra's "Reference for writing
expressions for attribute mappings". `parse` turns text into a `ParsedExpression` (or raises
`ExpressionError` with the character position); `ParsedExpression.evaluate` maps one source
object to the value that flows: a plain value, None for null, `IGNORED` when
IgnoreFlowIfNullOrEmpty drops the attribute, or `Redacted(value)` when Redact hides it from logs.

Modules: `lexer` (tokens), `parser` (syntax tree), `functions` (the registry and every
function), `values` (types and conversions), `dates` (.NET dates and formats), `dotnet_regex`
(.NET regex to Python), `text` (case, proper case, diacritics), `evaluator` (checks, compiled
closures, `ParsedExpression`).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from worker.domain.expressions.dates import format_default
from worker.domain.expressions.errors import ExpressionError
from worker.domain.expressions.evaluator import ParsedExpression, parse
from worker.domain.expressions.functions import FUNCTIONS
from worker.domain.mapping import IGNORED, EvaluationContext, Redacted

FUNCTION_NAMES = frozenset(FUNCTIONS)

__all__ = [
    "FUNCTION_NAMES",
    "EvaluationContext",
    "ExpressionError",
    "ParsedExpression",
    "parse",
    "to_cli_json",
]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return format_default(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


def to_cli_json(result: Any) -> dict[str, Any]:
    """What `tenant-sync expr` prints: {"value": ...} or {"ignored": true}.

    A redacted value prints as itself: the command is its user's own check, not a log.
    """
    if result is IGNORED:
        return {"ignored": True}
    if isinstance(result, Redacted):
        result = result.value
    return {"value": _jsonable(result)}
