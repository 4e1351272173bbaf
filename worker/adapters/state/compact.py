"""Compact storage for the SQL state's biggest columns (docs/performance.md).

Three codecs, each a pure function pair, so the models' types and the migrations share them:

- `pack_id` / `unpack_id`: object and run ids. Graph's ids are GUIDs: a canonical (lowercase,
  hyphenated) one is stored as its 16 bytes instead of 36 characters, in the row and in every
  index over it. Anything else is kept as its UTF-8 text after a marker byte (never 16 bytes
  long, so the two cannot be confused). Equal ids pack to equal bytes, so equality, `IN` and
  keyset paging (`>` on one column) work on the packed form; its order is not the text's.
- `pack_ids` / `unpack_ids`: a list of ids in one value (the ids a full cycle's page saw,
  migration 0009): the GUIDs' 16 bytes each, after a 4-byte count, then any other id as its
  UTF-8 text after a 2-byte length. `split_ids` gives the GUIDs' bytes as they are, for a set
  that keeps them so (worker/domain/idset.py).
- `pack_json` / `unpack_json`: JSON documents (a log row's steps and modified properties, a
  link's last written values) as compact JSON, raw-deflated against a preset dictionary of the
  words these documents repeat (step texts, attribute names, `old`/`new`). A first byte names
  the dictionary, so a later one can be added without rewriting what is stored; dictionary 1
  must never change.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from typing import Any

from worker.domain.idset import guid_key, guid_text

_TEXT = b"\x01"  # an id that is not a canonical GUID: its UTF-8 text follows
_TEXT_PADDED = b"\x02"  # the same, one byte added so the whole is not 16 bytes long


def pack_id(value: str) -> bytes:
    if not value:
        return b""  # sorts before every id: the start of a keyset walk
    key = guid_key(value)
    if key is not None:
        return key
    raw = value.encode()
    if len(raw) == 15:
        return _TEXT_PADDED + raw + b"\x00"
    return _TEXT + raw


def pack_ids(values: Iterable[str]) -> bytes:
    guids = bytearray()
    others = bytearray()
    for value in values:
        key = guid_key(value)
        if key is not None:
            guids += key
        else:
            raw = value.encode()
            others += struct.pack(">H", len(raw)) + raw
    return struct.pack(">I", len(guids) // 16) + bytes(guids) + bytes(others)


def split_ids(data: bytes) -> tuple[bytes, list[str]]:
    """The GUIDs' 16-byte keys, one after the other, and the other ids as text."""
    (count,) = struct.unpack_from(">I", data)
    end = 4 + count * 16
    guids = bytes(data[4:end])
    others: list[str] = []
    at = end
    while at < len(data):
        (length,) = struct.unpack_from(">H", data, at)
        others.append(bytes(data[at + 2 : at + 2 + length]).decode())
        at += 2 + length
    return guids, others


def unpack_ids(data: bytes) -> list[str]:
    guids, others = split_ids(data)
    keys = [guid_text(guids[i : i + 16]) for i in range(0, len(guids), 16)]
    return keys + others


def unpack_id(data: bytes) -> str:
    if not data:
        return ""
    if len(data) == 16:
        return guid_text(bytes(data))
    if data[:1] == _TEXT_PADDED:
        return bytes(data[1:-1]).decode()
    return bytes(data[1:]).decode()


# Dictionary 1: what the documents repeat, the most frequent last (deflate reaches back 32 KB,
# and nearer matches cost fewer bits).
_DICTIONARY_1 = "".join(
    [
        '"onPremisesExtensionAttributes","extensionAttribute","employeeType","employeeHireDate",',
        '"officeLocation","postalCode","streetAddress","state","preferredLanguage","mobilePhone",',
        '"faxNumber","otherMails","proxyAddresses","usageLocation","ageGroup","manager",',
        '"deleted in the target","restored","disabled","not assigned to the job","out of scope",',
        '"NotInScope: ","create action is off","update action is off","delete action is off",',
        '"failure","warning","Guest","matched by ","already linked",',
        '"linked to target user ","no action: RedundantExport","updated ","attributes",',
        '"accountEnabled":true,"displayName":"","givenName":"","surname":"","mail":"",',
        '"mailNickname":"","jobTitle":"","department":"","companyName":"","employeeId":"E0",',
        '"city":"","country":"","businessPhones":["+1 555 "],"showInAddressList":true,',
        '"userType":"Member"}',
        '[{"name":"import","status":"success","detail":"read from the source"},',
        '{"name":"scoping","status":"success","detail":"in scope"},',
        '{"name":"matching","status":"success","detail":"no target user matches: create"},',
        '{"name":"processing","status":"success","detail":"create: invite ',
        '"},{"name":"export","status":"success","detail":"invited ',
        ": user ",
        '"},{"name":"export","status":"success","detail":"updated 15 attributes"}]',
        '{"accountEnabled":{"old":null,"new":true},"displayName":{"old":null,"new":"',
        '"},"givenName":{"old":null,"new":"',
        '"},"surname":{"old":null,"new":"',
        '"},"mail":{"old":null,"new":"',
        '.com"},"mailNickname":{"old":null,"new":"',
        '"},"jobTitle":{"old":null,"new":"',
        '"},"department":{"old":null,"new":"',
        '"},"companyName":{"old":null,"new":"',
        '"},"employeeId":{"old":null,"new":"E0',
        '"},"city":{"old":null,"new":"',
        '"},"country":{"old":null,"new":"',
        '"},"businessPhones":{"old":null,"new":["+1 555 ',
        '"]},"showInAddressList":{"old":null,"new":true},"userType":{"old":null,"new":"Member"}}',
    ]
).encode()
_DICTIONARIES = {1: _DICTIONARY_1}
_CURRENT = 1
# A compressor primed with the dictionary, copied for each document: priming a new one costs
# five times the compression itself. A 4 KB window holds the dictionary and any document here;
# level 6 packs them as small as 9 does. (Inflating takes any window up to 32 KB.)
_PRIMED = zlib.compressobj(6, zlib.DEFLATED, -12, 4, zdict=_DICTIONARIES[_CURRENT])


# One encoder for every document: `json.dumps` with options builds a new one each call. The
# documents are trees built from records (never a cycle), so the encoder keeps no marker of every
# container it enters (`check_circular`); the text is the same.
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=str, check_circular=False
)


def pack_json(value: Any) -> bytes:
    text = _ENCODER.encode(value)
    packer = _PRIMED.copy()
    return bytes([_CURRENT]) + packer.compress(text.encode()) + packer.flush()


def unpack_json(data: bytes) -> Any:
    dictionary = _DICTIONARIES[data[0]]
    unpacker = zlib.decompressobj(-15, zdict=dictionary)
    text = unpacker.decompress(bytes(data[1:])) + unpacker.flush()
    # Decoded as `json.loads` would decode these bytes (UTF-8: `pack_json` writes no BOM), but
    # without its encoding sniff, a fifth of the decode of a link's attributes, once per link
    # a full cycle reads (docs/performance.md, "The no-change cycle").
    return json.loads(text.decode("utf-8", "surrogatepass"))
