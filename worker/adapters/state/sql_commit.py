"""The SQL ledger's page commit: everything one page of a cycle writes, in one transaction.

Links changed and created, the page's seen ids, its provisioning-log rows (new ones in one bulk
insert, the managers phase's rewritten in place), group links, pending users resolved, escrows and
staged deletions (docs/architecture.md, "One cycle").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from worker.adapters.state.compact import pack_id, pack_ids
from worker.adapters.state.errors import speaks_domain_errors
from worker.adapters.state.sql_models import (
    EscrowRow,
    GroupLinkRow,
    LinkRow,
    LogRow,
    PendingUserRow,
    SeenRow,
    StagedDeleteRow,
)
from worker.adapters.state.sql_rows import (
    _RAW_LINKS,
    _RAW_LOG,
    _link_insert_row,
    _log_row,
    _outcome_from_row,
    insert_many,
)
from worker.adapters.state.sql_session import LedgerPart, _among, _chunks, _unindexed
from worker.adapters.state.sql_types import _as_utc, utcnow
from worker.domain.model import Link, LinkState, ObjectOutcome
from worker.ports import PageWrite

# A row rewritten in place keeps these (docs/manager.md); `_log_row` gives every other column.
_LOG_KEPT = ("change_id", "created_at")
# One executemany of the rewritten rows: each row's columns but `_LOG_KEPT`, by its id.
_LOG_REWRITE = update(_RAW_LOG).where(_RAW_LOG.c.id == bindparam("kept_id"))


@speaks_domain_errors
class PageCommit(LedgerPart):
    """The Ledger's `commit_page` (and `run_rows`, the rows it rewrites in place)."""

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        now = utcnow()
        with self._write() as session:
            self._write_links(session, job, write.links, now)
            if write.seen:
                # One narrow row for the page, not a mark in each link (SeenRow).
                seen = pack_ids(dict.fromkeys(write.seen))
                session.add(SeenRow(job=job, run_id=run_id, ids=seen))
            # Only the ids of the rows rewritten in place: nothing of them is read back.
            replaced = self._newest_of_run(session, job, run_id, write.replaces, LogRow.id)
            added: list[dict[str, Any]] = []
            rewritten: list[dict[str, Any]] = []
            run_key, created_at = pack_id(run_id), _as_utc(now)
            for o in write.outcomes:
                row = _log_row(job, run_key, o, created_at)
                kept_id = replaced.get(o.source_id)
                if kept_id is None:
                    added.append(row)
                else:
                    # In place: the row keeps its id, change id and time (docs/manager.md).
                    for name in _LOG_KEPT:
                        del row[name]
                    rewritten.append({**row, "kept_id": kept_id})
            if added:
                # One executemany, in the outcomes' order (the log's ids are its order), of
                # values packed once (`_raw_table`), on the driver (`insert_many`).
                insert_many(session.connection(), _RAW_LOG, added)
            if rewritten:
                session.connection().execute(_LOG_REWRITE, rewritten)
            self._write_group_links(session, job, write, now)
            for ids in _chunks(write.resolved_pending):
                session.execute(
                    delete(PendingUserRow).where(
                        PendingUserRow.job == job,
                        _among(self._dialect, PendingUserRow.user_id, ids),
                    )
                )
            for ids in _chunks(write.released):
                session.execute(
                    delete(EscrowRow).where(
                        EscrowRow.job == job, _among(self._dialect, EscrowRow.source_id, ids)
                    )
                )
            self._upsert(
                session,
                EscrowRow,
                [
                    {
                        "job": job,
                        "source_id": escrow.source_id,
                        "attempts": escrow.attempts,
                        "first_failed_at": escrow.first_failed_at,
                        "next_attempt_at": escrow.next_attempt_at,
                        "last_error": escrow.last_error,
                    }
                    for escrow in write.escrows
                ],
            )
            for ids in _chunks(write.unstaged):
                session.execute(
                    delete(StagedDeleteRow).where(
                        StagedDeleteRow.job == job,
                        _among(self._dialect, StagedDeleteRow.source_id, ids),
                    )
                )
            self._upsert(
                session,
                StagedDeleteRow,
                [
                    {
                        "job": job,
                        "source_id": staged.source_id,
                        "reason": staged.reason,
                        "deleted": staged.deleted,
                        "staged_at": now,
                        "approved": staged.approved,
                    }
                    for staged in write.staged
                ],
                # Staged again by a later page, an approved deletion stays approved.
                keep_true=("approved",),
            )

    def _write_links(
        self, session: Session, job: str, links: Sequence[Link], now: datetime
    ) -> None:
        """A page's changed links: the existing rows read in one query per chunk and updated,
        the new ones inserted in one executemany (docs/performance.md, "Time per created
        user"). Reading them one `session.get` at a time flushed the page's pending rows before
        every read, so each new link was inserted alone."""
        if not links:
            return
        existing: dict[str, LinkRow] = {}
        for ids in _chunks([link.source_id for link in links]):
            query = select(LinkRow).where(
                LinkRow.job == job, _among(self._dialect, LinkRow.source_id, ids)
            )
            existing.update((row.source_id, row) for row in session.scalars(query))
        new: dict[str, Link] = {}
        for link in links:
            row = existing.get(link.source_id)
            pending = new.get(link.source_id)
            if row is None:
                # New, or named twice in one write: the later one is inserted, with the
                # earlier one's label and mail if it has none.
                if pending is not None:
                    link = replace(
                        link,
                        source_label=link.source_label or pending.source_label,
                        source_mail=link.source_mail or pending.source_mail,
                    )
                new[link.source_id] = link
                continue
            # A link already stored: updated.
            values: dict[str, Any] = {
                "target_id": link.target_id,
                "state": link.state.value,
                "attributes": link.attributes,
                "last_seen_run": link.last_seen_run,
                "source_label": link.source_label or row.source_label,
                "source_mail": link.source_mail or row.source_mail,
                "updated_at": now,
            }
            if row.state != link.state.value:
                values["deleted_at"] = now if link.state is LinkState.SOFT_DELETED else None
            for name, value in values.items():
                setattr(row, name, value)
        if new:
            # One executemany of values packed once (`_raw_table`), on the driver.
            at = _as_utc(now)
            insert_many(
                session.connection(),
                _RAW_LINKS,
                [
                    _link_insert_row(
                        job, link, at, at if link.state is LinkState.SOFT_DELETED else None
                    )
                    for link in new.values()
                ],
            )

    def _newest_of_run(
        self, session: Session, job: str, run_id: str, source_ids: Sequence[str], *columns: Any
    ) -> dict[str, Any]:
        """The newest row of this run for each of these objects (by source id), as `columns`:
        the whole row for `run_rows`, its id alone for a rewrite in place."""
        rows: dict[str, Any] = {}
        run = _unindexed(self._dialect, LogRow.run_id)  # by source id, not the run's every row
        for ids in _chunks(source_ids):
            query = (
                select(LogRow.source_id, *columns)
                .where(LogRow.job == job, run == run_id, LogRow.source_id.in_(ids))
                .order_by(LogRow.id)
            )
            rows.update((row[0], row[1]) for row in session.execute(query))
        return rows

    def run_rows(
        self, job: str, run_id: str, source_ids: Iterable[str]
    ) -> dict[str, ObjectOutcome]:
        with self._session() as session:
            rows = self._newest_of_run(session, job, run_id, list(source_ids), LogRow)
            return {source_id: _outcome_from_row(row) for source_id, row in rows.items()}

    def _write_group_links(
        self, session: Session, job: str, write: PageWrite, now: datetime
    ) -> None:
        for ids in _chunks(write.dropped_groups):
            session.execute(
                delete(GroupLinkRow).where(GroupLinkRow.job == job, GroupLinkRow.source_id.in_(ids))
            )
        for link in write.group_links:
            existing = session.get(GroupLinkRow, (job, link.source_id))
            if existing is None:
                session.add(
                    GroupLinkRow(
                        job=job,
                        source_id=link.source_id,
                        target_id=link.target_id,
                        display_name=link.display_name,
                        attributes=link.attributes,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                existing.target_id = link.target_id
                existing.display_name = link.display_name
                existing.attributes = link.attributes
                existing.updated_at = now
