"""`$search` on directory objects: parsing, checking and matching, as Graph documents it.

Pure: no state, no I/O. The syntax (Microsoft Graph docs, "Use the $search query parameter",
directory object collections):

    search  := or
    or      := and ("OR" and)*
    and     := primary ("AND" primary)*
    primary := "(" or ")" | '"' property ":" text '"'

`AND` and `OR` stand outside the quotes, in upper case; inside a clause `\\"` and `\\\\` escape a
quote and a backslash. Every clause names a property. `displayName` and `description` are
matched by tokens: the value and the searched text are split into words at spaces, symbols,
digit runs and lower-to-upper case changes (`HelloWorld` -> hello, world; words joined only by
symbols also count joined: `hello-world` -> hello, world, helloworld), and every word of the
text must be the start of some word of the value, in any order and any case. Any other string
property (or list of strings) is matched with `startsWith`, as Graph does for them.

Graph does not document the error of a malformed `$search`; the sandbox answers 400 BadRequest
"Invalid $search clause: ..." naming the problem (its choice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

TOKENIZED = frozenset({"displayName", "description"})


class SearchError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Clause:
    prop: str
    text: str


@dataclass(frozen=True)
class AndS:
    left: SearchNode
    right: SearchNode


@dataclass(frozen=True)
class OrS:
    left: SearchNode
    right: SearchNode


SearchNode = Union[Clause, AndS, OrS]  # noqa: UP007 - forward refs in dataclasses


def _syntax(message: str) -> SearchError:
    return SearchError("BadRequest", f"Invalid $search clause: {message}")


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens: ("clause", raw inside the quotes), ("op", AND|OR), ("(", ), (")", )."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append((c, c))
            i += 1
        elif c == '"':
            buf: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise _syntax("a clause is missing its closing double quote.")
                if text[i] == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if text[i] == '"':
                    i += 1
                    break
                buf.append(text[i])
                i += 1
            out.append(("clause", "".join(buf)))
        else:
            m = re.match(r"[A-Za-z]+", text[i:])
            word = m.group(0) if m else c
            if word not in ("AND", "OR"):
                raise _syntax(
                    f"unexpected '{word}' at position {i}: clauses go in double quotes and "
                    "are joined by AND or OR (upper case)."
                )
            out.append(("op", word))
            i += len(word)
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> SearchNode:
        node = self.parse_or()
        extra = self.peek()
        if extra is not None:
            raise _syntax(f"unexpected '{extra[1]}'.")
        return node

    def parse_or(self) -> SearchNode:
        node = self.parse_and()
        while self.peek() == ("op", "OR"):
            self.i += 1
            node = OrS(node, self.parse_and())
        return node

    def parse_and(self) -> SearchNode:
        node = self.parse_primary()
        while self.peek() == ("op", "AND"):
            self.i += 1
            node = AndS(node, self.parse_primary())
        return node

    def parse_primary(self) -> SearchNode:
        tok = self.peek()
        if tok is None:
            raise _syntax("the search is empty or ends too early.")
        self.i += 1
        if tok[0] == "(":
            node = self.parse_or()
            if self.peek() != (")", ")"):
                raise _syntax("a '(' is not closed.")
            self.i += 1
            return node
        if tok[0] != "clause":
            raise _syntax(f"unexpected '{tok[1]}'.")
        prop, colon, value = tok[1].partition(":")
        if not colon or not prop.strip():
            raise _syntax(
                f'"{tok[1]}" names no property: directory objects are searched with '
                '"property:text".'
            )
        return Clause(prop.strip(), value.strip())


def parse_search(text: str) -> SearchNode:
    """Parse the value of `$search`; raise SearchError when it is malformed."""
    if not text.strip():
        raise _syntax("the search is empty.")
    return _Parser(_lex(text)).parse()


def clauses(node: SearchNode) -> list[Clause]:
    if isinstance(node, Clause):
        return [node]
    return clauses(node.left) + clauses(node.right)


def validate(node: SearchNode, types: Mapping[str, str], resource: str) -> None:
    """Every clause names a string property (or list of strings) of the resource."""
    for clause in clauses(node):
        edm = types.get(clause.prop)
        if edm not in ("Edm.String", "Collection(Edm.String)"):
            raise SearchError(
                "Request_UnsupportedQuery",
                f"Unsupported or invalid search clause specified for property "
                f"'{clause.prop}' of resource '{resource}'.",
            )


# ---------------------------------------------------------------- matching

_WORD = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_", re.UNICODE)


def _split_case(word: str) -> list[str]:
    """Split where the case changes from lower to upper: HelloWorld -> Hello, World."""
    parts: list[str] = []
    start = 0
    for k in range(1, len(word)):
        if word[k - 1].islower() and word[k].isupper():
            parts.append(word[start:k])
            start = k
    parts.append(word[start:])
    return parts


def tokens(value: str) -> list[str]:
    """The words Graph's search index makes of a value (lower case)."""
    out: list[str] = []
    for chunk in value.split():
        pieces = _WORD.findall(chunk)
        words: list[str] = []
        for piece in pieces:
            if piece[0].isalpha():
                words += _split_case(piece)
            else:
                words.append(piece)
        out += [w.casefold() for w in words]
        alnum = [p for p in pieces if p[0].isalnum()]
        if len(alnum) > 1 and len(alnum) < len(pieces):
            out.append("".join(alnum).casefold())  # hello-world also as helloworld
    return out


def _search_words(text: str) -> list[str]:
    return [w for w in tokens(text) if w[0].isalnum()]


def _clause_matches(clause: Clause, obj: Mapping[str, Any]) -> bool:
    value = obj.get(clause.prop)
    values = value if isinstance(value, list) else [value]
    strings = [v for v in values if isinstance(v, str)]
    if not strings:
        return False
    if clause.prop in TOKENIZED:
        wanted = _search_words(clause.text)
        if not wanted:
            return False
        have = [t for s in strings for t in tokens(s)]
        return all(any(t.startswith(w) for t in have) for w in wanted)
    prefix = clause.text.casefold()
    return any(s.casefold().startswith(prefix) for s in strings)


def matches(node: SearchNode, obj: Mapping[str, Any]) -> bool:
    if isinstance(node, Clause):
        return _clause_matches(node, obj)
    if isinstance(node, AndS):
        return matches(node.left, obj) and matches(node.right, obj)
    return matches(node.left, obj) or matches(node.right, obj)
