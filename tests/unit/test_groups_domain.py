"""Group provisioning's pure decisions (worker/domain/groups.py)."""

from __future__ import annotations

import pytest

from worker.domain.groups import (
    MEMBERS_PER_PATCH,
    GroupLink,
    MemberWrites,
    attribute_changes,
    departures,
    desired_attributes,
    group_skips,
    held_group_deletions,
    job_hash,
    mail_nickname,
    member_changes,
    name_collision,
    unique_name,
    wanted_members,
)

pytestmark = pytest.mark.unit


def test_the_target_group_is_always_a_static_security_group_with_a_nickname() -> None:
    mapped = {"displayName": "Sales & Marketing", "mailEnabled": True, "groupTypes": ["Unified"]}
    desired = desired_attributes(mapped, "0b1c0000-aaaa")
    # the kind is not the mappings' to choose: it is laid on at creation
    assert desired == {"displayName": "Sales & Marketing", "mailNickname": "SalesMarketing"}
    assert mail_nickname("", "0b1c0000-aaaa") == "group-0b1c0000"
    assert (
        desired_attributes({"displayName": "A", "mailNickname": "a1"}, "x")["mailNickname"] == "a1"
    )


def test_only_attributes_that_changed_since_last_written_are_patched() -> None:
    last = {"displayName": "Sales", "description": "old", "mailNickname": "Sales"}
    desired = {"displayName": "Sales EU", "description": "old", "mailNickname": "Sales"}
    assert attribute_changes(last, desired) == {"displayName": ("Sales", "Sales EU")}
    assert attribute_changes(desired, desired) == {}


def test_a_name_held_by_a_group_tenant_sync_did_not_create_is_a_collision() -> None:
    assert name_collision("Legal", [], None) is None
    assert name_collision("Legal", ["ours"], "ours") is None  # our own group keeps its name
    reason = name_collision("Legal", ["ours", "theirs"], "ours")
    assert reason is not None
    assert "'Legal'" in reason
    assert "theirs" in reason
    assert "did not create" in reason


def test_a_name_held_by_another_group_of_the_same_job_says_so() -> None:
    # Two source groups map to one name: the second is skipped, and the reason names the first.
    reason = name_collision("Twin", ["made-for-g1"], None, {"made-for-g1": "g1"})
    assert reason is not None
    assert "did not create" not in reason
    assert "this job provisions for source group g1" in reason


def test_members_are_the_linked_users_of_the_source_members() -> None:
    links = {"s1": "t1", "s2": "t2", "s3": "t3"}
    # s4 has no link (out of scope, or not provisioned yet); g is a nested group id
    wanted = wanted_members({"s1", "s2", "s4", "g"}, links, {"g"})
    assert wanted == {"t1", "t2"}
    changes = member_changes({"t2", "t9"}, wanted)
    assert (changes.add, changes.remove) == (("t1",), ("t9",))
    assert changes.describe() == "1 member(s) added, 1 removed"
    assert member_changes({"t1"}, {"t1"}).empty


def test_additions_go_at_most_twenty_to_a_request() -> None:
    many = {f"t{i:02d}" for i in range(45)}
    batches = member_changes(set(), many).add_batches()
    assert [len(b) for b in batches] == [MEMBERS_PER_PATCH, MEMBERS_PER_PATCH, 5]
    assert sorted(m for b in batches for m in b) == sorted(many)


def test_groups_out_of_scope_or_gone_from_the_source_depart() -> None:
    links = [GroupLink("job", g, "t-" + g) for g in ("c", "a", "b")]
    found = departures(links, in_scope={"a", "b"}, gone={"b"})
    assert [(link.source_id, why) for link, why in found] == [
        ("b", "source group deleted"),
        ("c", "source group removed from scope.groups"),
    ]


def test_a_group_is_skipped_while_its_newest_row_says_so() -> None:
    rows = [  # newest first
        ("g1", "Legal", "skip", "warning", "name taken"),
        ("g2", "Sales", "create", "success", ""),
        ("g2", "Sales", "skip", "warning", "name taken"),
        ("g3", "Sync", "skip", "skipped", "no change"),
    ]
    assert [(s.source_id, s.reason) for s in group_skips(rows)] == [("g1", "name taken")]


def test_held_group_deletions_are_those_still_linked_whose_newest_row_held_them() -> None:
    rows = [  # newest first
        ("g1", "Legal", "staged_delete", "warning", "over the threshold"),
        ("g2", "Sales", "delete", "success", ""),
        ("g2", "Sales", "staged_delete", "warning", "over the threshold"),
        ("g3", "Sync", "staged_delete", "warning", "over the threshold"),
        ("g4", "Old", "skip", "warning", "name taken"),
    ]
    skips = group_skips(rows)
    assert [(s.source_id, s.held) for s in skips] == [("g1", True), ("g3", True), ("g4", False)]
    links = [GroupLink("job", g, "t-" + g) for g in ("g1", "g4")]  # g3 no longer linked
    assert held_group_deletions(skips, links) == 1


def test_a_name_held_by_another_jobs_group_says_so() -> None:
    theirs = unique_name("other-job", "g9")
    reason = name_collision("Team", ["t1"], None, {}, {"t1": theirs})
    assert reason is not None
    assert "another tenant-sync job" in reason
    assert theirs in reason
    assert job_hash("other-job") in reason
    assert "did not create" not in reason
    # a group with no uniqueName of ours is still someone else's
    plain = name_collision("Team", ["t1"], None, {}, {"t1": ""})
    assert plain is not None
    assert "did not create" in plain


def test_member_writes_say_what_was_confirmed_not_what_was_planned() -> None:
    planned = member_changes({"a", "b"}, {"a", "c", "d", "e"})
    writes = MemberWrites(planned, added=("c",), removed=("b",), missing=("d",))
    assert (
        writes.describe()
        == "1 member(s) added, 1 removed, 1 left out (no longer in the target), 1 failed"
    )
    assert writes.count_after(2) == 2
    assert MemberWrites(planned).describe() == "0 member(s) added, 0 removed, 4 failed"
    assert not MemberWrites(planned).done


def test_a_change_made_with_a_held_rename_keeps_the_group_listed() -> None:
    rows = [  # newest first
        ("g1", "Sales", "update", "warning", "rename held: the name is taken"),
        ("g2", "Sync", "update", "success", ""),
        ("g3", "Old", "delete", "warning", "gone"),
    ]
    assert [(s.source_id, s.held) for s in group_skips(rows)] == [("g1", False)]
