"""Every function of the language: name -> arity and implementation, with Entra's semantics.

Most functions are *eager*: their arguments are evaluated first, then `impl(context, *values)`
runs (a missing trailing argument is simply not passed; an empty one arrives as None). A few
are *special* and compile their own closure, because they must not evaluate every argument
(IIF, Switch, Coalesce, SelectUniqueValue evaluate lazily, as Entra does) or because the
arguments that are present choose what they do (Replace). Edge rules stated by Entra's
reference are implemented as stated; where it is silent, the sibling Entra Connect Sync
reference (same lineage) or .NET decides, and the docstring says so.
"""

from __future__ import annotations

import base64
import re
import string
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from worker.domain.expressions import dates, text
from worker.domain.expressions.dotnet_regex import (
    DotNetRegex,
    RegexError,
    Replacement,
    compile_pattern,
    translate_replacement,
)
from worker.domain.expressions.errors import ExpressionError, FunctionFailure, IgnoreFlow
from worker.domain.expressions.parser import Call, Literal, Missing, Node
from worker.domain.expressions.parser import attribute_names as _attribute_names
from worker.domain.expressions.values import (
    is_null,
    is_null_or_empty,
    to_bool,
    to_datetime,
    to_int,
    to_number,
    to_str,
    to_text,
)
from worker.domain.mapping import EvaluationContext

Compiled = Callable[[Mapping[str, Any], EvaluationContext], Any]
Compiler = Callable[[Call, list[Compiled]], Compiled]
Check = Callable[[Call], None]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int | None  # None: no upper bound
    impl: Callable[..., Any] | None = None
    compiler: Compiler | None = None
    check: Check | None = None
    even_args: bool = False

    def describe_arity(self) -> str:
        if self.max_args == self.min_args:
            count = self.min_args
            return f"exactly {count} argument{'s' if count != 1 else ''}"
        if self.max_args is None:
            extra = ", an even number" if self.even_args else ""
            return f"at least {self.min_args} arguments{extra}"
        return f"{self.min_args} to {self.max_args} arguments"


def _each(value: Any, transform: Callable[[str], str]) -> Any:
    """Apply a string transform to a value, or to every value of a multi-valued attribute."""
    if type(value) is str:
        return transform(value)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [None if item is None else transform(to_text(item)) for item in value]
    return transform(to_text(value))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


# --- eager functions ------------------------------------------------------------------------


def _append(_: EvaluationContext, source: Any, suffix: Any) -> Any:
    """Append(source, suffix): a null side counts as "" (concatenation); both null is null."""
    if source is None and suffix is None:
        return None
    return to_text(source) + to_text(suffix)


def _role_names(assignment: Any) -> tuple[str, str] | None:
    """(display name, value) of one app role assignment: a role name, or an object of one."""
    if isinstance(assignment, Mapping):
        display = to_str(assignment.get("displayName", assignment.get("display")))
        value = to_str(assignment.get("value", assignment.get("appRoleValue")))
        if display is None and value is None:
            return None
        return (display or value or "", value or display or "")
    name = to_str(assignment)
    return None if not name else (name, name)


def _app_role_assignments_complex(_: EvaluationContext, assignments: Any) -> Any:
    """Every assigned role as the SCIM complex value Entra sends (primary false)."""
    roles = [names for item in _as_list(assignments) if (names := _role_names(item))]
    if not roles:
        return None
    return [
        {
            "primary": False,
            "type": "WindowsAzureActiveDirectoryRole",
            "display": display,
            "value": value,
        }
        for display, value in roles
    ]


def _single_app_role_assignment(_: EvaluationContext, assignments: Any) -> str | None:
    """One assigned role's name (its display name); which one, with several, is unspecified."""
    for item in _as_list(assignments):
        names = _role_names(item)
        if names:
            return names[0]
    return None


