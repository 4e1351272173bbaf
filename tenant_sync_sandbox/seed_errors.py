"""What every part of seed validation shares: `SeedError`, warnings, and the GUID check."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any


class SeedError(ValueError):
    """The seed is unusable; the message says where and why."""


def warn(message: str) -> None:
    print(f"tenant-sync sandbox: warning: seed {message}", file=sys.stderr, flush=True)


def guid(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SeedError(f"{where} must be a GUID string, got {json.dumps(value)}")
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError as exc:
        raise SeedError(f"{where} must be a GUID, got {value!r}") from exc
