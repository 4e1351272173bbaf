"""How the console writes times, durations and numbers (Jinja filters). Times are UTC, as
everywhere in tenant-sync, with how long ago they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment


def moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def when(value: Any) -> str:
    found = moment(value)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if found else "—"


def short(value: Any) -> str:
    """A time in a table whose header says UTC."""
    found = moment(value)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if found else "—"


def span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"
    days, rest = divmod(seconds, 86400)
    return f"{days} d {rest // 3600} h" if rest >= 3600 else f"{days} d"


def ago(value: Any, now: datetime | None = None) -> str:
    found = moment(value)
    if found is None:
        return ""
    delta = (now or datetime.now(UTC)) - found
    return f"in {span(delta)}" if delta.total_seconds() < 0 else f"{span(delta)} ago"


def duration(start: Any, end: Any) -> str:
    began, ended = moment(start), moment(end)
    if began is None or ended is None:
        return ""
    return span(ended - began)


def number(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def plain(value: Any) -> str:
    """A detail value as people write it: yes/no, lists with commas, nothing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    return str(value)


def install(env: Environment) -> None:
    env.filters.update(when=when, short=short, ago=ago, num=number, plain=plain)
    env.globals.update(duration=duration)
