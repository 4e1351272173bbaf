"""`check --fix`'s pure parts: the needs of a set of jobs, the plan that meets them, and how the
writes are applied tenant by tenant (a fake policy per tenant)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from worker.domain.errors import StopSync
from worker.domain.onboarding import (
    INBOUND,
    OUTBOUND,
    USER_SYNC,
    Current,
    Pair,
    needs,
    plan,
    plan_all,
)
from worker.service.onboarding import (
    FAILED,
    NOT_ATTEMPTED,
    WRITTEN,
    Onboarding,
    Survey,
    apply,
    onboard,
    read_current,
    survey,
)

pytestmark = pytest.mark.unit

A, B, C = (f"{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-000000000000" for n in "abc")


def pair(src: str, dst: str) -> Pair:
    names = {A: "a", B: "b", C: "c"}
    return Pair(f"{names[src]}-to-{names[dst]}", names[src], src, names[dst], dst)


def partner(inbound: bool | None, outbound: bool | None) -> dict[str, Any]:
    return {
        "tenantId": "x",
        "automaticUserConsentSettings": {"inboundAllowed": inbound, "outboundAllowed": outbound},
    }


def test_one_pair_needs_outbound_in_the_source_and_inbound_and_sync_in_the_target() -> None:
    [source, target] = sorted(needs([pair(A, B)]), key=lambda n: n.tenant)
    assert (source.tenant, source.partner_id) == ("a", B)
    assert (source.outbound, source.inbound, source.user_sync) == (True, False, False)
    assert (target.tenant, target.partner_id) == ("b", A)
    assert (target.outbound, target.inbound, target.user_sync) == (False, True, True)


def test_a_mesh_merges_both_directions_into_one_need_per_tenant_and_partner() -> None:
    pairs = [pair(s, t) for s in (A, B, C) for t in (A, B, C) if s != t]
    merged = needs(pairs)
    assert len(merged) == 6  # 3 tenants x 2 partners, not 12
    for need in merged:
        assert (need.outbound, need.inbound, need.user_sync) == (True, True, True)
        assert len(need.jobs) == 2


def test_an_absent_partner_is_created_with_what_is_needed_and_its_sync_policy_put() -> None:
    [target_need] = [n for n in needs([pair(A, B)]) if n.tenant == "b"]
    writes = plan(target_need, Current(None, None))
    assert [(w.method, w.path) for w in writes] == [
        ("POST", "/policies/crossTenantAccessPolicy/partners"),
        ("PUT", f"/policies/crossTenantAccessPolicy/partners/{A}/identitySynchronization"),
    ]
    assert writes[0].body == {
        "tenantId": A,
        "automaticUserConsentSettings": {"inboundAllowed": True, "outboundAllowed": False},
    }
    assert [(c.prop, c.current, c.new) for c in writes[0].changes] == [(INBOUND, None, True)]
    assert writes[1].body == {"userSyncInbound": {"isSyncAllowed": True}}
    assert [(c.prop, c.current, c.new) for c in writes[1].changes] == [(USER_SYNC, None, True)]


def test_a_present_partner_is_patched_with_only_what_changes_keeping_the_other_flag() -> None:
    [source_need] = [n for n in needs([pair(A, B)]) if n.tenant == "a"]
    [write] = plan(source_need, Current(partner(inbound=True, outbound=False), None))
    assert write.method == "PATCH"
    assert write.path == f"/policies/crossTenantAccessPolicy/partners/{B}"
    assert write.body == {
        "automaticUserConsentSettings": {"inboundAllowed": True, "outboundAllowed": True}
    }
    assert [(c.prop, c.current, c.new) for c in write.changes] == [(OUTBOUND, False, True)]


def test_nothing_to_change_when_everything_is_in_place() -> None:
    merged = needs([pair(A, B)])
    currents = {
        ("aaaaaaaa-0000-4000-8000-000000000000", B): Current(partner(False, True), None),
        ("bbbbbbbb-0000-4000-8000-000000000000", A): Current(
            partner(True, False), {"displayName": "A", "userSyncInbound": {"isSyncAllowed": True}}
        ),
    }
    assert plan_all(merged, currents) == []


def test_the_sync_policy_is_replaced_keeping_its_display_name() -> None:
    [target_need] = [n for n in needs([pair(A, B)]) if n.tenant == "b"]
    current = Current(
        partner(True, False),
        {"displayName": "Contoso", "userSyncInbound": {"isSyncAllowed": False}},
    )
    [write] = plan(target_need, current)
    assert write.method == "PUT"
    assert write.body == {"displayName": "Contoso", "userSyncInbound": {"isSyncAllowed": True}}
    assert [(c.current, c.new) for c in write.changes] == [(False, True)]


class FakePolicy:
    def __init__(self, *, denied: bool = False) -> None:
        self.partners: dict[str, dict[str, Any]] = {}
        self.syncs: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str]] = []
        self.denied = denied

    def partner(self, partner_id: str) -> Mapping[str, Any] | None:
        return self.partners.get(partner_id)

    def identity_sync(self, partner_id: str) -> Mapping[str, Any] | None:
        return self.syncs.get(partner_id)

    def write(self, method: str, path: str, body: Mapping[str, Any]) -> None:
        if self.denied:
            raise StopSync(
                "Insufficient privileges", code="Authorization_RequestDenied", status=403
            )
        self.sent.append((method, path))


def test_a_denied_tenant_stops_its_own_writes_only_and_every_write_is_reported() -> None:
    policies = {"a": FakePolicy(), "b": FakePolicy(denied=True)}
    merged = needs([pair(A, B)])
    currents, unreadable = read_current(merged, policies)
    assert unreadable == []
    writes = plan_all(merged, currents)
    outcomes = apply(writes, policies)
    by_tenant = {(o.write.tenant, o.write.method): o for o in outcomes}
    assert by_tenant["a", "POST"].status == WRITTEN
    assert by_tenant["b", "POST"].status == FAILED
    assert by_tenant["b", "POST"].denied
    assert by_tenant["b", "PUT"].status == NOT_ATTEMPTED
    assert policies["b"].sent == []
    assert policies["a"].sent == [("POST", "/policies/crossTenantAccessPolicy/partners")]


# onboard: the one path of `check --fix` and the console ---------------------------------------
class Checked:
    def __init__(self, status: str) -> None:
        self.status = status


class UnreadablePolicy(FakePolicy):
    def partner(self, partner_id: str) -> Mapping[str, Any] | None:
        raise StopSync("Insufficient privileges", code="Authorization_RequestDenied", status=403)


def test_onboard_writes_the_approved_plan_then_checks_each_job() -> None:
    policies = {"a": FakePolicy(), "b": FakePolicy()}
    shown: list[int] = []

    def approve(found: Survey) -> bool:
        shown.append(len(found.plan))
        return True

    result = onboard([pair(A, B)], policies, approve=approve, checks=lambda j: [Checked("ok")])
    assert shown == [3]
    assert [o.status for o in result.outcomes] == [WRITTEN] * 3
    assert list(result.checks) == ["a-to-b"]
    assert result.ok


def test_onboard_writes_nothing_and_checks_nothing_unless_approved() -> None:
    policies = {"a": FakePolicy(), "b": FakePolicy()}
    checked: list[str] = []

    def check(job: str) -> list[Checked]:
        checked.append(job)
        return []

    result = onboard([pair(A, B)], policies, approve=lambda s: False, checks=check)
    assert not result.approved
    assert len(result.survey.plan) == 3
    assert result.outcomes == []
    assert checked == []
    assert policies["a"].sent == policies["b"].sent == []
    assert not result.ok


def test_onboard_asks_nothing_when_a_policy_cannot_be_read() -> None:
    policies = {"a": FakePolicy(), "b": UnreadablePolicy()}
    asked: list[Survey] = []

    def approve(found: Survey) -> bool:
        asked.append(found)
        return True

    result: Onboarding[Checked] = onboard(
        [pair(A, B)], policies, approve=approve, checks=lambda j: []
    )
    assert asked == []
    assert [f.tenant for f in result.survey.unreadable] == ["b"]
    assert result.survey.plan == []
    assert policies["a"].sent == []


def test_a_failing_check_or_write_is_not_ok() -> None:
    failing = onboard(
        [pair(A, B)],
        {"a": FakePolicy(), "b": FakePolicy()},
        approve=lambda s: True,
        checks=lambda j: [Checked("ok"), Checked("fail")],
    )
    assert not failing.ok
    denied = onboard(
        [pair(A, B)],
        {"a": FakePolicy(), "b": FakePolicy(denied=True)},
        approve=lambda s: True,
        checks=lambda j: [Checked("ok")],
    )
    assert [o.status for o in denied.failed] == [FAILED]
    assert not denied.ok


def test_the_fingerprint_changes_exactly_when_the_plan_does() -> None:
    policies = {"a": FakePolicy(), "b": FakePolicy()}
    first = survey([pair(A, B)], policies)
    assert survey([pair(A, B)], policies).fingerprint == first.fingerprint
    policies["a"].partners[B] = partner(False, True)  # someone turned the source's side on
    second = survey([pair(A, B)], policies)
    assert len(second.plan) == 2
    assert second.fingerprint != first.fingerprint
    policies["a"].partners[B] = partner(False, False)  # a different current value: a new plan
    assert survey([pair(A, B)], policies).fingerprint not in (first.fingerprint, second.fingerprint)
