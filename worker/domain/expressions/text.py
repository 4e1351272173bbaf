"""Text transforms with .NET's semantics: case mapping, proper case, diacritics.

Owns ToUpper/ToLower (invariant culture by default, Turkish/Azeri dotted and dotless i when
asked; never a change of length, as .NET maps one char to one char), PCase (TextInfo.ToTitleCase
on the lower-cased text, or the caller's own separators) and NormalizeDiacritics (the table in
Entra's reference: Latin letters with accents lose them; æ, ø, œ and ß become ae, oe, oe, ss).
"""

from __future__ import annotations

import re
import unicodedata

# --- case mapping ---------------------------------------------------------------------------

_TURKIC = frozenset({"tr", "az"})
_CULTURE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _language(culture: str | None) -> str:
    if not culture:
        return ""
    if not _CULTURE.fullmatch(culture):
        raise ValueError(f"{culture!r} is not a culture name (e.g. en-US)")
    return culture[:2].lower() if culture[2:3] in ("", "-", "_") else culture[:3].lower()


def _upper_char(ch: str) -> str:
    mapped = ch.upper()
    return mapped if len(mapped) == 1 else ch


def _lower_char(ch: str) -> str:
    mapped = ch.lower()
    return mapped if len(mapped) == 1 else mapped[0]


def to_upper(text: str, culture: str | None = None) -> str:
    if culture is not None and _language(culture) in _TURKIC:
        text = text.replace("i", "\u0130")
    mapped = text.upper()
    if len(mapped) == len(text):
        return mapped
    return "".join(_upper_char(ch) for ch in text)


def to_lower(text: str, culture: str | None = None) -> str:
    if culture is not None and _language(culture) in _TURKIC:
        text = text.replace("I", "\u0131").replace("\u0130", "i")
    mapped = text.lower()
    # Python applies the final-sigma rule and expands dotted I; .NET maps char by char.
    if len(mapped) == len(text) and "\u03a3" not in text:
        return mapped
    return "".join(_lower_char(ch) for ch in text)


# --- proper case ----------------------------------------------------------------------------

_LETTERS = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
# ToTitleCase's word separators, as Entra's reference lists them.
_SEPARATORS = frozenset(
    {"Zs", "Zl", "Zp", "Cc", "Cf", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"}
)


# ASCII characters that continue a word without being letters (ToTitleCase keeps "o'neil" and
# "a1b" as one word each, str.title would not).
_ASCII_WORD_JOINERS = frozenset("0123456789'")


_LETTER, _SEPARATOR, _JOINER = 0, 1, 2
_CHAR_KINDS: dict[str, int] = {"'": _JOINER}


def _char_kind(ch: str) -> int:
    category = unicodedata.category(ch)
    kind = _LETTER if category in _LETTERS else _SEPARATOR if category in _SEPARATORS else _JOINER
    _CHAR_KINDS[ch] = kind
    return kind


def _title_char(ch: str) -> str:
    mapped = ch.title()
    return mapped if len(mapped) == 1 else ch


def proper_case(text: str, separators: str | None = None) -> str:
    """PCase: first letter of each word upper-cased, every other character lower-cased."""
    lowered = to_lower(text)
    if separators:
        out: list[str] = []
        at_start = True
        for ch in lowered:
            out.append(_upper_char(ch) if at_start else ch)
            at_start = ch in separators
        return "".join(out)
    if lowered.isascii() and _ASCII_WORD_JOINERS.isdisjoint(lowered):
        # Only ASCII letters and separators: str.title draws the same word boundaries.
        return lowered.title()
    # TextInfo.ToTitleCase: a word starts at a letter and runs through letters, apostrophes
    # and anything that is not a separator (digits, marks); it ends at a separator.
    out = []
    in_word = False
    kinds = _CHAR_KINDS
    for ch in lowered:
        kind = kinds.get(ch)
        if kind is None:
            kind = _char_kind(ch)
        if kind == _LETTER:
            out.append(ch if in_word else _title_char(ch))
            in_word = True
        else:
            out.append(ch)
            in_word = in_word and kind == _JOINER
    return "".join(out)


# --- diacritics -----------------------------------------------------------------------------

# Base letters of the reference's table: any accent on them goes.
_STRIPPED_BASES = frozenset("acdegilnorstuyzACDEGILNORSTUYZ")
# Letters that do not decompose into base + accent, spelled out by the table.
_SPELLED_OUT = {
    "æ": "ae",
    "Æ": "AE",
    "ø": "oe",
    "Ø": "OE",
    "œ": "oe",
    "Œ": "OE",
    "ß": "ss",
    "ł": "l",
    "Ł": "L",
    "\u0131": "i",  # dotless i
}


class _DiacriticsTable(dict[int, str]):
    """str.translate's table, filled on first sight of each character."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        replacement = _SPELLED_OUT.get(ch)
        if replacement is None:
            decomposed = unicodedata.normalize("NFD", ch)
            base = decomposed[0]
            if len(decomposed) > 1 and (base in _STRIPPED_BASES or base in _SPELLED_OUT):
                replacement = _SPELLED_OUT.get(base, base)
            else:
                replacement = ch
        self[code] = replacement
        return replacement


_TABLE = _DiacriticsTable()
# Accents written as separate combining characters (as in "ā́" = ā + U+0301) after a letter
# the table strips; every replacement ends in such a letter, so one pass after translate does.
_TRAILING_MARKS = re.compile(
    "(?<=[acdegilnorstuyzACDEGILNORSTUYZ])[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff"
    "\u20d0-\u20ff\ufe20-\ufe2f]+"
)


def normalize_diacritics(text: str) -> str:
    if text.isascii():
        return text
    result = text.translate(_TABLE)
    if result.isascii():
        return result
    return _TRAILING_MARKS.sub("", result)
