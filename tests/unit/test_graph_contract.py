"""Contract: every request body the Graph adapter can send fits Microsoft's CSDL.

Bodies are built by the adapter's own code (the $batch calls of GraphTargetDirectory) from
values that went through the mappings, and checked with the CSDL validator in request-body mode:
the property exists, the JSON type fits the Edm type, and the property is writable.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.csdl import validate_entity
from worker.adapters.graph.directory import GraphTargetDirectory
from worker.domain.mapping import Mapper, MappingSpec, default_mappings
from worker.domain.model import SourceUser
from worker.ports import Invite, PatchUser
from worker.schema import writable_user_properties

pytestmark = pytest.mark.unit

# What a source attribute (or an expression) may hand a mapping, per target Edm type.
SAMPLES: dict[str, list[Any]] = {
    "Edm.String": ["Sales", 42, True, ["first", "second"]],
    "Edm.Boolean": [True, "false", "True"],
    "Edm.Int32": [7, "12"],
    "Edm.DateTimeOffset": ["2020-03-16T07:00:00Z", "3/16/2020 7:00:00 AM", "2020-03-16"],
    "Collection(Edm.String)": [["+47 1", "+47 2"], "+47 3"],
}
MAPPABLE = {name: edm for name, edm in writable_user_properties().items() if edm in SAMPLES}


class _NoClient:
    """The directory's request building needs no connection."""

    def url(self, path: str) -> str:
        return "https://graph.example/v1.0" + path


def directory() -> GraphTargetDirectory:
    return GraphTargetDirectory(_NoClient(), invite_redirect_url="https://myapps.example")  # type: ignore[arg-type]


def test_every_simple_writable_user_property_can_be_mapped() -> None:
    # The config accepts exactly these as mapping targets (complex types are refused).
    assert "passwordProfile" not in MAPPABLE
    assert {"displayName", "accountEnabled", "businessPhones", "employeeHireDate"} <= set(MAPPABLE)


@pytest.mark.parametrize(("target", "edm"), sorted(MAPPABLE.items()))
def test_patch_bodies_fit_the_csdl(target: str, edm: str) -> None:
    for sample in SAMPLES[edm]:
        spec = MappingSpec(target=target, source="value", target_type=edm)
        values = Mapper([spec]).map(SourceUser("s", {"value": sample}), creating=True).values
        call = directory()._call(PatchUser("t", values))
        assert call.method == "PATCH"
        assert validate_entity("user", call.body, request_body=True) == [], (
            target,
            sample,
            call.body,
        )


def test_the_default_mapping_set_writes_a_valid_body() -> None:
    user = SourceUser(
        "s",
        {
            "accountEnabled": True,
            "displayName": "Ann Lee",
            "givenName": "Ann",
            "surname": "Lee",
            "mail": "ann@contoso.com",
            "mailNickname": "ann",
            "userPrincipalName": "ann@contoso.onmicrosoft.com",
            "jobTitle": "Engineer",
            "department": "Sales",
            "companyName": "Contoso",
            "employeeId": "E1",
            "streetAddress": "1 Main St",
            "city": "Oslo",
            "state": "Oslo",
            "postalCode": "0150",
            "country": "NO",
            "preferredLanguage": "nb-NO",
            "mobilePhone": "+47 1",
            "businessPhones": ["+47 2"],
        },
    )
    values = Mapper(default_mappings()).map(user, creating=True).values
    body = (
        directory()
        ._call(PatchUser("t", {k: v for k, v in values.items() if k != "userPrincipalName"}))
        .body
    )
    assert validate_entity("user", body, request_body=True) == []
    assert body["showInAddressList"] is True


@pytest.mark.parametrize("name", [None, "Ann Lee"])
def test_invitation_bodies_fit_the_csdl(name: str | None) -> None:
    call = directory()._call(Invite("ann@contoso.com", name, "Member"))
    assert (call.method, call.url) == ("POST", "/invitations")
    assert validate_entity("invitation", call.body, request_body=True) == []
    assert call.body["sendInvitationMessage"] is False
