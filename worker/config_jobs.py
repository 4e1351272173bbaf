"""A job's settings checked against each other and against Graph's schema, and built.

Tenant references, the deletion window, scope filters (their attributes and values against
the user's Graph types), mappings (targets, sources, expressions, the manager reference) and,
through `worker.group_config`, the `groups:` section; then the `Job`. An organisation's jobs
(docs/organizations.md) are checked the same way, each problem reported where it was written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from worker.config_models import ClauseConfig, JobConfig, MappingConfig, format_duration
from worker.config_runtime import Job, _is_manager_reference
from worker.config_source import _quietly, _validate
from worker.domain import extension_attributes as ext
from worker.domain.mapping import Apply, MappingSpec, default_mappings
from worker.domain.model import MANAGER
from worker.domain.organization import SECTION, Organization, inherits_value, locate_problem
from worker.domain.scope import VALUELESS_OPERATORS, Clause, Operator, ScopeError, ScopeSpec
from worker.group_config import build_group_provisioning
from worker.schema import entity_properties, user_property_types, writable_user_properties

DEFAULTS_PREFIX = f"{SECTION}.job_defaults"  # where a problem of the organisation's defaults is
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _check_deletion_window(
    job: JobConfig, where: str, log_retention: timedelta, problems: list[str]
) -> None:
    window = job.deletion_threshold.window
    if window is None:
        return
    interval = job.schedule.interval
    if window < interval:
        problems.append(
            f"{where}.deletion_threshold.window: must be at least the schedule's interval "
            f"({format_duration(interval)}), or deletions of one cycle could slip out of it"
        )
    if window > log_retention:
        problems.append(
            f"{where}.deletion_threshold.window: must be at most state.log_retention "
            f"({format_duration(log_retention)}): the window is counted from the provisioning log"
        )


def _build_jobs(
    raw_jobs: Mapping[str, JobConfig],
    tenant_names: set[str],
    problems: list[str],
    log_retention: timedelta = timedelta(days=30),
) -> dict[str, Job]:
    types, writable = _attribute_types()
    jobs: dict[str, Job] = {}
    for name, job in raw_jobs.items():
        where = f"jobs.{name}"
        _check_tenant_refs(name, job.source, job.target, tenant_names, problems)
        _check_deletion_window(job, where, log_retention, problems)
        if job.scope.users == "assigned" and not (job.scope.user_ids or job.scope.groups):
            problems.append(f"{where}.scope: users: assigned needs user_ids or groups")
        scope = _build_scope(job, where, types, problems)
        mappings = _build_mappings(job, where, types, writable, problems)
        groups = build_group_provisioning(
            provision=job.groups.provision,
            nested=job.groups.nested,
            mappings=job.groups.mappings,
            scope_groups=job.scope.groups,
            nested_groups=job.scope.nested_groups,
            where=where,
            problems=problems,
        )
        if scope is not None and mappings is not None and groups is not None:
            jobs[name] = Job(name, job, scope, mappings, groups)
    return jobs


def _some(names: list[str], shown: int = 4) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _override_only(body: Any) -> bool:
    """A `jobs:` entry without source and target: it can only override an organisation's job."""
    return isinstance(body, dict) and "source" not in body and "target" not in body


