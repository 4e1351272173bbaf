"""Whole cycles of the service against in-memory fakes of the ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.fakes import CrashAfter, FakeCursors, FakeLedger, FakeLock, FakeSource, FakeTarget
from worker.domain.errors import NotFound
from worker.domain.health import DeletionThreshold
from worker.domain.job import Deprovision, JobPolicy, JobSpec
from worker.domain.mapping import MappingSpec, default_mappings
from worker.domain.model import LinkState
from worker.domain.scope import Clause, Operator, ScopeSpec
from worker.ports import AlreadyRunning
from worker.service.cycle import CycleService

pytestmark = pytest.mark.unit


class World:
    def __init__(
        self,
        *,
        scope: ScopeSpec | None = None,
        mappings: Sequence[MappingSpec] | None = None,
        policy: JobPolicy | None = None,
        page_size: int = 3,
        threshold: DeletionThreshold | None = None,
    ) -> None:
        self.source = FakeSource(page_size=page_size)
        self.target = FakeTarget()
        self.ledger = FakeLedger()
        self.cursors = FakeCursors()
        self.lock = FakeLock()
        self.scope = scope or ScopeSpec()
        self.mappings = tuple(mappings or default_mappings())
        self.policy = policy or JobPolicy()
        self.threshold = threshold or DeletionThreshold()
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.ledger.clock = lambda: self.now

    def service(self) -> CycleService:
        spec = JobSpec(
            name="job",
            scope=self.scope,
            mappings=self.mappings,
            policy=self.policy,
            deletion_threshold=self.threshold,
        )
        return CycleService(
            spec,
            source=self.source,
            target=self.target,
            cursors=self.cursors,
            lock=self.lock,
            ledger=self.ledger,
            clock=lambda: self.now,
        )

    def run(self, *, dry_run: bool = False, **kwargs: Any) -> Any:
        from worker.adapters.dryrun import dry_run_cycle

        service = self.service()
        return (dry_run_cycle(service) if dry_run else service).run(**kwargs)

    def user(self, name: str, **attrs: Any) -> str:
        attrs.setdefault("mail", f"{name}@src.example")
        return self.source.add(
            userPrincipalName=f"{name}@src.onmicrosoft.com",
            displayName=name.title(),
            givenName=name.title(),
            **attrs,
        )

    def target_by_mail(self, mail: str) -> list[dict[str, Any]]:
        return [u for u in self.target.users.values() if u.get("mail") == mail]


def test_full_cycle_creates_one_b2b_user_per_internal_member() -> None:
    w = World()
    w.user("ann", department="Sales")
    w.user("ben", mail=None)
    w.source.add(userPrincipalName="guest_x.com#EXT#@src.onmicrosoft.com", mail="g@x.com")
    w.source.add(userPrincipalName="visitor@src.onmicrosoft.com", mail="v@x.com", userType="Guest")

    result = w.run()

    assert result.mode == "full"
    assert result.counts["create"] == 2
    assert result.counts["skip"] == 2
    assert len(w.target.users) == 2
    ann = w.target_by_mail("ann@src.example")[0]
    assert ann["department"] == "Sales"
    assert ann["displayName"] == "Ann"
    assert ann["showInAddressList"] is True
    assert ann["userType"] == "Member"
    assert "userPrincipalName" not in [
        k for _, _, body in w.target.writes if isinstance(body, dict) for k in body
    ]
    # no mail: the invitation goes to the UPN
    assert w.target_by_mail("ben@src.onmicrosoft.com")


def test_incremental_cycle_without_changes_writes_nothing() -> None:
    w = World()
    w.user("ann")
    w.run()
    writes = len(w.target.writes)

    result = w.run()

    assert result.mode == "incremental"
    assert sum(result.counts.values()) == 0
    assert len(w.target.writes) == writes


def test_rename_patches_only_the_changed_attributes() -> None:
    w = World()
    ann = w.user("ann", jobTitle="Analyst")
    w.run()
    w.source.update(ann, displayName="Ann Renamed", jobTitle="Analyst")

    result = w.run()

    assert result.counts["update"] == 1
    assert w.target.writes[-1][0] == "patch"
    assert w.target.writes[-1][2] == {"displayName": "Ann Renamed"}


def test_source_disable_is_an_update_that_disables() -> None:
    w = World()
    ann = w.user("ann")
    w.run()
    w.source.update(ann, accountEnabled=False)

    result = w.run()

    assert (
        result.counts["update"] == 1
    )  # docs/architecture.md: an update, not a delete (nor a deprovisioning)
    assert result.counts["disable"] == 0
    assert result.counts["delete"] == 0
    assert w.target_by_mail("ann@src.example")[0]["accountEnabled"] is False


def test_deleted_source_user_is_soft_deleted_then_restored_with_the_same_id() -> None:
    w = World()
    ann = w.user("ann")
    w.run()
    (target_id,) = w.target.users
    saved = dict(w.source.users[ann])
    w.source.delete(ann)

    deleted = w.run()

    assert deleted.counts["delete"] == 1
    assert target_id in w.target.deleted
    w.source.add(id=ann, **saved)

    restored = w.run()

    assert restored.counts["restore"] == 1
    assert target_id in w.target.users
    assert len(w.target.users) == 1


def test_leaving_scope_deprovisions_unless_out_of_scope_deletions_are_skipped() -> None:
    scope = ScopeSpec(filters=((Clause("department", Operator.EQUALS, "Sales"),),))
    w = World(scope=scope)
    ann = w.user("ann", department="Sales")
    w.run()
    w.source.update(ann, department="Legal")

    result = w.run()

    assert result.counts["delete"] == 1
    assert not w.target.users

    kept = World(scope=scope, policy=JobPolicy(skip_out_of_scope_deletions=True))
    ben = kept.user("ben", department="Sales")
    kept.run()
    kept.source.update(ben, department="Legal")
    assert kept.run().counts["delete"] == 0
    assert len(kept.target.users) == 1


def test_deprovision_disable_keeps_the_user_disabled_and_reenables_it() -> None:
    scope = ScopeSpec(filters=((Clause("department", Operator.EQUALS, "Sales"),),))
    w = World(scope=scope, policy=JobPolicy(deprovision=Deprovision.DISABLE))
    ann = w.user("ann", department="Sales")
    w.run()
    w.source.update(ann, department="Legal")

    assert w.run().counts["disable"] == 1
    assert w.target_by_mail("ann@src.example")[0]["accountEnabled"] is False
    w.source.update(ann, department="Sales")

    assert w.run().counts["update"] == 1
    assert w.target_by_mail("ann@src.example")[0]["accountEnabled"] is True


def test_assigned_scope_follows_group_membership() -> None:
    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("g1",)))
    ann = w.user("ann")
    ben = w.user("ben")
    w.source.group_add("g1", ann)
    assert w.run().counts["create"] == 1
    # Only the membership changes: neither user's attributes do.
    w.source.group_add("g1", ben)
    w.source.group_remove("g1", ann)

    result = w.run()

    assert result.counts["create"] == 1
    assert result.counts["delete"] == 1
    assert [u["mail"] for u in w.target.users.values()] == ["ben@src.example"]


def test_explicit_user_ids_are_in_scope_without_groups() -> None:
    w = World()
    ann = w.user("ann")
    w.user("ben")
    w.scope = ScopeSpec(assigned_only=True, user_ids=frozenset({ann}))

    assert w.run().counts["create"] == 1
    assert w.target_by_mail("ann@src.example")


def test_existing_target_user_is_matched_not_duplicated() -> None:
    w = World()
    w.user("ann")
    existing = w.target.add_existing(mail="ann@src.example", displayName="Old Name")

    result = w.run()

    assert result.counts["update"] == 1
    assert not [write for write in w.target.writes if write[0] == "invite"]
    assert list(w.target.users) == [existing]
    assert w.target.users[existing]["displayName"] == "Ann"


def test_ambiguous_match_is_a_failure_and_creates_nothing() -> None:
    w = World()
    w.user("ann")
    w.target.add_existing(mail="ann@src.example")
    w.target.add_existing(mail="ann@src.example")

    result = w.run()

    assert result.counts["failure"] == 1
    assert len(w.target.users) == 2
    assert not w.ledger.links


@pytest.mark.parametrize("page_size", [3, 1], ids=["same page", "pages of their own"])
def test_two_source_users_sharing_a_mail_never_share_a_target_user(page_size: int) -> None:
    # In one page both are invited in the same round and the target answers both with one
    # user; on pages of their own the second matches the first's guest by mail.
    w = World(page_size=page_size)
    names = {
        w.user(name, mail="shared@src.example", jobTitle=f"{name}'s job"): name
        for name in ("fay", "gus")
    }
    if page_size > 1:  # a dry run plans the same (it cannot see across pages: nothing linked)
        planned = w.run(dry_run=True)
        assert (planned.counts["create"], planned.counts["failure"]) == (1, 1)

    first = w.run()

    assert (first.counts["create"], first.counts["failure"]) == (1, 1)
    ((_, winner),) = w.ledger.links  # whichever the source listed first
    (loser,) = set(names) - {winner}
    (guest_id,) = w.target.users
    guest = w.target.users[guest_id]
    assert (guest["displayName"], guest["jobTitle"]) == (
        names[winner].title(),
        f"{names[winner]}'s job",
    )
    (failed,) = [o for o in first.outcomes if o.source_id == loser]
    assert failed.error_code == "AmbiguousMatch"
    assert f"target user {guest_id} is already linked to source user" in failed.reason
    assert f"{names[winner]}@src.onmicrosoft.com ({winner})" in failed.reason
    assert failed.target_id is None
    assert not [x for x in w.target.writes if f"{names[loser]}'s job" in str(x[2])]
    assert set(w.ledger.escrows_for("job", names)) == {loser}

    # Again in a full cycle: nobody is linked to the guest anew, its attributes stay the same.
    w.target.writes.clear()
    second = w.run(mode="full")

    assert second.counts["failure"] == 1
    assert list(w.ledger.links) == [("job", winner)]
    assert w.target.users[guest_id]["jobTitle"] == f"{names[winner]}'s job"
    assert not [x for x in w.target.writes if x[0] == "patch"]


def test_crash_mid_cycle_resumes_without_duplicates_or_gaps() -> None:
    w = World(page_size=2)
    names = [f"user{i}" for i in range(7)]
    for name in names:
        w.user(name)
    w.ledger.crash_after_commits = 2
    with pytest.raises(CrashAfter):
        w.run()
    # The cursor never passes what was committed.
    progress = w.cursors.load("job").progress
    assert progress is not None
    assert progress.next_link == "users:4:-1"
    w.ledger.crash_after_commits = None

    result = w.run()

    assert result.run_id == progress.run_id
    assert result.status == "success"
    for name in names:
        assert len(w.target_by_mail(f"{name}@src.example")) == 1
    assert len(w.target.users) == 7


def test_a_full_cycle_resumed_after_a_crash_sweeps_only_the_users_no_page_saw() -> None:
    w = World(page_size=2)
    names = [w.user(f"user{i}") for i in range(7)]
    w.run()
    gone = names[5]
    del w.source.users[gone]  # vanished without a delta event reaching us
    reads: list[str] = []
    get_user = w.source.get_user

    def counted(user_id: str, select: Any) -> Any:
        reads.append(user_id)
        return get_user(user_id, select)

    w.source.get_user = counted  # type: ignore[method-assign]
    # The process dies after two pages of the full cycle: four users seen, committed.
    w.ledger.crash_after_commits = w.ledger.commits + 2
    with pytest.raises(CrashAfter):
        w.run(mode="full")
    w.ledger.crash_after_commits = None

    result = w.run()

    assert (result.mode, result.status) == ("full", "success")
    # Nobody seen before the crash is taken for vanished (nor even read again).
    assert set(reads) == {gone}
    assert result.counts["delete"] == 1
    assert len(w.target.users) == 6


def test_a_cycle_stopped_half_way_is_found_for_resuming_unless_paused_or_running() -> None:
    from worker.domain.health import JobState
    from worker.service.admin import interrupted

    w = World(page_size=2)
    for i in range(5):
        w.user(f"user{i}")
    assert interrupted(w.ledger, w.cursors, w.lock, ["job"]) == []  # never ran
    w.ledger.crash_after_commits = 1
    with pytest.raises(CrashAfter):
        w.run()
    w.ledger.crash_after_commits = None

    assert interrupted(w.ledger, w.cursors, w.lock, ["job", "other"]) == ["job"]
    with w.lock.hold("job"):  # someone runs it right now
        assert interrupted(w.ledger, w.cursors, w.lock, ["job"]) == []
    w.ledger.save_job_state(JobState("job", paused=True))
    assert interrupted(w.ledger, w.cursors, w.lock, ["job"]) == []
    w.ledger.save_job_state(JobState("job"))
    w.run()
    assert interrupted(w.ledger, w.cursors, w.lock, ["job"]) == []  # finished


def test_a_resumed_cycle_counts_what_its_committed_pages_did() -> None:
    w = World(page_size=2)
    for i in range(7):
        w.user(f"user{i}")
    # Redis goes away after page 2 is committed in SQL but before its cursor save.
    w.cursors.saves_left = 3
    assert w.run().status == "failed"
    w.cursors.saves_left = None

    result = w.run()

    assert result.status == "success"
    assert len(w.target.users) == 7
    assert result.counts["create"] == 7  # page 2's creates are not lost from the summary
    assert result.counts["skip"] == 2  # page 2, read again, had nothing left to do


def test_an_empty_source_read_is_an_error_not_a_mass_delete() -> None:
    w = World()
    ann = w.user("ann")
    w.run()
    w.source.users.clear()  # the read comes back empty (a broken or wrong source)
    assert w.source.users_page("users:0:-1").items == []
    del ann

    result = w.run(mode="full")

    assert result.status == "failed"
    assert "no users" in result.error
    assert len(w.target.users) == 1
    assert not w.target.deleted


def test_full_cycle_sweeps_links_whose_users_vanished() -> None:
    w = World()
    ann = w.user("ann")
    w.user("ben")
    w.run()
    # Gone from the source without a delta event reaching us (e.g. the token was lost).
    del w.source.users[ann]

    result = w.run(mode="full")

    assert result.counts["delete"] == 1
    assert len(w.target.users) == 1


def test_a_full_cycle_reads_each_users_link_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The feed reads a page's links to find vanished target users; the page's export uses that
    # read rather than its own (docs/performance.md, "The no-change cycle").
    w = World(page_size=2)
    users = [w.user(name) for name in ("ann", "ben", "cyd")]
    w.run()
    asked: list[str] = []
    read = w.ledger.links_for

    def counted(job: str, source_ids: Any) -> Any:
        ids = list(source_ids)
        asked.extend(ids)
        return read(job, ids)

    monkeypatch.setattr(w.ledger, "links_for", counted)

    result = w.run(mode="full")

    assert result.counts["skip"] == 3
    assert sorted(asked) == sorted(users)


def test_expired_delta_token_turns_the_cycle_into_a_full_one() -> None:
    w = World()
    w.user("ann")
    w.run()
    w.user("ben")
    w.source.expired_before = w.source.seq + 1

    result = w.run()

    assert result.mode == "full"
    assert result.counts["create"] == 1
    assert len(w.target.users) == 2


def test_dry_run_reads_but_writes_nothing() -> None:
    w = World()
    w.user("ann")
    w.user("ben")

    result = w.run(dry_run=True)

    assert result.dry_run is True
    assert result.counts["create"] == 2
    assert not w.target.writes
    assert not w.ledger.links
    assert not w.ledger.runs
    assert w.cursors.load("job").watermark is None


def test_failed_attribute_write_keeps_the_link_and_retries_next_cycle() -> None:
    w = World()
    w.user("ann")
    w.target.fail_patch_for = {"*"}
    original_invite = w.target.invite

    def invite_then_fail(address: str, name: str | None, user_type: str) -> Any:
        invitation = original_invite(address, name, user_type)
        w.target.fail_patch_for = {invitation.user_id}
        return invitation

    w.target.invite = invite_then_fail  # type: ignore[method-assign]
    first = w.run()
    assert first.counts["failure"] == 1
    (link,) = w.ledger.links.values()
    assert link.state is LinkState.ACTIVE
    w.target.fail_patch_for = set()

    second = w.run(mode="full")

    assert second.counts["update"] == 1
    assert len(w.target.users) == 1
    assert w.target_by_mail("ann@src.example")[0]["displayName"] == "Ann"


def test_rejected_target_credentials_fail_the_cycle_even_with_nothing_to_write() -> None:
    w = World()
    w.user("ann")
    w.run()
    w.target.credentials_rejected = True

    result = w.run()

    assert result.status == "failed"
    assert "invalid_client" in result.error
    assert w.ledger.runs[result.run_id].status == "failed"


def test_a_second_cycle_of_the_same_job_is_refused_while_one_runs() -> None:
    w = World()
    w.lock.held.add("job")
    with pytest.raises(AlreadyRunning):
        w.run()


def test_changing_the_mappings_forces_a_full_cycle() -> None:
    w = World()
    w.user("ann", department="Sales")
    w.run()
    w.mappings = (MappingSpec(target="jobTitle", source="department"),)

    result = w.run()

    assert result.mode == "full"
    assert w.target_by_mail("ann@src.example")[0]["jobTitle"] == "Sales"


def test_a_target_user_deleted_behind_our_back_is_provisioned_again() -> None:
    w = World()
    ann = w.user("ann")
    w.run()
    (gone,) = w.target.users
    del w.target.users[gone]  # an admin of the target removed it for good
    w.source.update(ann, displayName="Ann Again")

    result = w.run()

    assert result.counts["create"] == 1
    (again,) = w.target.users.values()
    assert again["displayName"] == "Ann Again"
    assert w.ledger.links[("job", ann)].target_id != gone


def test_a_user_purged_from_the_recycle_bin_is_recreated_not_restored() -> None:
    w = World()
    ann = w.user("ann")
    w.run()
    saved = dict(w.source.users[ann])
    w.source.delete(ann)
    w.run()
    w.target.deleted.clear()  # 30 days later: purged
    w.source.add(id=ann, **saved)

    result = w.run()

    assert result.counts["create"] == 1
    assert result.counts["restore"] == 0
    assert len(w.target.users) == 1
    assert w.ledger.links[("job", ann)].state is LinkState.ACTIVE


def test_a_full_cycle_repairs_target_users_removed_by_hand() -> None:
    w = World()
    ann = w.user("ann")
    ben = w.user("ben")
    w.run()
    by_mail = {u["mail"]: uid for uid, u in w.target.users.items()}
    purged = by_mail["ann@src.example"]
    binned = by_mail["ben@src.example"]
    del w.target.users[purged]  # removed for good in the target
    w.target.deleted[binned] = w.target.users.pop(binned)  # soft-deleted there by hand

    quiet = w.run()
    assert sum(quiet.counts.values()) == 0  # no source change: an incremental cycle cannot know

    result = w.run(mode="full")

    assert result.counts["create"] == 1
    assert result.counts["restore"] == 1
    assert len(w.target.users) == 2
    assert binned in w.target.users  # restored with its object id
    assert w.ledger.links[("job", ann)].target_id != purged
    assert w.ledger.links[("job", ben)].target_id == binned


def test_nested_groups_follow_transitive_membership() -> None:
    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("top",), nested_groups=True))
    ann, ben, cyd = w.user("ann"), w.user("ben"), w.user("cyd")
    w.source.group_add("top", ann)
    w.source.group_add("top", "inner")
    w.source.group_add("inner", ben)
    w.source.group_add("inner", "top")  # a cycle must not loop

    assert w.run().counts["create"] == 2
    # Changes deep inside the nested group, with no change to any user.
    w.source.group_remove("inner", ben)
    w.source.group_add("inner", cyd)

    result = w.run()

    assert (result.counts["create"], result.counts["delete"]) == (1, 1)
    assert sorted(u["mail"] for u in w.target.users.values()) == [
        "ann@src.example",
        "cyd@src.example",
    ]


def test_direct_groups_ignore_nested_members() -> None:
    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("top",)))
    ann, ben = w.user("ann"), w.user("ben")
    w.source.group_add("top", ann)
    w.source.group_add("top", "inner")
    w.source.group_add("inner", ben)

    assert w.run().counts["create"] == 1
    assert [u["mail"] for u in w.target.users.values()] == ["ann@src.example"]


def test_dry_run_of_an_incremental_cycle_sees_membership_changes() -> None:
    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("g1",)))
    ann, ben = w.user("ann"), w.user("ben")
    w.source.group_add("g1", ann)
    w.run()
    w.source.group_remove("g1", ann)
    w.source.group_add("g1", ben)
    writes = len(w.target.writes)

    preview = w.run(dry_run=True)

    assert (preview.counts["create"], preview.counts["delete"]) == (1, 1)
    assert len(w.target.writes) == writes
    real = w.run()
    assert (real.counts["create"], real.counts["delete"]) == (1, 1)


def test_dry_run_counts_once_a_user_both_new_and_newly_assigned() -> None:
    # The user is in the users delta and in the groups delta of one cycle: the real run
    # handles them once, so the preview must plan them once.
    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("g1",)))
    w.source.group_add("g1", w.user("ann"))
    w.run()
    w.source.group_add("g1", w.user("ben"))

    preview = w.run(dry_run=True)

    assert preview.counts["create"] == 1
    assert [o.source_id for o in preview.outcomes if o.action.value == "create"] == [
        next(i for i, u in w.source.users.items() if u["mail"] == "ben@src.example")
    ]
    real = w.run()
    assert real.counts == preview.counts


def test_select_unique_value_picks_the_first_value_free_in_the_target() -> None:
    from worker.domain.expressions import parse
    from worker.domain.mapping import Apply

    text = 'SelectUniqueValue(Join(".", [givenName], [surname]), Join("", [givenName], [surname]))'
    nickname = MappingSpec(
        target="mailNickname", expression=parse(text), expression_text=text, apply=Apply.ON_CREATE
    )
    w = World(mappings=[MappingSpec(target="displayName", source="displayName"), nickname])
    w.target.add_existing(mail="other@x.example", mailNickname="Ann.Lee")
    w.user("ann", surname="Lee")
    w.user("bob", surname="Ray")

    w.run()

    assert w.target_by_mail("ann@src.example")[0]["mailNickname"] == "AnnLee"
    assert w.target_by_mail("bob@src.example")[0]["mailNickname"] == "Bob.Ray"


def test_redacted_values_flow_but_are_never_kept_or_shown() -> None:
    from worker.domain.expressions import parse

    text = "Redact([employeeId])"
    w = World(
        mappings=[
            MappingSpec(target="displayName", source="displayName"),
            MappingSpec(target="employeeId", expression=parse(text), expression_text=text),
        ]
    )
    ann = w.user("ann", employeeId="SECRET-1")

    w.run()

    assert w.target_by_mail("ann@src.example")[0]["employeeId"] == "SECRET-1"
    (link,) = w.ledger.links.values()
    assert "SECRET-1" not in repr(link)
    assert link.attributes["employeeId"].startswith("sha256:")
    assert "SECRET-1" not in repr(w.ledger.log)
    assert w.run().counts["update"] == 0  # unchanged: the fingerprint matches
    w.source.update(ann, employeeId="SECRET-2")

    changed = w.run()

    assert changed.counts["update"] == 1
    assert w.target_by_mail("ann@src.example")[0]["employeeId"] == "SECRET-2"
    (outcome,) = changed.outcomes
    assert (outcome.modified["employeeId"].old, outcome.modified["employeeId"].new) == (
        "[Redact]",
        "[Redact]",
    )
    assert "SECRET-2" not in repr(w.ledger.log)


def test_a_pages_requests_go_to_the_target_together() -> None:
    w = World(page_size=10)
    for i in range(7):
        w.user(f"user{i}")

    w.run()

    # one round of matching lookups (one grouped `in` lookup for the seven), one of
    # invitations, one of attribute writes
    assert w.target.rounds == [1, 7, 7]
    for i in range(7):
        w.source.update(
            next(u for u, a in w.source.users.items() if a["mail"] == f"user{i}@src.example"),
            jobTitle="New",
        )
    w.target.rounds.clear()

    w.run()

    assert w.target.rounds == [7]  # the seven PATCHes


class RemoteDispatcher:
    """Pages exported "elsewhere": by a page pipeline of their own, on the same fakes, the page
    and its outcome travelling as JSON as they do through Celery."""

    def __init__(self, world: World, window: int, *, not_taken: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.world = world
        self.window = window
        self.submitted = 0
        self.not_taken = not_taken
        self.remote = 0

    def submit(self, job: str, run_id: str, page: Any) -> object:
        from worker.service.page import PageRequest

        self.submitted += 1
        return (self.submitted, run_id, PageRequest.from_json(page.to_json()))

    def wait(self, handle: object) -> Any:
        from worker.service.pipeline import PageNotTaken, PageOutcome

        number, run_id, page = handle  # type: ignore[misc]
        if number in self.not_taken:
            raise PageNotTaken("busy")
        outcome = self.world.service().pipeline(run_id).run(page)
        self.remote += 1
        return PageOutcome.from_json(outcome.to_json())

    def abandon(self) -> None:
        pass


def test_a_fanned_out_cycle_gives_the_same_target_as_a_local_one() -> None:
    w = World(page_size=4)
    for i in range(23):
        w.user(f"user{i}")
    dispatcher = RemoteDispatcher(w, window=3, not_taken={2})
    service = w.service()
    service.dispatcher = dispatcher

    result = service.run(mode="full")

    assert result.status == "success"
    assert result.counts["create"] == 23
    assert dispatcher.remote == 5  # six pages; one no worker took, exported by the cycle itself
    assert len(w.target.users) == 23
    assert sorted(u["mail"] for u in w.target.users.values()) == sorted(
        f"user{i}@src.example" for i in range(23)
    )
    w.source.update(next(iter(w.source.users)), displayName="Changed")
    assert service.run().counts["update"] == 1  # the watermark was stored as usual


def test_a_fanned_out_cycle_never_moves_its_cursor_past_an_unfinished_page() -> None:
    from tests.unit.fakes import CrashAfter

    w = World(page_size=2)
    for i in range(9):
        w.user(f"user{i}")
    dispatcher = RemoteDispatcher(w, window=2)
    settled: list[int] = []
    original = dispatcher.wait

    def wait(handle: object) -> Any:
        number = handle[0]  # type: ignore[index]
        if number == 3:
            raise CrashAfter("the cycle's process dies waiting for page 3")
        settled.append(number)
        return original(handle)

    dispatcher.wait = wait  # type: ignore[method-assign]
    service = w.service()
    service.dispatcher = dispatcher
    with pytest.raises(CrashAfter):
        service.run(mode="full")

    assert settled == [1, 2]
    progress = w.cursors.load("job").progress
    assert progress is not None
    assert progress.next_link == "users:4:-1"  # after page 2: page 3 is not known to be done
    service.dispatcher = None
    assert service.run().status == "success"
    assert len(w.target.users) == 9


def test_a_cycle_whose_lock_expired_stops_without_moving_the_cursor() -> None:
    w = World(page_size=2)
    for i in range(6):
        w.user(f"user{i}")
    original = w.ledger.commit_page
    pages = 0

    def commit(job: str, run_id: str, write: Any) -> None:
        nonlocal pages
        original(job, run_id, write)
        pages += 1
        if pages == 2:
            w.cursors.revoked.add(f"lease-{w.lock.leases}")  # the lock expired under the cycle

    w.ledger.commit_page = commit  # type: ignore[method-assign]

    result = w.run()

    assert result.status == "failed"
    assert "expired" in result.error or "taken over" in result.error
    progress = w.cursors.load("job").progress
    assert progress is not None
    assert progress.next_link == "users:2:-1"  # saved after page 1; nothing after the loss


def test_a_fanned_out_pages_failures_are_logged_and_reported_like_inline_ones() -> None:
    from structlog.testing import capture_logs

    def failing_world() -> tuple[World, str]:
        w = World(page_size=3)
        ids = [w.user(f"user{i}") for i in range(7)]
        w.run()
        for source_id in ids:
            w.source.update(source_id, jobTitle="Changed")
        bad = w.ledger.links[("job", ids[4])].target_id
        w.target.fail_patch_for = {bad}
        return w, ids[4]

    inline, failing = failing_world()
    with capture_logs() as inline_logs:
        expected = inline.run()
    fanned, failing_there = failing_world()
    service = fanned.service()
    service.dispatcher = RemoteDispatcher(fanned, window=2)
    with capture_logs() as fanned_logs:
        result = service.run()

    assert service.dispatcher.remote == 3  # type: ignore[attr-defined]
    assert result.counts == expected.counts
    assert result.counts["failure"] == 1
    assert [
        (o.source_id, o.status.value) for o in result.outcomes if o.status.value == "failure"
    ] == [(failing_there, "failure")]
    for logs, source_id in ((inline_logs, failing), (fanned_logs, failing_there)):
        failed = [e for e in logs if e["event"] == "object failed"]
        assert [e["source_id"] for e in failed] == [source_id]


def test_a_cycle_logs_its_end_once() -> None:
    from structlog.testing import capture_logs

    w = World()
    w.user("ann")
    with capture_logs() as logs:
        w.run()

    ends = [e for e in logs if e["event"] == "cycle finished"]
    assert len(ends) == 1
    assert ends[0]["status"] == "success"


def test_a_full_cycle_does_not_look_up_leavers_it_has_already_disabled() -> None:
    w = World(policy=JobPolicy(deprovision=Deprovision.DISABLE))
    ids = [w.user(f"user{i}") for i in range(6)]
    w.run()
    saved = dict(w.source.users[ids[0]])
    for source_id in ids[:3]:
        w.source.delete(source_id)
    assert w.run(mode="full").counts["disable"] == 3
    looked_up: list[str] = []
    original = w.source.get_user

    def get_user(user_id: str, select: Sequence[str]) -> Any:
        looked_up.append(user_id)
        return original(user_id, select)

    w.source.get_user = get_user  # type: ignore[method-assign]

    result = w.run(mode="full")

    assert looked_up == []
    assert sum(result.counts.values()) == result.counts["skip"]  # nothing else to do
    w.source.add(id=ids[0], **saved)
    assert w.run(mode="full").counts["update"] == 1  # the round shows the one who came back


def test_a_cursor_saved_by_the_previous_release_still_resumes() -> None:
    import json
    from dataclasses import asdict

    from worker.ports import Phase, Progress

    w = World(page_size=2)
    for i in range(5):
        w.user(f"user{i}")
    w.ledger.crash_after_commits = 1
    with pytest.raises(CrashAfter):
        w.run()
    w.ledger.crash_after_commits = None
    saved = w.cursors.load("job")
    assert saved.progress is not None
    # The previous release stored the phase as a plain string; the JSON is the same.
    stored = json.loads(json.dumps(asdict(saved.progress)))
    assert stored["phase"] == "users"
    saved.progress = Progress(**stored)
    assert saved.progress.phase is Phase.USERS
    w.cursors.cursors["job"] = saved

    result = w.run()

    assert result.run_id == stored["run_id"]
    assert result.counts["create"] + result.counts["update"] == 5  # the crashed page: matched
    assert len(w.target.users) == 5


class SourceThatForgetsDeletedGroups(FakeSource):
    """As Graph answers: the members of a group that does not exist are a 404."""

    def transitive_member_ids(self, group_id: str) -> set[str]:
        if group_id not in self.groups:
            raise NotFound(f"group {group_id} does not exist")
        return super().transitive_member_ids(group_id)


def test_a_scoped_nested_group_deleted_in_the_source_takes_its_members_out_of_scope() -> None:
    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("top", "gone"), nested_groups=True))
    w.source = SourceThatForgetsDeletedGroups(page_size=3)
    ann, ben = w.user("ann"), w.user("ben")
    w.source.group_add("top", ann)
    w.source.group_add("gone", ben)
    assert w.run().counts["create"] == 2

    del w.source.groups["gone"]
    result = w.run()

    assert result.status == "success", result.error
    assert result.counts["delete"] == 1
    assert [u["mail"] for u in w.target.users.values() if not u.get("deleted")] == [
        "ann@src.example"
    ]
