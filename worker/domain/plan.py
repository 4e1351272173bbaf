"""The decision for one source object: create, update, restore, deprovision, or nothing, and why.

`decide` is pure: it sees the source item, the job's link for it, the scope verdict and the
mapped values, and returns what the target should undergo. The service carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.domain.job import Deprovision, JobPolicy
from worker.domain.mapping import MappedValues, diff
from worker.domain.model import Action, Change, Link, LinkState, SourceItem, SourceRemoval

REDUNDANT_EXPORT = "RedundantExport"


@dataclass(frozen=True)
class CreateUser:
    """Match or invite, then write every mapped attribute."""

    address: str
    values: MappedValues

    action = Action.CREATE


@dataclass(frozen=True)
class UpdateUser:
    """Write the attributes that changed since they were last written."""

    link: Link
    changes: dict[str, Change]
    values: MappedValues

    action = Action.UPDATE


@dataclass(frozen=True)
class RestoreUser:
    """Bring the soft-deleted target user back (same object id), then write what changed."""

    link: Link
    changes: dict[str, Change]
    values: MappedValues

    action = Action.RESTORE


@dataclass(frozen=True)
class DeprovisionUser:
    """Soft-delete or disable the target user because the source one left."""

    link: Link
    mode: Deprovision
    reason: str

    @property
    def action(self) -> Action:
        return Action.DELETE if self.mode is Deprovision.SOFT_DELETE else Action.DISABLE


@dataclass(frozen=True)
class NoChange:
    """Nothing to write; the reason goes to the provisioning log."""

    reason: str
    link: Link | None = None

    action = Action.SKIP


Decision = CreateUser | UpdateUser | RestoreUser | DeprovisionUser | NoChange


def decide_departure(
    link: Link | None, reason: str, policy: JobPolicy, *, deleted: bool
) -> Decision:
    """The source user is gone (`deleted`) or out of scope: deprovision its target user, or not."""
    if link is None:
        return NoChange(reason=f"NotInScope: {reason}")
    if link.state is LinkState.SOFT_DELETED:
        return NoChange(reason=f"already deleted in the target; {reason}", link=link)
    if not deleted and policy.skip_out_of_scope_deletions:
        return NoChange(reason=f"kept (skip_out_of_scope_deletions); {reason}", link=link)
    if policy.deprovision is Deprovision.DISABLE and link.state is LinkState.DISABLED:
        return NoChange(reason=f"already disabled in the target; {reason}", link=link)
    if not policy.delete:
        return NoChange(reason=f"delete action is off; {reason}", link=link)
    return DeprovisionUser(link=link, mode=policy.deprovision, reason=reason)


def departure_settled(link: Link, policy: JobPolicy) -> bool:
    """Whether a linked user's departure is already carried out whatever the source says now:
    disabled by a job that disables. Only its return (which a delta round shows) is news."""
    return policy.deprovision is Deprovision.DISABLE and link.state is LinkState.DISABLED


def decide(
    item: SourceItem,
    link: Link | None,
    *,
    in_scope: bool,
    scope_reason: str,
    values: MappedValues | None,
    policy: JobPolicy,
) -> Decision:
    """What one source object's target user should undergo in this cycle.

    `values` are the mapped attributes: evaluated with creation semantics when there is no live
    link, without them otherwise. They are ignored for removals and out-of-scope users.
    """
    if isinstance(item, SourceRemoval):
        return decide_departure(link, item.description, policy, deleted=True)
    if not in_scope:
        return decide_departure(link, scope_reason, policy, deleted=False)
    assert values is not None, "an in-scope user needs its mapped values"
    if link is None:
        if not policy.create:
            return NoChange(reason="create action is off")
        address = item.invitation_address
        if address is None:
            return NoChange(reason="source user has neither mail nor userPrincipalName")
        return CreateUser(address=address, values=values)
    changes = diff(values.values, link.attributes, values.redacted)
    if link.state is LinkState.SOFT_DELETED:
        if not policy.create:
            return NoChange(reason="create action is off (restore needs it)", link=link)
        return RestoreUser(link=link, changes=changes, values=values)
    if not changes:
        return NoChange(reason=REDUNDANT_EXPORT, link=link)
    if not policy.update:
        return NoChange(reason="update action is off", link=link)
    # A source user disabled is an update that carries accountEnabled=false (docs/architecture.md,
    # "Data flow"): `disable` is the deprovisioning of `deprovision: disable`, which the
    # threshold counts.
    return UpdateUser(link=link, changes=changes, values=values)
