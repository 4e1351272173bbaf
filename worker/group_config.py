"""The `groups:` section of a job (docs/groups.md): its model's checks and its domain spec.

Kept beside `worker.config_jobs` (which calls `build_group_provisioning` for each job) so
that the group rules read in one place: provisioning needs `scope.groups`; `nested: flatten`
needs `scope.nested_groups` (members of nested groups are otherwise out of scope); mapping
targets are the writable string attributes of a security group, sources any simple attribute
of microsoft.graph.group. The section's model, `GroupsConfig`, is in `worker.config_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.domain.groups import (
    FIXED_GROUP_ATTRIBUTES,
    GroupProvisioning,
    Nested,
    default_group_mappings,
)
from worker.domain.mapping import Apply, MappingSpec
from worker.schema import entity_properties

# What a mapping may write to a provisioned (static security) group.
GROUP_MAPPING_TARGETS = (
    "displayName",
    "description",
    "mailNickname",
    "classification",
    "preferredLanguage",
)


def group_source_types() -> dict[str, str]:
    """The attributes of microsoft.graph.group a mapping may read: those of simple types."""
    return {
        name: edm
        for name, edm in entity_properties("group").items()
        if edm.removeprefix("Collection(").startswith("Edm.")
    }


def build_group_provisioning(
    *,
    provision: bool,
    nested: str | None,
    mappings: Sequence[Any],
    scope_groups: Sequence[str],
    nested_groups: bool,
    where: str,
    problems: list[str],
) -> GroupProvisioning | None:
    """The job's group provisioning, or None after adding its problems to `problems`."""
    at = f"{where}.groups"
    before = len(problems)
    if provision and not scope_groups:
        problems.append(
            f"{at}.provision: needs scope.groups (the source groups to create in the target)"
        )
    if nested == Nested.FLATTEN and not nested_groups:
        problems.append(
            f"{at}.nested: flatten needs scope.nested_groups: true "
            "(members of nested groups are otherwise out of scope)"
        )
    specs = _mappings(mappings, at, problems) if mappings else default_group_mappings()
    if len(problems) > before:
        return None
    chosen = Nested(nested) if nested else (Nested.FLATTEN if nested_groups else Nested.SKIP)
    return GroupProvisioning(enabled=provision, nested=chosen, mappings=tuple(specs))


# Graph's rule for a group's mailNickname (it answers 400 otherwise); a value written in the
# config is checked here, a mapped one only by Graph (docs/groups.md).
MAIL_NICKNAME_RULE = (
    "Graph refuses this group mailNickname: at most 64 ASCII characters, none of "
    '@ ( ) \\ [ ] " ; : < > , or a space'
)
_MAIL_NICKNAME_REFUSED = frozenset('@()\\[]";:<>, ')


def valid_mail_nickname(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isascii() and not _MAIL_NICKNAME_REFUSED & set(value)


def _mappings(mappings: Sequence[Any], at: str, problems: list[str]) -> list[MappingSpec]:
    sources = group_source_types()
    specs: list[MappingSpec] = []
    seen: set[str] = set()
    for index, mapping in enumerate(mappings):
        where = f"{at}.mappings[{index}]"
        target = mapping.target
        if target in FIXED_GROUP_ATTRIBUTES:
            problems.append(
                f"{where}.target: {target!r} is fixed: a provisioned group is a static security "
                "group (securityEnabled: true, mailEnabled: false, groupTypes: [])"
            )
            continue
        if target not in GROUP_MAPPING_TARGETS:
            problems.append(
                f"{where}.target: {target!r} cannot be mapped to a group "
                f"(one of: {', '.join(GROUP_MAPPING_TARGETS)})"
            )
            continue
        if target in seen:
            problems.append(f"{where}.target: {target!r} is already mapped")
            continue
        seen.add(target)
        if mapping.match is not None:
            problems.append(f"{where}.match: groups are never matched, only created (remove it)")
            continue
        if mapping.source is not None and mapping.source not in sources:
            problems.append(
                f"{where}.source: {mapping.source!r} is not a property of microsoft.graph.group"
            )
            continue
        if target == "mailNickname":
            written = (("constant", mapping.constant), ("default", mapping.default))
            refused = [k for k, v in written if isinstance(v, str) and not valid_mail_nickname(v)]
            if refused:
                problems.append(f"{where}.{refused[0]}: {MAIL_NICKNAME_RULE}")
                continue
        expression = None
        if mapping.expression is not None:
            from worker.domain.expressions import ExpressionError, parse

            try:
                expression = parse(mapping.expression)
            except ExpressionError as exc:
                problems.append(f"{where}.expression: {exc}")
                continue
            if mapping.expression.lstrip().startswith("SelectUniqueValue"):
                problems.append(
                    f"{where}.expression: SelectUniqueValue is for users only "
                    "(a group's name collision is skipped, never worked around)"
                )
                continue
            unknown = sorted(a for a in expression.source_attributes if a not in sources)
            if unknown:
                problems.append(
                    f"{where}.expression: {', '.join(map(repr, unknown))} "
                    "is not a property of microsoft.graph.group"
                )
                continue
        specs.append(
            MappingSpec(
                target=target,
                source=mapping.source,
                constant=mapping.constant,
                expression=expression,
                expression_text=mapping.expression or "",
                default=mapping.default,
                apply=mapping.apply if isinstance(mapping.apply, Apply) else Apply.ALWAYS,
                target_type="Edm.String",
            )
        )
    if specs and "displayName" not in seen:
        problems.append(f"{at}.mappings: must map displayName (a group's name in the target)")
    return specs
