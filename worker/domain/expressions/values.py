"""The value model the functions share, and the conversions between its types.

Values are what Graph hands us and what Entra flows: `None` (null), `str`, `bool`, `int`,
`float`, `list` (a multi-valued attribute) and, between date functions only, an aware UTC
`datetime` (flowed as text in Entra's `M/d/yyyy h:mm:ss tt`). Conversions follow .NET's
invariant culture, because that is what Entra's provisioning engine runs on.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from worker.domain.expressions.dates import format_default, parse_general
from worker.domain.expressions.errors import FunctionFailure


def format_float(value: float) -> str:
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def to_str(value: Any) -> str | None:
    """The string a value flows as; a multi-valued attribute gives its first value."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if kind is bool:
        return "True" if value else "False"
    if kind is int:
        return str(value)
    if kind is float:
        return format_float(value)
    if isinstance(value, datetime):
        return format_default(value)
    if isinstance(value, list | tuple):
        return to_str(value[0]) if value else None
    return str(value)


def to_text(value: Any) -> str:
    """Like `to_str`, with null read as the empty string (string concatenation's rule)."""
    text = to_str(value)
    return "" if text is None else text


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, list | tuple) and not value)


def is_null_or_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def _parse_number(text: str) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    if text[:2] in ("&H", "&h"):
        try:
            return int(text[2:], 16)
        except ValueError:
            return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def to_number(value: Any) -> int | float | None:
    """A numeric value, or None when the value is not a number nor numeric text."""
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        # VBA's CInt(True) is -1; nobody relies on it, and 1 is what every other system means.
        return 1 if value else 0
    if kind is str:
        return _parse_number(value)
    if isinstance(value, list | tuple) and value:
        return to_number(value[0])
    return None


def to_int(value: Any, what: str = "argument") -> int:
    """An integer argument; .NET's Convert.ToInt32 rounds halves to even, and so does round."""
    number = to_number(value)
    if number is None:
        shown = "null" if value is None else repr(value)
        raise FunctionFailure(f"{what} must be a number, got {shown}")
    if type(number) is float:
        return round(number)
    return number  # type: ignore[return-value]


def to_bool(value: Any, what: str = "value") -> bool:
    """CBool's rules: booleans, "True"/"False" in any case, numbers (non-zero is true)."""
    if value is True or value is False:
        return value
    if value is None:
        return False
    kind = type(value)
    if kind is int or kind is float:
        return value != 0  # type: ignore[no-any-return]
    if kind is str:
        text = value.strip().lower()
        if text == "true":
            return True
        if text == "false" or text == "":
            return False
        number = _parse_number(text)
        if number is not None:
            return number != 0
        raise FunctionFailure(f"{what} {value!r} is not a boolean")
    if isinstance(value, list | tuple):
        return to_bool(value[0], what) if value else False
    raise FunctionFailure(f"{what} {value!r} is not a boolean")


def to_datetime(value: Any, what: str = "date") -> datetime | None:
    """A date argument: a DateTime from CDate/Now/DateAdd, or text CDate would accept."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, list | tuple):
        return to_datetime(value[0], what) if value else None
    text = to_str(value)
    if text is None or text.strip() == "":
        return None
    parsed = parse_general(text)
    if parsed is None:
        raise FunctionFailure(f"{what} {text!r} is not a recognised date/time")
    return parsed


def _ordered(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Two values made comparable: numbers if both are numeric, dates if one is a date."""
    if isinstance(left, datetime) or isinstance(right, datetime):
        try:
            a, b = to_datetime(left), to_datetime(right)
        except FunctionFailure:
            return None
        return None if a is None or b is None else (a, b)
    left_kind, right_kind = type(left), type(right)
    if (left_kind is int or left_kind is float) or (right_kind is int or right_kind is float):
        a_num, b_num = to_number(left), to_number(right)
        if a_num is not None and b_num is not None:
            return a_num, b_num
    if left_kind is bool or right_kind is bool:
        try:
            return to_bool(left), to_bool(right)
        except FunctionFailure:
            return None
    return to_text(left), to_text(right)


def compare(op: str, left: Any, right: Any) -> bool:
    """The comparison operators of conditions; strings compare ordinally, case-sensitively."""
    if type(left) is str and type(right) is str:
        pair: tuple[Any, Any] | None = (left, right)
    else:
        pair = _ordered(left, right)
    if pair is None:
        return op == "<>"
    a, b = pair
    if op == "=":
        return bool(a == b)
    if op == "<>":
        return bool(a != b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op == "<":
        return bool(a < b)
    return bool(a <= b)


def finalize(value: Any) -> Any:
    """What flows: dates become Entra's date text, tuples become lists."""
    kind = type(value)
    if kind is str or value is None or kind is bool or kind is int:
        return value
    if isinstance(value, datetime):
        return format_default(value)
    if isinstance(value, list | tuple):
        return [finalize(item) for item in value]
    return value
