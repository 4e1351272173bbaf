"""Organisations: the `organization:` section expanded into jobs, and its bad inputs named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from worker.celery_app import beat_schedule
from worker.config import ConfigError, build_config, parse_yaml
from worker.domain.mapping import required_source_attributes
from worker.domain.model import SourceUser
from worker.domain.organization import (
    Organization,
    deep_merge,
    expand_organization,
    locate_problem,
)
from worker.domain.scope import ScopeSpec, evaluate_scope

pytestmark = pytest.mark.unit

NAMES = ("contoso", "fabrikam", "adatum", "northwind", "tailspin")


def tenants(count: int) -> str:
    lines = ["tenants:"]
    for index, name in enumerate(NAMES[:count], start=1):
        lines += [
            f"  {name}:",
            f"    tenant_id: 0b1c0000-0000-4000-8000-00000000000{index}",
            f"    client_id: 5e6f0000-0000-4000-8000-00000000000{index}",
            "    client_secret: s3cret",
        ]
    return "\n".join(lines) + "\n"


def load(text: str, count: int = 3) -> Any:
    return build_config(parse_yaml(tenants(count) + text), env={}, path=Path("t.yaml"))


def problems_of(text: str, count: int = 3) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, count)
    return caught.value.problems


def test_a_mesh_makes_every_ordered_pair() -> None:
    org = Organization(tenants=("a", "b", "c"), topology="mesh")
    assert org.pairs() == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    assert org.job_names()[0] == "a-to-b"


@pytest.mark.parametrize(
    ("direction", "pairs"),
    [
        ("out", [("h", "a"), ("h", "b")]),
        ("in", [("a", "h"), ("b", "h")]),
        ("both", [("h", "a"), ("h", "b"), ("a", "h"), ("b", "h")]),
    ],
)
def test_a_hub_and_spokes_in_each_direction(direction: str, pairs: list[tuple[str, str]]) -> None:
    org = Organization(tenants=("a", "h", "b"), topology="hub_spoke", hub="h", direction=direction)
    assert org.pairs() == pairs


def test_deep_merge_merges_mappings_and_replaces_lists() -> None:
    base = {"scope": {"users": "all", "groups": ["g1"]}, "schedule": {"interval": "5m"}}
    over = {"scope": {"groups": ["g2"]}, "user_type": "Guest"}
    assert deep_merge(base, over) == {
        "scope": {"users": "all", "groups": ["g2"]},
        "schedule": {"interval": "5m"},
        "user_type": "Guest",
    }
    assert base["scope"] == {"users": "all", "groups": ["g1"]}  # inputs untouched


def test_expansion_merges_defaults_with_the_explicit_job_of_the_same_name() -> None:
    section = {
        "tenants": ["a", "b"],
        "topology": "mesh",
        "job_defaults": {"schedule": {"interval": "5m"}, "scope": {"users": "all"}},
    }
    explicit = {"a-to-b": {"schedule": {"full_every": "7d"}, "mappings": [{"target": "x"}]}}
    expansion = expand_organization(section, {"a", "b"}, explicit)
    assert expansion.problems == []
    assert expansion.jobs["a-to-b"] == {
        "source": "a",
        "target": "b",
        "schedule": {"interval": "5m", "full_every": "7d"},
        "scope": {"users": "all"},
        "mappings": [{"target": "x"}],
    }
    assert expansion.jobs["b-to-a"]["schedule"] == {"interval": "5m"}


def test_a_config_with_an_organization_loads_its_jobs_with_their_origin() -> None:
    config = load(
        """
organization:
  tenants: [contoso, fabrikam, adatum]
  topology: mesh
  job_defaults: {schedule: {interval: 5m}, scope: {users: all}}
jobs:
  contoso-to-fabrikam:
    schedule: {interval: 1h}
  adatum-to-contoso:
    source: adatum
    target: contoso
    deprovision: disable
  by-hand:
    source: fabrikam
    target: contoso
