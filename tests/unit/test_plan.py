"""The decision for one object, from source item, link, scope and mapped values."""

from __future__ import annotations

import pytest

from worker.domain.job import Deprovision, JobPolicy
from worker.domain.mapping import MappedValues
from worker.domain.model import Action, Link, LinkState, SourceRemoval, SourceUser
from worker.domain.plan import (
    REDUNDANT_EXPORT,
    CreateUser,
    DeprovisionUser,
    NoChange,
    RestoreUser,
    UpdateUser,
    decide,
)

pytestmark = pytest.mark.unit

ANN = SourceUser("s1", {"userPrincipalName": "ann@c.com", "mail": "ann@c.com"})
VALUES = MappedValues({"displayName": "Ann", "accountEnabled": True})


def link(state: LinkState = LinkState.ACTIVE, **attrs: object) -> Link:
    return Link(
        "job", "s1", "t1", state, dict(attrs or {"displayName": "Ann", "accountEnabled": True})
    )


def test_in_scope_without_link_creates_at_the_invitation_address() -> None:
    decision = decide(ANN, None, in_scope=True, scope_reason="", values=VALUES, policy=JobPolicy())
    assert isinstance(decision, CreateUser)
    assert decision.address == "ann@c.com"


def test_unchanged_values_are_a_redundant_export() -> None:
    decision = decide(
        ANN, link(), in_scope=True, scope_reason="", values=VALUES, policy=JobPolicy()
    )
    assert isinstance(decision, NoChange)
    assert decision.reason == REDUNDANT_EXPORT


def test_account_disabled_in_the_source_is_an_update() -> None:
    values = MappedValues({"displayName": "Ann", "accountEnabled": False})
    decision = decide(
        ANN, link(), in_scope=True, scope_reason="", values=values, policy=JobPolicy()
    )
    assert isinstance(decision, UpdateUser)
    assert decision.action is Action.UPDATE  # docs/architecture.md: an update, not a delete
    assert decision.changes["accountEnabled"].new is False


def test_soft_deleted_link_back_in_scope_is_restored() -> None:
    decision = decide(
        ANN,
        link(LinkState.SOFT_DELETED),
        in_scope=True,
        scope_reason="",
        values=VALUES,
        policy=JobPolicy(),
    )
    assert isinstance(decision, RestoreUser)


def test_removal_deprovisions_per_policy() -> None:
    removal = SourceRemoval("s1", "deleted")
    soft = decide(removal, link(), in_scope=False, scope_reason="", values=None, policy=JobPolicy())
    assert isinstance(soft, DeprovisionUser)
    assert soft.action is Action.DELETE
    disable = decide(
        removal,
        link(),
        in_scope=False,
        scope_reason="",
        values=None,
        policy=JobPolicy(deprovision=Deprovision.DISABLE),
    )
    assert isinstance(disable, DeprovisionUser)
    assert disable.action is Action.DISABLE


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        (JobPolicy(skip_out_of_scope_deletions=True), "skip_out_of_scope_deletions"),
        (JobPolicy(delete=False), "delete action is off"),
    ],
)
def test_out_of_scope_departures_can_be_kept(policy: JobPolicy, fragment: str) -> None:
    decision = decide(
        ANN, link(), in_scope=False, scope_reason="filtered", values=None, policy=policy
    )
    assert isinstance(decision, NoChange)
    assert fragment in decision.reason


def test_source_deletion_ignores_skip_out_of_scope_deletions() -> None:
    decision = decide(
        SourceRemoval("s1"),
        link(),
        in_scope=False,
        scope_reason="",
        values=None,
        policy=JobPolicy(skip_out_of_scope_deletions=True),
    )
    assert isinstance(decision, DeprovisionUser)


def test_disabled_actions_are_respected() -> None:
    no_create = decide(
        ANN, None, in_scope=True, scope_reason="", values=VALUES, policy=JobPolicy(create=False)
    )
    assert isinstance(no_create, NoChange)
    changed = MappedValues({"displayName": "New", "accountEnabled": True})
    no_update = decide(
        ANN, link(), in_scope=True, scope_reason="", values=changed, policy=JobPolicy(update=False)
    )
    assert isinstance(no_update, NoChange)