def _bit_and(_: EvaluationContext, first: Any, second: Any) -> Any:
    if first is None or second is None:
        return None
    return to_int(first, "value1") & to_int(second, "value2")


def _cbool(_: EvaluationContext, value: Any) -> bool:
    return to_bool(value, "expression")


def _cdate(_: EvaluationContext, value: Any) -> datetime | None:
    return to_datetime(value, "CDate's argument")


def _convert_to_base64(_: EvaluationContext, value: Any) -> Any:
    # "Unicode" base64 in .NET's sense: the UTF-16LE bytes.
    return _each(value, lambda s: base64.b64encode(s.encode("utf-16-le")).decode("ascii"))


def _convert_to_utf8_hex(_: EvaluationContext, value: Any) -> Any:
    return _each(value, lambda s: s.encode("utf-8").hex().upper())


def _count(_: EvaluationContext, value: Any) -> int:
    return len(_as_list(value))


def _cstr(_: EvaluationContext, value: Any) -> str | None:
    return to_str(value)


def _date_add(_: EvaluationContext, interval: Any, number: Any, value: Any) -> datetime | None:
    moment = to_datetime(value, "dateTime")
    if moment is None:
        return None
    amount = to_number(number)
    if amount is None:
        raise FunctionFailure(f"value must be a number, got {number!r}")
    return dates.date_add(to_text(interval), amount, moment)


def _date_diff(_: EvaluationContext, interval: Any, first: Any, second: Any) -> int | None:
    start, end = to_datetime(first, "date1"), to_datetime(second, "date2")
    if start is None or end is None:
        return None
    return dates.date_diff(to_text(interval), start, end)


def _date_from_num(_: EvaluationContext, value: Any) -> datetime | None:
    if is_null_or_empty(value):
        return None
    return dates.from_filetime(to_int(value, "value"))


_STYLE_NAMES = frozenset(
    {
        "none",
        "allowleadingwhite",
        "allowtrailingwhite",
        "allowinnerwhite",
        "allowwhitespaces",
        "nocurrentdatedefault",
        "adjusttouniversal",
        "assumelocal",
        "assumeuniversal",
        "roundtripkind",
    }
)


@lru_cache(maxsize=128)
def _styles(value: str) -> frozenset[str]:
    names = set()
    for raw in re.split(r"[,|+\s]+", value):
        name = raw.strip().lower().removeprefix("datetimestyles.")
        if not name:
            continue
        if name not in _STYLE_NAMES:
            raise FunctionFailure(f"unknown DateTimeStyles value {raw!r}")
        names.add(name)
    return frozenset(names)


def _format_date_time(context: EvaluationContext, source: Any, *rest: Any) -> str | None:
    """FormatDateTime(source, dateTimeStyles, inputFormat, outputFormat); null in, null out.

    The reference's older three-argument form (source, inputFormat, outputFormat) and Entra
    Connect's two-argument form (dateTime, outputFormat) are accepted too. A source without an
    inputFormat is read as CDate reads it. An offset in the source is folded into UTC, as .NET
    does on a UTC host.
    """
    if len(rest) == 3:
        styles, input_format, output_format = rest
    elif len(rest) == 2:
        styles = None
        input_format, output_format = rest
    else:
        styles = input_format = None
        (output_format,) = rest
    if is_null_or_empty(source):
        return None
    out_fmt = to_str(output_format)
    if not out_fmt:
        raise FunctionFailure("outputFormat is required")
    in_fmt = None if isinstance(source, datetime) else to_str(input_format)
    if not in_fmt:
        moment = to_datetime(source, "source")
        if moment is None:
            return None
    else:
        style_set = _styles(to_str(styles) or "")
        moment = dates.parse_exact(to_text(source), in_fmt, style_set, _now(context))
    return dates.format_datetime(moment, out_fmt)


def _guid(context: EvaluationContext) -> str:
    return str(uuid.UUID(int=context.random.getrandbits(128), version=4))


