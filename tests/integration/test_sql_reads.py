"""`tenant-sync status` reads the SQL state on the driver alone (sql_reads.py): every read must
give what SqlLedger gives on the same database, on SQLite and PostgreSQL, so status shows the
same whichever read it (docs/performance.md, "CLI start-up")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from worker.adapters.state.db import upgrade_database
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.adapters.state.sql_reads import SqlReads
from worker.domain.groups import HELD, GroupLink
from worker.domain.health import Escrow, JobState, StagedDeletion
from worker.domain.model import Action, Link, LinkState, ObjectOutcome, Status
from worker.ports import PageWrite, RunRecord

pytestmark = pytest.mark.integration

NEPAL = timezone(timedelta(hours=5, minutes=45))  # stored as UTC whatever the zone given
T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=NEPAL)
GROUP = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"  # a GUID: packed in the log (compact.py)
GROUP_2 = "3f2504e0-4f89-41d3-9a0c-0305e82c3302"


@pytest.fixture
def filled(database_url: str) -> Iterator[tuple[SqlLedger, SqlReads]]:
    """A migrated database holding some of everything status reads, with both readers."""
    engine = make_engine(database_url)
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    ledger.start_run(RunRecord("r1", "job", "full", False, "manual", T0))
    ledger.finish_run(
        RunRecord(
            "r1", "job", "full", False, "manual", T0, T0 + timedelta(minutes=3), "failed",
            {"create": 3, "failure": 1}, "Graph said no",
        )
    )  # fmt: skip
    ledger.start_run(RunRecord("r2", "job", "incremental", True, "schedule", T0 + timedelta(1)))
    ledger.start_run(RunRecord("r3", "other", "full", False, "manual", T0))
    ledger.save_job_state(
        JobState(
            "job",
            paused=True,
            quarantine_reason="failures",
            quarantine_since=T0,
            quarantine_error="it broke",
            next_attempt_at=T0 + timedelta(hours=2),
            failures=4,
            allow_deletes=True,
            deletions_approved_at=T0 - timedelta(days=1),
        )
    )
    outcomes = [
        ObjectOutcome("u1", Action.DELETE, Status.SUCCESS),
        ObjectOutcome("u2", Action.DISABLE, Status.SUCCESS),
        ObjectOutcome("u3", Action.DISABLE, Status.WARNING),
        ObjectOutcome("u4", Action.DELETE, Status.FAILURE),
        ObjectOutcome("u5", Action.DELETE, Status.SUCCESS, approved=True),
        ObjectOutcome(GROUP, Action.SKIP, Status.WARNING, "Sales", reason="name taken",
                      object_type="Group"),
        ObjectOutcome(GROUP_2, Action(HELD), Status.SUCCESS, "HR", object_type="Group"),
    ]  # fmt: skip
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            links=[
                Link("job", "u1", "t1", LinkState.ACTIVE, {"displayName": "One"}, "r1"),
                Link("job", "u2", "t2", LinkState.DISABLED, {}, "r1"),
                Link("job", "u3", "t3", LinkState.SOFT_DELETED, {}, "r1"),
            ],
            outcomes=outcomes,
            escrows=[Escrow("job", "u9", 2, T0, T0 + timedelta(hours=1), "busy")],
            staged=[
                StagedDeletion("u7", "out of scope", False),
                StagedDeletion("u8", "gone", True),
            ],
            group_links=[GroupLink("job", GROUP_2, "tg2", "HR", {"description": "people"})],
        ),
    )
    reads = SqlReads.open(database_url)
    assert reads is not None, "a plain URL is read on the driver"
    yield ledger, reads
    reads.close()
    engine.dispose()


@pytest.mark.parametrize("job", ["job", "other", "never-run"])
def test_every_read_of_status_gives_what_the_ledger_gives(
    filled: tuple[SqlLedger, SqlReads], job: str
) -> None:
    ledger, reads = filled
    for name in ("recent_runs", "job_state", "link_count", "group_links", "group_skips",
                 "escrow_count", "staged"):  # fmt: skip
        assert getattr(reads, name)(job) == getattr(ledger, name)(job), name
    assert reads.recent_runs(job, limit=1) == ledger.recent_runs(job, limit=1)
    now = datetime.now(UTC)
    for since in (T0, now - timedelta(hours=1), now + timedelta(seconds=1), now.astimezone(NEPAL)):
        assert reads.deletions_since(job, since) == ledger.deletions_since(job, since)


def test_the_reads_see_the_data_they_are_compared_on(filled: tuple[SqlLedger, SqlReads]) -> None:
    _, reads = filled
    [newest, first] = reads.recent_runs("job")
    assert (newest.run_id, newest.dry_run, first.counts) == (
        "r2",
        True,
        {"create": 3, "failure": 1},
    )
    assert first.started_at == T0
    assert first.started_at.tzinfo == UTC
    assert reads.job_state("job").quarantine_since == T0
    assert reads.link_count("job") == 2
    assert [(s.source_id, s.held) for s in reads.group_skips("job")] == [
        (GROUP, False),
        (GROUP_2, True),
    ]
    deletions = reads.deletions_since("job", T0)
    assert (deletions.deleted, deletions.disabled) == (1, 2)
    assert [s.approved for s in reads.staged("job")] == [False, False]


def test_a_url_the_driver_cannot_take_as_is_is_read_through_sqlalchemy(tmp_path: Path) -> None:
    assert SqlReads.open(f"sqlite:///{tmp_path}/state.db?timeout=5") is None
    assert SqlReads.open(f"sqlite:///{tmp_path}/st%61te.db") is None