def _build_generated_jobs(
    organization: Organization,
    bodies: Mapping[str, Any],
    explicit: Any,
    tenant_names: set[str],
    problems: list[str],
    log_retention: timedelta,
) -> dict[str, Job]:
    """An organisation's jobs, checked like hand-written ones; each problem is reported where
    its value was written: the explicit `jobs.NAME` entry, `organization.job_defaults` (once, when
    every generated job has it), or the generated job itself."""
    defaults = organization.job_defaults
    explicit = explicit if isinstance(explicit, dict) else {}
    jobs: dict[str, Job] = {}
    # A problem placed at `job_defaults`, with the jobs that have it, in the order first met,
    # and the jobs that take its value from `job_defaults` unchanged.
    shared: dict[str, list[str]] = {}
    inheriting: dict[str, set[str]] = {}
    ordered: list[str] = []
    for name, body in bodies.items():
        found: list[str] = []
        if not JOB_NAME_RE.match(name):
            found.append(
                f"jobs.{name}: a job name is 1 to 100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (rename the tenants it is made of)"
            )
        elif (job := _validate(JobConfig, body, ("jobs", name), found)) is not None:
            built = _build_jobs({name: job}, tenant_names, found, log_retention)
            for job_built in built.values():
                job_built.origin = SECTION
            jobs |= built
        elif isinstance(body, dict):
            _check_parts_of_invalid_job(name, body, found)
        override = explicit.get(name)
        for problem in found:
            located = problem  # an explicit entry that is not a mapping: named as written
            if override is None or isinstance(override, dict):
                located = locate_problem(problem, name, defaults, override)
            if located.startswith(DEFAULTS_PREFIX):
                shared.setdefault(located, []).append(name)
                if located not in inheriting:
                    inheriting[located] = {
                        other
                        for other in bodies
                        if isinstance(explicit.get(other), dict | None)
                        and inherits_value(
                            problem.replace(f"jobs.{name}", f"jobs.{other}", 1),
                            other,
                            defaults,
                            explicit.get(other),
                        )
                    }
            if located not in ordered:
                ordered.append(located)
    for located in ordered:
        having = shared.get(located)
        if (
            having is None
            or len(having) == len(bodies)
            or (inheriting[located] and inheriting[located] <= set(having))
        ):
            if located not in problems:
                problems.append(located)
            continue
        # Only some jobs have it, though others take the same value from `job_defaults` (or it
        # is about a section both sides write): the others set what it needs themselves, so
        # the problem is each of these merged jobs' (docs/organizations.md), and naming them
        # is what lets the operator find them. A bad value every job that takes it has (the
        # others override it) stays one line at `job_defaults` (above).
        rest = located[len(DEFAULTS_PREFIX) :]
        problems.extend(f"jobs.{name} (from {SECTION}){rest}" for name in having)
    return jobs


def _check_tenant_refs(
    name: str, source: Any, target: Any, tenant_names: set[str], problems: list[str]
) -> None:
    known = ", ".join(sorted(tenant_names)) or "none"
    for role, tenant in (("source", source), ("target", target)):
        if isinstance(tenant, str) and tenant not in tenant_names:
            problems.append(f"jobs.{name}.{role}: unknown tenant {tenant!r} (known: {known})")
    if isinstance(source, str) and source == target:
        problems.append(f"jobs.{name}.target: must differ from the source tenant")


def _build_scope(
    job: JobConfig, where: str, types: Mapping[str, str], problems: list[str]
) -> ScopeSpec | None:
    groups: list[tuple[Clause, ...]] = []
    ok = True
    for gi, group in enumerate(job.scope.filters):
        clauses = []
        if not group:
            problems.append(
                f"{where}.scope.filters[{gi}]: a clause group needs at least one clause"
            )
            ok = False
        for ci, clause in enumerate(group):
            built = _clause(f"{where}.scope.filters[{gi}][{ci}]", clause, types, problems)
            if built is None:
                ok = False
            else:
                clauses.append(built)
        groups.append(tuple(clauses))
    if not ok:
        return None
    return ScopeSpec(
        assigned_only=job.scope.users == "assigned",
        user_ids=frozenset(job.scope.user_ids),
        group_ids=tuple(job.scope.groups),
        nested_groups=job.scope.nested_groups,
        filters=tuple(groups),
    )


def _clause(
    at: str, clause: ClauseConfig, types: Mapping[str, str], problems: list[str]
) -> Clause | None:
    attribute = ext.canonical_name(clause.attribute)
    if not _known(attribute, types):
        problems.append(
            f"{at}.attribute: {_unknown(clause.attribute, attribute, 'a user property')}"
        )
        return None
    # A directory extension's type is the app's to define: any scalar value fits.
    edm = types.get(attribute, "Edm.Untyped")
    if clause.operator not in VALUELESS_OPERATORS and clause.value is not None:
        listed = clause.operator in (Operator.IS_IN, Operator.IS_NOT_IN)
        values = clause.value if listed and isinstance(clause.value, list) else [clause.value]
        for value in values:
            misfit = value_misfit(value, edm, attribute)
            if misfit:
                problems.append(f"{at}.value: {misfit}")
                return None
    try:
        return Clause(attribute, clause.operator, clause.value)
    except ScopeError as exc:
        problems.append(f"{at}: {exc}")
        return None


_NUMERIC_EDM = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Decimal"})


