"""Organisations of many tenants: the `organization:` section expanded into jobs.

An organisation names its tenants and a topology; it stands for one job per pair it connects,
named `{source}-to-{target}`: every ordered pair (`mesh`), or the hub and each spoke
(`hub_spoke`, `direction: out` hub -> spokes, `in` spokes -> hub, `both`). Each generated job is
`job_defaults` deep-merged with the explicit `jobs:` entry of the same name, if any: mappings are
merged key by key, anything else (lists included) is replaced by the explicit value.

Pure: it works on the parsed YAML (plain dicts and lists) before the jobs are validated, so a
generated job is checked exactly like a hand-written one; `locate_problem` then says where a
problem of a generated job comes from (docs/organizations.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

TOPOLOGIES = ("mesh", "hub_spoke")
DIRECTIONS = ("out", "in", "both")
KEYS = ("tenants", "topology", "hub", "direction", "job_defaults")
SECTION = "organization"
# What the organisation decides for each job; job_defaults cannot set them.
PAIR_KEYS = ("source", "target")


@dataclass(frozen=True)
class Organization:
    """A valid `organization:` section."""

    tenants: tuple[str, ...]
    topology: str  # "mesh" | "hub_spoke"
    hub: str | None = None
    direction: str | None = None  # hub_spoke only: "out" | "in" | "both"
    job_defaults: Mapping[str, Any] = field(default_factory=dict)

    def pairs(self) -> list[tuple[str, str]]:
        """The (source, target) pairs the topology connects, in a stable order."""
        if self.topology == "mesh":
            return [(s, t) for s in self.tenants for t in self.tenants if s != t]
        hub = self.hub or ""
        spokes = [t for t in self.tenants if t != hub]
        out = [(hub, spoke) for spoke in spokes] if self.direction in ("out", "both") else []
        inward = [(spoke, hub) for spoke in spokes] if self.direction in ("in", "both") else []
        return out + inward

    def describe(self) -> str:
        """The topology in a few words, e.g. "hub_spoke, hub contoso, direction in"."""
        if self.topology == "mesh":
            return "mesh"
        return f"hub_spoke, hub {self.hub}, direction {self.direction}"

    def job_names(self) -> list[str]:
        return [job_name(source, target) for source, target in self.pairs()]


@dataclass(frozen=True)
class Expansion:
    """What an organisation adds to `jobs:`: the job bodies (defaults with the explicit entry of
    the same name merged in), by name, or the problems that stopped the expansion."""

    organization: Organization | None
    jobs: dict[str, Any]
    problems: list[str]


def job_name(source: str, target: str) -> str:
    return f"{source}-to-{target}"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings merged key by key, any other value (lists too) replaced."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def parse_organization(
    section: Any, known_tenants: Collection[str]
) -> tuple[Organization | None, list[str]]:
    """Check the section; the organisation, or None and every problem found (paths included)."""
    if not isinstance(section, Mapping):
        return None, [f"{SECTION}: must be a mapping with tenants and topology"]
    problems = [
        f"{SECTION}.{key}: unknown setting (known: {', '.join(KEYS)})"
        for key in section
        if key not in KEYS
    ]
    tenants = _tenants(section.get("tenants"), known_tenants, problems)
    topology = section.get("topology")
    hub = section.get("hub")
    direction = section.get("direction")
    if topology is None:
        problems.append(
            f"{SECTION}.topology: required setting is missing (one of: mesh, hub_spoke)"
        )
    elif topology not in TOPOLOGIES:
        problems.append(f"{SECTION}.topology: must be mesh or hub_spoke, not {topology!r}")
    elif topology == "mesh":
        for key, value in (("hub", hub), ("direction", direction)):
            if value is not None:
                problems.append(
                    f"{SECTION}.{key}: only for topology hub_spoke (a mesh connects every pair)"
                )
    else:
        if hub is None:
            problems.append(f"{SECTION}.hub: required for topology hub_spoke (one of the tenants)")
        elif not isinstance(hub, str) or (tenants is not None and hub not in tenants):
            listed = ", ".join(tenants or ())
            problems.append(f"{SECTION}.hub: {hub!r} is not one of {SECTION}.tenants ({listed})")
        if direction is None:
            direction = "out"
        elif direction not in DIRECTIONS:
            problems.append(f"{SECTION}.direction: must be out, in or both, not {direction!r}")
    defaults = section.get("job_defaults")
    if defaults is None:
        defaults = {}
    elif not isinstance(defaults, Mapping):
        problems.append(f"{SECTION}.job_defaults: must be a mapping of job settings")
        defaults = {}
    for key in PAIR_KEYS:
        if key in defaults:
            problems.append(
                f"{SECTION}.job_defaults.{key}: not allowed: the organisation sets each job's "
                f"{key} (override one pair under jobs.SOURCE-to-TARGET)"
            )
    if problems or tenants is None:
        return None, problems
    return (
        Organization(
            tenants=tuple(tenants),
            topology=str(topology),
            hub=hub if topology == "hub_spoke" else None,
            direction=direction if topology == "hub_spoke" else None,
            job_defaults=dict(defaults),
        ),
        [],
    )


def _tenants(value: Any, known: Collection[str], problems: list[str]) -> list[str] | None:
    where = f"{SECTION}.tenants"
    if value is None:
        problems.append(f"{where}: required setting is missing (a list of tenant names)")
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        problems.append(f"{where}: must be a list of tenant names (from tenants:)")
        return None
    found = len(problems)
    names = ", ".join(sorted(known)) or "none"
    seen: set[str] = set()
    for index, tenant in enumerate(value):
        if tenant in seen:
            problems.append(f"{where}[{index}]: {tenant!r} is listed twice")
        elif tenant not in known:
            problems.append(f"{where}[{index}]: unknown tenant {tenant!r} (known: {names})")
        seen.add(tenant)
    if len(seen) < 2:
        problems.append(
            f"{where}: an organization needs at least 2 tenants, got {len(seen)} "
            "(for one pair, write a job under jobs:)"
        )
    return list(value) if len(problems) == found else None


def expand_organization(
    section: Any, known_tenants: Collection[str], explicit: Mapping[str, Any]
) -> Expansion:
    """The jobs an `organization:` section makes, each merged with its explicit entry.

    `explicit` is the `jobs:` section as written. An explicit job named like a generated one
    overrides it key by key and may leave out source and target, but must not change them."""
    organization, problems = parse_organization(section, known_tenants)
    if organization is None:
        return Expansion(None, {}, problems)
    jobs: dict[str, Any] = {}
    for source, target in organization.pairs():
        name = job_name(source, target)
        pair = {"source": source, "target": target}
        override = explicit.get(name)
        if override is None:
            override = {}
        if not isinstance(override, Mapping):
            jobs[name] = override  # not a mapping: the job's validation says so
            continue
        for key, value in pair.items():
            if key in override and override[key] != value:
                problems.append(
                    f"jobs.{name}.{key}: {override[key]!r}, but the {SECTION} makes this job "
                    f"for {source} -> {target}; rename the job or drop its {key}"
                )
        jobs[name] = deep_merge(deep_merge(organization.job_defaults, pair), override)
    return Expansion(organization, jobs, problems)


_PROBLEM_RE = re.compile(r"^jobs\.(?P<rest>.*)$", re.DOTALL)
_STEP_RE = re.compile(r"\.([^.\[:\s]+)|\[(\d+)\]")


def locate_problem(
    problem: str, name: str, defaults: Mapping[str, Any], explicit: Mapping[str, Any] | None
) -> str:
    """Say where a problem of the generated job `name` comes from.

    A value the explicit `jobs.NAME` entry sets is reported there as usual; a value from
    `job_defaults` is reported at `organization.job_defaults.PATH` (the same for every generated
    job, so callers de-duplicate); anything else as `jobs.NAME (from organization).PATH`."""
    parsed = _parse_problem(problem, name)
    if parsed is None:
        return problem  # not a path this module understands: leave it as it is
    steps, path_text, sep, message = parsed
    if explicit is not None and _sets(explicit, steps):
        return problem
    if steps and _sets(defaults, steps):
        return f"{SECTION}.job_defaults{path_text}{sep}{message}"
    return f"jobs.{name} (from {SECTION}){path_text}{sep}{message}"


def _parse_problem(problem: str, name: str) -> tuple[list[str | int], str, str, str] | None:
    """`jobs.NAME.PATH: message` as (PATH's steps, PATH, the separator, message), or None."""
    match = _PROBLEM_RE.match(problem)
    if match is None or not match["rest"].startswith(name):
        return None
    rest = match["rest"][len(name) :]
    path_text, sep, message = rest.partition(": ")
    steps: list[str | int] = []
    position = 0
    while position < len(path_text):
        step = _STEP_RE.match(path_text, position)
        if step is None:
            return None
        steps.append(step[1] if step[1] is not None else int(step[2]))
        position = step.end()
    return steps, path_text, sep, message


def inherits_value(
    problem: str, name: str, defaults: Mapping[str, Any], explicit: Mapping[str, Any] | None
) -> bool:
    """Whether the generated job `name` takes the value the problem is about, a single value
    (not a section of several settings), from `job_defaults` unchanged: a job for which a
    problem of that value must also hold, unless something else it sets makes up for it."""
    parsed = _parse_problem(problem, name)
    if parsed is None or not parsed[0]:
        return False
    node: Any = defaults
    for step in parsed[0]:
        if not isinstance(node, Mapping) or step not in node:
            return False
        node = node[step]
    if isinstance(node, Mapping):
        return False  # a section: its problem may be the merge of both sides
    return explicit is None or not _sets(explicit, parsed[0])


def _sets(body: Mapping[str, Any], steps: list[str | int]) -> bool:
    """Whether `body` decides the value at `steps`: it holds a value on the path that is not a
    mapping (a leaf, or a list, which replaces rather than merges) or the whole path."""
    node: Any = body
    for step in steps:
        if not isinstance(node, Mapping) or step not in node:
            return False
        node = node[step]
        if not isinstance(node, Mapping):
            return True
    return True
