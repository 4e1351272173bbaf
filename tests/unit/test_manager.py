"""The manager reference's decisions: what a source read says, and what to write."""

from __future__ import annotations

import pytest

from worker.domain.manager import (
    MANAGER,
    UNKNOWN,
    ClearManager,
    KeepManager,
    OutOfScope,
    SetManager,
    Unresolved,
    decide_manager,
    last_written,
    wanted_manager,
    with_manager,
)
from worker.domain.model import Link, LinkState, SourceUser

pytestmark = pytest.mark.unit


def link(source: str, target: str, state: LinkState = LinkState.ACTIVE, **attrs: object) -> Link:
    return Link("job", source, target, state, dict(attrs))


BOSS = link("s-boss", "t-boss")


def test_a_delta_page_that_does_not_name_the_manager_says_nothing() -> None:
    user = SourceUser("s1", {"displayName": "Ann"})
    assert wanted_manager(user, complete=False) is UNKNOWN
    assert wanted_manager(user, complete=True) is None


def test_a_named_or_removed_manager_is_known_in_any_read() -> None:
    assert wanted_manager(SourceUser("s1", {MANAGER: "s-boss"}), complete=False) == "s-boss"
    assert wanted_manager(SourceUser("s1", {MANAGER: None}), complete=False) is None


def test_a_linked_manager_is_set_once() -> None:
    decision = decide_manager("s-boss", BOSS, None, final=False)
    assert decision == SetManager("s-boss", "t-boss", previous=None)
    assert decide_manager("s-boss", BOSS, "t-boss", final=False) == KeepManager()


def test_a_changed_manager_is_set_again() -> None:
    decision = decide_manager("s-boss", BOSS, "t-old", final=False)
    assert decision == SetManager("s-boss", "t-boss", previous="t-old")


def test_a_disabled_manager_can_still_be_referenced() -> None:
    disabled = link("s-boss", "t-boss", LinkState.DISABLED)
    assert isinstance(decide_manager("s-boss", disabled, None, final=True), SetManager)


def test_a_removed_manager_is_cleared_only_if_one_was_written() -> None:
    assert decide_manager(None, None, "t-boss", final=False) == ClearManager(previous="t-boss")
    assert decide_manager(None, None, None, final=False) == KeepManager()


def test_an_unlinked_manager_waits_for_the_end_of_the_cycle() -> None:
    assert decide_manager("s-boss", None, None, final=False) == Unresolved("s-boss")
    deleted = link("s-boss", "t-boss", LinkState.SOFT_DELETED)
    assert decide_manager("s-boss", deleted, None, final=False) == Unresolved("s-boss")


def test_an_unlinked_manager_at_the_end_is_out_of_scope() -> None:
    assert decide_manager("s-boss", None, None, final=True) == OutOfScope("s-boss")
    # A reference written before points at someone the source no longer names: removed.
    assert decide_manager("s-boss", None, "t-old", final=True) == ClearManager(
        previous="t-old", manager_source_id="s-boss"
    )


def test_the_link_keeps_what_was_last_written() -> None:
    user = link("s1", "t1", displayName="Ann")
    user.attributes = with_manager(user.attributes, "t-boss")
    assert last_written(user) == "t-boss"
    assert user.attributes["displayName"] == "Ann"
    user.attributes = with_manager(user.attributes, None)
    assert last_written(user) is None
    assert MANAGER not in user.attributes
