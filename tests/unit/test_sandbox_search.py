"""The sandbox's `$search` on directory objects: Graph's documented tokenization and syntax."""

from __future__ import annotations

import pytest

from tenant_sync_sandbox import search

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello world", ["hello", "world"]),
        ("HelloWorld", ["hello", "world"]),
        ("helloWORLD", ["hello", "world"]),
        ("HELLOworld", ["helloworld"]),  # only lower-to-upper changes split
        ("hello.world", ["hello", ".", "world", "helloworld"]),
        ("hello123world", ["hello", "123", "world"]),
        ("李四(David Li)", ["李四", "(", "david", "李四david", "li", ")"]),
    ],
)
def test_tokens_follow_graphs_documented_examples(value: str, expected: list[str]) -> None:
    assert search.tokens(value) == expected


@pytest.mark.parametrize(
    ("text", "name", "match"),
    [
        ('"displayName:李四"', "李四(David Li)", True),
        ('"displayName:Li 李"', "李四(David Li)", True),
        ('"displayName:David)"', "李四(David Li)", True),
        ('"displayName:helloworld"', "hello-world", True),
        ('"displayName:avid"', "李四(David Li)", False),
        ('"displayName:one" AND ("displayName:video" OR "displayName:drive")', "OneVideo", True),
        ('"displayName:one" AND "displayName:drive"', "OneVideo", False),
    ],
)
def test_matching(text: str, name: str, match: bool) -> None:
    assert search.matches(search.parse_search(text), {"displayName": name}) is match


def test_other_properties_match_by_prefix() -> None:
    node = search.parse_search('"mail:ann.l"')
    assert search.matches(node, {"mail": "Ann.Lee@contoso.com"})
    assert not search.matches(node, {"mail": "x.ann.lee@contoso.com"})
    assert search.matches(search.parse_search('"otherMails:zed@"'), {"otherMails": ["zed@x.com"]})


@pytest.mark.parametrize(
    "text",
    [
        "displayName:ann",
        '"displayName:ann',
        '"ann"',
        '"displayName:a" and "mail:b"',
        '("displayName:a"',
        "",
    ],
)
def test_malformed_searches_are_refused(text: str) -> None:
    with pytest.raises(search.SearchError) as caught:
        search.parse_search(text)
    assert caught.value.code == "BadRequest"
    assert caught.value.message.startswith("Invalid $search clause: ")