def _instr(
    _: EvaluationContext, haystack: Any, needle: Any, start: Any = None, compare: Any = None
) -> int | None:
    """InStr: 1-based position of needle, 0 if absent; VBA's rules for null and empty needles."""
    searched, wanted = to_str(haystack), to_str(needle)
    if searched is None or wanted is None:
        return None
    begin = 1 if start is None else to_int(start, "start")
    if begin < 1:
        raise FunctionFailure(f"start must be 1 or more, got {begin}")
    mode = 0 if compare is None else to_int(compare, "compareType")
    if begin > len(searched):
        return 0
    if wanted == "":
        return begin
    if mode == 1:
        searched, wanted = text.to_lower(searched), text.to_lower(wanted)
    return searched.find(wanted, begin - 1) + 1


def _is_null(_: EvaluationContext, value: Any) -> bool:
    return is_null(value)


def _is_null_or_empty(_: EvaluationContext, value: Any) -> bool:
    return is_null_or_empty(value)


def _is_present(_: EvaluationContext, value: Any) -> bool:
    return not is_null_or_empty(value)


def _is_string(_: EvaluationContext, value: Any) -> bool:
    return isinstance(value, str)


def _item(_: EvaluationContext, values: Any, index: Any) -> Any:
    """Item(attribute, index): 1-based; past the last item is null, 0 or less an error."""
    if values is None:
        return None
    position = to_int(index, "index")
    if position < 1:
        raise FunctionFailure(f"index is 1-based, got {position}")
    items = _as_list(values)
    return items[position - 1] if position <= len(items) else None


def _join(_: EvaluationContext, separator: Any, *sources: Any) -> str:
    """Join: null and empty values are skipped; multi-valued attributes contribute each value."""
    parts: list[str] = []
    for value in sources:
        if type(value) is str:
            if value:
                parts.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                part = to_str(item)
                if part:
                    parts.append(part)
        elif value is not None:
            part = to_str(value)
            if part:
                parts.append(part)
    return to_text(separator).join(parts)


def _left(_: EvaluationContext, source: Any, count: Any) -> str:
    """Left: numChars 0 gives "", negative gives the input, null input gives ""."""
    value = to_str(source)
    if value is None:
        return ""
    number = to_int(count, "numChars")
    if number < 0:
        return value
    return value[:number]


def _mid(_: EvaluationContext, source: Any, start: Any, length: Any) -> str:
    """Mid(source, start, length), 1-based; a length past the end stops at the end.

    Entra's reference states only that; the rest follows Entra Connect's Mid: null input gives
    "", length 0 gives "", a negative length, start <= 0 or start past the end give the input.
    """
    value = to_str(source)
    if value is None:
        return ""
    begin = to_int(start, "start")
    count = to_int(length, "length")
    if count == 0:
        return ""
    if count < 0 or begin <= 0 or begin > len(value):
        return value
    return value[begin - 1 : begin - 1 + count]


def _normalize_diacritics(_: EvaluationContext, value: Any) -> Any:
    if type(value) is str:
        return text.normalize_diacritics(value)
    return _each(value, text.normalize_diacritics)


def _not(_: EvaluationContext, value: Any) -> bool:
    """Not: True becomes False, anything else (False, null, other text) becomes True."""
    if value is True:
        return False
    if type(value) is str:
        return value.strip().lower() != "true"
    if type(value) is int or type(value) is float:
        return value == 0
    if isinstance(value, list | tuple) and value:
        return _not(_, value[0])
    return True


def _now(context: EvaluationContext) -> datetime:
    moment = context.now()
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _num_from_date(_: EvaluationContext, value: Any) -> int | None:
    moment = to_datetime(value, "value")
    return None if moment is None else dates.to_filetime(moment)


def _pcase(_: EvaluationContext, source: Any, separators: Any = None) -> Any:
    chosen = None if separators is None else to_str(separators) or None
    if type(source) is str:
        return text.proper_case(source, chosen)
    return _each(source, lambda s: text.proper_case(s, chosen))


