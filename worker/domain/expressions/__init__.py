"""Entra's attribute-mapping expression language: parse once into a tree, evaluate without eval.

(Placeholder until the expression engine lands: every expression is rejected.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.domain.mapping import EvaluationContext


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; `position` is a 0-based offset."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


class ParsedExpression:
    source_attributes: frozenset[str] = frozenset()

    def evaluate(self, attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        raise ExpressionError("expressions are not supported yet")


def parse(text: str) -> ParsedExpression:
    raise ExpressionError("expression mappings are not supported yet", 0)