"""
    )
    generated = sorted(n for n, j in config.jobs.items() if j.origin == "organization")
    assert generated == [
        "adatum-to-contoso",
        "adatum-to-fabrikam",
        "contoso-to-adatum",
        "contoso-to-fabrikam",
        "fabrikam-to-adatum",
        "fabrikam-to-contoso",
    ]
    assert config.jobs["by-hand"].origin == "jobs"
    assert config.jobs["contoso-to-fabrikam"].runtime.interval.total_seconds() == 3600
    assert config.jobs["contoso-to-adatum"].runtime.interval.total_seconds() == 300
    assert config.jobs["adatum-to-contoso"].runtime.deprovision.value == "disable"
    assert config.organization is not None
    assert config.organization.topology == "mesh"
    # The beat schedules every generated job like a hand-written one.
    schedule = beat_schedule(config)
    for name in config.jobs:
        assert schedule[f"tenant-sync:{name}"]["args"] == [name]


def test_a_five_tenant_mesh_makes_twenty_jobs() -> None:
    config = load(
        "organization: {tenants: [contoso, fabrikam, adatum, northwind, tailspin], "
        "topology: mesh}\n",
        count=5,
    )
    assert len(config.jobs) == 20


def test_hub_spoke_both_directions() -> None:
    config = load(
        "organization: {tenants: [contoso, fabrikam, adatum], topology: hub_spoke, "
        "hub: contoso, direction: both}\n"
    )
    assert sorted(config.jobs) == [
        "adatum-to-contoso",
        "contoso-to-adatum",
        "contoso-to-fabrikam",
        "fabrikam-to-contoso",
    ]


def test_hub_spoke_direction_defaults_to_out() -> None:
    config = load(
        "organization: {tenants: [contoso, fabrikam], topology: hub_spoke, hub: fabrikam}\n"
    )
    assert sorted(config.jobs) == ["fabrikam-to-contoso"]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("[contoso]", "organization: must be a mapping with tenants and topology"),
        (
            "{tenants: [contoso, nowhere], topology: mesh}",
            "organization.tenants[1]: unknown tenant 'nowhere' (known: adatum, contoso, fabrikam)",
        ),
        (
            "{tenants: [contoso], topology: mesh}",
            "organization.tenants: an organization needs at least 2 tenants, got 1",
        ),
        (
            "{tenants: [contoso, fabrikam, contoso], topology: mesh}",
            "organization.tenants[2]: 'contoso' is listed twice",
        ),
        ("{tenants: contoso, topology: mesh}", "organization.tenants: must be a list"),
        ("{topology: mesh}", "organization.tenants: required setting is missing"),
        (
            "{tenants: [contoso, fabrikam]}",
            "organization.topology: required setting is missing",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: star}",
            "organization.topology: must be mesh or hub_spoke, not 'star'",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: hub_spoke}",
            "organization.hub: required for topology hub_spoke",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: hub_spoke, hub: adatum}",
            "organization.hub: 'adatum' is not one of organization.tenants (contoso, fabrikam)",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: mesh, hub: contoso}",
            "organization.hub: only for topology hub_spoke",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: mesh, direction: out}",
            "organization.direction: only for topology hub_spoke",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: hub_spoke, hub: contoso, direction: up}",
            "organization.direction: must be out, in or both, not 'up'",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: mesh, spokes: 2}",
            "organization.spokes: unknown setting",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: mesh, job_defaults: {source: contoso}}",
            "organization.job_defaults.source: not allowed: the organisation sets each job's",
        ),
        (
            "{tenants: [contoso, fabrikam], topology: mesh, job_defaults: [1]}",
            "organization.job_defaults: must be a mapping of job settings",
        ),
    ],
)
def test_a_bad_organization_is_named(section: str, expected: str) -> None:
    found = problems_of(f"organization: {section}\n")
    assert any(p.startswith(expected) for p in found), found


def test_an_explicit_job_must_keep_the_pair_of_its_name() -> None:
    found = problems_of(
        """
