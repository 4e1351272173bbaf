"""The sandbox's $filter parser/evaluator and $select parsing."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_sync_sandbox import odata, schema

pytestmark = pytest.mark.unit

USER_TYPES = schema.edm_types(schema.USER)
COMPLEX = schema.complex_types()

ANN: dict[str, Any] = {
    "id": "1",
    "displayName": "Ann O'Neil",
    "mail": "Ann@Contoso.com",
    "userPrincipalName": "ann@contoso.onmicrosoft.com",
    "accountEnabled": True,
    "department": None,
    "otherMails": ["ann@contoso.com", "a.o@example.org"],
    "identities": [
        {"signInType": "userPrincipalName", "issuer": "fab.com", "issuerAssignedId": "x"}
    ],
    "createdDateTime": "2024-03-01T10:00:00Z",
}


def matches(text: str, obj: dict[str, Any] = ANN) -> bool:
    return odata.compile_filter(text, USER_TYPES, COMPLEX, resource="microsoft.graph.user")(obj)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail eq 'ann@contoso.com'", True),  # case-insensitive
        ("mail eq 'bob@contoso.com'", False),
        ("mail ne 'bob@contoso.com'", True),
        ("accountEnabled eq true", True),
        ("accountEnabled eq false", False),
        ("department eq null", True),
        ("department ne null", False),
        ("mail ne null", True),
        ("startswith(displayName,'ann')", True),
        ("startswith(displayName, 'bob')", False),
        ("endswith(mail,'.com')", True),
        ("mail in ('x@y.com', 'ANN@contoso.com')", True),
        ("mail in ('x@y.com')", False),
        ("otherMails/any(x:x eq 'A.O@example.org')", True),
        ("otherMails/any(x:x eq 'nobody@example.org')", False),
        ("otherMails/any(x:startswith(x,'a.o'))", True),
        ("identities/any(i:i/issuer eq 'fab.com' and i/issuerAssignedId eq 'x')", True),
        ("identities/any(i:i/issuer eq 'other.com')", False),
        ("mail eq 'x' or accountEnabled eq true", True),
        ("mail eq 'x' or (accountEnabled eq true and department eq 'Sales')", False),
        ("not (mail eq 'x')", True),
        ("createdDateTime ge 2024-01-01T00:00:00Z", True),
        ("createdDateTime lt 2024-01-01T00:00:00Z", False),
        ("displayName eq 'Ann O''Neil'", True),
        ("startswith(displayName,'Ann O''')", True),
        ("department eq 'Sales'", False),
    ],
)
def test_filter_evaluation(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_quote_escaping_is_one_literal() -> None:
    node = odata.parse_filter("displayName eq 'it''s'' or ''1''=''1'")
    assert node == odata.Compare(("displayName",), "eq", odata.Literal("string", "it's' or '1'='1"))
    # The literal never widens the query.
    assert not matches("displayName eq 'x'' or displayName ne ''x'")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("mail eq 'unterminated", "BadRequest"),
        ("mail eq", "BadRequest"),
        ("mail eq 'a' and", "BadRequest"),
        ("(mail eq 'a'", "BadRequest"),
        ("mail eq 'a' extra", "BadRequest"),
        ("contains(mail,'a')", "Request_UnsupportedQuery"),
        ("nosuchprop eq 'a'", "Request_UnsupportedQuery"),
        ("otherMails eq 'a'", "Request_UnsupportedQuery"),
        ("mail/any(x:x eq 'a')", "Request_UnsupportedQuery"),
        ("otherMails/all(x:x eq 'a')", "Request_UnsupportedQuery"),
        ("accountEnabled eq 'yes'", "BadRequest"),
        ("mail has 'a'", "Request_UnsupportedQuery"),
        ("mail in (" + ",".join(f"'{i}'" for i in range(16)) + ")", "Request_UnsupportedQuery"),
        (  # the clause's lists together
            "mail in (" + ",".join(f"'{i}'" for i in range(8)) + ") or "
            "userPrincipalName in (" + ",".join(f"'{i}'" for i in range(8)) + ")",
            "Request_UnsupportedQuery",
        ),
        (
            "otherMails/any(x:x in (" + ",".join(f"'{i}'" for i in range(16)) + "))",
            "Request_UnsupportedQuery",
        ),
        ("", "BadRequest"),
    ],
)
def test_bad_filters_are_rejected(text: str, code: str) -> None:
    with pytest.raises(odata.FilterError) as info:
        odata.compile_filter(text, USER_TYPES, COMPLEX)
    assert info.value.code == code


def test_an_in_list_of_15_values_is_accepted_and_the_limit_can_be_lifted() -> None:
    fifteen = "mail in (" + ",".join(f"'{i}'" for i in range(14)) + ",'ANN@contoso.com')"
    assert matches(fifteen)
    sixteen = "mail in (" + ",".join(f"'{i}'" for i in range(15)) + ",'ann@contoso.com')"
    node = odata.parse_filter(sixteen)
    odata.validate(node, USER_TYPES, COMPLEX, max_in_values=None)  # an advanced query's
    assert odata.evaluate(node, ANN)


def test_missing_property_is_null() -> None:
    assert matches("jobTitle eq null", {"id": "2"})
    assert not matches("startswith(jobTitle,'a')", {"id": "2"})


def test_equality_terms_for_indexes() -> None:
    indexed = frozenset({"id", "mail", "otherMails", "userPrincipalName"})
    node = odata.parse_filter("mail eq 'A@x.com' or otherMails/any(o:o eq 'B@x.com')")
    assert odata.equality_terms(node, indexed) == [("mail", "a@x.com"), ("otherMails", "b@x.com")]
    node = odata.parse_filter("mail eq 'a@x.com' and accountEnabled eq true")
    assert odata.equality_terms(node, indexed) == [("mail", "a@x.com")]
    node = odata.parse_filter("mail eq 'a@x.com' or accountEnabled eq true")
    assert odata.equality_terms(node, indexed) is None
    node = odata.parse_filter("startswith(mail,'a')")
    assert odata.equality_terms(node, indexed) is None


def test_id_terms() -> None:
    assert odata.id_terms(odata.parse_filter("id eq 'a' or id eq 'b'")) == ["a", "b"]
    assert odata.id_terms(odata.parse_filter("id in ('a','b')")) == ["a", "b"]
    assert odata.id_terms(odata.parse_filter("id eq 'a' and id eq 'b'")) is None
    assert odata.id_terms(odata.parse_filter("displayName eq 'a'")) is None


def test_select_parsing() -> None:
    assert odata.parse_select(None) is None
    assert odata.parse_select("displayName, mail,displayName,") == ["displayName", "mail"]
