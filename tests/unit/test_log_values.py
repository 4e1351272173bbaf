"""A provisioning-log row as the SQL ledger packs it, for its bulk insert and its rewrite in place."""

from __future__ import annotations

import uuid

import pytest

from worker.adapters.state.compact import pack_id, unpack_id
from worker.adapters.state.sql_models import LogRow
from worker.adapters.state.sql_rows import _log_row, _new_change_id
from worker.domain.model import Action, Change, ObjectOutcome, Status, Step
from worker.domain.records import modified_record, outcome_record, step_records

pytestmark = pytest.mark.unit


def test_a_new_change_id_is_a_random_version_4_uuid_packed() -> None:
    ids = {_new_change_id() for _ in range(1000)}
    assert len(ids) == 1000
    for key in list(ids)[:50]:
        text = unpack_id(key)
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
        assert pack_id(text) == key


def test_steps_and_modified_properties_are_the_records_own() -> None:
    outcome = ObjectOutcome(
        source_id="s",
        action=Action.CREATE,
        status=Status.SUCCESS,
        steps=[Step("import", Status.SUCCESS, "read from the source")],
        modified={"displayName": Change(None, "Ada")},
    )
    record = outcome_record(outcome)
    assert step_records(outcome) == record["steps"]
    assert modified_record(outcome) == record["modifiedProperties"]
    assert record["modifiedProperties"] == {"displayName": {"old": None, "new": "Ada"}}


def test_the_one_row_builder_gives_every_column_of_the_log_but_its_row_id() -> None:
    """New rows and rows rewritten in place take their columns from `_log_row` alone: a column
    added to LogRow must be added there, or neither path writes it."""
    row = _log_row("job", pack_id("run"), ObjectOutcome("s", Action.CREATE, Status.SUCCESS), None)
    assert set(row) == set(LogRow.__table__.columns.keys()) - {"id"}