organization: {tenants: [contoso, fabrikam, adatum], topology: mesh}
jobs:
  contoso-to-fabrikam: {source: contoso, target: adatum}
"""
    )
    assert found[0].startswith(
        "jobs.contoso-to-fabrikam.target: 'adatum', but the organization makes this job for "
        "contoso -> fabrikam; rename the job or drop its target"
    ), found


def test_an_override_of_a_job_the_organization_does_not_make_says_so() -> None:
    # Written for direction both; the direction is now in, which makes no contoso-to-X job.
    found = problems_of(
        """
organization: {tenants: [contoso, fabrikam, adatum], topology: hub_spoke, hub: contoso,
               direction: in}
jobs:
  contoso-to-fabrikam: {schedule: {interval: 1h}}
"""
    )
    assert found == [
        "jobs.contoso-to-fabrikam: has no source or target, so it overrides a job of the "
        "organization, which makes no job of that name (hub_spoke, hub contoso, direction in: "
        "fabrikam-to-contoso, adatum-to-contoso); give it a source and a target, or name one "
        "of those jobs"
    ], found


def test_a_bad_default_is_named_once_in_job_defaults() -> None:
    found = problems_of(
        """
organization:
  tenants: [contoso, fabrikam, adatum]
  topology: mesh
  job_defaults:
    scope: {users: everyone}
    mappings: [{target: displayName, source: nope}]
"""
    )
    assert (
        found.count("organization.job_defaults.scope.users: Input should be 'all' or 'assigned'")
        == 1
    ), found
    assert all(p.startswith("organization.job_defaults.") for p in found), found


def test_a_bad_override_is_named_in_its_job() -> None:
    found = problems_of(
        """
organization:
  tenants: [contoso, fabrikam, adatum]
  topology: mesh
  job_defaults: {scope: {users: all}}
jobs:
  contoso-to-fabrikam: {scope: {users: some}}
"""
    )
    assert found == ["jobs.contoso-to-fabrikam.scope.users: Input should be 'all' or 'assigned'"]


def test_a_problem_of_the_merged_job_names_the_generated_job() -> None:
    # Neither side is wrong alone: the defaults ask for assigned users, nothing lists any.
    found = problems_of(
        """
organization:
  tenants: [contoso, fabrikam]
  topology: mesh
  job_defaults: {scope: {users: assigned}}
jobs:
  contoso-to-fabrikam: {schedule: {interval: 1h}}
"""
    )
    assert "organization.job_defaults.scope: users: assigned needs user_ids or groups" in found


def test_a_job_lacking_what_the_others_override_is_named() -> None:
    """Every job but one gives its scope.groups: the defaults are fine for the others, so
    the problem is that job's, named as such (not `organization.job_defaults`)."""
    found = problems_of(
        """
organization:
  tenants: [contoso, fabrikam, adatum]
  topology: mesh
  job_defaults:
    scope: {users: assigned, nested_groups: true}
    groups: {provision: true}
jobs:
  contoso-to-fabrikam: {scope: {groups: [9a0b0000-0000-4000-8000-00000000a001]}}
  contoso-to-adatum: {scope: {groups: [9a0b0000-0000-4000-8000-00000000a002]}}
  fabrikam-to-contoso: {scope: {groups: [9a0b0000-0000-4000-8000-00000000a003]}}
  adatum-to-contoso: {scope: {groups: [9a0b0000-0000-4000-8000-00000000a004]}}
"""
    )
    for name in ("fabrikam-to-adatum", "adatum-to-fabrikam"):
        assert (
            f"jobs.{name} (from organization).scope: users: assigned needs user_ids or groups"
            in found
        ), found
        assert any(
            p.startswith(f"jobs.{name} (from organization).groups.provision: needs scope.groups")
            for p in found
        ), found
    assert len(found) == 4, found
    assert not [p for p in found if p.startswith("organization.job_defaults")], found


