"""The syntax tree of an expression and the recursive-descent parser that builds it.

Owns the grammar (names are case-sensitive):

    expression := operand [ ("=" | "<>" | ">" | ">=" | "<" | "<=") operand ]
    operand    := NAME "(" [ argument { "," argument } ] ")"  -- a function call
                | "[" attribute "]" | STRING | NUMBER | ENUM_WORD | "(" expression ")"
    argument   := expression | (nothing)                       -- an empty argument

`Missing` marks an empty argument (`Replace([x], , "re", , "", , )`), which is not the same
as passing a null: several functions choose their behaviour by which arguments are given.
Function names, arities and per-function rules are checked later, against the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from worker.domain.expressions.errors import ExpressionError
from worker.domain.expressions.lexer import Kind, Token, tokenize

MAX_DEPTH = 100

# VBA's named constants that Entra expressions use (InStr's compare types above all).
ENUM_WORDS: dict[str, str | int | bool | None] = {
    "vbBinaryCompare": 0,
    "vbTextCompare": 1,
    "vbDatabaseCompare": 2,
    "vbUseCompareOption": -1,
    "vbCrLf": "\r\n",
    "vbCr": "\r",
    "vbLf": "\n",
    "vbNewLine": "\r\n",
    "vbTab": "\t",
    "vbNullString": "",
    "True": True,
    "False": False,
    "NULL": None,
    "Nothing": None,
}


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None
    position: int


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    position: int


@dataclass(frozen=True, slots=True)
class Missing:
    """An empty argument slot."""

    position: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    position: int


@dataclass(frozen=True, slots=True)
class Comparison:
    op: str
    left: Node
    right: Node
    position: int


Node = Literal | Attribute | Missing | Call | Comparison


def walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, Comparison):
        yield from walk(node.left)
        yield from walk(node.right)


def attribute_names(node: Node) -> frozenset[str]:
    return frozenset(item.name for item in walk(node) if isinstance(item, Attribute))


def _describe(token: Token) -> str:
    if token.kind is Kind.END:
        return "the end of the expression"
    if token.kind is Kind.STRING:
        return "a string constant"
    if token.kind is Kind.ATTRIBUTE:
        return f"[{token.value}]"
    return repr(str(token.value))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested more than {MAX_DEPTH} levels deep", position)

    def parse(self) -> Node:
        if self.peek().kind is Kind.END:
            raise ExpressionError("empty expression", 0)
        node = self.expression()
        token = self.peek()
        if token.kind is Kind.RPAREN:
            raise ExpressionError(
                "unbalanced parentheses: ')' without a matching '('", token.position
            )
        if token.kind is not Kind.END:
            raise ExpressionError(
                f"unexpected {_describe(token)} after a complete expression", token.position
            )
        return node

    def expression(self) -> Node:
        left = self.operand()
        token = self.peek()
        if token.kind is not Kind.OPERATOR:
            return left
        self.advance()
        right = self.operand()
        following = self.peek()
        if following.kind is Kind.OPERATOR:
            raise ExpressionError(
                "comparisons cannot be chained (nest IIF instead)", following.position
            )
        return Comparison(str(token.value), left, right, token.position)

    def operand(self) -> Node:
        token = self.advance()
        kind = token.kind
        if kind is Kind.ATTRIBUTE:
            return Attribute(str(token.value), token.position)
        if kind is Kind.STRING or kind is Kind.NUMBER:
            return Literal(token.value, token.position)
        if kind is Kind.IDENT:
            name = str(token.value)
            if self.peek().kind is Kind.LPAREN:
                return self.call(name, token.position)
            if name in ENUM_WORDS:
                return Literal(ENUM_WORDS[name], token.position)
            raise ExpressionError(
                f"unknown name '{name}' (functions need parentheses, attributes brackets)",
                token.position,
            )
        if kind is Kind.LPAREN:
            self.enter(token.position)
            inner = self.expression()
            closing = self.advance()
            if closing.kind is Kind.END:
                raise ExpressionError("unbalanced parentheses: '(' is never closed", token.position)
            if closing.kind is not Kind.RPAREN:
                raise ExpressionError(
                    f"expected ')' but found {_describe(closing)}", closing.position
                )
            self.depth -= 1
            return inner
        if kind is Kind.END:
            raise ExpressionError(
                "unexpected end of expression: a value is missing", token.position
            )
        if kind is Kind.OPERATOR:
            raise ExpressionError(
                f"operator {token.value!r} needs a value on its left", token.position
            )
        if kind is Kind.RPAREN:
            if self.depth == 0:
                raise ExpressionError(
                    "unbalanced parentheses: ')' without a matching '('", token.position
                )
            raise ExpressionError("a value is missing before ')'", token.position)
        raise ExpressionError(f"unexpected {_describe(token)}: a value is missing", token.position)

    def call(self, name: str, position: int) -> Call:
        opening = self.advance()
        self.enter(opening.position)
        args: list[Node] = []
        if self.peek().kind is Kind.RPAREN:
            self.advance()
        else:
            while True:
                token = self.peek()
                if token.kind is Kind.END:
                    raise ExpressionError(
                        f"unbalanced parentheses: '(' of {name} is never closed",
                        opening.position,
                    )
                if token.kind is Kind.COMMA or token.kind is Kind.RPAREN:
                    args.append(Missing(token.position))
                else:
                    args.append(self.expression())
                separator = self.advance()
                if separator.kind is Kind.COMMA:
                    continue
                if separator.kind is Kind.RPAREN:
                    break
                if separator.kind is Kind.END:
                    raise ExpressionError(
                        f"unbalanced parentheses: '(' of {name} is never closed",
                        opening.position,
                    )
                raise ExpressionError(
                    f"expected ',' or ')' in the arguments of {name}, found {_describe(separator)}",
                    separator.position,
                )
        self.depth -= 1
        return Call(name, tuple(args), position)


def parse_tree(text: str) -> Node:
    """Parse text into a syntax tree; ExpressionError (with a position) if it is malformed."""
    return _Parser(text).parse()
