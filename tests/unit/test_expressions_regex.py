"""Replace in each of its modes, and .NET regex / substitution syntax translated to Python."""

from __future__ import annotations

from typing import Any

import pytest

from worker.domain.expressions import ExpressionError, parse
from worker.domain.expressions.dotnet_regex import (
    RegexError,
    translate,
    translate_replacement,
)
from worker.domain.mapping import EvaluationContext

pytestmark = pytest.mark.unit


def ev(text: str, attributes: dict[str, Any] | None = None) -> Any:
    return parse(text).evaluate(attributes or {}, EvaluationContext())


PHONE = '"\\\\+(?<isdCode>\\\\d* )(?<phoneNumber>\\\\d{10})"'


@pytest.mark.parametrize(
    ("text", "attributes", "expected"),
    [
        # Example 1: oldValue + replacementValue.
        (
            'Replace([BusinessTitle],"Product Developer", , , "Software Engineer", , )',
            {"BusinessTitle": "Product Developer"},
            "Software Engineer",
        ),
        (
            'Replace([BusinessTitle],"Product Developer", , , "Software Engineer", , )',
            {"BusinessTitle": "Senior Product Developer"},
            "Senior Software Engineer",
        ),
        # Case-sensitive.
        (
            'Replace([BusinessTitle],"product developer", , , "Software Engineer", , )',
            {"BusinessTitle": "Product Developer"},
            "Product Developer",
        ),
        # Example 2: oldValue + template: the source goes into the template.
        (
            'Replace([UserID],"<username>", , , , , "<username>@contoso.com")',
            {"UserID": "jsmith"},
            "jsmith@contoso.com",
        ),
        # Example 3: regexPattern + replacementValue with a named group.
        (
            f'Replace([telephoneNumber], , {PHONE}, , "${{phoneNumber}}", , )',
            {"telephoneNumber": "+91 9998887777"},
            "9998887777",
        ),
        # Example 4: regexPattern + regexGroupName + replacementValue.
        (
            'Replace([AddressLineData], ,"(?<streetNumber>^\\\\d*)","streetNumber", "888", , )',
            {"AddressLineData": "545 Tremont Street"},
            "888 Tremont Street",
        ),
        (
            'Replace([userPrincipalName], , "(?<Suffix>@(.)*)", "Suffix", "", , )',
            {"userPrincipalName": "jsmith@contoso.com"},
            "jsmith",
        ),
        # Example 5: regexPattern + regexGroupName + replacementAttributeName.
        (
            f'Replace([telephoneNumber], , {PHONE}, "phoneNumber" , , [mobile], )',
            {"telephoneNumber": "", "mobile": "+91 8887779999"},
            "8887779999",
        ),
        (
            f'Replace([telephoneNumber], , {PHONE}, "phoneNumber" , , [mobile], )',
            {"mobile": "+91 8887779999"},
            "8887779999",
        ),
        # "If source has a value, source is returned".
        (
            f'Replace([telephoneNumber], , {PHONE}, "phoneNumber" , , [mobile], )',
            {"telephoneNumber": "+33 1 23", "mobile": "+91 8887779999"},
            "+33 1 23",
        ),
        (
            f'Replace([telephoneNumber], , {PHONE}, "phoneNumber" , , [mobile], )',
            {"mobile": "no digits"},
            None,
        ),
        # Example 6: remove what matches.
        ('Replace([mailNickname], , "[a-zA-Z_]*", , "", , )', {"mailNickname": "john_doe72"}, "72"),
        # Example 3, second part: remove parentheses, dashes and spaces (the "+" is not in the
        # class, so it stays; the reference's sample output drops it, which no regex engine does).
        (
            'Replace([mobile], , "[()\\\\s-]+", , "", , )',
            {"mobile": "+1 (999) 888-7777"},
            "+19998887777",
        ),
        (
            'Replace([mobile], , "[()\\\\s-]+", , "", , )',
            {"mobile": "1 (999) 888-7777"},
            "19998887777",
        ),
        # Strip known domain name.
        ('Replace([mail], "@contoso.com", , ,"", ,)', {"mail": "john.doe@contoso.com"}, "john.doe"),
        # Null source flows null.
        ('Replace([mail], "@contoso.com", , ,"", ,)', {}, None),
        ('Replace([mail], , "x", , "", , )', {}, None),
        # Numbered groups, $$, $&, and backslashes that are literal in .NET replacements.
        ('Replace([n], , "(\\\\w+) (\\\\w+)", , "$2, $1", , )', {"n": "John Smith"}, "Smith, John"),
        ('Replace([n], , "\\\\d+", , "[$&]", , )', {"n": "a1b22"}, "a[1]b[22]"),
        ('Replace([n], , "\\\\d", , "$$", , )', {"n": "a1"}, "a$"),
        ('Replace([n], , "\\\\d", , "\\\\", , )', {"n": "a1"}, "a\\"),
        ('Replace([n], , "b", , "<$`|$\'>", , )', {"n": "abc"}, "a<a|c>c"),
        ('Replace([n], , "(?<x>b)", , "${nope}", , )', {"n": "abc"}, "a${nope}c"),
        # A pattern from an attribute is translated at run time.
        ('Replace([n], , [p], , "_", , )', {"n": "a1b2", "p": "\\d"}, "a_b_"),
        ('Replace([n], , [p], , "_", , )', {"n": "a1b2"}, "a1b2"),
    ],
)
def test_replace(text: str, attributes: dict[str, Any], expected: Any) -> None:
    assert ev(text, attributes) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('Replace([x], "a", , , , , )', "needs a replacementValue or a template"),
        ('Replace([x], , , , "b", , )', "needs an oldValue or a regexPattern"),
        ('Replace([x], , "a", , , , )', "needs a replacementValue"),
        (
            'Replace([x], , "(?<g>a)", "g", , , )',
            "needs a replacementValue or a replacementAttributeName",
        ),
        ('Replace([x], , "(?<a-b>x)", , "", , )', "balancing groups are not supported"),
        ('Replace([x], , "[a-z-[aeiou]]", , "", , )', "class subtraction is not supported"),
        ('Replace([x], , "a{2,1}", , "", , )', "invalid regular expression"),
        ('Replace([x], , "(?n)(a)", , "", , )', "explicit-capture"),
    ],
)
def test_replace_rejects_incomplete_or_bad_arguments_at_parse_time(
    text: str, fragment: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert fragment in caught.value.message


def test_bad_runtime_pattern_is_an_expression_error_at_the_call() -> None:
    with pytest.raises(ExpressionError) as caught:
        ev('Append("x", Replace([n], , [p], , "_", , ))', {"n": "a", "p": "("})
    assert caught.value.position == 12
    assert "invalid regular expression" in caught.value.message


@pytest.mark.parametrize(
    ("pattern", "subject", "matched"),
    [
        ("(?<year>\\d{4})-(?<month>\\d\\d)", "on 2021-08 ok", "2021-08"),
        ("(?'word'\\w+)", "hello world", "hello"),
        ("(?<a>x)\\k<a>", "axxb", "xx"),
        ("(?<a>x)\\k'a'", "axxb", "xx"),
        ("\\p{Lu}+", "abcDÉFghi", "DÉF"),
        ("[\\p{Ll}]+", "ABcdéF", "cdé"),
        ("\\P{L}+", "ab12!c", "12!"),
        ("a{,2}", "a{,2}", "a{,2}"),  # not a quantifier in .NET: literal
        ("x{2}", "axxx", "xx"),
        ("[]a]+", "]a]b", "]a]"),
        ("[a&&b]+", "a&b", "a&b"),
        ("[a|b~]+", "|~", "|~"),
        ("abc(?i)def", "abcDEF", "abcDEF"),
        ("(?i)abc", "ABC", "ABC"),
        ("a(?i:b)c", "aBc", "aBc"),
        ("(?#a comment)x", "x", "x"),
        ("\\e", "\x1b", "\x1b"),
        ("\\cA", "\x01", "\x01"),
        ("(?>a+)b", "aab", "aab"),
        ("(?<=@)\\w+", "x@host", "host"),
    ],
)
def test_dotnet_patterns(pattern: str, subject: str, matched: str) -> None:
    regex = translate(pattern)
    found = regex.compiled.search(subject)
    assert found is not None
    assert found.group() == matched


def test_dollar_and_z_anchors() -> None:
    assert translate("a\\Z").compiled.search("a\n") is not None
    assert translate("a\\z").compiled.search("a\n") is None
    assert translate("a$").compiled.search("a\n") is not None


def test_dotnet_group_numbering_puts_named_groups_last() -> None:
    # .NET numbers (y) as 1 and (?<a>x) as 2; Python numbers them the other way round.
    regex = translate("(?<a>x)(y)")
    template = translate_replacement("$1$2${a}", regex)
    assert regex.compiled.sub(template, "xy") == "yxx"
    assert translate("(?<a>x)(y)\\1").compiled.search("xyy") is not None


def test_conditionals() -> None:
    regex = translate('(?<q>")?\\w+(?(q)")')
    assert regex.compiled.fullmatch('"abc"') is not None
    assert regex.compiled.fullmatch("abc") is not None


@pytest.mark.parametrize(
    "pattern",
    ["\\G", "(?<1>x)", "(", "a)", "[abc", "\\p{IsGreek}", "(?<a>x)(?<a>y)", "\\", "\\k<a", "\\1"],
)
def test_untranslatable_patterns_raise_regex_error(pattern: str) -> None:
    with pytest.raises(RegexError):
        translate(pattern)
