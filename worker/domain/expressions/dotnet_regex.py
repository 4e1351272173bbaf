"""Regular expressions written for .NET, run by Python's `re`.

Owns the translation of a .NET pattern (Replace's regexPattern) and of a .NET substitution
string (Replace's replacementValue) into their Python equivalents: `(?<name>...)` and
`(?'name'...)` groups, `\\k<name>` back-references, .NET's group numbering (unnamed groups
first, then named ones), `\\p{..}` Unicode categories, `\\Z`/`\\z`, inline options in the middle
of a pattern, `{` as a literal, and `$1`, `${name}`, `$&`, `` $` ``, `$'`, `$+`, `$_`, `$$` in
replacements. Constructs Python cannot express (balancing groups, class subtraction, `\\G`,
explicit capture) are rejected with a message instead of silently meaning something else.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache


class RegexError(ValueError):
    """A pattern that .NET or the translation cannot accept."""


@dataclass(frozen=True)
class DotNetRegex:
    pattern: str
    compiled: re.Pattern[str]
    # .NET group numbers and names -> the Python group index that holds the same capture.
    groups: dict[str, int]

    def group_index(self, name: str) -> int | None:
        return self.groups.get(name)


@dataclass(frozen=True)
class _Backref:
    dotnet_number: int
    conditional: bool = False


_CATEGORY_CACHE: dict[str, str] = {}


def _category_ranges(name: str) -> str:
    """The body of a character class matching one Unicode general category (or major class)."""
    cached = _CATEGORY_CACHE.get(name)
    if cached is not None:
        return cached
    valid = {
        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No",
        "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So",
        "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Cs", "Co", "Cn",
    }  # fmt: skip
    if name not in valid:
        raise RegexError(f"unsupported Unicode category \\p{{{name}}}")
    ranges: list[str] = []
    start = -1
    previous = -2
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category == name or category[0] == name:
            if code != previous + 1:
                if start >= 0:
                    ranges.append(_range_text(start, previous))
                start = code
            previous = code
    if start >= 0:
        ranges.append(_range_text(start, previous))
    body = "".join(ranges)
    _CATEGORY_CACHE[name] = body
    return body


def _range_text(start: int, end: int) -> str:
    if start == end:
        return f"\\U{start:08x}"
    return f"\\U{start:08x}-\\U{end:08x}"


_QUANTIFIER = re.compile(r"\{\d+(?:,\d*)?\}")
_INLINE_OPTIONS = re.compile(r"\(\?([imnsx]*)(?:-([imnsx]*))?(\)|:)")
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def translate(pattern: str) -> DotNetRegex:
    """Translate and compile a .NET pattern; RegexError says why when it cannot be done."""
    pieces: list[str | _Backref] = []
    # One entry per open group: how many scoped-option groups to close along with it.
    open_groups: list[int] = [0]
    captures: list[str | None] = []  # in order of appearance; None for unnamed
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise RegexError("the pattern ends with a lone backslash")
            esc = pattern[i + 1]
            if esc in "pP" and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise RegexError("unterminated \\p{...}")
                body = _category_ranges(pattern[i + 3 : end])
                if in_class:
                    if esc == "P":
                        raise RegexError("\\P{...} inside a character class is not supported")
                    pieces.append(body)
                else:
                    pieces.append(f"[{'^' if esc == 'P' else ''}{body}]")
                i = end + 1
                continue
            if esc == "k" and not in_class and i + 2 < n and pattern[i + 2] in "<'":
                close = ">" if pattern[i + 2] == "<" else "'"
                end = pattern.find(close, i + 3)
                if end < 0:
                    raise RegexError("unterminated \\k<name>")
                name = pattern[i + 3 : end]
                if name.isdigit():
                    pieces.append(_Backref(int(name)))
                else:
                    pieces.append(f"(?P={name})")
                i = end + 1
                continue
            if esc.isdigit() and esc != "0" and not in_class:
                j = i + 1
                while j < n and pattern[j].isdigit():
                    j += 1
                pieces.append(_Backref(int(pattern[i + 1 : j])))
                i = j
                continue
            if esc == "G":
                raise RegexError("\\G is not supported")
            if esc == "Z" and not in_class:
                pieces.append(r"(?=\n?\Z)")
            elif esc == "z" and not in_class:
                pieces.append(r"\Z")
            elif esc == "e":
                pieces.append(r"\x1b")
            elif esc == "c":
                if i + 2 >= n or not pattern[i + 2].isalpha():
                    raise RegexError("\\c must be followed by a letter")
                pieces.append(f"\\x{ord(pattern[i + 2].upper()) - 64:02x}")
                i += 3
                continue
            else:
                pieces.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
                pieces.append("]")
            elif ch == "-" and i + 1 < n and pattern[i + 1] == "[":
                raise RegexError("character class subtraction is not supported")
            elif ch in "[&~|" or (ch == "-" and pieces and pieces[-1] == "-"):
                # Literal in .NET; escaped so Python never reads them as set operations.
                pieces.append("\\" + ch)
            else:
                pieces.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            pieces.append("[")
            i += 1
            if i < n and pattern[i] == "^":
                pieces.append("^")
                i += 1
            # A ']' right after the opening bracket is a literal, in both dialects.
            if i < n and pattern[i] == "]":
                pieces.append("\\]")
                i += 1
            continue
        if ch == "(":
            i = _open_group(pattern, i, pieces, open_groups, captures)
            continue
        if ch == ")":
            if len(open_groups) == 1:
                raise RegexError(f"too many ')' at offset {i}")
            pieces.append(")" * (open_groups.pop() + 1))
            i += 1
            continue
        if ch == "{":
            match = _QUANTIFIER.match(pattern, i)
            if match:
                pieces.append(match.group())
                i = match.end()
            else:
                pieces.append("\\{")
                i += 1
            continue
        if ch == "}":
            pieces.append("\\}")
            i += 1
            continue
        pieces.append(ch)
        i += 1
    if in_class:
        raise RegexError("unterminated character class")
    if len(open_groups) > 1:
        raise RegexError("missing ')'")
    pieces.append(")" * open_groups[0])

    groups = _numbering(captures)
    python_text = "".join(
        _resolve_backref(piece, groups) if isinstance(piece, _Backref) else piece
        for piece in pieces
    )
    try:
        compiled = re.compile(python_text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise RegexError(str(exc)) from None
    return DotNetRegex(pattern=pattern, compiled=compiled, groups=groups)


def _open_group(
    pattern: str,
    i: int,
    pieces: list[str | _Backref],
    open_groups: list[int],
    captures: list[str | None],
) -> int:
    if pattern.startswith("(?#", i):
        end = pattern.find(")", i)
        if end < 0:
            raise RegexError("unterminated (?#...) comment")
        return end + 1
    if pattern.startswith("(?(", i):
        end = pattern.find(")", i + 3)
        if end < 0:
            raise RegexError("unterminated condition in (?(...)")
        condition = pattern[i + 3 : end]
        if condition.isdigit():
            pieces.append("(?(")
            pieces.append(_Backref(int(condition), conditional=True))
            pieces.append(")")
        elif _GROUP_NAME.fullmatch(condition):
            pieces.append(f"(?({condition})")
        else:
            raise RegexError("only group names and numbers can be conditions in (?(...)")
        open_groups.append(0)
        return end + 1
    if pattern.startswith("(?", i):
        rest = pattern[i + 2 : i + 3]
        if rest in ("<", "'") and pattern[i + 3 : i + 4] not in ("=", "!"):
            close = ">" if rest == "<" else "'"
            end = pattern.find(close, i + 3)
            if end < 0:
                raise RegexError("unterminated group name")
            name = pattern[i + 3 : end]
            if "-" in name:
                raise RegexError("balancing groups are not supported")
            if not _GROUP_NAME.fullmatch(name):
                raise RegexError(f"group name {name!r} is not supported")
            pieces.append(f"(?P<{name}>")
            if name not in captures:
                captures.append(name)
            else:
                raise RegexError(f"group name {name!r} is used twice")
            open_groups.append(0)
            return end + 1
        options = _INLINE_OPTIONS.match(pattern, i)
        if options and (options.group(1) or options.group(2) is not None):
            on, off, kind = options.group(1), options.group(2) or "", options.group(3)
            if "n" in on:
                raise RegexError("the explicit-capture option (?n) is not supported")
            on, off = on.replace("n", ""), off.replace("n", "")
            spec = on + (f"-{off}" if off else "")
            if kind == ":":
                pieces.append(f"(?{spec}:" if spec else "(?:")
                open_groups.append(0)
            elif on and not off and not any(isinstance(p, str) and p for p in pieces):
                pieces.append(f"(?{on})")
            elif spec:
                # .NET lets options change mid-pattern; Python scopes them to a group, which
                # closes where the enclosing group (or the pattern) does.
                pieces.append(f"(?{spec}:")
                open_groups[-1] += 1
            return options.end()
        pieces.append(pattern[i : i + 2])
        open_groups.append(0)
        return i + 2
    pieces.append("(")
    captures.append(None)
    open_groups.append(0)
    return i + 1


def _numbering(captures: list[str | None]) -> dict[str, int]:
    """.NET numbers unnamed groups first, then named ones; map both to Python's indexes."""
    groups: dict[str, int] = {"0": 0}
    unnamed = [index for index, name in enumerate(captures, 1) if name is None]
    named = [(index, name) for index, name in enumerate(captures, 1) if name is not None]
    number = 0
    for index in unnamed:
        number += 1
        groups[str(number)] = index
    for index, name in named:
        number += 1
        groups[str(number)] = index
        groups[name] = index
    return groups


