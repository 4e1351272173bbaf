"""The job's group assignments: read from the source's groups, recorded in the ledger.

A full cycle reads every group's members afresh (a groups delta round from the start) and
replaces the recorded assignments. An incremental cycle reads the groups delta since the
watermark and applies member additions and removals; the ledger marks those users pending, and
the cycle reviews them after its users round. Nested groups (which delta cannot follow) are read
through their transitive members each cycle and reconciled with what was recorded.
"""

from __future__ import annotations

from worker.domain.errors import NotFound, ResyncRequired
from worker.domain.job import JobSpec
from worker.ports import GroupPage, Ledger, MembershipChange, SourceDirectory
from worker.service.position import Position


class GroupsRead:
    def __init__(
        self, spec: JobSpec, *, source: SourceDirectory, ledger: Ledger, position: Position
    ) -> None:
        self.spec = spec
        self.source = source
        self.ledger = ledger
        self.position = position

    @property
    def tracked(self) -> bool:
        scope = self.spec.scope
        # Provisioned groups need their members even when every user is in scope.
        return (scope.assigned_only or self.spec.groups.enabled) and bool(scope.group_ids)

    def read(self, *, full: bool) -> None:
        """The groups phase: the assignments brought up to date (resumable per page)."""
        if not self.tracked:
            return
        scope = self.spec.scope
        if scope.nested_groups:
            members = self._transitive()
            if full:
                self.ledger.replace_assignments(self.spec.name, members)
            else:
                self._reconcile(members)
            return
        progress = self.position.progress
        if full:
            fresh: dict[str, set[str]] = {g: set() for g in scope.group_ids}
            url: str | None = self.source.groups_delta_start(scope.group_ids)
            while url:
                page = self.source.groups_page(url)
                for change in page.changes:
                    if change.group_id in fresh:
                        bucket = fresh[change.group_id]
                        (bucket.add if change.added else bucket.discard)(change.member_id)
                url = page.next_link
                if page.delta_link:
                    progress.groups_delta_link = page.delta_link
            self.ledger.replace_assignments(self.spec.name, fresh)
            return
        watermark = self.position.watermark
        url = progress.next_link or (watermark.groups_delta_link if watermark else None)
        if url is None:
            raise ResyncRequired("no groups delta link is recorded for this job")
        while url:
            page = self.source.groups_page(url)
            self._apply(page)
            if page.next_link:
                progress.next_link = page.next_link
                self.position.save()
            else:
                progress.groups_delta_link = page.delta_link
            url = page.next_link

    def catch_up(self) -> None:
        """The changes since the cycle's own groups round (before deletions are judged)."""
        if not self.tracked:
            return
        progress = self.position.progress
        if self.spec.scope.nested_groups:
            self._reconcile(self._transitive())
            return
        url = progress.groups_delta_link
        while url:
            page = self.source.groups_page(url)
            self._apply(page)
            if page.delta_link:
                progress.groups_delta_link = page.delta_link
            url = page.next_link

    def _transitive(self) -> dict[str, set[str]]:
        # Delta cannot see a change deep in a nested group: read the transitive members.
        return {g: self._transitive_members(g) for g in self.spec.scope.group_ids}

    def _transitive_members(self, group_id: str) -> set[str]:
        try:
            return self.source.transitive_member_ids(group_id)
        except NotFound:
            # Deleted in the source: it has no members (as a groups delta says of a removed
            # group); what that takes out of scope is judged by the deletion threshold.
            return set()

    def _apply(self, page: GroupPage) -> None:
        """Member additions and removals: the users concerned are reviewed this cycle."""
        wanted = set(self.spec.scope.group_ids)
        self.ledger.apply_membership_changes(
            self.spec.name,
            [c for c in page.changes if c.group_id in wanted],
            [g for g in page.removed_groups if g in wanted],
        )

    def _reconcile(self, members: dict[str, set[str]]) -> None:
        """Turn a fresh reading of every group into additions and removals."""
        current = self.ledger.memberships(self.spec.name)
        wanted = {(g, u) for g, users in members.items() for u in users}
        changes = [MembershipChange(g, u, True) for g, u in sorted(wanted - current)]
        changes += [MembershipChange(g, u, False) for g, u in sorted(current - wanted)]
        self.ledger.apply_membership_changes(self.spec.name, changes, [])
