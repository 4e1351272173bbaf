"""The expression grammar: tokens, tree, checks, error messages with positions, fuzzing."""

from __future__ import annotations

import contextlib
from random import Random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.domain.expressions import ExpressionError, parse
from worker.domain.expressions.parser import Call, Comparison, Literal, Missing, parse_tree
from worker.domain.mapping import EvaluationContext

pytestmark = pytest.mark.unit

CONTEXT = EvaluationContext(random=Random(0))


def ev(text: str, attributes: dict[str, Any] | None = None) -> Any:
    return parse(text).evaluate(attributes or {}, CONTEXT)


# --- what parses, and to what -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Reference: "if you need a backslash or quotation mark in the string, it must be
        # escaped with the backslash": "Company name: \"Contoso\"".
        ('"Company name: \\"Contoso\\""', 'Company name: "Contoso"'),
        ('"back\\\\slash"', "back\\slash"),
        # Any other backslash stays, so regex patterns read as written.
        ('"\\d+"', "\\d+"),
        ('""', ""),
        ("42", 42),
        ("-10", -10),
        ("1.5", 1.5),
        ("&HF", 15),
        ("&HF7", 247),
        ("&hff", 255),
        ("&O17", 15),
        ("&HFF&", 255),
        ("vbTextCompare", 1),
        ("vbBinaryCompare", 0),
        ("True", True),
        ('  Append ( "a" ,\n\t"b" )  ', "ab"),
        ('("x")', "x"),
    ],
)
def test_literals_and_layout(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_attribute_reference_and_source_attributes() -> None:
    parsed = parse('Join(" ", [givenName], IIF([country]="FR", [surname], [ sn ]))')
    assert parsed.source_attributes == frozenset({"givenName", "country", "surname", "sn"})
    assert parse('"constant"').source_attributes == frozenset()


def test_empty_arguments_are_kept_as_missing_slots() -> None:
    tree = parse_tree('Replace([x], , "re", , "", , )')
    assert isinstance(tree, Call)
    assert len(tree.args) == 7
    assert [type(arg).__name__ for arg in tree.args] == [
        "Attribute",
        "Missing",
        "Literal",
        "Missing",
        "Literal",
        "Missing",
        "Missing",
    ]
    assert isinstance(tree.args[6], Missing)


def test_no_arguments_is_not_one_empty_argument() -> None:
    tree = parse_tree("Guid()")
    assert isinstance(tree, Call)
    assert tree.args == ()


@pytest.mark.parametrize("op", ["=", "<>", ">", ">=", "<", "<="])
def test_comparison_operators(op: str) -> None:
    tree = parse_tree(f'IIF([a]{op}"x", 1, 2)')
    assert isinstance(tree, Call)
    condition = tree.args[0]
    assert isinstance(condition, Comparison)
    assert condition.op == op
    assert isinstance(condition.right, Literal)


@pytest.mark.parametrize(
    ("text", "attributes", "expected"),
    [
        ('[a]="x"', {"a": "x"}, True),
        ('[a]="X"', {"a": "x"}, False),  # case-sensitive
        ('[a]<>"x"', {"a": "y"}, True),
        ("[n]>5", {"n": "10"}, True),  # numeric when one side is a number
        ('[n]>"5"', {"n": "10"}, False),  # ordinal when both are text
        ("[n]>=10", {"n": 10}, True),
        ("[n]<10", {"n": 9.5}, True),
        ("[n]<=-1", {"n": -1}, True),
        ("IsNull([a])=True", {}, True),
        ('IsNull([a])="True"', {}, True),
        ('CDate("2021-01-02")>CDate("2021-01-01")', {}, True),
    ],
)
def test_comparisons(text: str, attributes: dict[str, Any], expected: bool) -> None:
    assert ev(text, attributes) is expected


def test_parse_once_evaluate_many() -> None:
    parsed = parse("ToUpper([a])")
    assert [parsed.evaluate({"a": name}, CONTEXT) for name in ("x", "y")] == ["X", "Y"]


# --- errors and their positions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty expression"),
        ("   ", 0, "empty expression"),
        ('Foo("x")', 0, "unknown function 'Foo'"),
        ('Append("a", foo("x"))', 12, "unknown function 'foo'"),
        ('append("a", "b")', 0, "case-sensitive: did you mean 'Append'"),
        ('Apend("a", "b")', 0, "did you mean 'Append'"),
        ('Left("abc")', 0, "Left takes exactly 2 arguments, got 1"),
        ('Append("a", "b", "c")', 0, "Append takes exactly 2 arguments, got 3"),
        ("Guid(1)", 0, "Guid takes exactly 0 arguments, got 1"),
        ('Join(",")', 0, "Join takes at least 2 arguments, got 1"),
        ('Switch([a], "d", "k")', 0, "Switch takes at least 4 arguments"),
        ('Switch([a], "d", "k", "v", "k2")', 0, "an even number"),
        ("Coalesce()", 0, "Coalesce takes at least 1 arguments, got 0"),
        ('Append([a], "b"', 6, "unbalanced parentheses: '(' of Append is never closed"),
        ('Append([a], "b"))', 16, "unbalanced parentheses: ')' without a matching '('"),
        ("Append([a],", 6, "never closed"),
        ('("x"', 0, "'(' is never closed"),
        (")", 0, "')' without a matching '('"),
        ('Append("abc, [a])', 7, "unterminated string constant"),
        ('"abc\\"', 0, "unterminated string constant"),
        ("Append([abc, 1)", 7, "unterminated attribute reference"),
        ("Append([], 1)", 7, "empty attribute reference"),
        ('Append("a" "b")', 11, "expected ',' or ')' in the arguments of Append"),
        ('[a] "b"', 4, "after a complete expression"),
        ('Append("a", "b") x', 17, "after a complete expression"),
        ("vbSomething", 0, "unknown name 'vbSomething'"),
        ("Append", 0, "unknown name 'Append'"),
        ('Left("a", 1x)', 10, "malformed number"),
        ("&G1", 0, "hex (&H) or octal (&O)"),
        ('[a] = = "b"', 6, "needs a value on its left"),
        ('[a] = "b" = "c"', 10, "cannot be chained"),
        ('[a] != "b"', 4, "use '<>'"),
        ("Append(\u201ca\u201d, 1)", 7, "straight quotes"),
        ("Append(#, 1)", 7, "unexpected character '#'"),
    ],
)
def test_errors_carry_message_and_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.position == position
    assert fragment in caught.value.message
    assert str(caught.value) == f"{caught.value.message} at position {position}"


