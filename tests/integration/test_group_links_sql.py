"""Migration 0007 (group provisioning) on real databases, SQLite and PostgreSQL: from a 0006
database full of state, nothing lost, every old log row a user's, and the group links usable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from tests.integration.test_audit_sql import fill_0004, migrate_to
from tests.integration.test_threshold_sql import TABLES_0005
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import Base, SqlLedger, make_engine
from worker.domain.groups import GroupLink
from worker.domain.model import Action, ObjectOutcome, Status
from worker.ports import PageWrite

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of revision 0006's tables, without the column 0007 adds and the hash 0008
    drops (its downgrade computes it again from the values: tests/integration/test_compact_sql.py)."""
    with engine.connect() as connection:
        return {
            table: [
                {k: v for k, v in row.items() if k not in ("object_type", "attributes_hash")}
                for row in connection.execute(
                    text(f"SELECT * FROM {table} ORDER BY {order}")
                ).mappings()
            ]
            for table, order in TABLES_0005.items()
        }


def test_0007_adds_group_links_to_a_0006_database_and_loses_nothing(engine: Engine) -> None:
    migrate_to(engine, "0004")
    fill_0004(engine)
    migrate_to(engine, "0006")
    before = snapshot(engine)
    assert before["provisioning_log"]
    assert before["links"]

    migrate_to(engine, "0007")
    assert snapshot(engine) == before

    # On to today's schema (0008 compacts the tables, keeping every value, 0009 and 0010 add
    # seen_ids and a unique index: their own tests).
    assert upgrade_database(engine) == ("0007", "0010")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    ledger = SqlLedger(engine)
    # every row logged before groups were provisioned is about a user
    assert {r["objectType"] for r in ledger.logs("c-to-d")} == {"User"}
    assert ledger.group_links("a-to-b") == []
    group = GroupLink("a-to-b", "g1", "tg1", "Sales", {"displayName": "Sales"})
    row = ObjectOutcome("g1", Action.CREATE, Status.SUCCESS, target_id="tg1", object_type="Group")
    ledger.commit_page("a-to-b", "r9", PageWrite(group_links=[group], outcomes=[row]))
    assert ledger.group_links("a-to-b") == [group]
    assert ledger.logs("a-to-b", run_id="r9")[0]["objectType"] == "Group"

    # And back: the downgrade drops the table and the column alone.
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0006")
        connection.commit()
    assert "group_links" not in inspect(engine).get_table_names()
    columns = {c["name"] for c in inspect(engine).get_columns("provisioning_log")}
    assert "object_type" not in columns
    after = snapshot(engine)
    assert {t: r for t, r in after.items() if t != "provisioning_log"} == {
        t: r for t, r in before.items() if t != "provisioning_log"
    }