# The complexity policy's non-alphanumeric characters, which Entra points to.
SPECIAL_CHARACTERS = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/"
RANDOM_STRING_MAX = 256


def _random_string(
    context: EvaluationContext,
    length: Any,
    numbers: Any,
    specials: Any,
    capitals: Any,
    lowers: Any,
    avoid: Any = None,
) -> str:
    """RandomString: at least the asked count of each class, the rest letters and digits.

    The rest also draws on special characters only when special characters were asked for.
    """
    total = to_int(length, "Length")
    minimums = [
        to_int(numbers, "MinimumNumbers"),
        to_int(specials, "MinimumSpecialCharacters"),
        to_int(capitals, "MinimumCapital"),
        to_int(lowers, "MinimumLowerCase"),
    ]
    if total < 1 or total > RANDOM_STRING_MAX:
        raise FunctionFailure(f"Length must be 1 to {RANDOM_STRING_MAX}, got {total}")
    if any(minimum < 0 for minimum in minimums):
        raise FunctionFailure("minimum counts cannot be negative")
    if sum(minimums) > total:
        raise FunctionFailure(f"the minimum counts add up to more than Length ({total})")
    excluded = set(to_text(avoid))
    pools = [
        [ch for ch in chars if ch not in excluded]
        for chars in (
            string.digits,
            SPECIAL_CHARACTERS,
            string.ascii_uppercase,
            string.ascii_lowercase,
        )
    ]
    names = ("numbers", "special characters", "capital letters", "lower-case letters")
    chosen: list[str] = []
    for pool, minimum, name in zip(pools, minimums, names, strict=True):
        if minimum and not pool:
            raise FunctionFailure(f"CharactersToAvoid leaves no {name}")
        chosen.extend(context.random.choice(pool) for _ in range(minimum))
    rest = pools[0] + pools[2] + pools[3] + (pools[1] if minimums[1] else [])
    if total > len(chosen) and not rest:
        raise FunctionFailure("CharactersToAvoid leaves nothing to fill the string with")
    chosen.extend(context.random.choice(rest) for _ in range(total - len(chosen)))
    context.random.shuffle(chosen)
    return "".join(chosen)


def _remove_duplicates(_: EvaluationContext, value: Any) -> Any:
    if not isinstance(value, list | tuple):
        return value
    seen: set[Any] = set()
    unique: list[Any] = []
    for item in value:
        key = to_str(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _split(_: EvaluationContext, source: Any, delimiter: Any) -> list[str] | None:
    """Split(source, delimiter); each value is trimmed, as the reference's example shows."""
    value = to_str(source)
    if value is None:
        return None
    separator = to_text(delimiter)
    if separator == "":
        return [value]
    return [part.strip() for part in value.split(separator)]


def _strip_spaces(_: EvaluationContext, value: Any) -> Any:
    if type(value) is str:
        return value.replace(" ", "")
    return _each(value, lambda s: s.replace(" ", ""))


def _culture(value: Any) -> str | None:
    if value is None:
        return None
    culture = to_str(value)
    try:
        text.to_lower("", culture)
    except ValueError as exc:
        raise FunctionFailure(str(exc)) from None
    return culture


def _to_lower(_: EvaluationContext, source: Any, culture: Any = None) -> Any:
    chosen = _culture(culture)
    if type(source) is str:
        return text.to_lower(source, chosen)
    return _each(source, lambda s: text.to_lower(s, chosen))


def _to_upper(_: EvaluationContext, source: Any, culture: Any = None) -> Any:
    chosen = _culture(culture)
    if type(source) is str:
        return text.to_upper(source, chosen)
    return _each(source, lambda s: text.to_upper(s, chosen))


@lru_cache(maxsize=256)
def _word_splitter(delimiters: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(delimiters)}]+")


