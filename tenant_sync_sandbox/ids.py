"""Random GUIDs for object ids, request ids and invitation ids.

The same strings as `str(uuid.uuid4())` (version 4, RFC 4122 variant, 122 bits from
`os.urandom`), made without building a `uuid.UUID`: the sandbox makes several per created user.
"""

from __future__ import annotations

import os


def new_guid() -> str:
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
