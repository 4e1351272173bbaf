"""Scoping: internal members only, assignment, and the filter operators with their null rules."""

from __future__ import annotations

import pytest

from worker.domain.model import SourceUser
from worker.domain.scope import Clause, Operator, ScopeError, ScopeSpec, evaluate_scope

pytestmark = pytest.mark.unit


def member(**attrs: object) -> SourceUser:
    return SourceUser("u1", {"userPrincipalName": "ann@contoso.com", "userType": "Member", **attrs})


@pytest.mark.parametrize(
    ("operator", "value", "actual", "expected"),
    [
        (Operator.EQUALS, "Sales", "Sales", True),
        (Operator.EQUALS, "Sales", "sales", False),  # case-sensitive
        (Operator.NOT_EQUALS, "Sales", "Legal", True),
        (Operator.NOT_EQUALS, "Sales", None, True),  # NOT forms hold on null
        (Operator.EQUALS, "Sales", None, False),
        (Operator.IS_TRUE, None, True, True),
        (Operator.IS_TRUE, None, False, False),
        (Operator.IS_FALSE, None, False, True),
        (Operator.IS_FALSE, None, None, False),
        (Operator.IS_NULL, None, None, True),
        (Operator.IS_NULL, None, "", True),
        (Operator.IS_NULL, None, "x", False),
        (Operator.IS_NOT_NULL, None, "x", True),
        (Operator.IS_NOT_NULL, None, None, False),
        (Operator.REGEX_MATCH, r"^S.l", "Sales", True),
        (Operator.REGEX_MATCH, r"^S.l", None, False),
        (Operator.NOT_REGEX_MATCH, r"^S.l", "Legal", True),
        (Operator.NOT_REGEX_MATCH, r"^S.l", None, True),
        (Operator.INCLUDES, "ale", "Sales", True),
        (Operator.STARTS_WITH, "Sa", "Sales", True),
        (Operator.ENDS_WITH, "es", "Sales", True),
        (Operator.ENDS_WITH, "ES", "Sales", False),
        (Operator.GREATER_THAN, "10", "11", True),
        (Operator.GREATER_THAN, "10", "9", False),  # numeric, not lexical
        (Operator.GREATER_THAN_OR_EQUALS, "10", "10", True),
        (Operator.LESS_THAN, "10", "9", True),
        (Operator.LESS_THAN_OR_EQUALS, "10", "10", True),
        (Operator.IS_IN, ["Sales", "Legal"], "Legal", True),
        (Operator.IS_IN, "Sales,Legal", "Finance", False),
        (Operator.IS_NOT_IN, ["Sales", "Legal"], "Finance", True),
        (Operator.IS_NOT_IN, ["Sales"], None, True),
    ],
)
def test_clause_operators(
    operator: Operator, value: object, actual: object, expected: bool
) -> None:
    assert Clause("department", operator, value).matches({"department": actual}) is expected


def test_multi_valued_attributes_match_any_value() -> None:
    clause = Clause("businessPhones", Operator.STARTS_WITH, "+47")
    assert clause.matches({"businessPhones": ["+33 1", "+47 2"]})
    assert not clause.matches({"businessPhones": []})


def test_filter_groups_are_an_or_of_ands() -> None:
    sales_oslo = (
        Clause("department", Operator.EQUALS, "Sales"),
        Clause("city", Operator.EQUALS, "Oslo"),
    )
    legal = (Clause("department", Operator.EQUALS, "Legal"),)
    spec = ScopeSpec(filters=(sales_oslo, legal))

    assert evaluate_scope(member(department="Sales", city="Oslo"), spec, assigned=True).in_scope
    assert evaluate_scope(member(department="Legal"), spec, assigned=True).in_scope
    verdict = evaluate_scope(member(department="Sales", city="Lyon"), spec, assigned=True)
    assert not verdict.in_scope
    assert "city EQUALS 'Oslo' is false" in verdict.reason
    assert "department EQUALS 'Legal' is false" in verdict.reason


def test_guests_and_external_users_are_never_in_scope() -> None:
    spec = ScopeSpec()
    guest = SourceUser("g", {"userPrincipalName": "g@x.com", "userType": "Guest"})
    ext = SourceUser("e", {"userPrincipalName": "a_b.com#EXT#@contoso.com", "userType": "Member"})
    assert not evaluate_scope(guest, spec, assigned=True).in_scope
    assert not evaluate_scope(ext, spec, assigned=True).in_scope


def test_assigned_scope_needs_an_assignment() -> None:
    spec = ScopeSpec(assigned_only=True, group_ids=("g",))
    assert not evaluate_scope(member(), spec, assigned=False).in_scope
    assert evaluate_scope(member(), spec, assigned=True).in_scope


def test_bad_clauses_are_rejected_when_built() -> None:
    with pytest.raises(ScopeError, match="regular expression"):
        Clause("department", Operator.REGEX_MATCH, "(")
    with pytest.raises(ScopeError, match="needs a value"):
        Clause("department", Operator.EQUALS, None)
