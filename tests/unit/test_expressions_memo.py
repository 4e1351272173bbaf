"""An expression that remembers its results still gives every user exactly their own value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import pytest

from worker.domain.expressions import parse
from worker.domain.expressions.evaluator import MEMO_SIZE
from worker.domain.mapping import IGNORED, EvaluationContext, Redacted

pytestmark = pytest.mark.unit


def test_same_attributes_same_value_and_different_attributes_their_own() -> None:
    expression = parse('Join(" ", PCase([givenName]), PCase([surname]))')
    context = EvaluationContext()
    ann = {"givenName": "ANN", "surname": "o'neil", "city": "Paris"}
    assert expression.evaluate(ann, context) == "Ann O'neil"
    # Attributes the expression does not read do not matter; the ones it reads do.
    assert expression.evaluate({**ann, "city": "Oslo"}, context) == "Ann O'neil"
    assert expression.evaluate({**ann, "surname": "SMITH"}, context) == "Ann Smith"
    assert expression.evaluate({"givenName": "ann"}, context) == "Ann"


def test_values_that_compare_equal_across_types_are_kept_apart() -> None:
    # 1 == True and hash(1) == hash(True): a memo keyed on values alone would mix them up.
    expression = parse("CStr([flag])")
    context = EvaluationContext()
    assert expression.evaluate({"flag": True}, context) == "True"
    assert expression.evaluate({"flag": 1}, context) == "1"
    assert expression.evaluate({"flag": True}, context) == "True"


def test_clock_and_chance_are_asked_every_time() -> None:
    moments = iter([datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n) for n in range(3)])
    context = EvaluationContext(now=lambda: next(moments), random=Random(3))
    now = parse('FormatDateTime(Now(), , "yyyy-MM-dd")')
    assert [now.evaluate({}, context) for _ in range(3)] == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]
    guid = parse('Join("-", [department], Guid())')
    assert len({guid.evaluate({"department": "Sales"}, context) for _ in range(20)}) == 20


def test_a_list_result_is_never_shared_between_users() -> None:
    expression = parse('Split([proxies], ",")')
    context = EvaluationContext()
    first = expression.evaluate({"proxies": "a,b"}, context)
    first.append("changed by the first user")
    assert expression.evaluate({"proxies": "a,b"}, context) == ["a", "b"]


def test_list_attributes_are_evaluated_without_the_memo() -> None:
    expression = parse('Join(";", [businessPhones])')
    context = EvaluationContext()
    assert expression.evaluate({"businessPhones": ["1", "2"]}, context) == "1;2"
    assert expression.evaluate({"businessPhones": ["3"]}, context) == "3"


def test_redacted_and_ignored_flows_survive_being_remembered() -> None:
    context = EvaluationContext()
    secret = parse("Redact([employeeId])")
    for _ in range(2):
        assert secret.evaluate({"employeeId": "E1"}, context) == Redacted("E1")
    ignored = parse("IgnoreFlowIfNullOrEmpty([mobilePhone])")
    for _ in range(2):
        assert ignored.evaluate({"mobilePhone": ""}, context) is IGNORED
        assert ignored.evaluate({"mobilePhone": "+1 555"}, context) == "+1 555"


def test_many_distinct_values_stay_exact_past_the_memo_size() -> None:
    expression = parse("ToUpper([mailNickname])")
    context = EvaluationContext()
    names = [f"user{n}" for n in range(3 * MEMO_SIZE)]
    assert [expression.evaluate({"mailNickname": n}, context) for n in names] == [
        n.upper() for n in names
    ]
    again: list[Any] = [expression.evaluate({"mailNickname": n}, context) for n in names[:50]]
    assert again == [n.upper() for n in names[:50]]