def _word(_: EvaluationContext, source: Any, number: Any, delimiters: Any) -> str:
    """Word: the n-th word (1-based) between any of the delimiter characters; "" if none."""
    value = to_str(source)
    if value is None:
        return ""
    index = to_int(number, "WordNumber")
    if index < 1:
        return ""
    separators = to_text(delimiters)
    words = [value] if not separators else _word_splitter(separators).split(value)
    words = [word for word in words if word]
    return words[index - 1] if index <= len(words) else ""


# --- special functions ----------------------------------------------------------------------


def failure(name: str, position: int, exc: Exception) -> ExpressionError:
    """The ExpressionError for an exception raised inside a call, at the call's position."""
    if isinstance(exc, FunctionFailure | dates.DateFormatError | RegexError):
        return ExpressionError(f"{name}: {exc}", position)
    return ExpressionError(f"{name} failed: {type(exc).__name__}: {exc}", position)


def _compile_iif(node: Call, fns: list[Compiled]) -> Compiled:
    """IIF(condition, valueIfTrue, valueIfFalse), evaluating only the branch it takes.

    As the reference warns, the condition cannot be checked when an attribute it uses is null
    or empty: that is an error here (Switch is the way to test for empty values).
    """
    condition, if_true, if_false = fns
    watched = tuple(sorted(_attribute_names(node.args[0])))
    position = node.position

    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        for name in watched:
            value = attributes.get(name)
            if value is None or value == "" or value == []:
                raise ExpressionError(
                    f"IIF cannot check its condition: [{name}] is null or empty "
                    "(use Switch to test for empty values)",
                    position,
                )
        try:
            verdict = to_bool(condition(attributes, context), "the condition")
        except FunctionFailure as exc:
            raise ExpressionError(f"IIF: {exc}", position) from None
        return if_true(attributes, context) if verdict else if_false(attributes, context)

    return run


def _switch_key(value: Any) -> str:
    return "" if value is None else to_text(value)


