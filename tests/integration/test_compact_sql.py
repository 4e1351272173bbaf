"""Migration 0008 on real databases, SQLite and PostgreSQL: a 0006 database full of state is
compacted (packed ids, deflated JSON, no stored hash) and every value reads back the same; and
the compact rows are what a created user costs (docs/performance.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, event, select, text
from sqlalchemy.engine import Engine

from tests.integration.test_audit_sql import fill_0004, log_row, migrate_to, stored
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import Base, SqlLedger, make_engine
from worker.domain.model import Action, Change, Link, LinkState, ObjectOutcome, Status, Step
from worker.ports import PageWrite

pytestmark = pytest.mark.integration

GUID = str(uuid.UUID(int=0x1234))
TARGET = str(uuid.UUID(int=0xABCD))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def plain(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the two tables as the database has them (reflected, JSON parsed)."""
    found: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for name, order in (("links", ("job", "source_id")), ("provisioning_log", ("id",))):
            table = Table(name, MetaData(), autoload_with=connection)
            query = select(table).order_by(*(table.c[c] for c in order))
            found[name] = [
                {k: v for k, v in row.items() if k != "attributes_hash"}
                for row in connection.execute(query).mappings()
            ]
    return found


def as_read(ledger: SqlLedger, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The same rows as the ledger reads them after 0008, in the shape of `plain`."""
    links = [ledger.links_for(r["job"], [r["source_id"]])[r["source_id"]] for r in rows["links"]]
    logs = {
        row["changeId"]: row
        for job in {r["job"] for r in rows["provisioning_log"]}
        for row in ledger.logs(job)
    }
    return {
        "links": [
            (link.source_id, link.target_id, link.attributes, link.last_seen_run) for link in links
        ],
        "log": [
            (
                logs[r["change_id"]]["sourceId"],
                logs[r["change_id"]]["targetId"],
                logs[r["change_id"]]["cycleId"],
                logs[r["change_id"]]["steps"],
                logs[r["change_id"]]["modifiedProperties"],
            )
            for r in rows["provisioning_log"]
        ],
    }


def expected(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "links": [
            (r["source_id"], r["target_id"], r["attributes"], r["last_seen_run"])
            for r in rows["links"]
        ],
        "log": [
            (r["source_id"], r["target_id"], r["run_id"], r["steps"], r["modified"])
            for r in rows["provisioning_log"]
        ],
    }


def raw(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_0008_compacts_a_0006_database_and_every_value_reads_back_the_same(
    engine: Engine,
) -> None:
    migrate_to(engine, "0004")
    fill_0004(engine)
    migrate_to(engine, "0006")
    # A GUID-shaped user too, as Graph's ids are, with a log row in the current shape.
    row = log_row("a-to-b", GUID, "update", "success", steps=[["export", "success", "ok"]])
    row.update(change_id=str(uuid.UUID(int=7)), target_id=TARGET, approved=False)
    row["modified"] = {"displayName": {"old": "Ann", "new": "Anne"}}
    stored(engine, "provisioning_log", [row])
    before = plain(engine)
    assert len(before["provisioning_log"]) == 5

    assert upgrade_database(engine) == ("0006", "0010")

    assert as_read(SqlLedger(engine), before) == expected(before)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    # GUIDs in 16 bytes; the JSON deflated.
    ((change_id, target_id, steps),) = raw(
        engine,
        "SELECT change_id, target_id, steps FROM provisioning_log WHERE job = 'a-to-b' "
        "AND action = 'update'",
    )
    assert (len(bytes(change_id)), len(bytes(target_id))) == (16, 16)
    assert isinstance(steps, bytes | memoryview)
    # New rows go on after the copied ids.
    ((copied,),) = raw(engine, "SELECT max(id) FROM provisioning_log")
    ledger = SqlLedger(engine)
    ledger.commit_page(
        "c-to-d",
        "run-2",
        PageWrite(outcomes=[ObjectOutcome("u9", action=Action.UPDATE, status=Status.SUCCESS)]),
    )
    assert raw(engine, "SELECT max(id) FROM provisioning_log") == [(copied + 1,)]
    assert ledger.logs("c-to-d")[-1]["sourceId"] == "u9"

    # And back: every value as it was, the hash computed from the values again.
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0006")
        connection.commit()
    after = plain(engine)
    assert after["links"] == before["links"]
    assert after["provisioning_log"][:-1] == before["provisioning_log"]
    assert after["provisioning_log"][-1]["source_id"] == "u9"
    hashes = raw(engine, "SELECT attributes_hash FROM links")
    assert all(len(h) == 64 for (h,) in hashes)


def test_a_created_users_link_and_log_row_are_compact(engine: Engine) -> None:
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    values = {
        "accountEnabled": True,
        "displayName": "Lea Moreau",
        "givenName": "Lea",
        "surname": "Moreau",
        "mail": "lea.moreau.3275@contoso.com",
        "mailNickname": "lea.moreau.3275",
        "jobTitle": "Manager",
        "department": "Operations",
        "companyName": "Contoso",
        "employeeId": "E003275",
        "city": "Oslo",
        "country": "NO",
        "businessPhones": ["+1 555 3275"],
        "showInAddressList": True,
        "userType": "Member",
    }
    source, target, run = (str(uuid.uuid4()) for _ in range(3))
    outcome = ObjectOutcome(
        source_id=source,
        source_label="lea.moreau.3275@contoso.onmicrosoft.com",
        source_mail="lea.moreau.3275@contoso.com",
        target_id=target,
        action=Action.CREATE,
        status=Status.SUCCESS,
        steps=[
            Step("import", Status.SUCCESS, "read from the source"),
            Step("scoping", Status.SUCCESS, "in scope"),
            Step("matching", Status.SUCCESS, "no target user matches: create"),
            Step("processing", Status.SUCCESS, "create: invite lea.moreau.3275@contoso.com"),
            Step("export", Status.SUCCESS, f"invited lea.moreau.3275@contoso.com: user {target}"),
            Step("export", Status.SUCCESS, "updated 15 attributes"),
        ],
        modified={name: Change(None, value) for name, value in values.items()},
    )
    link = Link("job", source, target, LinkState.ACTIVE, values, run, outcome.source_label)
    ledger.commit_page("job", run, PageWrite(links=[link], seen=[source], outcomes=[outcome]))

    assert ledger.links_for("job", [source])[source] == link
    (logged,) = ledger.logs("job")
    assert logged["modifiedProperties"]["displayName"] == {"old": None, "new": "Lea Moreau"}
    assert logged["steps"][4]["detail"].endswith(target)
    ((attributes,),) = raw(engine, "SELECT attributes FROM links")
    ((steps, modified),) = raw(engine, "SELECT steps, modified FROM provisioning_log")
    # As JSON text they were 450 and 1,250 bytes.
    assert len(bytes(attributes)) < 150
    assert len(bytes(steps)) + len(bytes(modified)) < 300


def test_the_log_is_purged_in_small_batches_to_the_last_row(engine: Engine) -> None:
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    outcomes = [ObjectOutcome(f"u{i}", Action.UPDATE, Status.SUCCESS) for i in range(5)]
    ledger.commit_page("job", "run", PageWrite(outcomes=outcomes))
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def deletes(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            statements.append(statement)

    assert ledger.purge_logs(datetime.now(UTC) + timedelta(seconds=1), batch=2) == 5
    assert ledger.logs("job") == []
    assert len(statements) == 3  # 2 + 2 + 1 rows, each in its own transaction


def test_the_page_commits_bulk_inserts_store_what_sqlalchemys_executemany_stores(
    engine: Engine,
) -> None:
    """`insert_many` hands the driver the INSERT SQLAlchemy compiles, without its per-row steps:
    the same rows inserted both ways are the same bytes, as the driver reads them back (SQLite's
    datetime text and booleans included)."""
    from sqlalchemy import insert

    from worker.adapters.state.compact import pack_id
    from worker.adapters.state.sql_rows import (
        _RAW_LINKS,
        _RAW_LOG,
        _link_insert_row,
        _log_row,
        insert_many,
    )

    upgrade_database(engine)
    at = datetime(2026, 12, 7, 6, 30, 0, tzinfo=UTC)  # no microseconds: still six digits
    later = at + timedelta(microseconds=1234)
    outcomes = [
        ObjectOutcome(
            source_id=GUID,
            source_label="ann\x00@contoso.com",  # made storable the same way
            action=Action.CREATE,
            status=Status.SUCCESS,
            target_id=TARGET,
            steps=[Step("export", Status.SUCCESS, "invited")],
            modified={"displayName": Change(None, "Ann")},
            approved=True,
        ),
        ObjectOutcome(source_id="not-a-guid", action=Action.SKIP, status=Status.SKIPPED),
    ]
    links = [
        Link("job", GUID, TARGET, LinkState.ACTIVE, {"mail": "ann@contoso.com"}, GUID, "ann"),
        Link("job", "not-a-guid", GUID, LinkState.SOFT_DELETED, {}, None, "", ""),
    ]

    def rows(job: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        run = pack_id(GUID)
        logs = [_log_row(job, run, o, later) for o in outcomes]
        made = [
            _link_insert_row(job, link, at, at if link.state is LinkState.SOFT_DELETED else None)
            for link in links
        ]
        return logs, made

    with engine.begin() as connection:
        logs, made = rows("sqlalchemy")
        connection.execute(insert(_RAW_LOG), logs)
        connection.execute(insert(_RAW_LINKS), made)
        logs, made = rows("driver")
        insert_many(connection, _RAW_LOG, logs)
        insert_many(connection, _RAW_LINKS, made)

    def stored_as(job: str) -> dict[str, list[tuple[Any, ...]]]:
        found: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as connection:
            for table, order in (("provisioning_log", "id"), ("links", "source_id")):
                result = connection.exec_driver_sql(
                    f"SELECT * FROM {table} WHERE job = '{job}' ORDER BY {order}"
                )
                columns = list(result.keys())
                found[table] = [
                    tuple(
                        bytes(v) if isinstance(v, memoryview) else v
                        for name, v in zip(columns, row, strict=True)
                        if name not in ("id", "job", "change_id")  # the log's own, random
                    )
                    for row in result
                ]
        return found

    assert stored_as("driver") == stored_as("sqlalchemy")
    assert len(stored_as("driver")["provisioning_log"]) == 2
