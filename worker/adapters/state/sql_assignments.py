"""The SQL ledger's group assignments and pending users: who is a member of which assigned group,
and the users whose membership changed since their last export.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from sqlalchemy import delete, select

from worker.adapters.state.errors import speaks_domain_errors
from worker.adapters.state.sql_models import AssignmentRow, PendingUserRow
from worker.adapters.state.sql_session import LedgerPart, _chunks, _unindexed
from worker.ports import MembershipChange


@speaks_domain_errors
class Assignments(LedgerPart):
    """The Ledger's group assignments and pending users."""

    def assigned(self, job: str, user_ids: Iterable[str]) -> set[str]:
        return {user for _, user in self._assignments_of(job, user_ids)}

    def memberships(self, job: str, user_ids: Iterable[str] | None = None) -> set[tuple[str, str]]:
        if user_ids is not None:
            return set(self._assignments_of(job, user_ids))
        with self._session() as session:
            # By the job, the primary key's first column: the whole job is asked for.
            query = select(AssignmentRow.group_id, AssignmentRow.user_id).where(
                AssignmentRow.job == job
            )
            return {(g, u) for g, u in session.execute(query)}

    def _assignments_of(self, job: str, user_ids: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(group, user) of these users in the job, looked up by user id: on SQLite the job is
        compared unindexed (`_unindexed`), or its planner reads the job's every assignment."""
        with self._session() as session:
            for chunk in _chunks(user_ids):
                query = select(AssignmentRow.group_id, AssignmentRow.user_id).where(
                    _unindexed(self._dialect, AssignmentRow.job) == job,
                    AssignmentRow.user_id.in_(chunk),
                )
                yield from ((g, u) for g, u in session.execute(query))

    def replace_assignments(self, job: str, members: Mapping[str, set[str]]) -> None:
        with self._write() as session:
            session.execute(delete(AssignmentRow).where(AssignmentRow.job == job))
            session.add_all(
                AssignmentRow(job=job, group_id=group, user_id=user)
                for group, users in members.items()
                for user in users
            )

    def apply_membership_changes(
        self, job: str, changes: Sequence[MembershipChange], removed_groups: Sequence[str] = ()
    ) -> None:
        with self._write() as session:
            touched: set[str] = set()
            for group_id in removed_groups:
                rows = list(
                    session.scalars(
                        select(AssignmentRow).where(
                            AssignmentRow.job == job, AssignmentRow.group_id == group_id
                        )
                    )
                )
                for row in rows:
                    touched.add(row.user_id)
                    session.delete(row)
            for change in changes:
                existing = session.get(AssignmentRow, (job, change.group_id, change.member_id))
                if change.added and existing is None:
                    session.add(
                        AssignmentRow(job=job, group_id=change.group_id, user_id=change.member_id)
                    )
                elif not change.added and existing is not None:
                    session.delete(existing)
                session.flush()
                touched.add(change.member_id)
            for user_id in touched:
                if session.get(PendingUserRow, (job, user_id)) is None:
                    session.add(PendingUserRow(job=job, user_id=user_id))

    def pending(self, job: str, limit: int) -> list[str]:
        with self._session() as session:
            return list(
                session.scalars(
                    select(PendingUserRow.user_id)
                    .where(PendingUserRow.job == job)
                    .order_by(PendingUserRow.user_id)
                    .limit(limit)
                )
            )
