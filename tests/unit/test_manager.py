"""The manager reference's decisions: what a source read says, and what to write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.adapters.graph.directory import _source_user, _user_page
from worker.config import Config, ConfigError, load_config
from worker.domain.manager import (
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
from worker.domain.model import MANAGER, Link, LinkState, SourceUser
from worker.service.pipeline import PageOutcome

pytestmark = pytest.mark.unit

MAPPING = "{target: manager, source: manager}"


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


# configuration ---------------------------------------------------------------------------------

CONFIG = """
tenants:
  contoso:
    tenant_id: 0b1c0000-0000-4000-8000-000000000001
    client_id: 5e6f0000-0000-4000-8000-000000000001
    client_secret: x
  fabrikam:
    tenant_id: 0b1c0000-0000-4000-8000-000000000002
    client_id: 5e6f0000-0000-4000-8000-000000000002
    client_secret: y
jobs:
  a-to-b:
    source: contoso
    target: fabrikam
    mappings:
"""


def load(tmp_path: Path, *mappings: str) -> Config:
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(CONFIG + "".join(f"      - {m}\n" for m in mappings))
    return load_config(path, env={})


def test_the_manager_reference_is_a_flag_of_the_job_not_an_attribute(tmp_path: Path) -> None:
    job = load(tmp_path, "{target: displayName, source: displayName}", MAPPING).job("a-to-b")
    assert job.spec.manager
    assert [m.target for m in job.mappings] == ["displayName"]
    assert "manager" in job.spec.select


def test_the_manager_reference_alone_keeps_the_default_mappings(tmp_path: Path) -> None:
    job = load(tmp_path, MAPPING).job("a-to-b")
    assert job.spec.manager
    assert "employeeId" in [m.target for m in job.mappings]


def test_adding_the_manager_reference_changes_the_fingerprint(tmp_path: Path) -> None:
    plain = load(tmp_path, "{target: displayName, source: displayName}").job("a-to-b")
    managed = load(tmp_path, "{target: displayName, source: displayName}", MAPPING).job("a-to-b")
    assert not plain.spec.manager
    assert plain.spec.fingerprint != managed.spec.fingerprint


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        (
            '{target: manager, expression: "[manager]"}',
            "mappings[0].target: manager is a reference to another user",
        ),
        (
            "{target: manager, source: manager, apply: on_create}",
            "mappings[0].target: manager is a reference to another user",
        ),
        (
            "{target: manager, source: displayName}",
            "mappings[0].target: manager is a reference to another user",
        ),
        (
            "{target: department, source: manager}",
            "mappings[0].source: manager is a reference to another user, not an attribute: "
            "it cannot be mapped to 'department'",
        ),
        (
            '{target: department, expression: "Append([manager], \\"x\\")"}',
            "mappings[0].expression: manager is a reference to another user, not an attribute",
        ),
    ],
)
def test_other_uses_of_manager_are_refused_by_name(
    tmp_path: Path, mapping: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, mapping)
    (found,) = caught.value.problems
    assert found.startswith(f"jobs.a-to-b.{problem}")
    assert "{target: manager, source: manager}" in found


# fanned-out pages ------------------------------------------------------------------------------


def test_a_page_outcome_carries_its_unresolved_references_between_workers() -> None:
    outcome = PageOutcome(counts={"create": 1}, managers={"s1": "s-boss", "s2": None})
    again = PageOutcome.from_json(json.loads(json.dumps(outcome.to_json())))
    assert again.managers == {"s1": "s-boss", "s2": None}


# reading Graph's answers -----------------------------------------------------------------------


def test_manager_at_delta_becomes_the_manager_attribute() -> None:
    user = "#microsoft.graph.user"
    page = _user_page(
        {
            "value": [
                {"id": "a", "manager@delta": [{"@odata.type": user, "id": "boss"}]},
                {
                    "id": "b",
                    "manager@delta": [
                        {"@odata.type": user, "id": "old", "@removed": {"reason": "deleted"}}
                    ],
                },
                {"id": "c", "manager@delta": []},
                {"id": "d", "displayName": "D"},
            ],
            "@odata.deltaLink": "https://graph/delta?$deltatoken=x",
        }
    )
    got = {u.id: wanted_manager(u, complete=False) for u in page.items if isinstance(u, SourceUser)}
    assert got == {"a": "boss", "b": None, "c": None, "d": UNKNOWN}


def test_a_single_read_with_the_manager_expanded_always_says_it() -> None:
    with_boss = _source_user({"id": "a", "manager": {"id": "boss"}}, manager=True)
    without = _source_user({"id": "b"}, manager=True)
    assert with_boss.attributes["manager"] == "boss"
    assert without.attributes["manager"] is None
    assert "manager" not in _source_user({"id": "c"}, manager=False).attributes
