"""The full cycle's seen marks on real databases, SQLite and PostgreSQL (migration 0009,
docs/performance.md): a page records the ids it read in a row of its own instead of rewriting
every link; a full cycle under way when a 0008 database is upgraded still finds exactly the
links it did not see; the downgrade hands the marks back to 0008's column."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.integration.test_audit_sql import migrate_to
from tests.support.postgres import PostgresServer
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import Base, SqlLedger, make_engine
from worker.adapters.state.sql_links import SEEN_ROWS
from worker.domain.model import Link, LinkState
from worker.ports import PageWrite, RunRecord

pytestmark = pytest.mark.integration

# Graph's ids are GUIDs (kept in 16 bytes); one that is not takes the text path.
USERS = [str(uuid.UUID(int=n)) for n in range(1, 9)] + ["not-a-guid"]
OLD_RUN, RUN = str(uuid.UUID(int=0xA)), str(uuid.UUID(int=0xB))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def link(source_id: str, seen: str | None, state: LinkState = LinkState.ACTIVE) -> Link:
    return Link("job", source_id, "t-" + source_id, state, {"displayName": source_id}, seen)


def unseen(ledger: SqlLedger, run_id: str, batch: int = 3) -> list[str]:
    return [x.source_id for b in ledger.unseen_links("job", run_id, batch) for x in b]


def raw(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_a_full_cycle_under_way_in_0008_finishes_right_after_0009(engine: Engine) -> None:
    migrate_to(engine, "0008")
    ledger = SqlLedger(engine)
    # Under 0008 the cycle RUN read users 0-2 (their links carry its mark); 3-8 are left, 7
    # soft-deleted. Then the worker is upgraded.
    marked, left = USERS[:3], USERS[3:]
    links = [link(u, RUN) for u in marked] + [link(u, OLD_RUN) for u in left]
    links[7] = link(USERS[7], OLD_RUN, LinkState.SOFT_DELETED)
    ledger.commit_page("job", OLD_RUN, PageWrite(links=links))
    ledger.commit_page("other", OLD_RUN, PageWrite(links=[link(USERS[5], OLD_RUN)]))

    assert upgrade_database(engine) == ("0008", "0010")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []

    # The cycle goes on: its next pages read 3, 4 and the non-GUID id; 5 and 6 are gone.
    ledger.commit_page("job", RUN, PageWrite(seen=[USERS[3], USERS[4]]))
    ledger.commit_page("job", RUN, PageWrite(seen=["not-a-guid", USERS[0]]))
    # Nobody seen is swept (so nobody wrongly deprovisioned), nobody unseen is missed.
    assert unseen(ledger, RUN) == [USERS[5], USERS[6]]
    assert unseen(ledger, RUN, batch=1) == [USERS[5], USERS[6]]
    assert [x.source_id for b in ledger.unseen_links("other", RUN, 3) for x in b] == [USERS[5]]
    # The links are as they were: the marks are rows of their own.
    assert {x.last_seen_run for x in ledger.links_for("job", left).values()} == {OLD_RUN}

    # And back to 0008 mid-way: the marks go into the links, where 0008 looks for them.
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0008")
        connection.commit()
    assert "seen_ids" not in {name for (name,) in raw(engine, _TABLES[engine.dialect.name])}
    marks = {x.source_id: x.last_seen_run for x in ledger.links_for("job", USERS).values()}
    assert marks == {**dict.fromkeys(USERS, RUN), **dict.fromkeys(USERS[5:8], OLD_RUN)}
    assert {x.last_seen_run for x in ledger.links_for("other", USERS).values()} == {OLD_RUN}
    # Up again: a new table, empty; what 0008 marked still counts.
    assert upgrade_database(engine) == ("0008", "0010")
    assert unseen(ledger, RUN) == [USERS[5], USERS[6]]


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
}


def test_a_sweep_reads_the_marks_of_many_pages_and_a_resumed_run_keeps_them(
    engine: Engine,
) -> None:
    upgrade_database(engine)
    users = [str(uuid.uuid4()) for _ in range(2500)]
    first = SqlLedger(engine)
    first.start_run(RunRecord(RUN, "job", "full", False, "manual", T0))
    first.commit_page("job", OLD_RUN, PageWrite(links=[link(u, OLD_RUN) for u in users]))
    # Every user read but every 7th, a page of 20 at a time (108 seen rows: more than the sweep
    # reads at once, SEEN_ROWS); then the worker is killed.
    read = [u for n, u in enumerate(users) if n % 7]
    for start in range(0, len(read), 20):
        first.commit_page("job", RUN, PageWrite(seen=read[start : start + 20]))
    expected = sorted(u for n, u in enumerate(users) if not n % 7)

    resumed = SqlLedger(make_engine(engine.url.render_as_string(hide_password=False)))
    swept = [x.source_id for b in resumed.unseen_links("job", RUN, 50) for x in b]
    assert sorted(swept) == expected
    assert len(swept) == len(set(swept))
    # A failed end keeps them (the cycle is resumed); a successful one forgets the job's rows.
    run = RunRecord(RUN, "job", "full", False, "manual", T0, status="failed")
    resumed.finish_run(run)
    assert raw(engine, "SELECT count(*) FROM seen_ids") == [((len(read) + 19) // 20,)]
    assert (len(read) + 19) // 20 > 2 * SEEN_ROWS
    run.status = "success"
    resumed.finish_run(run)
    assert raw(engine, "SELECT count(*) FROM seen_ids") == [(0,)]
    if engine.dialect.name == "postgresql":
        # And their space is given back (vacuumed), not kept until the next full cycle.
        assert raw(engine, "SELECT pg_relation_size('seen_ids')") == [(0,)]
    resumed.engine.dispose()


def test_marks_committed_while_a_sweep_runs_count_even_when_the_run_had_none(
    engine: Engine,
) -> None:
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    users = sorted(USERS[:8], key=lambda u: uuid.UUID(u).bytes)  # the keys' order
    ledger.commit_page("job", OLD_RUN, PageWrite(links=[link(u, OLD_RUN) for u in users]))
    batches = ledger.unseen_links("job", RUN, 2)
    assert [x.source_id for x in next(batches)] == users[:2]
    # The sweep's page reads the first two (and a later one, seen by another page meanwhile).
    ledger.commit_page("job", RUN, PageWrite(seen=[*users[:2], users[5]]))
    rest = [x.source_id for b in batches for x in b]
    assert rest == [u for u in users[2:] if u != users[5]]


def test_a_page_marks_its_users_without_rewriting_their_links(postgres: PostgresServer) -> None:
    # Row versions are PostgreSQL's: SQLite updates in place.
    with postgres.fresh_database() as database_url:
        _marks_without_rewriting(database_url)


def _marks_without_rewriting(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    ledger.commit_page("job", OLD_RUN, PageWrite(links=[link(u, OLD_RUN) for u in USERS]))
    versions = raw(engine, "SELECT source_id, ctid, xmin::text FROM links ORDER BY source_id")

    ledger.commit_page("job", RUN, PageWrite(seen=USERS))

    # Every UPDATE would be a new row version (a new ctid and xmin) and new index entries.
    assert raw(engine, "SELECT source_id, ctid, xmin::text FROM links ORDER BY source_id") == (
        versions
    )
    assert unseen(ledger, RUN) == []
    engine.dispose()
