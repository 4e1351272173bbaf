"""The sandbox's GUIDs are random version-4 GUID strings, as `str(uuid.uuid4())` gives."""

from __future__ import annotations

import uuid

import pytest

from tenant_sync_sandbox.ids import new_guid

pytestmark = pytest.mark.unit


def test_new_guids_are_canonical_random_v4_guids() -> None:
    made = [new_guid() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for guid in made:
        parsed = uuid.UUID(guid)
        assert str(parsed) == guid  # lower case, hyphenated, 36 characters
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    # every random hex digit takes many values (not a counter or a constant)
    assert len({g[0] for g in made}) == 16
    assert len({g[-1] for g in made}) == 16
