"""The deletions a job holds over its threshold, users' and provisioned groups' together.

Users' held deletions are the ledger's staged rows; a provisioned group's is its newest log row
(a `stagedDelete`) while the group is still linked (docs/groups.md). Every place that counts or
lists what an operator is about to approve reads them here (`status`, the API's staged list,
the console, `allow-deletes`), so that they all say the same number (docs/safety.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker.domain.groups import held_group_deletions

if TYPE_CHECKING:
    # Annotations only: `status` loads this module without the ports' dataclasses.
    from worker.ports import Ledger, LedgerReads

USER = "User"
GROUP = "Group"


@dataclass(frozen=True)
class HeldDeletion:
    """One deletion waiting: what it deletes in the target, and why."""

    object_type: str  # USER or GROUP
    source_id: str
    source_identity: str  # the user's UPN (or mail), the group's displayName, as last read
    source_mail: str
    target_id: str | None
    source_deleted: bool  # gone from the source (else it left the scope)
    reason: str
    approved: bool = False  # released by an operator already: made without being counted

    def as_dict(self) -> dict[str, Any]:
        """The API's `StagedDeletion`."""
        return {
            "objectType": self.object_type,
            "sourceId": self.source_id,
            "sourceIdentity": self.source_identity or None,
            "sourceMail": self.source_mail or None,
            "targetId": self.target_id,
            "sourceDeleted": self.source_deleted,
            "reason": self.reason,
        }


def held_deletions(ledger: Ledger, job: str) -> list[HeldDeletion]:
    """The job's held deletions: the users' (staged), then the provisioned groups'."""
    staged = ledger.staged(job)
    links = ledger.links_for(job, [s.source_id for s in staged])
    found = []
    for s in staged:
        link = links.get(s.source_id)
        found.append(
            HeldDeletion(
                object_type=USER,
                source_id=s.source_id,
                source_identity=link.source_label if link else "",
                source_mail=link.source_mail if link else "",
                target_id=link.target_id if link else None,
                source_deleted=s.deleted,
                reason=s.reason,
                approved=s.approved,
            )
        )
    groups = {g.source_id: g for g in ledger.group_links(job)}
    for skip in ledger.group_skips(job):
        group = groups.get(skip.source_id)
        if not skip.held or group is None:
            continue
        found.append(
            HeldDeletion(
                object_type=GROUP,
                source_id=skip.source_id,
                source_identity=group.display_name or skip.label,
                source_mail="",
                target_id=group.target_id,
                source_deleted=skip.reason.startswith("source group deleted"),
                reason=skip.reason,
            )
        )
    return found


@dataclass(frozen=True)
class HeldCount:
    """How many deletions are held: users' not yet released (counted against the threshold),
    groups' (counted too), and users' an operator released already (made without counting)."""

    users: int
    groups: int
    approved: int

    @property
    def counted(self) -> int:
        return self.users + self.groups

    @property
    def total(self) -> int:
        """Every held deletion, released ones included: what `allow-deletes` reports."""
        return self.users + self.groups + self.approved


def held_count(ledger: LedgerReads, job: str) -> HeldCount:
    """The job's held deletions, counted as the cycle counts them (worker/service/deletions.py)."""
    staged = ledger.staged(job)
    approved = sum(1 for s in staged if s.approved)
    groups = held_group_deletions(ledger.group_skips(job), ledger.group_links(job))
    return HeldCount(users=len(staged) - approved, groups=groups, approved=approved)
