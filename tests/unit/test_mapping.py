"""Mappings: defaults, apply rules, null handling, coercion to Graph types, change detection."""

from __future__ import annotations

import pytest

from worker.domain.mapping import (
    Apply,
    Mapper,
    MappingSpec,
    coerce,
    default_mappings,
    diff,
    required_source_attributes,
)
from worker.domain.model import SourceUser

pytestmark = pytest.mark.unit

ANN = SourceUser(
    "u1",
    {
        "userPrincipalName": "ann@contoso.onmicrosoft.com",
        "mail": "ann@contoso.com",
        "displayName": "Ann",
        "accountEnabled": True,
        "jobTitle": None,
        "businessPhones": ["+47 1"],
    },
)


def test_default_mappings_cover_the_documented_set() -> None:
    targets = [m.target for m in default_mappings()]
    for name in ("accountEnabled", "displayName", "mail", "businessPhones", "employeeId"):
        assert name in targets
    constants = {m.target: m.constant for m in default_mappings("Guest") if m.kind == "constant"}
    assert constants == {"showInAddressList": True, "userType": "Guest"}


def test_nulls_are_never_written_and_the_upn_flows_only_as_a_value() -> None:
    values = Mapper(default_mappings()).map(ANN, creating=True).values
    assert "jobTitle" not in values
    assert values["accountEnabled"] is True
    assert values["businessPhones"] == ["+47 1"]
    # computed, but `diff` (what is written) never includes it
    assert "userPrincipalName" not in diff(values, {})


def test_default_applies_only_at_creation() -> None:
    spec = MappingSpec(target="jobTitle", source="jobTitle", default="Staff")
    assert Mapper([spec]).map(ANN, creating=True).values == {"jobTitle": "Staff"}
    assert Mapper([spec]).map(ANN, creating=False).values == {}


def test_on_create_mappings_are_skipped_on_update() -> None:
    spec = MappingSpec(target="department", constant="New", apply=Apply.ON_CREATE)
    assert Mapper([spec]).map(ANN, creating=True).values == {"department": "New"}
    assert Mapper([spec]).map(ANN, creating=False).values == {}


@pytest.mark.parametrize(
    ("value", "edm", "expected"),
    [
        ("true", "Edm.Boolean", True),
        ("False", "Edm.Boolean", False),
        (True, "Edm.String", "True"),
        (42, "Edm.String", "42"),
        ("7", "Edm.Int32", 7),
        ("x", "Collection(Edm.String)", ["x"]),
        (["a", "", None, "b"], "Collection(Edm.String)", ["a", "b"]),
        (["first", "second"], "Edm.String", "first"),
    ],
)
def test_coercion_to_graph_types(value: object, edm: str, expected: object) -> None:
    assert coerce(value, edm) == expected


def test_diff_reports_only_changed_writable_attributes() -> None:
    changes = diff(
        {"displayName": "B", "city": "Oslo", "userPrincipalName": "x"},
        {"displayName": "A", "city": "Oslo"},
    )
    assert list(changes) == ["displayName"]
    assert (changes["displayName"].old, changes["displayName"].new) == ("A", "B")


def test_select_covers_core_mapped_and_filtered_attributes() -> None:
    select = required_source_attributes(
        [MappingSpec(target="jobTitle", source="department")], ["city"]
    )
    assert {
        "id",
        "userPrincipalName",
        "mail",
        "userType",
        "accountEnabled",
        "department",
        "city",
    } <= set(select)


def test_string_collections_keep_their_strings_and_drop_empties() -> None:
    from worker.domain.mapping import coerce

    phones = "Collection(Edm.String)"
    assert coerce(["+33 1", "", None, "+33 2"], phones) == ["+33 1", "+33 2"]
    assert coerce(["a", 1, True, [], "b"], phones) == ["a", "1", "True", "b"]
    assert coerce("+33 1", phones) == ["+33 1"]
    assert coerce([], phones) == []
