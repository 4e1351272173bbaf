"""A set of object ids in about 16 bytes each, for the full cycle's "which target users exist".

A full cycle reads every target user's id to tell which linked users vanished from the target.
As a Python set of strings that costs about 120 bytes an id (120 MB at 1,000,000 users, most of a
worker's budget; docs/performance.md). `IdSet` keeps a canonical GUID (what Graph's ids are) as
its 16 bytes, in 256 buckets by first byte, each sorted once before the first lookup (so sorting
never holds more than a bucket's worth of objects); any other id is kept in a plain set. A sorted
bucket of more than `INDEXED` keys also keeps where each second byte's keys start (257 offsets,
about 1 KB, under 2 bytes an id), so a lookup bisects a few keys (about 15 at 1,000,000 ids)
instead of the whole bucket (about 4,000): two lookups per user in a full cycle
(docs/performance.md, "The no-change cycle").
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator

WIDTH = 16
INDEXED = 512  # keys a bucket holds before it gets its second-byte offsets


class _Packed:
    """A sorted bucket as a sequence of 16-byte keys, for `bisect`."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __len__(self) -> int:
        return len(self.blob) // WIDTH

    def __getitem__(self, index: int) -> bytes:
        return self.blob[index * WIDTH : (index + 1) * WIDTH]


# A canonical GUID: exactly what `str(uuid.UUID(value)) == value` accepts, checked without
# building a UUID (every id of a full cycle's target read and feed: docs/performance.md).
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def guid_key(value: str) -> bytes | None:
    """A canonical GUID's 16 bytes, or None for any other id (the ledger packs ids with it)."""
    if len(value) != 36 or not _CANONICAL_GUID.fullmatch(value):
        return None
    return bytes.fromhex(value.replace("-", ""))


def guid_text(key: bytes) -> str:
    """A 16-byte key's canonical GUID text, what `str(uuid.UUID(bytes=key))` gives, without
    building a UUID (three ids a link read: docs/performance.md, "The no-change cycle")."""
    h = key.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _starts(keys: list[bytes]) -> array[int]:
    """Of sorted keys sharing their first byte: the index of the first key whose second byte is
    each value 0 to 256 or more (the last, 256, is the number of keys)."""
    starts = array("I", bytes(4 * 257))
    for key in keys:
        starts[key[1] + 1] += 1
    for value in range(256):
        starts[value + 1] += starts[value]
    return starts


class IdSet:
    """Ids added page by page, then asked about (`in`); iteration gives them back as text."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._buckets: list[bytearray] | None = [bytearray() for _ in range(256)]
        self._sorted: list[bytes] = []
        # Per bucket: where each second byte's keys start (None: a small bucket, bisected whole).
        self._starts: list[array[int] | None] = []
        self._other: set[str] = set()
        self.update(ids)

    def update(self, ids: Iterable[str]) -> None:
        buckets = self._buckets
        if buckets is None:
            raise RuntimeError("an IdSet takes no ids once it has been asked about one")
        for value in ids:
            key = guid_key(value)
            if key is None:
                self._other.add(value)
            else:
                buckets[key[0]] += key

    def update_keys(self, keys: bytes) -> None:
        """GUIDs given as their 16-byte keys, one after the other (as the SQL state keeps
        them): no text to parse."""
        buckets = self._buckets
        if buckets is None:
            raise RuntimeError("an IdSet takes no ids once it has been asked about one")
        for at in range(0, len(keys) - len(keys) % WIDTH, WIDTH):
            buckets[keys[at]] += keys[at : at + WIDTH]

    def has_key(self, key: bytes) -> bool:
        """Whether the GUID whose 16-byte key this is was added."""
        bucket = _Packed(self._freeze()[key[0]])
        starts = self._starts[key[0]]
        if starts is None:
            at = bisect_left(bucket, key)
        else:
            at = bisect_left(bucket, key, starts[key[1]], starts[key[1] + 1])
        return at < len(bucket) and bucket[at] == key

    def _freeze(self) -> list[bytes]:
        if self._buckets is not None:
            frozen: list[bytes] = []
            for bucket in self._buckets:
                keys = sorted({bytes(bucket[i : i + WIDTH]) for i in range(0, len(bucket), WIDTH)})
                frozen.append(b"".join(keys))
                self._starts.append(_starts(keys) if len(keys) > INDEXED else None)
                bucket.clear()  # freed bucket by bucket, while the next is sorted
            self._sorted, self._buckets = frozen, None
        return self._sorted

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        key = guid_key(value)
        if key is None:
            return value in self._other
        return self.has_key(key)

    def __len__(self) -> int:
        return sum(len(b) for b in self._freeze()) // WIDTH + len(self._other)

    def __iter__(self) -> Iterator[str]:
        for blob in self._freeze():
            for i in range(0, len(blob), WIDTH):
                yield guid_text(blob[i : i + WIDTH])
        yield from self._other
