"""OData query options the sandbox understands: `$filter` (parse, check, evaluate), `$select`.

Pure: no state, no I/O. The filter grammar is the subset Graph accepts on directory objects:

    expr    := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | primary
    primary := "(" expr ")"
             | ("startswith" | "endswith") "(" path "," literal ")"
             | path "/" "any" "(" var ":" expr ")"
             | path "in" "(" literal ("," literal)* ")"
             | path ("eq" | "ne" | "gt" | "ge" | "lt" | "le") literal

String literals are single-quoted with `''` standing for one quote. String comparisons are
case-insensitive, as Graph's are for the directory properties clients filter on.

A filter's `in` lists hold at most `MAX_IN_VALUES` (15) values in all, Graph's documented
default; more are refused with a 400. Advanced queries (`ConsistencyLevel: eventual` with
`$count`) lift that limit (Graph then bounds the URL's length instead, which the sandbox does not
model).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

COMPARISON_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
MAX_IN_VALUES = 15  # Graph's default limit on the values of one `in` expression
_UNSUPPORTED_FUNCTIONS = (
    "contains",
    "substringof",
    "tolower",
    "toupper",
    "length",
    "indexof",
    "concat",
    "trim",
)


class FilterError(ValueError):
    """A `$filter` Graph would refuse. `code` is the OData error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _syntax(message: str) -> FilterError:
    return FilterError("BadRequest", f"Invalid filter clause: {message}")


def _unsupported(message: str) -> FilterError:
    return FilterError("Request_UnsupportedQuery", message)


# ---------------------------------------------------------------- literals and AST


@dataclass(frozen=True)
class Literal:
    kind: str  # "string" | "bool" | "null" | "number" | "datetime"
    value: Any


@dataclass(frozen=True)
class Compare:
    path: tuple[str, ...]
    op: str
    value: Literal


@dataclass(frozen=True)
class In:
    path: tuple[str, ...]
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Func:
    name: str  # "startswith" | "endswith"
    path: tuple[str, ...]
    value: Literal


@dataclass(frozen=True)
class Any_:
    collection: str
    var: str
    body: Node


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Union[Compare, In, Func, Any_, And, Or, Not]  # noqa: UP007 - forward refs in dataclasses


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Tok:
    kind: str  # "str" | "word" | "num" | "dt" | "punct" | "end"
    text: str
    value: Any
    pos: int


