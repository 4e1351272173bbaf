"""One source user per target user and job (migration 0010), on SQLite and PostgreSQL: the
upgrade merges the duplicate links a race left (naming each in its log, the target user kept
linked), the ledger refuses a second link as a Conflict, and a page that lost the race commits
everything else, its user failing as AmbiguousMatch and escrowed, as if it had seen the link."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from tests.conftest import stored_ledger
from tests.integration.test_audit_sql import migrate_to
from tests.unit.test_cycle import World
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import Base, SqlLedger, make_engine
from worker.domain.errors import Conflict
from worker.domain.model import Action, Link, LinkState, ObjectOutcome, Status
from worker.ports import Ledger, PageWrite
from worker.service.page import PageDone

pytestmark = pytest.mark.integration

A, B, C, D, E = (str(uuid.UUID(int=n)) for n in range(1, 6))
T, U, V = (str(uuid.UUID(int=0x100 + n)) for n in range(3))


def link(source: str, target: str, state: LinkState = LinkState.ACTIVE, job: str = "job") -> Link:
    return Link(job, source, target, state, {"displayName": source}, "r0", f"{source[-1]}@x")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_0010_merges_duplicate_links_and_says_which(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    migrate_to(engine, "0009")
    ledger = SqlLedger(engine)  # 0009 has no unique index: a race could leave these
    for page in (
        [link(A, T), link(C, U, LinkState.SOFT_DELETED), link(E, V)],
        [link(B, T), link(D, U)],  # later: B lost the race for T; D is live, C is not
        [link(B, T, job="other")],
    ):
        ledger.commit_page(page[0].job, "r0", PageWrite(links=page))

    with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
        assert upgrade_database(engine) == ("0009", "0010")

    kept = ledger.links_for("job", [A, B, C, D, E])
    assert {s: x.target_id for s, x in kept.items()} == {A: T, D: U, E: V}
    assert ledger.links_for("other", [B])[B].target_id == T  # another job's link is its own
    said = caplog.text
    assert f"the link of source user {B} (2@x, active) to target user {T}" in said
    assert f"source user {A} is linked to it and keeps it" in said
    assert f"the link of source user {C} (3@x, soft_deleted) to target user {U}" in said
    assert f"source user {D} is linked to it and keeps it" in said
    assert "2 duplicate links removed" in said
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    with pytest.raises(Conflict):
        ledger.commit_page("job", "r1", PageWrite(links=[link(B, T)]))

    # And back: the plain index again (the removed links are not made up again).
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0009")
        connection.commit()
    ledger.commit_page("job", "r1", PageWrite(links=[link(B, T)]))
    assert set(ledger.links_by_target("job", [T])) == {T}


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    with stored_ledger(request.param, request, tmp_path) as stored:
        yield stored


def test_the_ledger_refuses_a_second_source_user_for_a_target_user(ledger: Ledger) -> None:
    ledger.commit_page("job", "r0", PageWrite(links=[link(A, T)]))
    with pytest.raises(Conflict):
        ledger.commit_page(
            "job", "r1", PageWrite(links=[link(C, U), link(B, T)], seen=[C], outcomes=[])
        )
    assert ledger.links_for("job", [B, C]) == {}  # the page committed nothing
    # Another job's links are its own; a link moved to another target user frees the first.
    ledger.commit_page("other", "r1", PageWrite(links=[link(B, T, job="other")]))
    ledger.commit_page("job", "r1", PageWrite(links=[link(A, V)]))
    ledger.commit_page("job", "r1", PageWrite(links=[link(B, T)]))
    assert {s: x.target_id for s, x in ledger.links_for("job", [A, B]).items()} == {A: V, B: T}


def test_a_page_that_lost_the_race_for_a_target_user_commits_the_rest(ledger: Ledger) -> None:
    world = World()
    world.ledger = ledger  # type: ignore[assignment]
    pipeline = world.service().pipeline("r1")
    # Another worker's page linked A to T while this page, exported at the same time, invited
    # B and Graph answered with the same guest T.
    ledger.commit_page("job", "r1", PageWrite(links=[link(A, T)]))
    done = PageDone(
        write=PageWrite(
            links=[link(B, T), link(C, U)],
            seen=[B, C],
            outcomes=[
                ObjectOutcome(B, Action.CREATE, Status.SUCCESS, target_id=T),
                ObjectOutcome(C, Action.CREATE, Status.SUCCESS, target_id=U),
            ],
        ),
        failed=set(),
    )

    result = pipeline.commit(done)

    assert result.failed == {B}
    assert (result.counts["create"], result.counts["failure"]) == (1, 1)
    assert {s: x.target_id for s, x in ledger.links_for("job", [A, B, C]).items()} == {
        A: T,
        C: U,
    }
    assert set(ledger.escrows_for("job", [B, C])) == {B}  # retried, and refused, later
    row = ledger.run_rows("job", "r1", [B])[B]
    assert (row.status, row.error_code, row.target_id) == (Status.FAILURE, "AmbiguousMatch", None)
    assert f"target user {T} is already linked to source user 1@x ({A})" in row.error_message