def _resolve_backref(ref: _Backref, groups: dict[str, int]) -> str:
    index = groups.get(str(ref.dotnet_number))
    if index is None:
        raise RegexError(f"reference to undefined group number {ref.dotnet_number}")
    return str(index) if ref.conditional else f"(?:\\{index})"


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> DotNetRegex:
    """`translate`, memoised: patterns that come from attributes are compiled once each."""
    return translate(pattern)


# --- substitutions --------------------------------------------------------------------------

Replacement = str | Callable[[re.Match[str]], str]


def _group_text(match: re.Match[str], index: int) -> str:
    return match.group(index) or ""


def translate_replacement(replacement: str, regex: DotNetRegex) -> Replacement:
    """A .NET substitution string as a Python template (or a function when it needs one)."""
    parts: list[str | int | tuple[str]] = []  # literal | group index | special marker
    literal: list[str] = []
    i, n = 0, len(replacement)

    def flush() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()

    while i < n:
        ch = replacement[i]
        if ch != "$" or i + 1 >= n:
            literal.append(ch)
            i += 1
            continue
        nxt = replacement[i + 1]
        if nxt == "$":
            literal.append("$")
            i += 2
        elif nxt in "&`'+_":
            flush()
            parts.append(0 if nxt == "&" else (nxt,))
            i += 2
        elif nxt == "{":
            end = replacement.find("}", i + 2)
            index = regex.group_index(replacement[i + 2 : end]) if end > 0 else None
            if index is None:
                literal.append("$")
                i += 1
            else:
                flush()
                parts.append(index)
                i = end + 1
        elif nxt.isdigit():
            j = i + 1
            while j < n and replacement[j].isdigit():
                j += 1
            # The longest prefix of the digits that names a group wins, as in .NET.
            for k in range(j, i + 1, -1):
                index = regex.group_index(replacement[i + 1 : k])
                if index is not None:
                    flush()
                    parts.append(index)
                    i = k
                    break
            else:
                literal.append("$")
                i += 1
        else:
            literal.append("$")
            i += 1
    flush()

    if all(not isinstance(part, tuple) for part in parts):
        template = "".join(
            part.replace("\\", "\\\\") if isinstance(part, str) else f"\\g<{part}>"
            for part in parts
        )
        return template

    frozen = tuple(parts)

    def substitute(match: re.Match[str]) -> str:
        out: list[str] = []
        for part in frozen:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, int):
                out.append(_group_text(match, part))
            elif part[0] == "`":
                out.append(match.string[: match.start()])
            elif part[0] == "'":
                out.append(match.string[match.end() :])
            elif part[0] == "_":
                out.append(match.string)
            else:  # "+": the last group that took part in the match
                last = match.lastindex
                out.append(_group_text(match, last) if last else "")
        return "".join(out)

    return substitute