_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})")
_NUM = re.compile(r"-?\d+(\.\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "'":
            start = i
            i += 1
            buf: list[str] = []
            while True:
                # Up to the next quote at once (a filter's addresses are most of its text).
                quote = text.find("'", i)
                if quote < 0:
                    raise _syntax(f"unterminated string literal at position {start}.")
                buf.append(text[i:quote])
                if quote + 1 < n and text[quote + 1] == "'":
                    buf.append("'")
                    i = quote + 2
                    continue
                i = quote + 1
                break
            toks.append(_Tok("str", text[start:i], "".join(buf), start))
            continue
        if c in "(),:/":
            toks.append(_Tok("punct", c, c, i))
            i += 1
            continue
        m = _DT.match(text, i)
        if m:
            toks.append(_Tok("dt", m.group(0), m.group(0), i))
            i = m.end()
            continue
        m = _NUM.match(text, i)
        if m and not (m.end() < n and (text[m.end()].isalpha() or text[m.end()] == "_")):
            raw = m.group(0)
            toks.append(_Tok("num", raw, float(raw) if "." in raw else int(raw), i))
            i = m.end()
            continue
        m = _WORD.match(text, i)
        if m:
            toks.append(_Tok("word", m.group(0), m.group(0), i))
            i = m.end()
            continue
        raise _syntax(f"unexpected character {c!r} at position {i}.")
    toks.append(_Tok("end", "", None, n))
    return toks


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.lambda_vars: list[str] = []

    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def is_word(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "word" and tok.text.lower() == word

    def expect_punct(self, p: str) -> None:
        tok = self.next()
        if tok.kind != "punct" or tok.text != p:
            raise _syntax(f"expected '{p}' at position {tok.pos} in '{self.text}'.")

    def parse(self) -> Node:
        node = self.parse_or()
        tok = self.peek()
        if tok.kind != "end":
            raise _syntax(f"unexpected '{tok.text}' at position {tok.pos} in '{self.text}'.")
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.is_word("or"):
            self.next()
            node = Or(node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_unary()
        while self.is_word("and"):
            self.next()
            node = And(node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.is_word("not"):
            self.next()
            return Not(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.next()
            node = self.parse_or()
            self.expect_punct(")")
            return node
        if tok.kind != "word":
            raise _syntax(f"expected a property name at position {tok.pos} in '{self.text}'.")
        nxt = self.peek(1)
        lowered = tok.text.lower()
        if nxt.kind == "punct" and nxt.text == "(":
            if lowered in ("startswith", "endswith"):
                self.next()
                self.next()
                path = self.parse_path()
                self.expect_punct(",")
                value = self.parse_literal()
                self.expect_punct(")")
                return Func(lowered, path, value)
            if lowered in _UNSUPPORTED_FUNCTIONS:
                raise _unsupported(f"The function '{tok.text}' is not supported in $filter.")
            raise _syntax(f"unknown function '{tok.text}' at position {tok.pos}.")
        path = self.parse_path(allow_lambda=True)
        if isinstance(path, Any_):
            return path
        op_tok = self.next()
        if op_tok.kind != "word":
            raise _syntax(f"expected an operator at position {op_tok.pos} in '{self.text}'.")
        op = op_tok.text.lower()
        if op == "in":
            self.expect_punct("(")
            values = [self.parse_literal()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.next()
                values.append(self.parse_literal())
            self.expect_punct(")")
            return In(path, tuple(values))
        if op in COMPARISON_OPS:
            return Compare(path, op, self.parse_literal())
        if op in ("has", "add", "sub", "mul", "div", "mod"):
            raise _unsupported(f"The operator '{op_tok.text}' is not supported in $filter.")
        raise _syntax(f"unknown operator '{op_tok.text}' at position {op_tok.pos}.")

    def parse_path(self, allow_lambda: bool = False) -> Any:
        tok = self.next()
        if tok.kind != "word":
            raise _syntax(f"expected a property name at position {tok.pos} in '{self.text}'.")
        parts = [tok.text]
        while self.peek().kind == "punct" and self.peek().text == "/":
            self.next()
            seg = self.next()
            if seg.kind != "word":
                raise _syntax(f"expected a name after '/' at position {seg.pos}.")
            if seg.text.lower() in ("any", "all"):
                if not allow_lambda:
                    raise _unsupported("Nested lambda operators are not supported.")
                if seg.text.lower() == "all":
                    raise _unsupported("The lambda operator 'all' is not supported.")
                if len(parts) != 1:
                    raise _unsupported(
                        "Lambda operators are only supported on top-level properties."
                    )
                return self.parse_lambda(parts[0])
            parts.append(seg.text)
        return tuple(parts)

    def parse_lambda(self, collection: str) -> Any_:
        self.expect_punct("(")
        var_tok = self.next()
        if var_tok.kind != "word":
            raise _syntax(f"expected a lambda variable at position {var_tok.pos}.")
        self.expect_punct(":")
        self.lambda_vars.append(var_tok.text)
        body = self.parse_or()
        self.lambda_vars.pop()
        self.expect_punct(")")
        return Any_(collection, var_tok.text, body)

    def parse_literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "str":
            return Literal("string", tok.value)
        if tok.kind == "num":
            return Literal("number", tok.value)
        if tok.kind == "dt":
            return Literal("datetime", tok.value)
        if tok.kind == "word":
            low = tok.text.lower()
            if low in ("true", "false"):
                return Literal("bool", low == "true")
            if low == "null":
                return Literal("null", None)
        raise _syntax(f"expected a literal value at position {tok.pos} in '{self.text}'.")


def parse_filter(text: str) -> Node:
    """Parse a `$filter` expression; raise FilterError when it is malformed or unsupported."""
    if not text.strip():
        raise _syntax("the expression is empty.")
    return _Parser(text).parse()


# ---------------------------------------------------------------- type checking


TypeMap = Mapping[str, str]


def validate(
    node: Node,
    root: TypeMap,
    complex_types: Mapping[str, TypeMap],
    *,
    resource: str = "DirectoryObject",
    max_in_values: int | None = MAX_IN_VALUES,
) -> None:
    """Check every path against the type's properties and every literal against its Edm type,
    and every `in` list against `max_in_values` (None: no limit, as in advanced queries).

    `resource` is the name Graph's messages give the resource: `User`, `Group`,
    `DirectoryObject`. A root type of `Edm.Untyped` (directory extension properties, whose type
    the sandbox does not register) accepts any literal.
    """
    _validate(node, root, complex_types, {}, resource)
    if max_in_values is not None:
        _check_in_lists(node, max_in_values)


def _check_in_lists(node: Node, limit: int) -> None:
    """Refuse a filter whose `in` lists hold more than `limit` values in all (Graph counts the
    clause's expressions, not each list's)."""
    lists = list(_in_lists(node))
    values = sum(len(n.values) for n in lists)
    if values > limit:
        named = ", ".join(sorted({"/".join(n.path) for n in lists}))
        raise _unsupported(
            f"The 'in' operator of property '{named}' lists {values} values; at most {limit} "
            "are allowed in one filter clause."
        )


def _in_lists(node: Node) -> Iterator[In]:
    if isinstance(node, And | Or):
        yield from _in_lists(node.left)
        yield from _in_lists(node.right)
    elif isinstance(node, Not):
        yield from _in_lists(node.operand)
    elif isinstance(node, Any_):
        yield from _in_lists(node.body)
    elif isinstance(node, In):
        yield node


def _resolve(
    path: tuple[str, ...],
    root: TypeMap,
    complex_types: Mapping[str, TypeMap],
    env: Mapping[str, str],
    resource: str,
) -> str:
    head = path[0]
    if head in env:
        current = env[head]
    else:
        if head not in root:
            raise _unsupported(
                f"Unsupported or invalid query filter clause specified for property '{head}' "
                f"of resource '{resource}'."
            )
        current = root[head]
    for seg in path[1:]:
        name = current.removeprefix("graph.")
        props = complex_types.get(name)
        if props is None or seg not in props:
            raise _unsupported(
                f"Unsupported or invalid query filter clause specified for property "
                f"'{'/'.join(path)}' of resource '{resource}'."
            )
        current = props[seg]
    return current


def _literal_fits(edm: str, lit: Literal) -> bool:
    if lit.kind == "null":
        return True
    if edm in ("Edm.String", "Edm.Guid") or edm.startswith("graph."):
        return lit.kind == "string"
    if edm == "Edm.Boolean":
        return lit.kind == "bool"
    if edm.startswith("Edm.Int") or edm in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        return lit.kind == "number"
    if edm == "Edm.DateTimeOffset":
        return lit.kind in ("datetime", "string")
    return True


def _validate(
    node: Node,
    root: TypeMap,
    complex_types: Mapping[str, TypeMap],
    env: Mapping[str, str],
    resource: str,
) -> None:
    if isinstance(node, And | Or):
        _validate(node.left, root, complex_types, env, resource)
        _validate(node.right, root, complex_types, env, resource)
    elif isinstance(node, Not):
        _validate(node.operand, root, complex_types, env, resource)
    elif isinstance(node, Any_):
        edm = _resolve((node.collection,), root, complex_types, env, resource)
        if not edm.startswith("Collection("):
            raise _unsupported(
                f"The 'any' operator requires a collection; '{node.collection}' is not one."
            )
        inner = {**env, node.var: edm[len("Collection(") : -1]}
        _validate(node.body, root, complex_types, inner, resource)
    else:
        edm = _resolve(node.path, root, complex_types, env, resource)
        if edm.startswith("Collection("):
            raise _unsupported(
                f"Property '{'/'.join(node.path)}' is a collection: use "
                f"{node.path[0]}/any(x:x eq 'value')."
            )
        literals = node.values if isinstance(node, In) else (node.value,)
        for lit in literals:
            if not _literal_fits(edm, lit):
                raise FilterError(
                    "BadRequest",
                    f"Invalid filter clause: a binary operator with incompatible types was "
                    f"detected. Found operand types '{edm}' and '{lit.kind}' for property "
                    f"'{'/'.join(node.path)}'.",
                )
        if isinstance(node, Func) and (
            edm not in ("Edm.String", "Edm.Untyped") or node.value.kind != "string"
        ):
            raise _unsupported(f"{node.name} is only supported on string properties.")
        if isinstance(node, Compare) and node.op not in ("eq", "ne") and node.value.kind == "null":
            raise _unsupported(f"The operator '{node.op}' cannot be used with null.")


# ---------------------------------------------------------------- evaluation


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _compare(actual: Any, op: str, lit: Literal) -> bool:
    expected = lit.value
    if lit.kind == "null":
        return (actual is None) if op == "eq" else (actual is not None)
    if actual is None:
        return op == "ne"
    if lit.kind == "datetime" or (
        lit.kind == "string" and _DT.fullmatch(str(expected)) and _as_datetime(actual)
    ):
        a = _as_datetime(actual)
        b = _as_datetime(expected)
        if a is None or b is None:
            return op == "ne"
        left: Any = a
        right: Any = b
    else:
        left = _fold(actual)
        right = _fold(expected)
    try:
        if op == "eq":
            return bool(left == right)
        if op == "ne":
            return bool(left != right)
        if op == "gt":
            return bool(left > right)
        if op == "ge":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        if op == "le":
            return bool(left <= right)
    except TypeError:
        return False
    raise _unsupported(f"The operator '{op}' is not supported.")


def _lookup(obj: Mapping[str, Any], path: Sequence[str], env: Mapping[str, Any]) -> Any:
    head = path[0]
    current: Any = env[head] if head in env else obj.get(head)
    for seg in path[1:]:
        if not isinstance(current, Mapping):
            return None
        current = current.get(seg)
    return current


def evaluate(node: Node, obj: Mapping[str, Any], env: Mapping[str, Any] | None = None) -> bool:
    """True when the object matches. Missing properties are null."""
    scope: Mapping[str, Any] = env or {}
    if isinstance(node, And):
        return evaluate(node.left, obj, scope) and evaluate(node.right, obj, scope)
    if isinstance(node, Or):
        return evaluate(node.left, obj, scope) or evaluate(node.right, obj, scope)
    if isinstance(node, Not):
        return not evaluate(node.operand, obj, scope)
    if isinstance(node, Any_):
        items = obj.get(node.collection) or []
        return any(evaluate(node.body, obj, {**scope, node.var: item}) for item in items)
    actual = _lookup(obj, node.path, scope)
    if isinstance(node, Compare):
        return _compare(actual, node.op, node.value)
    if isinstance(node, In):
        return any(_compare(actual, "eq", lit) for lit in node.values)
    if not isinstance(actual, str) or not isinstance(node.value.value, str):
        return False
    a = actual.casefold()
    b = node.value.value.casefold()
    return a.startswith(b) if node.name == "startswith" else a.endswith(b)


def compile_filter(
    text: str,
    root: TypeMap,
    complex_types: Mapping[str, TypeMap],
    *,
    resource: str = "DirectoryObject",
) -> Callable[[Mapping[str, Any]], bool]:
    node = parse_filter(text)
    validate(node, root, complex_types, resource=resource)
    return lambda obj: evaluate(node, obj)


def paths(node: Node) -> list[tuple[str, ...]]:
    """Every property path the filter reads (a lambda's collection as a one-segment path)."""
    if isinstance(node, And | Or):
        return paths(node.left) + paths(node.right)
    if isinstance(node, Not):
        return paths(node.operand)
    if isinstance(node, Any_):
        inner = [p for p in paths(node.body) if p[0] != node.var]
        return [(node.collection,), *inner]
    return [node.path]


# ---------------------------------------------------------------- index hints


def equality_terms(node: Node, indexed: frozenset[str]) -> list[tuple[str, str]] | None:
    """A superset of the matches as (property, casefolded value) look-ups, or None.

    Lets the state answer `mail eq 'x'`, `otherMails/any(x:x eq 'x')`, `id in (...)` and
    disjunctions of those from its indexes instead of scanning every object.
    """
    if isinstance(node, Compare):
        if (
            node.op == "eq"
            and len(node.path) == 1
            and node.path[0] in indexed
            and node.value.kind == "string"
        ):
            return [(node.path[0], str(node.value.value).casefold())]
        return None
    if isinstance(node, In):
        if (
            len(node.path) == 1
            and node.path[0] in indexed
            and all(v.kind == "string" for v in node.values)
        ):
            return [(node.path[0], str(v.value).casefold()) for v in node.values]
        return None
    if isinstance(node, Any_):
        body = node.body
        if (
            node.collection in indexed
            and isinstance(body, Compare)
            and body.op == "eq"
            and body.path == (node.var,)
            and body.value.kind == "string"
        ):
            return [(node.collection, str(body.value.value).casefold())]
        return None
    if isinstance(node, Or):
        left = equality_terms(node.left, indexed)
        right = equality_terms(node.right, indexed)
        if left is None or right is None:
            return None
        return left + right
    if isinstance(node, And):
        left = equality_terms(node.left, indexed)
        return left if left is not None else equality_terms(node.right, indexed)
    return None


def id_terms(node: Node) -> list[str] | None:
    """The ids of a filter made only of `id eq '...'` joined by `or` (what delta accepts)."""
    if isinstance(node, Compare) and node.path == ("id",) and node.op == "eq":
        if node.value.kind == "string":
            return [str(node.value.value)]
        return None
    if isinstance(node, In) and node.path == ("id",):
        if all(v.kind == "string" for v in node.values):
            return [str(v.value) for v in node.values]
        return None
    if isinstance(node, Or):
        left = id_terms(node.left)
        right = id_terms(node.right)
        if left is None or right is None:
            return None
        return left + right
    return None


# ---------------------------------------------------------------- advanced queries


def advanced_operator(node: Node) -> str | None:
    """The first operator Graph only accepts in advanced queries (`ne`, `not`, `endsWith`).

    Directory objects answer those only with `ConsistencyLevel: eventual` and `$count=true`.
    """
    if isinstance(node, Not):
        return "not"
    if isinstance(node, Compare):
        return "ne" if node.op == "ne" else None
    if isinstance(node, Func):
        return "endsWith" if node.name == "endswith" else None
    if isinstance(node, And | Or):
        return advanced_operator(node.left) or advanced_operator(node.right)
    if isinstance(node, Any_):
        return advanced_operator(node.body)
    return None


# ---------------------------------------------------------------- $select


def parse_select(text: str | None) -> list[str] | None:
    """The property names of a `$select`, in order, without duplicates; None when absent."""
    if text is None:
        return None
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        if name not in names:
            names.append(name)
    return names
