"""URLs as they may be shown to people: without a password, wherever the URL holds one.

A state URL can carry its password in the userinfo (`redis://:pw@host`) or in the query string
(`?password=pw`, `?sslpassword=`, `?pwd=`): both are masked by `redacted_url`, the one helper
every message, log line and `--json` error uses; `url_secrets` lists those values for scrubbing
a driver's own message.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
# A query parameter whose name holds one of these carries a credential.
SECRET_QUERY_KEY_RE = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


def _query_parts(query: str) -> list[tuple[str, str | None]]:
    parts: list[tuple[str, str | None]] = []
    for item in query.split("&"):
        key, sep, value = item.partition("=")
        parts.append((key, value if sep else None))
    return parts


def redacted_url(url: str) -> str:
    """`url` without its password: the userinfo's dropped, secret query values masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = parts.username or ""
            host = netloc.rpartition("@")[2]
            netloc = f"{user}@{host}" if user else host
        query = parts.query
        if query:
            query = "&".join(
                key
                if value is None
                else f"{key}={MASK if SECRET_QUERY_KEY_RE.search(unquote(key)) else value}"
                for key, value in _query_parts(query)
            )
        if (netloc, query) == (parts.netloc, parts.query):
            return url
        # Put back as written (urlunsplit would turn sqlite:/// into sqlite:/).
        head = f"{parts.scheme}://{netloc}" if "//" in url else f"{parts.scheme}:"
        rest = f"?{query}" if query else ""
        rest += f"#{parts.fragment}" if parts.fragment else ""
        return f"{head}{parts.path}{rest}"
    except ValueError:
        return "(unparseable URL)"


def url_secrets(url: str) -> list[str]:
    """The credentials in `url` (its password, secret query values), raw and decoded."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        found += [
            value
            for key, value in _query_parts(parts.query)
            if value and SECRET_QUERY_KEY_RE.search(unquote(key))
        ]
    except ValueError:
        return []
    return sorted({s for v in found if v for s in (v, unquote(v))}, key=len, reverse=True)