def value_misfit(value: Any, edm: str, attribute: str) -> str | None:
    """Why a configured value does not fit the attribute's Graph type, or None if it does.

    Values are compared as Entra does (numbers as their text), so a number fits a string
    attribute; a boolean fits only a boolean one, and a number attribute needs a number.
    """
    if edm.startswith("Collection("):
        edm = edm.removeprefix("Collection(").removesuffix(")")
        items = value if isinstance(value, list) else [value]
        return next((m for v in items if (m := value_misfit(v, edm, attribute))), None)
    if isinstance(value, list | dict):
        kind = "a list" if isinstance(value, list) else "a mapping"
        return f"{kind} does not fit {attribute} ({edm}): give one value"
    if edm == "Edm.Untyped" and isinstance(value, bool):
        return None
    if not isinstance(value, str | int | float) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        # Only JSON's scalars reach Graph and the log (an explicit tag such as !!timestamp or
        # !!binary makes something else): the text is what is meant.
        return (
            f"{value!r} ({type(value).__name__}) does not fit {attribute} ({edm}): "
            "quote the value to give it as text"
        )
    if edm == "Edm.Boolean":
        if isinstance(value, bool) or (
            isinstance(value, str) and value.strip().lower() in ("true", "false")
        ):
            return None
        return f"{value!r} does not fit {attribute} (Edm.Boolean): use true or false"
    if isinstance(value, bool):
        text = "true" if value else "false"
        return (
            f"{text} is a boolean, but {attribute} is {edm}: quote it ('{text}') if the text "
            "is meant"
        )
    if edm in _NUMERIC_EDM:
        if isinstance(value, int | float):
            return None
        try:
            float(str(value))
        except ValueError:
            return f"{value!r} does not fit {attribute} ({edm}): give a number"
    return None


def _build_mappings(
    job: JobConfig,
    where: str,
    types: Mapping[str, str],
    writable: Mapping[str, str],
    problems: list[str],
) -> list[MappingSpec] | None:
    if not job.mappings or all(_is_manager_reference(m) for m in job.mappings):
        # The manager reference alone adds to the default set (docs/manager.md).
        return default_mappings(job.user_type, types)
    specs: list[MappingSpec] = []
    seen: dict[str, int] = {}
    matches: dict[int, int] = {}
    ok = True
    for index, mapping in enumerate(job.mappings):
        at = f"{where}.mappings[{index}]"
        target = ext.canonical_name(mapping.target)
        if target in seen:
            problems.append(
                f"{at}.target: {mapping.target!r} is already mapped by mappings[{seen[target]}]"
            )
            ok = False
        seen.setdefault(target, index)
        if mapping.match is not None:
            if mapping.match in matches:
                problems.append(
                    f"{at}.match: precedence {mapping.match} is already used by "
                    f"mappings[{matches[mapping.match]}]"
                )
                ok = False
            matches.setdefault(mapping.match, index)
        if _is_manager_reference(mapping):
            continue  # not an attribute: JobSpec.manager
        spec = _mapping(at, mapping, types, writable, problems)
        if spec is None:
            ok = False
        else:
            specs.append(spec)
    return specs if ok else None


def _mapping(
    at: str,
    mapping: MappingConfig,
    types: Mapping[str, str],
    writable: Mapping[str, str],
    problems: list[str],
) -> MappingSpec | None:
    """One mapping's own checks (target, source, expression), and its spec if they pass."""
    target = ext.canonical_name(mapping.target)
    if MANAGER in (target, mapping.source):
        problems.append(_manager_misuse(at, mapping))
        return None
    if not _known(target, types):
        problems.append(f"{at}.target: {_unknown(mapping.target, target, _PROPERTY)}")
        return None
    if target not in writable and not ext.is_directory_extension(target):
        problems.append(f"{at}.target: {target!r} is read-only in the target tenant")
        return None
    if mapping.match is not None and ext.is_extension_attribute(target):
        problems.append(
            f"{at}.match: {mapping.target!r} cannot be a matching attribute (Graph filters on "
            "onPremisesExtensionAttributes only as an advanced query); match on a directory "
            "extension or another attribute"
        )
        return None
    target_type = types.get(target, "Edm.Untyped")
    edm = target_type.removeprefix("Collection(").removesuffix(")")
    if not edm.startswith("Edm."):
        problems.append(
            f"{at}.target: {target!r} has the complex type {types[target]}; "
            "only properties of simple types (and lists of them) can be mapped"
        )
        return None
    source = None if mapping.source is None else ext.canonical_name(mapping.source)
    if source is not None and not _known(source, types):
        problems.append(f"{at}.source: {_unknown(mapping.source or '', source, _PROPERTY)}")
        return None
    for name, value in (("constant", mapping.constant), ("default", mapping.default)):
        misfit = None if value is None else value_misfit(value, target_type, target)
        if misfit:
            problems.append(f"{at}.{name}: {misfit}")
            return None
    expression = None
    if mapping.expression is not None:
        # The expression engine loads only for a config that has expressions (start-up time).
        from worker.domain.expressions import ExpressionError, parse

        try:
            expression = parse(ext.canonical_expression(mapping.expression))
        except ExpressionError as exc:
            problems.append(f"{at}.expression: {exc}")
            return None
        if mapping.expression.lstrip().startswith("SelectUniqueValue") and (
            mapping.apply is not Apply.ON_CREATE
        ):
            problems.append(
                f"{at}.apply: SelectUniqueValue needs apply: on_create "
                "(a unique value is chosen once, when the user is created)"
            )
            return None
        if MANAGER in expression.source_attributes:
            problems.append(
                f"{at}.expression: manager is a reference to another user, not an attribute: "
                "an expression cannot read it; sync it with {target: manager, source: manager}"
            )
            return None
        unknown = sorted(a for a in expression.source_attributes if not _known(a, types))
        if unknown:
            problems.append(
                f"{at}.expression: {_unknown(', '.join(unknown), unknown[0], _PROPERTY)}"
            )
            return None
    return MappingSpec(
        target=target,
        source=source,
        constant=mapping.constant,
        expression=expression,
        expression_text=mapping.expression or "",
        default=mapping.default,
        apply=mapping.apply,
        match=mapping.match,
        target_type=target_type,
    )


