"""Group provisioning decisions (docs/groups.md): what a provisioned target group looks like,
whether a source group may be created or renamed, and which members to add and remove.

Pure: the service reads the source group, its members, the job's links and the target, and asks
these functions what to write; it never decides itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from worker.domain.mapping import MappingSpec
from worker.domain.model import Action

# Whatever the source group is (security, Microsoft 365, dynamic), the target group is this:
# a static security group (docs/groups.md).
FIXED_GROUP_ATTRIBUTES: dict[str, Any] = {
    "securityEnabled": True,
    "mailEnabled": False,
    "groupTypes": [],
}
DEFAULT_GROUP_ATTRIBUTES = ("displayName", "description", "mailNickname")
MEMBERS_PER_PATCH = 20  # Graph's limit on members@odata.bind in one request
GROUP_OBJECT_TYPE = "Group"
_NICKNAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
UNIQUE_NAME_PREFIX = "tenant-sync-"
# Kept with a link's attributes: the member count last written (never a mapping target), so a
# cycle can tell that members changed since (written by a cycle stopped before its commit).
MEMBER_COUNT = "members"


class Nested(StrEnum):
    FLATTEN = "flatten"  # members of nested groups become direct members
    SKIP = "skip"  # nested groups and their members are left out


@dataclass(frozen=True)
class GroupProvisioning:
    """A job's `groups:` section as the service uses it."""

    enabled: bool = False
    nested: Nested = Nested.SKIP
    mappings: tuple[MappingSpec, ...] = ()

    @property
    def source_select(self) -> list[str]:
        """What is read of a source group: its id, name and what the mappings need."""
        names = {"id", "displayName"}
        for mapping in self.mappings:
            names |= mapping.source_attributes
        return sorted(names)

    def describe(self) -> dict[str, Any]:
        """For the job's fingerprint: what changes how groups are provisioned."""
        return {
            "nested": self.nested.value,
            "mappings": [[m.target, m.kind, m.describe(), repr(m.default)] for m in self.mappings],
        }


def default_group_mappings() -> list[MappingSpec]:
    return [MappingSpec(target=name, source=name) for name in DEFAULT_GROUP_ATTRIBUTES]


@dataclass
class GroupLink:
    """A target group tenant-sync created for a source group, and what it last wrote to it."""

    job: str
    source_id: str
    target_id: str
    display_name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


def mail_nickname(display_name: str, source_id: str) -> str:
    """A mailNickname for a group whose mappings give none (Graph requires one on creation)."""
    nickname = _NICKNAME_UNSAFE.sub("", display_name)[:56]
    return nickname or "group-" + source_id[:8]


def unique_name(job: str, source_id: str) -> str:
    """The `uniqueName` (Graph's immutable alternate key of a group) tenant-sync gives the group
    it creates for `source_id` in `job`: the same on every attempt, so a creation whose answer
    was lost is found again instead of being made twice. At most 64 characters of [a-z0-9-]:
    the prefix, 8 hex characters of the job's name, and the source group's id."""
    return f"{UNIQUE_NAME_PREFIX}{job_hash(job)}-{source_id.lower()}"[:64]


def job_hash(job: str) -> str:
    """8 hex characters of a job's name, as its groups' uniqueNames carry them."""
    return hashlib.sha256(job.encode()).hexdigest()[:8]


def job_hash_of(unique: str) -> str:
    """The job hash part of a tenant-sync uniqueName (see `unique_name`)."""
    return unique[len(UNIQUE_NAME_PREFIX) :].split("-", 1)[0]


def desired_attributes(mapped: Mapping[str, Any], source_id: str) -> dict[str, Any]:
    """The target group's attributes: the mapped values with the fixed kind laid over them."""
    values = {k: v for k, v in mapped.items() if k not in FIXED_GROUP_ATTRIBUTES}
    if not values.get("mailNickname"):
        values["mailNickname"] = mail_nickname(str(values.get("displayName") or ""), source_id)
    return values


