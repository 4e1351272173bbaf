"""Running an operator action so that the audit trail records it, whatever happens.

    with audited(audit_log, actor, "pause", job) as entry:
        admin.pause(ledger, job)

ends `success` when the block ends normally; `failure` (with the error's text) when it raises,
and the error goes on unchanged; `refused` when the block says so (`entry.refuse(...)`) or raises
one of `refused_on`. Errors listed in `bad_input` mean the action did nothing because it was
asked wrongly (an unknown user, say): they go on and nothing is recorded, like a command refused
before it started.

An audit entry that cannot be written is never silent: after a successful action it raises
`AuditNotRecorded` (the action is done; the caller must say the trail missed it); after a failed
one the action's own error still wins, with a note saying the entry was lost, and it is logged.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog

from worker.domain.audit import (
    Actor,
    ActorKind,
    AuditAction,
    AuditEntry,
    AuditNotRecorded,
    AuditResult,
    Via,
)
from worker.ports import AuditLog

logger = structlog.get_logger("tenant_sync.audit")

ErrorTypes = tuple[type[BaseException], ...]


def os_actor(via: Via = Via.CLI) -> Actor:
    """The operating-system user running this process (the CLI's operator)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):
        # No login name in the environment and none in the password database (a container
        # running as an arbitrary uid): the uid still says who it was.
        name = ""
    return Actor(name=name or f"uid:{os.getuid()}", kind=ActorKind.OS, via=via)


class AuditHandle:
    """What the action's block may tell the trail before it ends."""

    def __init__(self, detail: Mapping[str, Any]) -> None:
        self.detail: dict[str, Any] = dict(detail)
        self.result: AuditResult | None = None
        self.message = ""

    def note(self, **detail: Any) -> None:
        """Add to the entry's detail what is only known once the action ran (a run or task id)."""
        self.detail.update(detail)

    def refuse(self, message: str) -> None:
        """The action was not carried out (a cycle is already running or queued, ...)."""
        self.result, self.message = AuditResult.REFUSED, message

    def fail(self, message: str) -> None:
        """The action ran and failed without raising (a cycle that ended failed, ...)."""
        self.result, self.message = AuditResult.FAILURE, message


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _json_safe(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The detail as JSON will store it (dates and other objects as text), so what is recorded
    is what is read back."""
    safe: dict[str, Any] = json.loads(json.dumps(dict(detail), default=str))
    return safe


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


@contextmanager
def audited(
    audit_log: AuditLog,
    actor: Actor,
    action: AuditAction | str,
    job: str | None,
    *,
    detail: Mapping[str, Any] | None = None,
    refused_on: ErrorTypes = (),
    bad_input: ErrorTypes = (),
    clock: Callable[[], datetime] = _utcnow,
) -> Iterator[AuditHandle]:
    """Run the block as `action` by `actor` on `job` and record how it ended (see the module)."""
    chosen = AuditAction(action)  # a name outside the vocabulary is a programming error
    handle = AuditHandle(detail or {})
    try:
        yield handle
    except GeneratorExit:
        raise
    except bad_input:
        raise
    except BaseException as error:
        if handle.result is None:
            refused = isinstance(error, refused_on)
            handle.result = AuditResult.REFUSED if refused else AuditResult.FAILURE
            handle.message = _describe(error)
        try:
            _record(audit_log, actor, chosen, job, handle, clock)
        except Exception as lost:
            # The action's own error is what the caller must see; the lost entry rides on it.
            note = f"the audit trail could not record this {chosen.value}: {_describe(lost)}"
            error.add_note(note)
            logger.error(
                "audit entry lost",
                action=chosen.value,
                job=job,
                actor=actor.name,
                result=handle.result.value,
                error=_describe(lost),
            )
        raise
    else:
        try:
            _record(audit_log, actor, chosen, job, handle, clock)
        except Exception as lost:
            outcome = (handle.result or AuditResult.SUCCESS).value
            raise AuditNotRecorded(
                f"{chosen.value}{f' of {job}' if job else ''} ended {outcome}, but the audit "
                f"trail could not record it: {_describe(lost)}"
            ) from lost


def _record(
    audit_log: AuditLog,
    actor: Actor,
    action: AuditAction,
    job: str | None,
    handle: AuditHandle,
    clock: Callable[[], datetime],
) -> AuditEntry:
    return audit_log.record(
        AuditEntry(
            at=clock(),
            actor=actor,
            action=action.value,
            job=job,
            result=handle.result or AuditResult.SUCCESS,
            detail=_json_safe(handle.detail),
            message=handle.message,
        )
    )
