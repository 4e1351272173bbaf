"""The few OData query options the Graph-shaped API understands, and Graph's literal formats.

`$filter` here is the subset Graph's own list APIs accept for the resources we serve: comparisons
`path op literal` joined by `and` (no `or`, `not`, functions or parentheses). Literals are
single-quoted strings (`''` for a quote), ISO 8601 date-times (bare or quoted), numbers, `true`,
`false` and `null`. What a route does with each comparison is up to the route; anything this
parser cannot read is a `FilterError` whose message says what and where.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
# Graph's "never": a non-nullable DateTimeOffset that has no value yet.
NEVER = "0001-01-01T00:00:00Z"

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<other>\S+)
    )""",
    re.VERBOSE,
)


class FilterError(ValueError):
    """A `$filter` this service cannot read."""


@dataclass(frozen=True)
class Comparison:
    """`path op value`: path as written (`provisioningStatusInfo/status`), op lower-case."""

    path: str
    op: str
    value: Any  # str, datetime (UTC), int, float, bool or None
    text: str  # the comparison as written, for messages


def _literal(kind: str, text: str) -> Any:
    if kind == "string":
        return text[1:-1].replace("''", "'")
    if kind == "datetime":
        return parse_datetime(text)
    if kind == "number":
        return float(text) if "." in text else int(text)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    raise FilterError(f"'{text}' is not a value (quote strings: '{text}')")


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date or date-time; no offset means UTC. ValueError if it is none."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_filter(text: str) -> list[Comparison]:
    """The `and`-joined comparisons of a `$filter`; FilterError names what is not understood."""
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        tokens.append((kind, match.group(kind)))
    if not tokens:
        raise FilterError("$filter is empty")
    comparisons: list[Comparison] = []
    position = 0
    while True:
        part = tokens[position : position + 3]
        if len(part) < 3:
            got = " ".join(t for _, t in part) or "nothing"
            raise FilterError(f"expected 'property operator value' but found '{got}' at the end")
        (kind, path), (op_kind, op), (value_kind, value_text) = part
        if kind in ("open", "close"):
            raise FilterError("parentheses are not supported: join comparisons with 'and'")
        if kind != "name":
            raise FilterError(f"expected a property name, found '{path}'")
        if op_kind == "open":
            raise FilterError(f"function '{path}(...)' is not supported; use eq, gt, ge, lt, le")
        if path.lower() == "not":
            raise FilterError("'not' is not supported")
        if op_kind != "name" or op.lower() not in OPERATORS:
            raise FilterError(f"'{op}' after '{path}' is not an operator (eq, ne, gt, ge, lt, le)")
        if value_kind in ("open", "close", "other"):
            raise FilterError(f"'{value_text}' is not a value for '{path} {op}'")
        written = f"{path} {op} {value_text}"
        try:
            value = _literal(value_kind, value_text)
        except ValueError as exc:
            raise FilterError(f"in '{written}': {exc}") from None
        comparisons.append(Comparison(path, op.lower(), value, written))
        position += 3
        if position == len(tokens):
            return comparisons
        joiner_kind, joiner = tokens[position]
        if joiner_kind == "name" and joiner.lower() == "and":
            position += 1
            continue
        if joiner_kind == "name" and joiner.lower() == "or":
            raise FilterError("'or' is not supported: only 'and' joins comparisons")
        raise FilterError(f"expected 'and' after '{written}', found '{joiner}'")


def parse_top(value: str | None, *, default: int, maximum: int) -> int:
    """`$top`: a whole number from 1 to `maximum`; `default` when absent."""
    if value is None:
        return default
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise FilterError(f"$top must be a whole number from 1 to {maximum}, not '{value}'")
    return int(text)


_SKIPTOKEN_PREFIX = "ts1:"


def encode_skiptoken(row_id: int) -> str:
    """An opaque `$skiptoken` for the rows after (older than) `row_id`."""
    raw = f"{_SKIPTOKEN_PREFIX}{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text.startswith(_SKIPTOKEN_PREFIX) or not text[len(_SKIPTOKEN_PREFIX) :].isdigit():
        raise FilterError(
            "$skiptoken is not one this service issued: follow @odata.nextLink as given"
        )
    return int(text[len(_SKIPTOKEN_PREFIX) :])


def iso_duration(value: timedelta) -> str:
    """An Edm.Duration as Graph writes it: PT40M, PT1H30M, P7D, PT1M30S."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"P{days}D" if days else "P"
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not time:
        return date if days else "PT0S"
    return f"{date}T{time}"


def graph_time(value: datetime | str | None) -> str | None:
    """A DateTimeOffset as Graph writes it: UTC with a Z (`2024-05-01T10:00:00Z`)."""
    if value is None or value == "":
        return None
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
