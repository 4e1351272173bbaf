"""How actions and statuses are spelled in the provisioning log and typed on the command line."""

from __future__ import annotations

import pytest

from worker.domain.model import Action, Status

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["stagedDelete", "StagedDelete", "staged_delete", "staged-delete"])
def test_a_staged_delete_is_found_however_it_is_typed(text: str) -> None:
    assert Action.from_text(text) is Action.STAGED_DELETE


def test_the_log_spells_staged_deletes_as_entra_does_and_the_rest_as_the_counts() -> None:
    assert Action.STAGED_DELETE.log_name == "stagedDelete"
    assert [a.log_name for a in Action if a is not Action.STAGED_DELETE] == [
        a.value for a in Action if a is not Action.STAGED_DELETE
    ]


def test_unknown_words_name_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown action 'purge' \(one of: create, .*stagedDelete"
    ):
        Action.from_text("purge")
    with pytest.raises(ValueError, match=r"unknown status 'ok' \(one of: success, failure"):
        Status.from_text("ok")
    assert Status.from_text("SKIP") is Status.SKIPPED
