"""Guid and RandomString meet their constraints, deterministically under a seeded Random."""

from __future__ import annotations

import re
import string
import uuid
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.expressions import ExpressionError, parse
from worker.domain.expressions.functions import RANDOM_STRING_MAX, SPECIAL_CHARACTERS
from worker.domain.mapping import EvaluationContext

pytestmark = pytest.mark.unit


def ev(text: str, seed: int = 0) -> Any:
    return parse(text).evaluate({}, EvaluationContext(random=Random(seed)))


GUID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_guid_is_a_random_version_4_guid() -> None:
    value = ev("Guid()")
    assert GUID_SHAPE.fullmatch(value)
    assert uuid.UUID(value).version == 4


def test_guid_is_deterministic_under_a_seed_and_differs_between_calls() -> None:
    assert ev("Guid()", seed=42) == ev("Guid()", seed=42)
    assert ev("Guid()", seed=42) != ev("Guid()", seed=43)
    parsed = parse("Guid()")
    context = EvaluationContext(random=Random(7))
    assert len({parsed.evaluate({}, context) for _ in range(50)}) == 50


def _classes(value: str) -> tuple[int, int, int, int]:
    return (
        sum(ch in string.digits for ch in value),
        sum(ch in SPECIAL_CHARACTERS for ch in value),
        sum(ch in string.ascii_uppercase for ch in value),
        sum(ch in string.ascii_lowercase for ch in value),
    )


def test_random_string_reference_example_1() -> None:
    # "Generates a random string with 6 characters ... 3 numbers and 3 lower case characters".
    value = ev("RandomString(6,3,0,0,3)")
    assert len(value) == 6
    assert _classes(value) == (3, 0, 0, 3)


def test_random_string_reference_example_2() -> None:
    # 10 characters, at least 2 numbers, 2 special, 2 capital, 1 lower; never "?" nor ",".
    for seed in range(200):
        value = ev('RandomString(10,2,2,2,1,"?,")', seed)
        digits, specials, capitals, lowers = _classes(value)
        assert len(value) == 10
        assert (digits, specials, capitals, lowers) >= (2, 2, 2, 1)
        assert min(digits - 2, specials - 2, capitals - 2, lowers - 1) >= 0
        assert not {"?", ","} & set(value)


def test_random_string_is_deterministic_under_a_seed() -> None:
    assert ev("RandomString(12,2,2,2,2)", 5) == ev("RandomString(12,2,2,2,2)", 5)


@given(
    st.integers(min_value=1, max_value=RANDOM_STRING_MAX),
    st.lists(st.integers(min_value=0, max_value=20), min_size=4, max_size=4),
    st.text(alphabet=string.ascii_letters + string.digits + "!@#", max_size=10),
    st.integers(min_value=0, max_value=2**32),
)
def test_random_string_meets_its_constraints(
    length: int, minimums: list[int], avoid: str, seed: int
) -> None:
    avoid_text = avoid.replace("\\", "").replace('"', "")
    text = f'RandomString({length},{",".join(map(str, minimums))},"{avoid_text}")'
    try:
        value = ev(text, seed)
    except ExpressionError:
        # Only impossible requests fail.
        too_many = sum(minimums) > length
        pools = (string.digits, SPECIAL_CHARACTERS, string.ascii_uppercase, string.ascii_lowercase)
        emptied = any(
            minimum and set(pool) <= set(avoid_text)
            for pool, minimum in zip(pools, minimums, strict=True)
        )
        assert too_many or emptied
        return
    assert len(value) == length
    assert all(got >= want for got, want in zip(_classes(value), minimums, strict=True))
    assert not set(value) & set(avoid_text)
    if minimums[1] == 0:
        assert not set(value) & set(SPECIAL_CHARACTERS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("RandomString(3,2,2,0,0)", "add up to more than Length"),
        ("RandomString(257,0,0,0,0)", "Length must be 1 to 256"),
        ("RandomString(0,0,0,0,0)", "Length must be 1 to 256"),
        ("RandomString(5,-1,0,0,0)", "cannot be negative"),
        ('RandomString(5,1,0,0,0,"0123456789")', "leaves no numbers"),
    ],
)
def test_random_string_impossible_requests(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        ev(text)
    assert fragment in caught.value.message
    assert caught.value.position == 0
