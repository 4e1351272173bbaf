"""Tokens of the expression language, with the character position each starts at.

Owns the lexical rules: `[attribute]` references, `"string"` constants where only `\\"` and
`\\\\` are escapes (any other backslash is kept, so regex patterns read naturally; a `\\\\"` that
could not end the string is the reference's doubly escaped quote), decimal
numbers with an optional leading minus, VBA `&H` (hex) and `&O` (octal) literals, identifiers
(function names and VBA enum words), `( ) ,` and the comparison operators `= <> > >= < <=`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from worker.domain.expressions.errors import ExpressionError


class Kind(Enum):
    IDENT = "name"
    ATTRIBUTE = "attribute"
    STRING = "string"
    NUMBER = "number"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    OPERATOR = "operator"
    END = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: str | int | float
    position: int


_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_PART = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_SMART_QUOTES = frozenset("\u201c\u201d\u201e\u2033")


def _describe(ch: str) -> str:
    return repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch == "(":
            tokens.append(Token(Kind.LPAREN, "(", start))
            i += 1
        elif ch == ")":
            tokens.append(Token(Kind.RPAREN, ")", start))
            i += 1
        elif ch == ",":
            tokens.append(Token(Kind.COMMA, ",", start))
            i += 1
        elif ch == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise ExpressionError("unterminated attribute reference: missing ']'", start)
            name = text[i + 1 : end].strip()
            if not name:
                raise ExpressionError("empty attribute reference '[]'", start)
            if "[" in name:
                raise ExpressionError("'[' inside an attribute reference", start)
            tokens.append(Token(Kind.ATTRIBUTE, name, start))
            i = end + 1
        elif ch == "]":
            raise ExpressionError("']' without a matching '['", start)
        elif ch == '"':
            i = _string(text, i, tokens)
        elif ch in _SMART_QUOTES:
            raise ExpressionError("typographic quote: string constants use straight quotes", start)
        elif ch in _DIGITS or (ch == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            i = _number(text, i, tokens)
        elif ch == "&":
            i = _radix_number(text, i, tokens)
        elif ch in _IDENT_START:
            i += 1
            while i < n and text[i] in _IDENT_PART:
                i += 1
            tokens.append(Token(Kind.IDENT, text[start:i], start))
        elif ch in "<>=":
            op = text[i : i + 2] if text.startswith(("<>", "<=", ">="), i) else ch
            tokens.append(Token(Kind.OPERATOR, op, start))
            i += len(op)
        elif ch == "!" and text.startswith("!=", i):
            raise ExpressionError("'!=' is not an operator: use '<>'", start)
        else:
            raise ExpressionError(f"unexpected character {_describe(ch)}", start)
    tokens.append(Token(Kind.END, "", n))
    return tokens


_STRING_FOLLOWERS = frozenset(",)=<>")


def _can_follow_string(text: str, i: int) -> bool:
    """Whether a string constant closing just before `i` can be followed by what is there."""
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i == n or text[i] in _STRING_FOLLOWERS


def _string(text: str, i: int, tokens: list[Token]) -> int:
    start = i
    i += 1
    n = len(text)
    chars: list[str] = []
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in '"\\':
            if text.startswith('\\\\"', i) and not _can_follow_string(text, i + 3):
                # `\\"` where closing the string would leave a syntax error: the doubled
                # escaping of the reference's markdown source ("Company name: \\"Contoso\\""),
                # read as the escaped quote it renders as.
                chars.append('"')
                i += 3
                continue
            chars.append(text[i + 1])
            i += 2
        elif ch == '"':
            tokens.append(Token(Kind.STRING, "".join(chars), start))
            return i + 1
        else:
            chars.append(ch)
            i += 1
    raise ExpressionError("unterminated string constant: missing closing '\"'", start)


def _number(text: str, i: int, tokens: list[Token]) -> int:
    start = i
    n = len(text)
    if text[i] == "-":
        i += 1
    while i < n and text[i] in _DIGITS:
        i += 1
    is_float = False
    if i + 1 < n and text[i] == "." and text[i + 1] in _DIGITS:
        is_float = True
        i += 1
        while i < n and text[i] in _DIGITS:
            i += 1
    if i < n and text[i] in _IDENT_PART:
        raise ExpressionError(f"malformed number {text[start : i + 1]!r}", start)
    literal = text[start:i]
    try:
        value: int | float = float(literal) if is_float else int(literal)
    except ValueError:
        raise ExpressionError("number too long", start) from None
    tokens.append(Token(Kind.NUMBER, value, start))
    return i


def _radix_number(text: str, i: int, tokens: list[Token]) -> int:
    start = i
    n = len(text)
    marker = text[i + 1 : i + 2].upper()
    digits = _HEX if marker == "H" else _OCTAL if marker == "O" else None
    if digits is None:
        raise ExpressionError("'&' must start a hex (&H) or octal (&O) number", start)
    i += 2
    while i < n and text[i] in digits:
        i += 1
    if i == start + 2:
        raise ExpressionError(f"&{marker} must be followed by digits", start)
    value = int(text[start + 2 : i], 16 if marker == "H" else 8)
    # VBA allows a trailing '&' (the Long type suffix).
    if i < n and text[i] == "&":
        i += 1
    if i < n and text[i] in _IDENT_PART:
        raise ExpressionError(f"malformed number {text[start : i + 1]!r}", start)
    tokens.append(Token(Kind.NUMBER, value, start))
    return i
