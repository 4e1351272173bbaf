"""The CSDL contract validator of tests/support/csdl.py, on hand-made Graph JSON."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.csdl import (
    is_derived,
    structural_properties,
    type_name_of,
    validate_collection,
    validate_entity,
)
from worker.schema import READ_ONLY_PROPERTIES

pytestmark = pytest.mark.unit

USER: dict[str, Any] = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
    "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
    "displayName": "Ann",
    "accountEnabled": True,
    "businessPhones": ["+1 555 0100"],
    "createdDateTime": "2024-03-01T10:00:00Z",
    "identities": [{"signInType": "userPrincipalName", "issuer": "x.com", "issuerAssignedId": "a"}],
    "passwordProfile": None,
    "employeeOrgData": {"division": "R&D", "costCenter": None},
    "extension_0123456789abcdef0123456789abcdef_badge": "42",
}


def test_type_names() -> None:
    for name in ("user", "graph.user", "microsoft.graph.user", "#microsoft.graph.user"):
        assert type_name_of(name) == "user"
    assert is_derived("#microsoft.graph.user", "directoryObject")
    assert is_derived("group", "entity")
    assert not is_derived("invitation", "directoryObject")
    assert structural_properties("user")["id"] == ("Edm.String", False)


def test_a_graph_user_fits() -> None:
    assert validate_entity("user", USER) == []


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"favoriteColour": "red"}, "Property 'favoriteColour' does not exist on type"),
        ({"accountEnabled": "true"}, "expected Edm.Boolean"),
        ({"displayName": 3}, "expected Edm.String"),
        ({"createdDateTime": "yesterday"}, "expected Edm.DateTimeOffset"),
        ({"createdDateTime": "2024-03-01T10:00:00"}, "expected Edm.DateTimeOffset"),
        ({"businessPhones": "+1 555"}, "expected a list"),
        ({"businessPhones": None}, "null is not allowed"),
        ({"businessPhones": ["a", None]}, "null item"),
        ({"id": None}, "null is not allowed"),
        ({"identities": [{"issuer": 3}]}, "identities[0].issuer: expected Edm.String"),
        ({"identities": [{"color": "x"}]}, "'color' does not exist on type"),
        ({"employeeOrgData": "R&D"}, "expected an object of type employeeOrgData"),
        ({"@removed": {"reason": "gone"}}, "@removed"),
        ({"@odata.type": "#microsoft.graph.group"}, "is not a user"),
        ({"@odata.type": "#microsoft.graph.nothing"}, "unknown type"),
        ({"nothing@odata.bind": []}, "annotation on unknown property"),
        ({"@weird": 1}, "unknown annotation"),
    ],
)
def test_problems_are_reported(patch: dict[str, Any], fragment: str) -> None:
    problems = validate_entity("user", {**USER, **patch})
    assert len(problems) == 1, problems
    assert fragment in problems[0]


def test_unknown_property_message_is_graphs() -> None:
    problems = validate_entity("microsoft.graph.user", {"id": "x", "x": 1})
    assert problems == ["user.x: Property 'x' does not exist on type 'microsoft.graph.user'."]


def test_edm_scalars_enums_and_nested_types() -> None:
    assert validate_entity("assignedLicense", {"skuId": "not-a-guid", "disabledPlans": []}) == [
        "assignedLicense.skuId: expected Edm.Guid, got 'not-a-guid'"
    ]
    reply = {"status": "scheduled", "externalAudience": "all"}
    assert validate_entity("automaticRepliesSetting", reply) == []
    bad = validate_entity("automaticRepliesSetting", {**reply, "status": "sometimes"})
    assert len(bad) == 1
    assert "expected one of" in bad[0]
    hours = {"startTime": "08:00:00.0000000", "endTime": "17:00", "daysOfWeek": ["monday"]}
    assert validate_entity("workingHours", hours) == []
    assert validate_entity("workingHours", {"startTime": "8 am"})[0].endswith("got '8 am'")


def test_derived_types_and_delta_annotations() -> None:
    member = {"@odata.type": "#microsoft.graph.user", "id": "u1", "displayName": "Ann"}
    assert validate_entity("directoryObject", member) == []
    group = {
        "id": "g1",
        "displayName": "G",
        "members@delta": [
            {"@odata.type": "#microsoft.graph.user", "id": "u1"},
            {
                "@odata.type": "#microsoft.graph.group",
                "id": "g2",
                "@removed": {"reason": "deleted"},
            },
        ],
    }
    assert validate_entity("group", group) == []
    bad = validate_entity("group", {**group, "members@delta": [{"id": 1}]})
    assert len(bad) == 1
    assert "members@delta[0]" in bad[0]
    assert validate_entity("user", {"id": "u1", "@removed": {"reason": "changed"}}) == []


def test_request_body_mode() -> None:
    body = {"displayName": "Ann", "accountEnabled": False, "@odata.type": "#microsoft.graph.user"}
    assert validate_entity("user", body, request_body=True) == []
    for name in ("id", "createdDateTime", "creationType", "externalUserState", "proxyAddresses"):
        problems = validate_entity("user", {name: None}, request_body=True)
        assert any("read-only" in p for p in problems), (name, problems)
    # response-only annotations and navigation properties
    assert validate_entity("user", {"@odata.context": "x"}, request_body=True) != []
    assert validate_entity("user", {"manager": {"id": "m"}}, request_body=True) != []
    assert validate_entity("user", {"manager": {"id": "m"}}) == []
    group = {"displayName": "G", "members@odata.bind": ["https://graph/v1.0/users/u1"]}
    assert validate_entity("group", group, request_body=True) == []
    # the same read-only set as the sandbox and the worker (worker.schema)
    user_props = set(structural_properties("user"))
    for name in READ_ONLY_PROPERTIES & user_props:
        assert validate_entity("user", {name: None}, request_body=True) != [], name


def test_collections() -> None:
    page = {
        "@odata.context": "https://x/v1.0/$metadata#users",
        "@odata.nextLink": "https://x/v1.0/users?$skiptoken=abc",
        "@odata.count": 2,
        "value": [USER, {"id": "u2", "@removed": {"reason": "deleted"}}],
    }
    assert validate_collection("user", page) == []
    assert validate_collection("user", {"value": {}}) == ["user[].value: expected a list, got {}"]
    bad = validate_collection("user", {**page, "@odata.count": "2", "extra": 1})
    assert len(bad) == 2