def test_an_empty_argument_is_a_null() -> None:
    assert ev('Append(, "b")') == "b"
    assert ev('Coalesce(, , "d")') == "d"


def test_constant_regex_is_checked_at_parse_time() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse('Replace([x], , "(unclosed", , "", , )')
    assert caught.value.position == 15
    assert "invalid regular expression" in caught.value.message


def test_regex_group_name_is_checked_at_parse_time() -> None:
    text = 'Replace([x], , "(?<a>\\\\d+)", "b", "", , )'
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert "no group named 'b'" in caught.value.message
    assert caught.value.position == text.index('"b"')


def test_select_unique_value_cannot_be_nested() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse('ToLower(SelectUniqueValue("a", "b"))')
    assert caught.value.position == 8
    assert "cannot be nested" in caught.value.message


def test_nesting_depth_is_bounded() -> None:
    deep = "ToLower(" * 150 + '"x"' + ")" * 150
    with pytest.raises(ExpressionError, match="nested more than"):
        parse(deep)
    assert ev("ToLower(" * 50 + '"X"' + ")" * 50) == "x"


def test_runtime_error_points_at_the_offending_call() -> None:
    with pytest.raises(ExpressionError) as caught:
        ev('Append("x", Left("abc", [n]))', {"n": "many"})
    assert caught.value.position == 12
    assert caught.value.message.startswith("Left: numChars must be a number")


# --- fuzzing: nothing but ExpressionError ------------------------------------------------

_NAMES = [
    "Append", "BitAnd", "CBool", "CDate", "Coalesce", "ConvertToBase64", "ConvertToUTF8Hex",
    "Count", "CStr", "DateAdd", "DateDiff", "DateFromNum", "FormatDateTime", "Guid",
    "IgnoreFlowIfNullOrEmpty", "IIF", "InStr", "IsNull", "IsNullOrEmpty", "IsPresent",
    "IsString", "Item", "Join", "Left", "Mid", "NormalizeDiacritics", "Not", "Now",
    "NumFromDate", "PCase", "RandomString", "Redact", "RemoveDuplicates", "Replace",
    "SelectUniqueValue", "Split", "StripSpaces", "Switch", "ToLower", "ToUpper", "Word",
]  # fmt: skip

_FRAGMENTS = st.sampled_from(
    [*_NAMES, "(", ")", ",", " ", "[a]", "[b]", '"', '\\"', "\\", "&H", "&HF", "-", "1", "0",
     "2.5", "=", "<>", ">=", "<", "vbTextCompare", '"x"', '"(?<g>\\\\d)"', '""', "[", "]", "\n",
     "ß", "é"]
)  # fmt: skip


def _parse_or_expression_error(text: str) -> None:
    """Parsing succeeds or raises ExpressionError pointing inside the text; nothing else."""
    position = None
    try:
        parse(text)
    except ExpressionError as exc:
        position = exc.position
    assert position is None or 0 <= position <= len(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_fuzz_arbitrary_text_only_raises_expression_error(text: str) -> None:
    _parse_or_expression_error(text)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAGMENTS, max_size=30).map("".join))
def test_fuzz_token_soup_only_raises_expression_error(text: str) -> None:
    _parse_or_expression_error(text)


_VALUES = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.one_of(st.none(), st.text(max_size=5), st.integers()), max_size=3),
    st.sampled_from(["2021-08-24", "8/25/2021 5:41:18 PM", "129699324000000000", "True", "0"]),
)


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.sampled_from(["[a]", "[b]", "[c]", '""', '"x"', "1", "-3", "0", "&HF", "vbTextCompare"]),
        st.text(alphabet="abcXYZ 09-,./:é", max_size=8).map(lambda s: '"' + s + '"'),
    )

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        call = st.tuples(
            st.sampled_from(_NAMES),
            st.lists(st.one_of(children, st.just("")), max_size=7),
        ).map(lambda pair: f"{pair[0]}({', '.join(pair[1])})")
        comparison = st.tuples(children, st.sampled_from(["=", "<>", ">", "<="]), children).map(
            lambda triple: "".join(triple)
        )
        return st.one_of(call, comparison)

    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions(), _VALUES, _VALUES, _VALUES)
def test_fuzz_evaluation_only_raises_expression_error(text: str, a: Any, b: Any, c: Any) -> None:
    try:
        parsed = parse(text)
    except ExpressionError:
        return
    with contextlib.suppress(ExpressionError):
        parsed.evaluate({"a": a, "b": b, "c": c}, EvaluationContext(random=Random(1)))