def test_a_bad_default_that_one_job_overrides_is_still_named_once() -> None:
    found = problems_of(
        """
organization:
  tenants: [contoso, fabrikam, adatum]
  topology: mesh
  job_defaults: {scope: {users: everyone}}
jobs:
  contoso-to-fabrikam: {scope: {users: all}}
"""
    )
    assert found == [
        "organization.job_defaults.scope.users: Input should be 'all' or 'assigned'"
    ], found


def test_locate_problem_paths() -> None:
    defaults = {"scope": {"users": "x"}, "mappings": [{"target": "y"}]}
    explicit = {"scope": {"filters": [[{"attribute": "q"}]]}}
    name = "a-to-b"
    assert (
        locate_problem("jobs.a-to-b.scope.filters[0][0].operator: bad", name, defaults, explicit)
        == "jobs.a-to-b.scope.filters[0][0].operator: bad"
    )
    assert (
        locate_problem("jobs.a-to-b.mappings[0].target: bad", name, defaults, explicit)
        == "organization.job_defaults.mappings[0].target: bad"
    )
    assert (
        locate_problem("jobs.a-to-b.source: bad", name, defaults, None)
        == "jobs.a-to-b (from organization).source: bad"
    )


def test_notifiers_may_name_generated_jobs() -> None:
    config = load(
        """
organization: {tenants: [contoso, fabrikam], topology: mesh}
notifications:
  - {kind: webhook, url: "https://hooks.example.com/x", jobs: [contoso-to-fabrikam]}
"""
    )
    assert config.notifications[0].jobs == ["contoso-to-fabrikam"]


@pytest.mark.parametrize(
    "attributes",
    [
        {"userType": "Guest", "userPrincipalName": "ann@contoso.com"},
        {"userType": "Member", "userPrincipalName": "ann_contoso.com#EXT#@fabrikam.com"},
        # A B2B member synced in from another tenant whose UPN an admin changed: still not one
        # of this tenant's own members, so never synced onward to a third tenant.
        {
            "userType": "Member",
            "userPrincipalName": "ann@fabrikam.com",
            "creationType": "Invitation",
        },
        {
            "userType": "Member",
            "userPrincipalName": "ann@fabrikam.com",
            "externalUserState": "Accepted",
        },
    ],
)
def test_guests_and_b2b_members_are_never_synced_onward(attributes: dict[str, Any]) -> None:
    user = SourceUser(id="u1", attributes=attributes)
    assert not user.is_internal_member
    decision = evaluate_scope(user, ScopeSpec(), assigned=True)
    assert decision.reason == "not an internal member of the source (a guest or B2B user)"


def test_an_own_member_is_in_scope() -> None:
    user = SourceUser(
        id="u1",
        attributes={
            "userType": "Member",
            "userPrincipalName": "ann@fabrikam.com",
            "creationType": None,
            "externalUserState": None,
        },
    )
    assert evaluate_scope(user, ScopeSpec(), assigned=True).in_scope
    assert {"creationType", "externalUserState"} <= set(required_source_attributes([]))


def test_a_broken_organization_is_not_buried_under_its_overrides() -> None:
    found = problems_of(
        """
organization: {tenants: [contoso, fabrikam], topology: star}
jobs:
  contoso-to-fabrikam: {schedule: {interval: 1h}}
  contoso-to-fabrikam-2: {target: fabrikam}
"""
    )
    assert found == [
        "organization.topology: must be mesh or hub_spoke, not 'star'",
        "jobs.contoso-to-fabrikam-2.source: required setting is missing",
    ]


def test_an_override_that_is_not_a_mapping_is_named_as_written() -> None:
    found = problems_of(
        "organization: {tenants: [contoso, fabrikam], topology: mesh}\n"
        "jobs: {contoso-to-fabrikam: weekly}\n"
    )
    assert found == [
        "jobs.contoso-to-fabrikam: Input should be a valid dictionary or instance of JobConfig"
    ]
