"""Structured logging: one setting chooses JSON (production) or console (development) output.

Every event carries the ids bound in contextvars (job_id, run_id, task_id, object ids). Secrets
never reach a log line: keys that name credentials are masked whatever their value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEY_RE = re.compile(
    r"secret|password|passwd|token|assertion|authorization|private_key|credential|api_key",
    re.IGNORECASE,
)
BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9\-_.~+/=]+", re.IGNORECASE)
MASK = "[REDACTED]"
# Ids that name a thing are not secrets even though their names end in token-like words.
SAFE_KEYS = frozenset({"fencing_token", "task_id", "run_id", "job_id"})


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return BEARER_RE.sub(r"\1" + MASK, value)
    if isinstance(value, dict):
        return {k: MASK if _is_secret_key(k) else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key not in SAFE_KEYS and bool(SECRET_KEY_RE.search(key))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask credential-named keys and bearer tokens in any value."""
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = MASK
        else:
            event_dict[key] = _mask(event_dict[key])
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries log request lines (with URLs) at INFO; they add nothing an operator needs.
    for noisy in ("httpx", "httpcore", "msal", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
