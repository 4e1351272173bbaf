"""The audit helper: every operator action leaves one entry saying how it ended, and neither the
action's error nor a lost entry is ever hidden."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from tests.unit.fakes import FakeAuditLog
from worker.domain.audit import (
    Actor,
    ActorKind,
    AuditAction,
    AuditEntry,
    AuditNotRecorded,
    AuditResult,
    Via,
)
from worker.domain.errors import StopSync, Transient
from worker.ports import AlreadyRunning, AuditLog, JobPaused
from worker.service.audit import audited, os_actor

pytestmark = pytest.mark.unit

ANN = Actor("ann@contoso.com", ActorKind.USER, Via.CONSOLE)
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def clock() -> datetime:
    return T0


@pytest.fixture
def trail() -> FakeAuditLog:
    return FakeAuditLog()


def only(trail: FakeAuditLog) -> AuditEntry:
    assert len(trail.stored) == 1
    return trail.stored[0]


def test_the_fake_is_an_audit_log() -> None:
    log: AuditLog = FakeAuditLog()  # mypy checks the fake against the port
    assert log.entries() == []


def test_an_action_that_ends_normally_is_a_success_with_its_detail(trail: FakeAuditLog) -> None:
    with audited(trail, ANN, "restart", "sync", detail={"scope": "full"}, clock=clock) as entry:
        entry.note(done=["watermark cleared"])

    recorded = only(trail)
    assert recorded == AuditEntry(
        id=1,
        at=T0,
        actor=ANN,
        action="restart",
        job="sync",
        result=AuditResult.SUCCESS,
        detail={"scope": "full", "done": ["watermark cleared"]},
        message="",
    )


def test_an_action_that_raises_is_a_failure_and_its_error_goes_on_unchanged(
    trail: FakeAuditLog,
) -> None:
    boom = StopSync("credentials refused", code="invalid_client")
    with pytest.raises(StopSync) as raised, audited(trail, ANN, AuditAction.PROVISION, "sync"):
        raise boom

    assert raised.value is boom
    assert not getattr(boom, "__notes__", None)  # nothing added when the entry was written
    recorded = only(trail)
    assert recorded.result is AuditResult.FAILURE
    assert recorded.message == "invalid_client: credentials refused"


def test_errors_that_mean_refused_record_refused(trail: FakeAuditLog) -> None:
    refusals = (AlreadyRunning, JobPaused)
    with pytest.raises(JobPaused), audited(trail, ANN, "run", "sync", refused_on=refusals):
        raise JobPaused("sync is paused")

    assert (only(trail).result, only(trail).message) == (AuditResult.REFUSED, "sync is paused")


def test_the_block_can_refuse_or_fail_without_raising(trail: FakeAuditLog) -> None:
    with audited(trail, ANN, "trigger", "sync") as entry:
        entry.refuse("a cycle of sync is already queued: 1234")
    with audited(trail, ANN, "run", "sync") as entry:
        entry.note(run_id="r1")
        entry.fail("Graph unreachable")

    refused, failed = trail.stored
    assert (refused.result, refused.message) == (
        AuditResult.REFUSED,
        "a cycle of sync is already queued: 1234",
    )
    assert (failed.result, failed.message, failed.detail) == (
        AuditResult.FAILURE,
        "Graph unreachable",
        {"run_id": "r1"},
    )


def test_a_refusal_marked_before_an_exit_stays_a_refusal(trail: FakeAuditLog) -> None:
    def refuse_then_exit() -> None:  # as the CLI does: mark the refusal, then exit 1
        with audited(trail, ANN, "trigger", "sync") as entry:
            entry.refuse("already running")
            raise SystemExit(1)

    with pytest.raises(SystemExit):
        refuse_then_exit()

    assert (only(trail).result, only(trail).message) == (AuditResult.REFUSED, "already running")


def test_bad_input_records_nothing(trail: FakeAuditLog) -> None:
    with (
        pytest.raises(LookupError),
        audited(trail, ANN, "provision", "sync", bad_input=(LookupError,)),
    ):
        raise LookupError("no user 42 in the source tenant")

    assert trail.stored == []


def test_an_interrupted_action_is_recorded_as_a_failure(trail: FakeAuditLog) -> None:
    with pytest.raises(KeyboardInterrupt), audited(trail, ANN, "run", "sync"):
        raise KeyboardInterrupt

    assert (only(trail).result, only(trail).message) == (AuditResult.FAILURE, "KeyboardInterrupt")


def test_an_entry_that_cannot_be_written_after_a_success_is_an_error(trail: FakeAuditLog) -> None:
    trail.broken = Transient("the state database refused the write: OperationalError: locked")
    done = []
    with pytest.raises(AuditNotRecorded) as raised, audited(trail, ANN, "pause", "sync"):
        done.append("paused")

    assert done == ["paused"]  # the action ran; the caller learns the trail missed it
    assert str(raised.value) == (
        "pause of sync ended success, but the audit trail could not record it: "
        "the state database refused the write: OperationalError: locked"
    )
    assert raised.value.__cause__ is trail.broken


def test_a_lost_entry_never_hides_the_actions_own_error(trail: FakeAuditLog) -> None:
    trail.broken = Transient("database is locked")
    boom = StopSync("Graph refused the credentials")
    with (
        capture_logs() as logs,
        pytest.raises(StopSync) as raised,
        audited(trail, ANN, "start", "sync"),
    ):
        raise boom

    assert raised.value is boom
    assert raised.value.__notes__ == [
        "the audit trail could not record this start: database is locked"
    ]
    assert logs == [
        {
            "event": "audit entry lost",
            "log_level": "error",
            "action": "start",
            "job": "sync",
            "actor": "ann@contoso.com",
            "result": "failure",
            "error": "database is locked",
        }
    ]


def test_an_action_outside_the_vocabulary_is_refused_before_it_runs(trail: FakeAuditLog) -> None:
    ran = []
    with pytest.raises(ValueError), audited(trail, ANN, "reboot", "sync"):
        ran.append(True)
    assert (ran, trail.stored) == ([], [])


def test_detail_is_recorded_as_json_would_read_it_back(trail: FakeAuditLog) -> None:
    with audited(trail, ANN, "run", None, detail={"since": T0, "mode": Via.CLI}):
        pass
    assert only(trail).detail == {"since": "2026-03-01 09:30:00+00:00", "mode": "cli"}
    assert only(trail).job is None


def test_the_cli_actor_is_the_os_user_or_else_the_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "operator")
    assert os_actor() == Actor("operator", ActorKind.OS, Via.CLI)

    def nobody() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nobody)
    actor = os_actor()
    assert actor.name.startswith("uid:")
    assert actor.name[4:].isdigit()


def test_an_entry_as_a_row() -> None:
    entry = AuditEntry(
        id=7,
        at=T0,
        actor=Actor("runbook", ActorKind.TOKEN, Via.API),
        action="allow-deletes",
        job="sync",
        result=AuditResult.SUCCESS,
        detail={"held": 16},
    )
    assert entry.as_row() == {
        "id": 7,
        "at": "2026-03-01T09:30:00+00:00",
        "actor": "runbook",
        "actorKind": "token",
        "via": "api",
        "action": "allow-deletes",
        "job": "sync",
        "result": "success",
        "detail": {"held": 16},
        "message": "",
    }
