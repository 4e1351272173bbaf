"""The errors of the expression language, and the internal signals its evaluator uses.

`ExpressionError` is the only exception that leaves the package: parse failures and runtime
failures alike carry a message and the 0-based character position they point at.
"""

from __future__ import annotations


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; `position` is a 0-based offset."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


class FunctionFailure(Exception):
    """Raised by a function's implementation; the call site adds its name and position."""


class IgnoreFlow(Exception):
    """IgnoreFlowIfNullOrEmpty found nothing: the whole attribute leaves the flow.

    An exception rather than a value so that it stops every enclosing call at once: Entra
    drops the attribute, whatever the function around it would have made of a null.
    """