def _attribute_types() -> tuple[dict[str, str], dict[str, str]]:
    """What a filter or mapping may name, and what a mapping may write: the user's properties
    plus the fifteen on-premises extension attributes by their own names
    (docs/extension-attributes.md; directory extensions are checked by their name pattern)."""
    extension = entity_properties(ext.CONTAINER)
    return {**user_property_types(), **extension}, {**writable_user_properties(), **extension}


_PROPERTY = "a property of microsoft.graph.user"


def _known(name: str, types: Mapping[str, str]) -> bool:
    """A name a filter or mapping may use (the extension attributes' container is not: its
    fifteen attributes are, by name)."""
    return (name in types and name != ext.CONTAINER) or ext.is_directory_extension(name)


def _unknown(written: str, name: str, what: str) -> str:
    """Why `written` (engine name `name`) is refused, with the valid forms when it tried to be
    an extension attribute."""
    quoted = ", ".join(repr(part) for part in written.split(", "))
    if name == ext.CONTAINER:
        return f"{quoted} holds fifteen attributes: name one ({ext.VALID_FORMS})"
    if ext.looks_like_extension(name):
        return f"{quoted} is not {what} (valid forms: {ext.VALID_FORMS})"
    return f"{quoted} is not {what}"


def _manager_misuse(at: str, mapping: MappingConfig) -> str:
    """Why a mapping naming `manager` other than as the reference is refused."""
    form = "map it only as {target: manager, source: manager}"
    if mapping.target != MANAGER:
        return (
            f"{at}.source: manager is a reference to another user, not an attribute: it cannot "
            f"be mapped to {mapping.target!r}; {form}"
        )
    return (
        f"{at}.target: manager is a reference to another user (its linked target user), not an "
        f"attribute: {form}, without expression, constant, default, match or apply"
    )


def _check_parts_of_invalid_job(name: str, body: Mapping[str, Any], problems: list[str]) -> None:
    """The clause and mapping checks for a job whose schema failed elsewhere.

    Each clause and mapping that is well-formed on its own still gets its deeper checks (a bad
    regex, an unknown attribute, an expression that does not parse), so one mistake does not
    hide the others; the malformed ones were reported by the schema already.
    """
    types, writable = _attribute_types()
    where = f"jobs.{name}"
    scope = body.get("scope")
    filters = scope.get("filters") if isinstance(scope, dict) else None
    for gi, group in enumerate(filters if isinstance(filters, list) else []):
        for ci, raw_clause in enumerate(group if isinstance(group, list) else []):
            clause = _quietly(ClauseConfig, raw_clause)
            if clause is not None:
                _clause(f"{where}.scope.filters[{gi}][{ci}]", clause, types, problems)
    mappings = body.get("mappings")
    for index, raw_mapping in enumerate(mappings if isinstance(mappings, list) else []):
        mapping = _quietly(MappingConfig, raw_mapping)
        if mapping is not None and not _is_manager_reference(mapping):
            _mapping(f"{where}.mappings[{index}]", mapping, types, writable, problems)