def attribute_changes(
    last_written: Mapping[str, Any], desired: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """The attributes to patch: those whose desired value differs from what was last written
    (name -> (old, new)). An attribute no longer mapped is left as it is."""
    return {
        name: (last_written.get(name), value)
        for name, value in sorted(desired.items())
        if last_written.get(name) != value
    }


def name_collision(
    display_name: str,
    holders: Iterable[str],
    linked_target: str | None,
    provisioned: Mapping[str, str] | None = None,
    unique_names: Mapping[str, str] | None = None,
) -> str | None:
    """Why a source group may not take `display_name` in the target, or None when it may.

    `holders` are the ids of the target groups that already carry the name; `provisioned` maps
    the target groups this job provisions to their source groups; `unique_names` the holders'
    uniqueNames, where known (a tenant-sync group's names the job that made it). A group this
    job did not create is never taken over, and no second group of the name is made."""
    others = sorted(h for h in holders if h != linked_target)
    if not others:
        return None
    other = others[0]
    source = (provisioned or {}).get(other)
    if source is not None:
        return (
            f"the target group named {display_name!r} ({other}) is the one this job provisions "
            f"for source group {source}; skipped until the name is free"
        )
    unique = (unique_names or {}).get(other, "")
    if unique.startswith(UNIQUE_NAME_PREFIX):
        return (
            f"the target already has a group named {display_name!r} ({other}) that another "
            f"tenant-sync job provisions (uniqueName {unique!r}: the job whose name hashes to "
            f"{job_hash_of(unique)}); not taken over, skipped until the name is free"
        )
    return (
        f"the target already has a group named {display_name!r} that tenant-sync did not "
        f"create ({other}); skipped until the name is free"
    )


@dataclass(frozen=True)
class MemberChanges:
    add: tuple[str, ...]
    remove: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove

    def add_batches(self) -> list[tuple[str, ...]]:
        """The additions, at most 20 to a request (members@odata.bind)."""
        return [
            self.add[i : i + MEMBERS_PER_PATCH] for i in range(0, len(self.add), MEMBERS_PER_PATCH)
        ]

    def describe(self) -> str:
        return f"{len(self.add)} member(s) added, {len(self.remove)} removed"


@dataclass(frozen=True)
class MemberWrites:
    """What Graph confirmed of a group's planned member changes (docs/groups.md): a row says
    what was done, never what was planned. `missing` are target users a write was refused for
    because they no longer exist in the target (deleted there by hand)."""

    planned: MemberChanges
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return bool(self.added or self.removed)

    @property
    def failed(self) -> int:
        """Planned changes neither made nor left out as missing (their errors are the row's)."""
        planned = len(self.planned.add) + len(self.planned.remove)
        return planned - len(self.added) - len(self.removed) - len(self.missing)

    def count_after(self, before: int) -> int:
        return before + len(self.added) - len(self.removed)

    def describe(self) -> str:
        text = f"{len(self.added)} member(s) added, {len(self.removed)} removed"
        if self.missing:
            text += f", {len(self.missing)} left out (no longer in the target)"
        if self.failed:
            text += f", {self.failed} failed"
        return text


def missing_members_reason(missing: Mapping[str, str]) -> str:
    """Why members were left out: their linked target users (target id -> source id) no longer
    exist in the target (deleted there by hand)."""
    shown = ", ".join(f"{t} (source user {s})" for t, s in sorted(missing.items())[:10])
    more = " …" if len(missing) > 10 else ""
    return (
        f"{len(missing)} member(s) left out: the linked target user(s) {shown}{more} no longer "
        "exist in the target; the next full cycle creates them again and adds them"
    )


def wanted_members(
    source_members: Iterable[str], linked_targets: Mapping[str, str], nested_groups: set[str]
) -> set[str]:
    """The target users a provisioned group should hold: those linked to its source members.

    `linked_targets` maps the job's live links (source user id -> target user id); a member with
    none (out of scope, not yet provisioned, failed) is not a member in the target. Ids of
    nested groups are never members themselves (Entra's provisioned groups hold users)."""
    return {
        linked_targets[m] for m in source_members if m in linked_targets and m not in nested_groups
    }


def member_changes(current: Iterable[str], wanted: Iterable[str]) -> MemberChanges:
    """Make the target group's members equal to `wanted`."""
    have, want = set(current), set(wanted)
    return MemberChanges(add=tuple(sorted(want - have)), remove=tuple(sorted(have - want)))


def departures(
    links: Sequence[GroupLink], in_scope: Iterable[str], gone: Iterable[str]
) -> list[tuple[GroupLink, str]]:
    """The provisioned groups to delete, with why: out of `scope.groups`, or gone from the
    source."""
    scope, missing = set(in_scope), set(gone)
    found = []
    for link in sorted(links, key=lambda x: x.source_id):
        if link.source_id not in scope:
            found.append((link, "source group removed from scope.groups"))
        elif link.source_id in missing:
            found.append((link, "source group deleted"))
    return found


@dataclass(frozen=True)
class GroupSkip:
    """A source group left out of the target, and why (shown by `status`); `held`: its target
    group's deletion is held over the deletion threshold (a `stagedDelete` row) instead."""

    source_id: str
    label: str
    reason: str
    held: bool = False


HELD = Action.STAGED_DELETE.value  # a deletion held over the threshold, as the log stores it


def group_skips(rows: Iterable[tuple[str, str, str, str, str]]) -> list[GroupSkip]:
    """From a job's group log rows (source id, label, action, status, reason), newest first:
    the groups whose newest row is a warning with a reason — a skip, or a change made with
    something still pending (a held rename, members left out) — or a held deletion (`held`)."""
    newest: dict[str, tuple[str, str, str, str]] = {}
    for source_id, label, action, status, reason in rows:
        newest.setdefault(source_id, (label, action, status, reason))
    return [
        GroupSkip(source_id, label, reason, held=action == HELD)
        for source_id, (label, action, status, reason) in sorted(newest.items())
        if (status == "warning" and reason and action != "delete") or action == HELD
    ]


def held_group_deletions(skips: Iterable[GroupSkip], links: Iterable[GroupLink]) -> int:
    """How many provisioned groups' deletions are held now (still linked: not made yet)."""
    linked = {link.source_id for link in links}
    return sum(1 for s in skips if s.held and s.source_id in linked)


@dataclass(frozen=True)
class SourceGroup:
    """A group as read from the source tenant: its id and the selected attributes."""

    id: str
    attributes: Mapping[str, Any]

    @property
    def display_name(self) -> str:
        return str(self.attributes.get("displayName") or "")
