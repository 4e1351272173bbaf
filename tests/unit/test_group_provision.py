"""Group provisioning in whole cycles of the service, against the in-memory fakes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_cycle import World
from worker.domain.errors import StopSync
from worker.domain.groups import (
    GroupProvisioning,
    Nested,
    default_group_mappings,
    unique_name,
)
from worker.domain.health import DeletionThreshold
from worker.domain.job import JobSpec
from worker.domain.scope import ScopeSpec
from worker.ports import CreateGroup, DeleteGroup, FindGroups, PatchGroup
from worker.service.cycle import CycleService

pytestmark = pytest.mark.unit


class GroupWorld(World):
    def __init__(self, groups: tuple[str, ...] = ("sales",), **kwargs: Any) -> None:
        nested = kwargs.pop("nested", Nested.SKIP)
        scope = ScopeSpec(
            assigned_only=True, group_ids=groups, nested_groups=nested is Nested.FLATTEN
        )
        super().__init__(scope=scope, **kwargs)
        self.groups = GroupProvisioning(
            enabled=True, nested=nested, mappings=tuple(default_group_mappings())
        )

    def service(self) -> CycleService:
        base = super().service()
        spec = JobSpec(
            name="job",
            scope=self.scope,
            mappings=self.mappings,
            policy=self.policy,
            deletion_threshold=self.threshold,
            groups=self.groups,
        )
        return CycleService(
            spec,
            source=self.source,
            target=self.target,
            cursors=self.cursors,
            lock=self.lock,
            ledger=self.ledger,
            clock=base.clock,
        )

    def group(self, group_id: str, name: str, *members: str) -> None:
        self.source.group_attributes[group_id] = {"displayName": name, "description": "d"}
        self.source.groups.setdefault(group_id, set())
        for member in members:
            self.source.group_add(group_id, member)

    def member_mails(self, name: str) -> set[str]:
        gid, _ = self.target.group_named(name)
        return {self.target.users[u]["mail"] for u in self.target.group_members[gid]}

    def group_rows(self) -> list[Any]:
        return [e.outcome for e in self.ledger.log if e.outcome.object_type == "Group"]


def test_a_group_is_created_as_a_security_group_with_the_linked_users_as_members() -> None:
    w = GroupWorld()
    ann, ben = w.user("ann"), w.user("ben")
    w.group("sales", "Sales", ann, ben)

    result = w.run()

    assert result.counts["create"] == 3  # two users, one group
    gid, group = w.target.group_named("Sales")
    assert group == {
        "displayName": "Sales",
        "description": "d",
        "mailNickname": "Sales",
        "securityEnabled": True,
        "mailEnabled": False,
        "groupTypes": [],
        # its alternate key: found again if the link of this creation is ever lost
        "uniqueName": unique_name("job", "sales"),
    }
    assert w.member_mails("Sales") == {"ann@src.example", "ben@src.example"}
    (row,) = w.group_rows()
    assert (row.action.value, row.target_id, row.modified["members"].new) == ("create", gid, 2)
    # nothing new: nothing written
    writes = len(w.target.writes)
    w.run()
    assert len(w.target.writes) == writes


def test_members_follow_the_source_twenty_at_a_time() -> None:
    w = GroupWorld()
    people = [w.user(f"p{i:02d}") for i in range(45)]
    w.group("sales", "Sales", *people[:41])
    w.run()
    patches = [r for kind, _, r in w.target.writes if kind == "patch_group"]
    assert [len(p.add_members) for p in patches if isinstance(p, PatchGroup)] == [20, 20, 1]

    w.source.group_remove("sales", people[0])
    w.source.group_add("sales", people[44])
    w.run()
    assert w.member_mails("Sales") == {f"p{i:02d}@src.example" for i in (*range(1, 41), 44)}


def test_a_name_taken_by_someone_elses_group_is_skipped_until_it_is_free() -> None:
    w = GroupWorld(groups=("sales", "legal"))
    ann = w.user("ann")
    w.group("sales", "Sales", ann)
    w.group("legal", "Legal", ann)
    theirs = "theirs"
    w.target.groups[theirs] = {"displayName": "Legal"}
    w.target.group_members[theirs] = set()

    w.run()
    assert len([g for g in w.target.groups.values() if g["displayName"] == "Legal"]) == 1
    assert w.target.group_members[theirs] == set()
    skip = next(r for r in w.group_rows() if r.source_id == "legal")
    assert (skip.action.value, skip.status.value) == ("skip", "warning")
    assert [s.source_id for s in w.ledger.group_skips("job")] == ["legal"]

    w.target.groups[theirs]["displayName"] = "Legal (old)"  # the name is free
    w.run()
    assert w.member_mails("Legal") == {"ann@src.example"}
    assert w.ledger.group_skips("job") == []


def test_a_rename_onto_a_taken_name_is_held_and_the_rest_flows() -> None:
    w = GroupWorld()
    ann, ben = w.user("ann"), w.user("ben")
    w.group("sales", "Sales", ann)
    w.run()
    w.target.groups["theirs"] = {"displayName": "Sales EU"}
    w.target.group_members["theirs"] = set()
    w.source.group_attributes["sales"]["displayName"] = "Sales EU"
    w.source.group_add("sales", ben)

    w.run()

    _, group = w.target.group_named("Sales")
    assert w.member_mails("Sales") == {"ann@src.example", "ben@src.example"}
    row = w.group_rows()[-1]
    assert (row.action.value, row.status.value) == ("update", "warning")
    assert "rename held" in row.reason
    assert group["displayName"] == "Sales"
    assert group["mailNickname"] == "Sales"  # made from the name: it waits with the rename


def test_nested_groups_are_flattened_or_skipped() -> None:
    for nested, expected in ((Nested.FLATTEN, {"ann", "ben"}), (Nested.SKIP, {"ann"})):
        w = GroupWorld(nested=nested)
        ann, ben = w.user("ann"), w.user("ben")
        w.group("sales", "Sales", ann, "inner")
        w.group("inner", "Inner", ben)
        w.run()
        assert w.member_mails("Sales") == {f"{n}@src.example" for n in expected}, nested


def test_group_deletions_alone_are_held_over_the_threshold_until_allowed() -> None:
    w = GroupWorld(groups=("a", "b", "keep"), threshold=DeletionThreshold(count=1))
    ann = w.user("ann")
    for gid in ("a", "b", "keep"):
        w.group(gid, gid.upper(), ann)
    w.run()
    # two groups deleted in the source; ann stays in scope through the third: no user leaves
    del w.source.groups["a"], w.source.groups["b"]

    held = w.run()

    assert held.counts["staged_delete"] == 2
    assert held.deletion_check is not None
    assert held.deletion_check.held
    assert {"A", "B"} <= {g["displayName"] for g in w.target.groups.values()}
    assert w.ledger.job_state("job").in_quarantine

    from worker.service.admin import allow_deletes

    allow_deletes(w.ledger, "job")
    released = w.run(mode="incremental")

    assert released.counts["delete"] == 2
    assert {g["displayName"] for g in w.target.groups.values()} == {"KEEP"}
    assert [len(w.ledger.group_links("job"))] == [1]


def test_a_dry_run_plans_the_groups_and_writes_nothing() -> None:
    w = GroupWorld()
    ann = w.user("ann")
    w.group("sales", "Sales", ann)
    result = w.run(dry_run=True)
    rows = [r for r in result.outcome_rows() if r["objectType"] == "Group"]
    assert [(r["action"], r["sourceId"]) for r in rows] == [("create", "sales")]
    assert w.target.groups == {}
    assert w.ledger.group_links("job") == []


def test_a_group_deleted_in_the_target_by_hand_is_made_again() -> None:
    w = GroupWorld()
    ann = w.user("ann")
    w.group("sales", "Sales", ann)
    w.run()
    gone, _ = w.target.group_named("Sales")
    del w.target.groups[gone]

    w.run()

    again, _ = w.target.group_named("Sales")
    assert again != gone
    assert w.member_mails("Sales") == {"ann@src.example"}
    assert [g.target_id for g in w.ledger.group_links("job")] == [again]


def test_a_group_made_but_never_linked_is_linked_by_its_unique_name_not_made_twice() -> None:
    w = GroupWorld()
    ann = w.user("ann")
    w.group("sales", "Sales", ann)
    # A creation whose link was lost: the group is in the target with our uniqueName.
    w.target.groups["g-made"] = {"displayName": "Sales", "uniqueName": unique_name("job", "sales")}
    w.target.group_members["g-made"] = set()

    w.run()

    assert [gid for gid, g in w.target.groups.items() if g["displayName"] == "Sales"] == ["g-made"]
    assert w.member_mails("Sales") == {"ann@src.example"}
    (row,) = w.group_rows()
    assert (row.action.value, row.status.value, row.target_id) == ("create", "success", "g-made")


def test_a_same_named_group_without_our_unique_name_stays_someone_elses() -> None:
    w = GroupWorld()
    w.group("sales", "Sales", w.user("ann"))
    w.target.groups["g-theirs"] = {"displayName": "Sales", "uniqueName": "their-own"}
    w.target.group_members["g-theirs"] = set()

    w.run()

    assert list(w.target.groups) == ["g-theirs"]
    (row,) = w.group_rows()
    assert (row.action.value, row.status.value) == ("skip", "warning")


def test_unique_names_are_stable_short_and_per_job() -> None:
    name = unique_name("a-to-b", "55555555-5555-4555-8555-555555555555")
    assert name == unique_name("a-to-b", "55555555-5555-4555-8555-555555555555")
    assert name != unique_name("a-to-c", "55555555-5555-4555-8555-555555555555")
    assert name.startswith("tenant-sync-")
    assert len(name) <= 64
    assert name.replace("-", "").isalnum()
    assert name == name.lower()


@pytest.mark.parametrize(
    ("refused", "lacks"),
    [
        (FindGroups, "the target app lacks Group.ReadWrite.All, to read groups"),
        (CreateGroup, "the target app lacks Group.ReadWrite.All (or Group.Create)"),
        (PatchGroup, "the target app lacks GroupMember.ReadWrite.All (or Group.ReadWrite.All)"),
    ],
)
def test_a_refused_group_request_names_the_permission_the_target_app_lacks(
    refused: type, lacks: str
) -> None:
    w = GroupWorld()
    ann = w.user("ann")
    w.group("sales", "Sales", ann)
    w.target.denied_requests.add(refused)

    w.run()

    (row,) = w.group_rows()
    assert row.status.value == "failure"
    assert row.reason.startswith(lacks), row.reason
    assert "grant admin consent (`tenant-sync check job` tests it)" in row.reason
    assert row.error_code == "Authorization_RequestDenied"  # Graph's own answer is kept


def test_a_refused_group_deletion_names_group_readwrite_all() -> None:
    w = GroupWorld()
    ann = w.user("ann")
    w.group("sales", "Sales", ann)
    w.run()
    del w.source.groups["sales"]
    w.target.denied_requests.add(DeleteGroup)

    w.run()

    row = next(r for r in w.group_rows() if r.action.value == "delete")
    assert row.status.value == "failure"
    assert row.reason.startswith("the target app lacks Group.ReadWrite.All, to delete groups")


def test_a_refused_source_group_read_stops_the_cycle_naming_the_permission() -> None:
    w = GroupWorld()
    ann = w.user("ann")
    w.group("sales", "Sales", ann)

    def refused(group_id: str, select: Any) -> Any:
        raise StopSync(
            "Insufficient privileges to complete the operation. (GET /groups/sales -> HTTP 403)",
            code="Authorization_RequestDenied",
            status=403,
        )

    w.source.get_group = refused  # type: ignore[method-assign]
    result = w.run()

    assert "the source app lacks Group.Read.All (or GroupMember.Read.All)" in str(result.error), (
        result
    )


def test_a_linked_user_gone_from_the_target_holds_back_no_other_member() -> None:
    w = GroupWorld()
    ann, ben = w.user("ann"), w.user("ben")
    w.group("sales", "Sales", ann)
    w.run()
    gid, _ = w.target.group_named("Sales")
    # ann's target user deleted by hand (and so out of the group); ben joins in the source
    (gone,) = [u for u, a in w.target.users.items() if a.get("mail") == "ann@src.example"]
    del w.target.users[gone]
    w.target.group_members[gid].discard(gone)
    w.source.group_add("sales", ben)

    w.run()

    assert w.member_mails("Sales") == {"ben@src.example"}
    row = w.group_rows()[-1]
    assert (row.action.value, row.status.value) == ("update", "warning")
    assert gone in row.reason
    assert ann in row.reason
    assert (
        row.steps[-1].detail == "1 member(s) added, 0 removed, 1 left out (no longer in the target)"
    )
    assert (row.modified["members"].old, row.modified["members"].new) == (0, 1)


def test_two_swapped_names_are_swapped_in_one_cycle_with_one_row_each() -> None:
    w = GroupWorld(groups=("a", "b"))
    ann = w.user("ann")
    w.group("a", "Top", ann)
    w.group("b", "Mid", ann)
    w.run()
    top, _ = w.target.group_named("Top")
    mid, _ = w.target.group_named("Mid")
    w.source.group_attributes["a"]["displayName"] = "Mid"
    w.source.group_attributes["b"]["displayName"] = "Top"
    before = len(w.group_rows())

    w.run()

    assert w.target.group_named("Mid")[0] == top
    assert w.target.group_named("Top")[0] == mid
    rows = w.group_rows()[before:]
    assert sorted((r.source_id, r.modified["displayName"].old) for r in rows) == [
        ("a", "Top"),
        ("b", "Mid"),
    ]
    assert all(r.status.value == "success" for r in rows)


def test_a_group_an_interrupted_creation_left_is_deleted_once_its_source_is_gone() -> None:
    w = GroupWorld(groups=("sales", "keep"))
    ann = w.user("ann")
    w.group("keep", "Keep", ann)
    w.target.groups["g-made"] = {"displayName": "Sales", "uniqueName": unique_name("job", "sales")}
    w.target.group_members["g-made"] = set()

    result = w.run()

    assert "g-made" not in w.target.groups
    assert result.counts["delete"] == 1
    rows = [r for r in w.group_rows() if r.source_id == "sales"]
    assert [(r.action.value, r.target_id) for r in rows] == [("delete", "g-made")]


def test_member_writes_answered_500_are_not_reported_as_made() -> None:
    w = GroupWorld()
    ann, ben = w.user("ann"), w.user("ben")
    w.group("sales", "Sales", ann)
    w.run()
    w.source.group_add("sales", ben)
    w.target.failing_requests.add(PatchGroup)

    w.run()

    assert w.member_mails("Sales") == {"ann@src.example"}
    row = w.group_rows()[-1]
    assert (row.action.value, row.status.value) == ("update", "failure")
    assert row.steps[-1].detail == "0 member(s) added, 0 removed, 1 failed"
    assert "members" not in row.modified
