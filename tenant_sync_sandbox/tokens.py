"""Opaque continuation tokens ($skiptoken / $deltatoken): compact JSON in unpadded base64url.

They are opaque to clients; only the sandbox reads them. Tampering only ever yields a 400 or a
different page of data the caller could read anyway, so they are not signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class TokenError(ValueError):
    pass


def encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(token: str) -> dict[str, Any]:
    text = token.strip()
    if not text or len(text) > 16384:
        raise TokenError("The token is empty or too long.")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise TokenError("The token is malformed.") from exc
    if not isinstance(data, dict):
        raise TokenError("The token is malformed.")
    return data
