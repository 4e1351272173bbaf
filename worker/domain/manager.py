"""The manager reference: which target user a synced user's `manager` should point to.

`manager` is a reference, not an attribute (docs/manager.md). A source user's manager is another
source user; in the target it becomes the target user linked to that manager, written with
`PUT /users/{id}/manager/$ref` and removed with `DELETE .../manager/$ref`. What was last written
is kept in the user's link (`attributes["manager"]`: the manager's target id), so a cycle writes
only when the reference it wants differs from it, without reading the target.

A source read says one of three things about a user's manager (`wanted_manager`): its id, that it
has none, or nothing (a delta page names a manager only when it changed: `UNKNOWN`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from worker.domain.model import MANAGER, Link, LinkState, SourceUser

# The key in a link's attributes naming the out-of-scope manager the user's row last warned of:
# an incremental cycle that reads the same manager again does not repeat the warning.
WARNED: Final = "managerOutOfScope"


class Unknown:
    """A delta page that does not mention a user's manager: it did not change."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()

# Target users a reference may point to: a disabled user can still be someone's manager.
_REFERABLE = (LinkState.ACTIVE, LinkState.DISABLED)


def wanted_manager(user: SourceUser, *, complete: bool) -> str | Unknown | None:
    """The source manager's id, None (no manager), or UNKNOWN. `complete` says the read names
    every manager (a full round, a single user's read): then no mention means none."""
    if MANAGER in user.attributes:
        value = user.attributes[MANAGER]
        return value if isinstance(value, str) and value else None
    return None if complete else UNKNOWN


def last_written(link: Link) -> str | None:
    """The manager's target id last written for this link's user (None: none written)."""
    value = link.attributes.get(MANAGER)
    return value if isinstance(value, str) and value else None


def warned(link: Link) -> str | None:
    """The out-of-scope manager (source id) the user's row last warned of, if any."""
    value = link.attributes.get(WARNED)
    return value if isinstance(value, str) and value else None


def _put(attributes: Mapping[str, Any], key: str, value: str | None) -> dict[str, Any]:
    changed = dict(attributes)
    if value is None:
        changed.pop(key, None)
    else:
        changed[key] = value
    return changed


def with_manager(attributes: Mapping[str, Any], target_id: str | None) -> dict[str, Any]:
    """A link's attributes after writing (or removing, None) the reference."""
    return _put(attributes, MANAGER, target_id)


def with_warned(attributes: Mapping[str, Any], manager_source_id: str | None) -> dict[str, Any]:
    """A link's attributes remembering (or forgetting, None) the manager warned of."""
    return _put(attributes, WARNED, manager_source_id)


@dataclass(frozen=True)
class SetManager:
    """Write the reference: the user's manager becomes this target user."""

    manager_source_id: str
    manager_target_id: str
    previous: str | None


@dataclass(frozen=True)
class ClearManager:
    """Remove the reference (the source user has no manager, or one out of scope)."""

    previous: str
    manager_source_id: str | None = None  # set when the manager is out of scope


@dataclass(frozen=True)
class KeepManager:
    """Nothing to write: the target holds what the source wants (as last written)."""


@dataclass(frozen=True)
class Unresolved:
    """The manager has no linked target user yet: it may be created later in this cycle."""

    manager_source_id: str


@dataclass(frozen=True)
class OutOfScope:
    """The manager has no linked target user at the end of the cycle: the reference stays
    unset (a warning, not a failure). `warn` is false when the user's row already warned of
    this manager and the cycle is not a full one (docs/manager.md)."""

    manager_source_id: str
    warn: bool = True


ManagerDecision = SetManager | ClearManager | KeepManager | Unresolved | OutOfScope


def decide_manager(
    wanted: str | None,
    manager_link: Link | None,
    previous: str | None,
    *,
    final: bool,
    warned_of: str | None = None,
    again: bool = True,
) -> ManagerDecision:
    """What to do with one user's reference.

    `wanted` is the source manager's id (None: no manager); `manager_link` that manager's link,
    if any (None as well for a manager leaving scope in this cycle); `previous` the manager's
    target id last written for the user. Before the end of the cycle (`final` false) a manager
    without a usable link is `Unresolved`: the caller keeps it for the cycle's managers phase,
    when it is resolved or found out of scope. `warned_of` is the out-of-scope manager the
    user's row last warned of; `again` says to warn of it again (a full cycle, a provisioning on
    demand): otherwise the same manager, still out of scope, is not warned of twice.
    """
    if wanted is None:
        return KeepManager() if previous is None else ClearManager(previous=previous)
    if manager_link is None or manager_link.state not in _REFERABLE:
        if not final:
            return Unresolved(manager_source_id=wanted)
        if previous is not None:
            return ClearManager(previous=previous, manager_source_id=wanted)
        return OutOfScope(manager_source_id=wanted, warn=again or warned_of != wanted)
    if manager_link.target_id == previous:
        return KeepManager()
    return SetManager(
        manager_source_id=wanted, manager_target_id=manager_link.target_id, previous=previous
    )


def out_of_scope_reason(manager_source_id: str) -> str:
    """The warning a user's log row carries when its manager is not synced by the job."""
    return (
        f"manager {manager_source_id} is not in scope of this job (no linked target user): "
        "the manager reference is left unset"
    )
