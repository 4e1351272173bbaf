"""What an operator does to a job: pause, resume, release held deletions, restart with a scope."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING

from worker.domain.health import JobState
from worker.service.held import held_count

if TYPE_CHECKING:
    # Annotations only: `status` loads this module without the ports' dataclasses.
    from worker.ports import CursorStore, JobLock, Ledger, LedgerReads


class RestartScope(StrEnum):
    WATERMARK = "watermark"  # forget the delta position: the next cycle is full
    ESCROWS = "escrows"  # forget the objects waiting for a retry
    QUARANTINE = "quarantine"  # end the quarantine: the schedule applies again
    FULL = "full"  # all of the above, and the held deletions (links are kept)
    FORCE_DELETES = "force-deletes"  # let the next cycle make its deletions, over the threshold


def pause(ledger: Ledger, job: str) -> JobState:
    state = replace(ledger.job_state(job), paused=True)
    ledger.save_job_state(state)
    return state


def resume(ledger: Ledger, job: str) -> JobState:
    state = replace(ledger.job_state(job), paused=False)
    ledger.save_job_state(state)
    return state


def held_deletions(ledger: LedgerReads, job: str) -> int:
    """The deletions held over the threshold: users' staged ones and provisioned groups'."""
    return held_count(ledger, job).total


def allow_deletes(ledger: Ledger, job: str) -> JobState:
    """The next cycle carries out its deletions even over the threshold (once)."""
    state = replace(ledger.job_state(job), allow_deletes=True)
    ledger.save_job_state(state)
    return state


def restart(
    ledger: Ledger, cursors: CursorStore, lock: JobLock, job: str, scope: RestartScope
) -> list[str]:
    """Clear the scope's state; returns what was cleared, for the operator."""
    if scope is RestartScope.FORCE_DELETES:
        allow_deletes(ledger, job)
        return ["deletions over the threshold are allowed for the next cycle"]
    done: list[str] = []
    if scope in (RestartScope.WATERMARK, RestartScope.FULL):
        # The cycle's own progress lives beside the watermark: never clear it under a cycle.
        with lock.hold(job):
            cursors.clear(job)
        done.append("watermark cleared: the next cycle reads everything")
    if scope in (RestartScope.ESCROWS, RestartScope.FULL):
        ledger.clear(job, escrows=True, staged=scope is RestartScope.FULL)
        done.append("escrows cleared")
        if scope is RestartScope.FULL:
            done.append("held deletions cleared (the next full cycle finds them again)")
    if scope in (RestartScope.QUARANTINE, RestartScope.FULL):
        state = ledger.job_state(job)
        ledger.save_job_state(
            JobState(
                job=job,
                paused=state.paused,
                allow_deletes=state.allow_deletes,
                deletions_approved_at=state.deletions_approved_at,
            )
        )
        done.append("quarantine ended")
    return done


def interrupted(ledger: Ledger, cursors: CursorStore, lock: JobLock, jobs: list[str]) -> list[str]:
    """Jobs whose cycle stopped half-way (its process died) and that nobody runs now: a worker
    that starts resumes them rather than leave them to the next scheduled cycle."""
    return [
        job
        for job in jobs
        if cursors.load(job).progress is not None
        and not lock.is_held(job)
        and not ledger.job_state(job).paused
    ]
