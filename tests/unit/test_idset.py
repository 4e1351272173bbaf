"""IdSet: a full cycle's target ids, exact, in about 16 bytes each (docs/performance.md)."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest

from worker.adapters.state.compact import pack_ids, split_ids, unpack_ids
from worker.domain.idset import IdSet

pytestmark = pytest.mark.unit


def test_it_answers_exactly_like_a_set_for_guids_and_other_ids() -> None:
    guids = [str(uuid.uuid4()) for _ in range(3000)]
    other = ["u1", "x" * 15, "ABCDEF00-0000-0000-0000-000000000000", ""]
    ids = IdSet(guids[:1000])
    ids.update(guids[1000:2000] + other + guids[:10])  # pages may repeat an id

    for value in guids[:2000] + other:
        assert value in ids
    for value in [*guids[2000:], "u2", "abcdef00-0000-0000-0000-000000000000", 7]:
        assert value not in ids
    assert len(ids) == 2000 + len(other)
    assert set(ids) == set(guids[:2000] + other)


def test_it_answers_exactly_for_a_large_bucket() -> None:
    # Ids sharing a first byte, more than a bucket bisected whole holds, the second bytes at
    # both ends among them (a large tenant's bucket, looked up by its second byte).
    def guid(second: int) -> str:
        return f"ab{second:02x}" + str(uuid.uuid4())[4:]

    seconds = [0, 0, 1, 127, 255, 255] + [n % 256 for n in range(2000)]
    present = [guid(s) for s in seconds]
    absent = [guid(s) for s in (0, 1, 2, 128, 254, 255) for _ in range(50)]
    ids = IdSet(present)

    assert all(value in ids for value in present)
    assert not any(value in ids for value in absent)
    assert len(ids) == len(set(present))


def test_it_keeps_a_guid_in_about_16_bytes() -> None:
    guids = [str(uuid.uuid4()) for _ in range(50_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ids = IdSet(guids)
        assert guids[123] in ids
        per_id = (tracemalloc.get_traced_memory()[0] - before) / len(guids)
    finally:
        tracemalloc.stop()
    assert per_id < 20  # a set of the strings: about 120 bytes an id


def test_a_page_of_packed_ids_goes_in_without_its_text() -> None:
    # The seen ids of a full cycle's page, as the SQL state keeps them (compact.pack_ids).
    guids = [str(uuid.uuid4()) for _ in range(500)]
    other = ["u1", "x" * 15, "ABCDEF00-0000-0000-0000-000000000000", "é" * 40]
    packed = pack_ids(guids[:250] + other + guids[250:])
    assert len(packed) == 4 + 16 * 500 + sum(2 + len(o.encode()) for o in other)
    assert sorted(unpack_ids(packed)) == sorted(guids + other)

    keys, texts = split_ids(packed)
    ids = IdSet()
    ids.update_keys(keys)
    ids.update(texts)
    assert set(ids) == set(guids + other)
    assert ids.has_key(uuid.UUID(guids[7]).bytes)
    assert not ids.has_key(uuid.uuid4().bytes)
    assert split_ids(pack_ids([])) == (b"", [])


def test_an_id_comes_back_from_the_ledger_exactly_as_it_went_in() -> None:
    from worker.adapters.state.compact import pack_id, unpack_id

    guids = [str(uuid.uuid4()) for _ in range(2000)] + [
        str(uuid.UUID(int=0)),
        str(uuid.UUID(int=2**128 - 1)),
    ]
    others = ["u1", "x" * 15, "ABCDEF00-0000-0000-0000-000000000000", "", "é" * 20]
    for value in guids + others:
        assert unpack_id(pack_id(value)) == value
    assert unpack_ids(pack_ids(guids + others)) == guids + [o for o in others]
    for value in guids:
        assert len(pack_id(value)) == 16  # a GUID is kept as its 16 bytes
