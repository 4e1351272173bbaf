"""The SQL ledger's reads of links: by source and by target, counts, group links and skipped
groups, a full cycle's sweep for the links it did not see, and the reports of managers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import func, or_, select

from worker.adapters.state.compact import pack_id, split_ids, unpack_id
from worker.adapters.state.errors import speaks_domain_errors
from worker.adapters.state.sql_models import GroupLinkRow, LinkRow, LogRow, SeenRow
from worker.adapters.state.sql_rows import _LINK_COLUMNS, _link_from_row
from worker.adapters.state.sql_session import LedgerPart, _among, _chunks, _raw
from worker.adapters.state.sql_shared import GROUP_ROWS_READ, LIVE_STATES
from worker.domain.groups import GROUP_OBJECT_TYPE, GroupLink, GroupSkip, group_skips
from worker.domain.idset import IdSet
from worker.domain.model import Link

SCAN = 2000  # links' keys a sweep reads at a time to find the unseen among them
# Seen rows (500 ids each) read at a time: psycopg holds a whole result in memory before the first
# row is used, and a run's seen rows are 16 bytes per user (docs/performance.md, "1,000,000
# users on PostgreSQL").
SEEN_ROWS = 50


@speaks_domain_errors
class LinkReads(LedgerPart):
    """The Ledger's reads of links and group links."""

    def links_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Link]:
        return {
            link.source_id: link for link in self._links_among(job, LinkRow.source_id, source_ids)
        }

    def links_by_target(self, job: str, target_ids: Iterable[str]) -> dict[str, list[Link]]:
        # A target user has one link per job (uq_links_job_target_id), so each list is in
        # source order as it is.
        found: dict[str, list[Link]] = {}
        for link in self._links_among(job, LinkRow.target_id, target_ids):
            found.setdefault(link.target_id, []).append(link)
        return found

    def _links_among(self, job: str, column: Any, ids: Iterable[str]) -> Iterator[Link]:
        """The job's links whose `column` is one of `ids`, a chunk of ids per query. No ORDER BY:
        it led SQLite to walk the job's every link in primary-key order rather than look the ids
        up in their index (docs/performance.md, "Growth with the table size")."""
        with self._session() as session:
            for chunk in _chunks(ids):
                rows = session.execute(
                    select(*_LINK_COLUMNS).where(
                        LinkRow.job == job, _among(self._dialect, column, chunk)
                    )
                )
                yield from (_link_from_row(row) for row in rows)

    def link_count(self, job: str) -> int:
        with self._session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(LinkRow)
                    .where(LinkRow.job == job, LinkRow.state.in_(LIVE_STATES))
                )
                or 0
            )

    def group_links(self, job: str) -> list[GroupLink]:
        with self._session() as session:
            rows = session.scalars(
                select(GroupLinkRow).where(GroupLinkRow.job == job).order_by(GroupLinkRow.source_id)
            )
            return [
                GroupLink(
                    job=r.job,
                    source_id=r.source_id,
                    target_id=r.target_id,
                    display_name=r.display_name,
                    attributes=dict(r.attributes or {}),
                )
                for r in rows
            ]

    def group_skips(self, job: str) -> list[GroupSkip]:
        query = (
            select(
                LogRow.source_id, LogRow.source_label, LogRow.action, LogRow.status, LogRow.reason
            )
            .where(LogRow.job == job, LogRow.object_type == GROUP_OBJECT_TYPE)
            .order_by(LogRow.id.desc())
            .limit(GROUP_ROWS_READ)
        )
        with self._session() as session:
            return group_skips((s, lbl, a, st, r) for s, lbl, a, st, r in session.execute(query))

    def unseen_links(self, job: str, run_id: str, batch: int) -> Iterator[list[Link]]:
        """Live links neither in the run's seen rows nor marked with the run in the link
        (how a page marked them before migration 0009: a cycle under way then still finishes
        right). Keyset paging on the links' keys, and the seen rows committed since the last
        batch are read before the next, so what pages mark while a sweep runs counts."""
        seen = IdSet()
        later: set[bytes] = set()  # marks committed after the first batch (a sweep's pages)
        read_up_to = self._read_seen(job, run_id, None, seen, later)
        after = b""
        while True:
            if after:
                read_up_to = self._read_seen(job, run_id, read_up_to, seen, later)
            found: list[bytes] = []
            exhausted = False
            while len(found) < batch and not exhausted:
                keys = self._unmarked_keys(job, run_id, after, SCAN)
                exhausted = len(keys) < SCAN
                for key in keys:
                    after = key
                    if not self._marked(key, seen, later):
                        found.append(key)
                        if len(found) == batch:
                            break
            if not found:
                return
            with self._session() as session:
                rows = session.execute(
                    select(*_LINK_COLUMNS)
                    .where(LinkRow.job == job, _raw(LinkRow.source_id).in_(found))
                    .order_by(LinkRow.source_id)
                )
                links = [_link_from_row(r) for r in rows]
            yield links

    def _read_seen(
        self, job: str, run_id: str, after: int | None, seen: IdSet, later: set[bytes]
    ) -> int:
        """Add the run's seen rows to `seen` (the first read: `after` None) or, those after row
        `after`, to `later` (`seen` takes no ids once asked about one); returns the last row
        read (0: none yet)."""
        first = after is None
        after = after or 0
        with self._session() as session:
            while True:
                rows = session.execute(
                    select(SeenRow.id, SeenRow.ids)
                    .where(SeenRow.job == job, SeenRow.run_id == run_id, SeenRow.id > after)
                    .order_by(SeenRow.id)
                    .limit(SEEN_ROWS)
                ).all()
                for row_id, packed in rows:
                    guids, others = split_ids(packed)
                    if first:
                        seen.update_keys(guids)
                        seen.update(others)
                    else:
                        later.update(guids[i : i + 16] for i in range(0, len(guids), 16))
                        later.update(pack_id(other) for other in others)
                    after = row_id
                if len(rows) < SEEN_ROWS:
                    return after

    @staticmethod
    def _marked(key: bytes, seen: IdSet, later: set[bytes]) -> bool:
        if key in later:
            return True
        return seen.has_key(key) if len(key) == 16 else unpack_id(key) in seen

    def _unmarked_keys(self, job: str, run_id: str, after: bytes, limit: int) -> list[bytes]:
        """The packed keys of the job's live links after `after` that do not carry the run's
        mark in the link itself, in key order."""
        key = _raw(LinkRow.source_id)
        query = (
            select(key)
            .where(
                LinkRow.job == job,
                LinkRow.state.in_(LIVE_STATES),
                or_(LinkRow.last_seen_run.is_(None), LinkRow.last_seen_run != run_id),
                key > after,
            )
            .order_by(key)
            .limit(limit)
        )
        with self._session() as session:
            return [bytes(k) for k in session.scalars(query)]

    def reports_of(self, job: str, target_ids: Iterable[str]) -> list[Link]:
        wanted = set(target_ids)
        if not wanted:
            return []
        # Link attributes are stored deflated (compact.py), so the database cannot look inside
        # them: the job's live links are read in batches and their managers compared here. Only
        # a cycle whose managers leave scope asks.
        found: list[Link] = []
        query = (
            select(*_LINK_COLUMNS)
            .where(LinkRow.job == job, LinkRow.state.in_(LIVE_STATES))
            .execution_options(yield_per=2000)
        )
        with self._session() as session:
            for row in session.execute(query):
                link = _link_from_row(row)
                if link.attributes.get("manager") in wanted:
                    found.append(link)
        return sorted(found, key=lambda link: link.source_id)