def _compile_switch(node: Call, fns: list[Compiled]) -> Compiled:
    """Switch(source, default, key1, value1, ...): case-sensitive; a null source matches ""."""
    source, default = fns[0], fns[1]
    keys, values = node.args[2::2], fns[3::2]
    if all(isinstance(key, Literal | Missing) for key in keys):
        table: dict[str, Compiled] = {}
        for key, value in zip(keys, values, strict=True):
            constant = key.value if isinstance(key, Literal) else None
            table.setdefault(_switch_key(constant), value)

        def run_table(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
            chosen = table.get(_switch_key(source(attributes, context)), default)
            return chosen(attributes, context)

        return run_table

    key_fns = fns[2::2]

    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        wanted = _switch_key(source(attributes, context))
        for key, value in zip(key_fns, values, strict=True):
            if _switch_key(key(attributes, context)) == wanted:
                return value(attributes, context)
        return default(attributes, context)

    return run


def _compile_coalesce(node: Call, fns: list[Compiled]) -> Compiled:
    """Coalesce: the first value that is not null (the last argument doubles as the default)."""

    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        for fn in fns:
            value = fn(attributes, context)
            if value is not None and value != []:
                return value
        return None

    return run


def _compile_ignore_flow(node: Call, fns: list[Compiled]) -> Compiled:
    (inner,) = fns

    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        value = inner(attributes, context)
        if is_null_or_empty(value):
            raise IgnoreFlow
        return value

    return run


def _compile_redact(node: Call, fns: list[Compiled]) -> Compiled:
    # The value itself flows; the parsed expression marks its result as redacted.
    return fns[0]


def _compile_select_unique(node: Call, fns: list[Compiled]) -> Compiled:
    """SelectUniqueValue: the first non-empty candidate the target does not hold yet."""
    position = node.position

    def run(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        is_unique = context.is_unique
        tried = 0
        for fn in fns:
            candidate = to_str(fn(attributes, context))
            if not candidate:
                continue
            if is_unique is None or is_unique(context.target_attribute, candidate):
                return candidate
            tried += 1
        if tried:
            raise ExpressionError(
                f"SelectUniqueValue: all {tried} candidate values already exist in the target",
                position,
            )
        return None

    return run


# Replace's argument slots.
_SOURCE, _OLD, _PATTERN, _GROUP, _REPLACEMENT, _REPLACEMENT_ATTRIBUTE, _TEMPLATE = range(7)


@lru_cache(maxsize=256)
def _dynamic_replacement(pattern: str, replacement: str) -> Replacement:
    return translate_replacement(replacement, compile_pattern(pattern))


def _constant_text(node: Node | None) -> str | None:
    if isinstance(node, Literal) and isinstance(node.value, str):
        return node.value
    return None


def _compile_replace(node: Call, fns: list[Compiled]) -> Compiled:
    """Replace(source, oldValue, regexPattern, regexGroupName, replacementValue,
    replacementAttributeName, template): the arguments given choose the behaviour.

    The choice, and a constant pattern, are checked when the expression is parsed.
    """
    slots: list[Node | None] = [*node.args, *([None] * (7 - len(node.args)))]

    def given(slot: int) -> bool:
        return slots[slot] is not None and not isinstance(slots[slot], Missing)

    source = fns[_SOURCE]
    position = node.position

    def fn(slot: int) -> Compiled:
        return fns[slot]

    if given(_OLD):
        old = fn(_OLD)
        plain: Compiled | None = None
        if given(_REPLACEMENT):
            plain = fn(_REPLACEMENT)
        elif len(node.args) == 3 and given(_PATTERN):
            # Replace(source, oldValue, newValue): Entra Connect's three-argument form.
            plain = fn(_PATTERN)
        if given(_TEMPLATE):
            template = fn(_TEMPLATE)

            def run_template(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
                value = to_str(source(attributes, context))
                if value is None:
                    return None
                pattern_text = to_text(template(attributes, context))
                wanted = to_text(old(attributes, context))
                return pattern_text.replace(wanted, value) if wanted else pattern_text

            return run_template
        if plain is not None:
            replacement = plain

            def run_plain(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
                value = to_str(source(attributes, context))
                if value is None:
                    return None
                wanted = to_text(old(attributes, context))
                if not wanted:
                    return value
                return value.replace(wanted, to_text(replacement(attributes, context)))

            return run_plain
        raise ExpressionError(
            "Replace with an oldValue needs a replacementValue or a template", position
        )

    if not given(_PATTERN):
        raise ExpressionError("Replace needs an oldValue or a regexPattern", position)

    pattern_node = slots[_PATTERN]
    constant_pattern = _constant_text(pattern_node)
    fixed: DotNetRegex | None = None
    if constant_pattern is not None:
        try:
            fixed = compile_pattern(constant_pattern)
        except RegexError as exc:
            assert pattern_node is not None
            raise ExpressionError(
                f"invalid regular expression: {exc}", pattern_node.position
            ) from None
    pattern_fn = fn(_PATTERN)

    def regex_of(attributes: Mapping[str, Any], context: EvaluationContext) -> DotNetRegex | None:
        if fixed is not None:
            return fixed
        pattern_text = to_str(pattern_fn(attributes, context))
        if pattern_text is None:
            return None
        try:
            return compile_pattern(pattern_text)
        except RegexError as exc:
            raise ExpressionError(f"Replace: invalid regular expression: {exc}", position) from None

    if given(_GROUP):
        group_node = slots[_GROUP]
        constant_group = _constant_text(group_node)
        if (
            fixed is not None
            and constant_group is not None
            and fixed.group_index(constant_group) is None
        ):
            assert group_node is not None
            raise ExpressionError(
                f"the regex has no group named {constant_group!r}", group_node.position
            )
        group_fn = fn(_GROUP)

        def group_of(
            regex: DotNetRegex, attributes: Mapping[str, Any], context: EvaluationContext
        ) -> int:
            name = to_text(group_fn(attributes, context))
            index = regex.group_index(name)
            if index is None:
                raise ExpressionError(f"Replace: the regex has no group named {name!r}", position)
            return index

        if given(_REPLACEMENT):
            replacement = fn(_REPLACEMENT)

            def run_group(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
                value = to_str(source(attributes, context))
                regex = regex_of(attributes, context)
                if value is None or regex is None:
                    return value
                index = group_of(regex, attributes, context)
                new = to_text(replacement(attributes, context))

                def swap(match: re.Match[str]) -> str:
                    start, end = match.span(index)
                    if start < 0:
                        return match.group()
                    whole = match.group()
                    offset = match.start()
                    return whole[: start - offset] + new + whole[end - offset :]

                return regex.compiled.sub(swap, value)

            return run_group
        if given(_REPLACEMENT_ATTRIBUTE):
            fallback = fn(_REPLACEMENT_ATTRIBUTE)

            def run_extract(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
                value = source(attributes, context)
                if not is_null_or_empty(value):
                    return value
                regex = regex_of(attributes, context)
                other = to_str(fallback(attributes, context))
                if regex is None or other is None:
                    return None
                match = regex.compiled.search(other)
                if match is None:
                    return None
                return match.group(group_of(regex, attributes, context))

            return run_extract
        raise ExpressionError(
            "Replace with a regexGroupName needs a replacementValue or a replacementAttributeName",
            position,
        )

    if not given(_REPLACEMENT):
        raise ExpressionError("Replace with a regexPattern needs a replacementValue", position)
    replacement_node = slots[_REPLACEMENT]
    constant_replacement = _constant_text(replacement_node)
    replacement_fn = fn(_REPLACEMENT)
    if fixed is not None and constant_replacement is not None:
        fixed_replacement = translate_replacement(constant_replacement, fixed)
        compiled = fixed.compiled

        def run_regex_fixed(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
            value = to_str(source(attributes, context))
            if value is None:
                return None
            return compiled.sub(fixed_replacement, value)

        return run_regex_fixed

    def run_regex(attributes: Mapping[str, Any], context: EvaluationContext) -> Any:
        value = to_str(source(attributes, context))
        regex = regex_of(attributes, context)
        if value is None or regex is None:
            return value
        new = to_text(replacement_fn(attributes, context))
        return regex.compiled.sub(_dynamic_replacement(regex.pattern, new), value)

    return run_regex


# --- parse-time checks ----------------------------------------------------------------------


def _check_interval(node: Call) -> None:
    first = node.args[0] if node.args else None
    interval = _constant_text(first)
    if interval is not None and first is not None:
        try:
            dates.normalize_interval(interval)
        except dates.DateFormatError as exc:
            raise ExpressionError(f"{node.name}: {exc}", first.position) from None


def _check_format_date_time(node: Call) -> None:
    count = len(node.args)
    # (styles slot, format slots) for the four-, three- and two-argument forms.
    styles_slot, format_slots = {4: (1, (2, 3)), 3: (None, (1, 2))}.get(count, (None, (1,)))
    for slot in format_slots:
        arg = node.args[slot]
        fmt = _constant_text(arg)
        if fmt is not None:
            try:
                dates.tokenize_format(fmt)
            except dates.DateFormatError as exc:
                raise ExpressionError(f"FormatDateTime: {exc}", arg.position) from None
    if styles_slot is None:
        return
    styles_arg = node.args[styles_slot]
    styles = _constant_text(styles_arg)
    if styles is not None:
        try:
            _styles(styles)
        except FunctionFailure as exc:
            raise ExpressionError(f"FormatDateTime: {exc}", styles_arg.position) from None


def _check_culture(node: Call) -> None:
    arg = node.args[1] if len(node.args) > 1 else None
    culture = _constant_text(arg)
    if culture and arg is not None:
        try:
            text.to_lower("", culture)
        except ValueError as exc:
            raise ExpressionError(f"{node.name}: {exc}", arg.position) from None


def _specs(items: Sequence[FunctionSpec]) -> dict[str, FunctionSpec]:
    return {spec.name: spec for spec in items}


FUNCTIONS: dict[str, FunctionSpec] = _specs(
    [
        FunctionSpec("Append", 2, 2, impl=_append),
        FunctionSpec("AppRoleAssignmentsComplex", 1, 1, impl=_app_role_assignments_complex),
        FunctionSpec("BitAnd", 2, 2, impl=_bit_and),
        FunctionSpec("CBool", 1, 1, impl=_cbool),
        FunctionSpec("CDate", 1, 1, impl=_cdate),
        FunctionSpec("Coalesce", 1, None, compiler=_compile_coalesce),
        FunctionSpec("ConvertToBase64", 1, 1, impl=_convert_to_base64),
        FunctionSpec("ConvertToUTF8Hex", 1, 1, impl=_convert_to_utf8_hex),
        FunctionSpec("Count", 1, 1, impl=_count),
        FunctionSpec("CStr", 1, 1, impl=_cstr),
        FunctionSpec("DateAdd", 3, 3, impl=_date_add, check=_check_interval),
        FunctionSpec("DateDiff", 3, 3, impl=_date_diff, check=_check_interval),
        FunctionSpec("DateFromNum", 1, 1, impl=_date_from_num),
        FunctionSpec("FormatDateTime", 2, 4, impl=_format_date_time, check=_check_format_date_time),
        FunctionSpec("Guid", 0, 0, impl=_guid),
        FunctionSpec("IgnoreFlowIfNullOrEmpty", 1, 1, compiler=_compile_ignore_flow),
        FunctionSpec("IIF", 3, 3, compiler=_compile_iif),
        FunctionSpec("InStr", 2, 4, impl=_instr),
        FunctionSpec("IsNull", 1, 1, impl=_is_null),
        FunctionSpec("IsNullOrEmpty", 1, 1, impl=_is_null_or_empty),
        FunctionSpec("IsPresent", 1, 1, impl=_is_present),
        FunctionSpec("IsString", 1, 1, impl=_is_string),
        FunctionSpec("Item", 2, 2, impl=_item),
        FunctionSpec("Join", 2, None, impl=_join),
        FunctionSpec("Left", 2, 2, impl=_left),
        FunctionSpec("Mid", 3, 3, impl=_mid),
        FunctionSpec("NormalizeDiacritics", 1, 1, impl=_normalize_diacritics),
        FunctionSpec("Not", 1, 1, impl=_not),
        FunctionSpec("Now", 0, 0, impl=_now),
        FunctionSpec("NumFromDate", 1, 1, impl=_num_from_date),
        FunctionSpec("PCase", 1, 2, impl=_pcase),
        FunctionSpec("RandomString", 5, 6, impl=_random_string),
        FunctionSpec("Redact", 1, 1, compiler=_compile_redact),
        FunctionSpec("RemoveDuplicates", 1, 1, impl=_remove_duplicates),
        FunctionSpec("Replace", 1, 7, compiler=_compile_replace),
        FunctionSpec("SelectUniqueValue", 2, None, compiler=_compile_select_unique),
        FunctionSpec("SingleAppRoleAssignment", 1, 1, impl=_single_app_role_assignment),
        FunctionSpec("Split", 2, 2, impl=_split),
        FunctionSpec("StripSpaces", 1, 1, impl=_strip_spaces),
        FunctionSpec("Switch", 4, None, compiler=_compile_switch, even_args=True),
        FunctionSpec("ToLower", 1, 2, impl=_to_lower, check=_check_culture),
        FunctionSpec("ToUpper", 1, 2, impl=_to_upper, check=_check_culture),
        FunctionSpec("Word", 3, 3, impl=_word),
    ]
)
