"""Dates the way Entra's .NET engine reads and writes them.

Owns: the invariant-culture rendering `M/d/yyyy h:mm:ss tt` every DateTime flows as; .NET
custom and standard date/time format strings, for formatting and for exact parsing
(FormatDateTime); the lenient parse behind CDate (ISO 8601 with or without time and offset,
`M/d/yyyy h:mm:ss tt`, month names); VB's DateAdd/DateDiff interval arithmetic; and AD's
FILETIME numbers (DateFromNum/NumFromDate). Every DateTime here is aware and in UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_MONTH_BY_NAME = {name.lower(): number for number, name in enumerate(MONTHS, 1)}
_MONTH_BY_NAME.update({name[:3].lower(): number for number, name in enumerate(MONTHS, 1)})
_MONTH_BY_NAME["sept"] = 9


class DateFormatError(ValueError):
    """A format string .NET would reject, or text that does not match its format."""


def format_default(value: datetime) -> str:
    """`M/d/yyyy h:mm:ss tt`: how CDate, DateAdd, Now and DateFromNum results flow."""
    hour = value.hour % 12 or 12
    half = "AM" if value.hour < 12 else "PM"
    clock = f"{hour}:{value.minute:02d}:{value.second:02d} {half}"
    return f"{value.month}/{value.day}/{value.year:04d} {clock}"


# --- .NET format strings --------------------------------------------------------------------

# Invariant culture's patterns behind the one-letter standard format strings.
_STANDARD_FORMATS = {
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "m": "MMMM dd",
    "M": "MMMM dd",
    "o": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "O": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "r": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "R": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "u": "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
    "U": "dddd, dd MMMM yyyy HH:mm:ss",
    "y": "yyyy MMMM",
    "Y": "yyyy MMMM",
}

_SPECIFIERS = frozenset("dfFghHKmMstyz")

# A token is a specifier letter with its repeat count, or literal text.
Token = tuple[str, int] | str


@lru_cache(maxsize=512)
def tokenize_format(fmt: str) -> tuple[Token, ...]:
    """Split a .NET date/time format string into specifiers and literal text."""
    if fmt == "":
        raise DateFormatError("the format string is empty")
    if len(fmt) == 1:
        if fmt not in _STANDARD_FORMATS:
            raise DateFormatError(f"{fmt!r} is not a standard date/time format")
        fmt = _STANDARD_FORMATS[fmt]
    tokens: list[Token] = []
    i, n = 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch in _SPECIFIERS:
            j = i
            while j < n and fmt[j] == ch:
                j += 1
            count = j - i
            if ch in "fF" and count > 7:
                raise DateFormatError(f"{ch * count!r}: at most 7 fraction digits")
            tokens.append((ch, count))
            i = j
        elif ch in "'\"":
            end = fmt.find(ch, i + 1)
            if end < 0:
                raise DateFormatError(f"unterminated quoted text in format {fmt!r}")
            tokens.append(fmt[i + 1 : end])
            i = end + 1
        elif ch == "\\":
            if i + 1 >= n:
                raise DateFormatError(f"format {fmt!r} ends with a lone backslash")
            tokens.append(fmt[i + 1])
            i += 2
        elif ch == "%":
            # "%d" is the custom specifier d on its own (not the standard format "d").
            if i + 1 >= n or fmt[i + 1] not in _SPECIFIERS:
                raise DateFormatError(f"'%' must precede a format specifier in {fmt!r}")
            tokens.append((fmt[i + 1], 1))
            i += 2
        else:
            tokens.append(ch)
            i += 1
    return tuple(tokens)


def _offset_text(count: int) -> str:
    # Every value here is UTC, so the offset is always zero.
    return ("+0", "+00", "+00:00")[min(count, 3) - 1]


def format_datetime(value: datetime, fmt: str) -> str:
    """Render a UTC DateTime with a .NET custom or standard format string (invariant culture)."""
    out: list[str] = []
    for token in tokenize_format(fmt):
        if isinstance(token, str):
            out.append(token)
            continue
        ch, count = token
        if ch == "d":
            if count == 1:
                out.append(str(value.day))
            elif count == 2:
                out.append(f"{value.day:02d}")
            elif count == 3:
                out.append(DAYS[value.weekday()][:3])
            else:
                out.append(DAYS[value.weekday()])
        elif ch == "M":
            if count == 1:
                out.append(str(value.month))
            elif count == 2:
                out.append(f"{value.month:02d}")
            elif count == 3:
                out.append(MONTHS[value.month - 1][:3])
            else:
                out.append(MONTHS[value.month - 1])
        elif ch == "y":
            if count == 1:
                out.append(str(value.year % 100))
            elif count == 2:
                out.append(f"{value.year % 100:02d}")
            else:
                out.append(str(value.year).zfill(count))
        elif ch == "h":
            hour = value.hour % 12 or 12
            out.append(str(hour) if count == 1 else f"{hour:02d}")
        elif ch == "H":
            out.append(str(value.hour) if count == 1 else f"{value.hour:02d}")
        elif ch == "m":
            out.append(str(value.minute) if count == 1 else f"{value.minute:02d}")
        elif ch == "s":
            out.append(str(value.second) if count == 1 else f"{value.second:02d}")
        elif ch == "f" or ch == "F":
            digits = f"{value.microsecond * 10:07d}"[:count]
            if ch == "F":
                digits = digits.rstrip("0")
                # .NET drops the separator too when an F-fraction prints nothing.
                if not digits and out and out[-1] == ".":
                    out.pop()
            out.append(digits)
        elif ch == "t":
            half = "AM" if value.hour < 12 else "PM"
            out.append(half[0] if count == 1 else half)
        elif ch == "z":
            out.append(_offset_text(count))
        elif ch == "K":
            out.append("Z")
        elif ch == "g":
            out.append("A.D.")
    return "".join(out)


@dataclass(frozen=True)
class _ExactParser:
    regex: re.Pattern[str]
    fields: tuple[tuple[str, str, int], ...]  # (group name, specifier, count)


_FIELD_PATTERNS = {
    "y": {1: r"\d{1,2}", 2: r"\d{2}", 3: r"\d{3,4}", 4: r"\d{4}"},
    "M": {1: r"\d{1,2}", 2: r"\d{2}"},
    "d": {1: r"\d{1,2}", 2: r"\d{2}"},
    "h": {1: r"\d{1,2}", 2: r"\d{2}"},
    "H": {1: r"\d{1,2}", 2: r"\d{2}"},
    "m": {1: r"\d{1,2}", 2: r"\d{2}"},
    "s": {1: r"\d{1,2}", 2: r"\d{2}"},
}
_MONTH_NAMES_RE = "|".join(sorted(_MONTH_BY_NAME, key=len, reverse=True))
_DAY_NAMES_RE = "|".join(
    sorted([d.lower() for d in DAYS] + [d[:3].lower() for d in DAYS], key=len, reverse=True)
)
_OFFSET_RE = r"Z|[+-]\d{1,2}(?::?\d{2})?"


@lru_cache(maxsize=512)
def _exact_parser(fmt: str, inner_white: bool) -> _ExactParser:
    parts: list[str] = []
    fields: list[tuple[str, str, int]] = []
    for index, token in enumerate(tokenize_format(fmt)):
        if isinstance(token, str):
            for ch in token:
                if ch.isspace():
                    parts.append(r"\s*" if inner_white else r"\s+")
                else:
                    parts.append(re.escape(ch))
            continue
        ch, count = token
        name = f"g{index}"
        if ch in _FIELD_PATTERNS:
            if ch in "dM" and count >= 3:
                names = _DAY_NAMES_RE if ch == "d" else _MONTH_NAMES_RE
                pattern = f"(?:{names})"
            else:
                table = _FIELD_PATTERNS[ch]
                pattern = table.get(count, rf"\d{{{count}}}")
        elif ch == "f":
            pattern = rf"\d{{{count}}}"
        elif ch == "F":
            pattern = rf"\d{{0,{count}}}"
        elif ch == "t":
            pattern = "[ap]" if count == 1 else "[ap]m"
        elif ch == "z":
            pattern = _OFFSET_RE
        elif ch == "K":
            pattern = f"(?:{_OFFSET_RE})?"
        else:  # g: the era
            pattern = r"(?:a\.?d\.?)?"
        parts.append(f"(?P<{name}>{pattern})")
        fields.append((name, ch, count))
    regex = re.compile("".join(parts), re.IGNORECASE)
    return _ExactParser(regex, tuple(fields))


def parse_offset(text: str) -> timedelta:
    if text.upper() in ("Z", "GMT", "UTC", ""):
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    body = text[1:].replace(":", "")
    if len(body) <= 2:
        hours, minutes = int(body), 0
    else:
        hours, minutes = int(body[:-2]), int(body[-2:])
    if hours > 14 or minutes > 59:
        raise DateFormatError(f"{text!r} is not a valid UTC offset")
    return sign * timedelta(hours=hours, minutes=minutes)


def _two_digit_year(year: int) -> int:
    # .NET's invariant calendar: TwoDigitYearMax is 2049.
    return 2000 + year if year < 50 else 1900 + year


def _build(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    fraction: str = "",
    half: str = "",
    offset: str | None = None,
) -> datetime:
    if half:
        if not 1 <= hour <= 12:
            raise DateFormatError(f"hour {hour} does not go with {half.upper()}")
        hour = hour % 12 + (12 if half[0] in "pP" else 0)
    micro = int((fraction + "000000")[:6]) if fraction else 0
    try:
        value = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError as exc:
        raise DateFormatError(str(exc)) from None
    if offset:
        try:
            value -= parse_offset(offset)
        except OverflowError:
            raise DateFormatError("the date is out of range") from None
    return value


def parse_exact(text: str, fmt: str, styles: frozenset[str], today: datetime) -> datetime:
    """DateTime.ParseExact with the invariant culture; offsets are folded into UTC."""
    inner_white = bool(styles & {"allowinnerwhite", "allowwhitespaces"})
    parser = _exact_parser(fmt, inner_white)
    match = parser.regex.fullmatch(text.strip())
    if match is None:
        raise DateFormatError(f"{text!r} does not match the format {fmt!r}")
    year = month = day = None
    hour = minute = second = 0
    fraction, half, offset = "", "", ""
    for name, ch, count in parser.fields:
        raw = match.group(name)
        if ch == "y":
            year = _two_digit_year(int(raw)) if count <= 2 else int(raw)
        elif ch == "M":
            month = _MONTH_BY_NAME[raw.lower()] if count >= 3 else int(raw)
        elif ch == "d":
            if count <= 2:
                day = int(raw)
        elif ch == "h" or ch == "H":
            hour = int(raw)
        elif ch == "m":
            minute = int(raw)
        elif ch == "s":
            second = int(raw)
        elif ch == "f" or ch == "F":
            fraction = raw
        elif ch == "t":
            half = raw
        elif ch in "zK" and raw:
            offset = raw
    if year is None and month is None and day is None:
        year, month, day = today.year, today.month, today.day
    return _build(
        year or 1,
        month or 1,
        day or 1,
        hour,
        minute,
        second,
        fraction,
        half,
        offset or None,
    )


# --- CDate: the lenient parse ---------------------------------------------------------------

_TIME_TAIL = re.compile(
    r"(?:(?:T|\s+|,\s*)(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"\s*(?P<half>[ap]\.?m\.?)?)?"
    r"\s*(?P<offset>Z|GMT|UTC|[+-]\d{1,2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_DATE_HEADS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ymd", re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})")),
    ("mdy", re.compile(r"(?P<m>\d{1,2})[/-](?P<d>\d{1,2})[/-](?P<y>\d{4}|\d{2})(?!\d)")),
    (
        "compact",
        re.compile(
            r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"
            r"(?:T?(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})?(?:\.(?P<F>\d+))?)?(?=[^\d]|$)"
        ),
    ),
    (
        "named_mdy",
        re.compile(
            rf"(?:(?:{_DAY_NAMES_RE}),?\s+)?(?P<mn>{_MONTH_NAMES_RE})\.?\s+(?P<d>\d{{1,2}})"
            r"(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})",
            re.IGNORECASE,
        ),
    ),
    (
        "named_dmy",
        re.compile(
            rf"(?:(?:{_DAY_NAMES_RE}),?\s+)?(?P<d>\d{{1,2}})[\s-]+(?P<mn>{_MONTH_NAMES_RE})\.?"
            r",?[\s-]+(?P<y>\d{4})",
            re.IGNORECASE,
        ),
    ),
)


def parse_general(text: str) -> datetime | None:
    """CDate's parse (DateTime.Parse, invariant culture, adjusted to UTC); None if not a date.

    Text without an offset is taken as UTC: the service runs in UTC, and Entra says results
    are UTC.
    """
    text = text.strip()
    for kind, head in _DATE_HEADS:
        match = head.match(text)
        if match is None:
            continue
        parts = match.groupdict()
        year = int(parts["y"])
        if len(parts["y"]) == 2:
            year = _two_digit_year(year)
        month = _MONTH_BY_NAME[parts["mn"].lower()] if parts.get("mn") else int(parts["m"])
        day = int(parts["d"])
        rest = text[match.end() :]
        try:
            if kind == "compact":
                tail = _TIME_TAIL.fullmatch(rest)
                if tail is None or tail.group("hour"):
                    continue
                return _build(
                    year,
                    month,
                    day,
                    int(parts["H"] or 0),
                    int(parts["M"] or 0),
                    int(parts["S"] or 0),
                    parts["F"] or "",
                    "",
                    tail.group("offset"),
                )
            tail = _TIME_TAIL.fullmatch(rest)
            if tail is None:
                continue
            return _build(
                year,
                month,
                day,
                int(tail.group("hour") or 0),
                int(tail.group("minute") or 0),
                int(tail.group("second") or 0),
                tail.group("fraction") or "",
                (tail.group("half") or "").replace(".", ""),
                tail.group("offset"),
            )
        except DateFormatError:
            return None
    return None


# --- VB's interval arithmetic ---------------------------------------------------------------

INTERVALS = frozenset({"yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"})


def normalize_interval(interval: str) -> str:
    key = interval.strip().lower()
    if key not in INTERVALS:
        raise DateFormatError(
            f"unknown interval {interval!r} (use yyyy, q, m, y, d, w, ww, h, n or s)"
        )
    return key


def _add_months(value: datetime, months: int) -> datetime:
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise DateFormatError("the date is out of range")
    # .NET's AddMonths clamps the day to the end of a shorter month.
    last = calendar.monthrange(year, month)[1]
    return value.replace(year=year, month=month, day=min(value.day, last))


def date_add(interval: str, number: float, value: datetime) -> datetime:
    key = normalize_interval(interval)
    try:
        if key in ("yyyy", "q", "m"):
            months = round(number) * {"yyyy": 12, "q": 3, "m": 1}[key]
            return _add_months(value, months)
        if key in ("y", "d", "w"):
            return value + timedelta(days=round(number))
        if key == "ww":
            return value + timedelta(weeks=round(number))
        if key == "h":
            return value + timedelta(hours=number)
        if key == "n":
            return value + timedelta(minutes=number)
        return value + timedelta(seconds=number)
    except OverflowError:
        raise DateFormatError("the date is out of range") from None


def _fix(number: float) -> int:
    return int(number)  # truncation toward zero, VB's Fix


def _sunday_index(value: datetime) -> int:
    return (value.weekday() + 1) % 7


def date_diff(interval: str, first: datetime, second: datetime) -> int:
    """VB.NET's DateDiff: calendar boundaries for years/quarters/months, truncated spans else."""
    key = normalize_interval(interval)
    if key == "yyyy":
        return second.year - first.year
    if key == "q":
        return (second.year - first.year) * 4 + (second.month - 1) // 3 - (first.month - 1) // 3
    if key == "m":
        return (second.year - first.year) * 12 + second.month - first.month
    span = (second - first).total_seconds()
    if key in ("d", "y"):
        return _fix(span / 86400)
    if key == "h":
        return _fix(span / 3600)
    if key == "n":
        return _fix(span / 60)
    if key == "s":
        return _fix(span)
    if key == "w":
        return _fix(_fix(span / 86400) / 7)
    # ww counts week boundaries: both dates go back to their week's Sunday first.
    start = first - timedelta(days=_sunday_index(first))
    end = second - timedelta(days=_sunday_index(second))
    return _fix(_fix((end - start).total_seconds() / 86400) / 7)


# --- AD's FILETIME --------------------------------------------------------------------------


def from_filetime(ticks: int) -> datetime:
    """DateFromNum: 100-nanosecond intervals since 1601-01-01 UTC."""
    try:
        return FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        raise DateFormatError(f"{ticks} is out of the range of dates") from None


def to_filetime(value: datetime) -> int:
    """NumFromDate: the inverse of `from_filetime`."""
    span = value - FILETIME_EPOCH
    return (span.days * 86400 + span.seconds) * 10_000_000 + span.microseconds * 10
