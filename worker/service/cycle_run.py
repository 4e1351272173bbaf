"""One running cycle: its phases in order, from wherever its position says, and its end.

The pieces are built by `CycleService` and passed in: the position (progress and cursor), the
groups read, the users round (with its page dispatcher), the one-by-one rereads, the deletion
phase, and the tally they all add their pages to. A rejected delta token turns the cycle into a
full one; a `SyncError` ends it as failed (its position saved for the next attempt).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from worker.domain.errors import ResyncRequired, SyncError, Transient
from worker.domain.model import Mode, empty_counts
from worker.ports import (
    Ledger,
    LiveProgress,
    Phase,
    RunRecord,
    SourceDirectory,
    TargetDirectory,
)
from worker.service.deletions import Deletions
from worker.service.feed import Tally
from worker.service.group_provision import GroupProvisioner
from worker.service.groups import GroupsRead
from worker.service.managers_phase import ManagersPhase
from worker.service.position import Position
from worker.service.rereads import Rereads
from worker.service.result import CycleResult
from worker.service.users_round import UsersRound

log = structlog.get_logger("tenant_sync.cycle")


class CycleRun:
    def __init__(
        self,
        *,
        job: str,
        source: SourceDirectory,
        target: TargetDirectory,
        ledger: Ledger,
        live: LiveProgress,
        position: Position,
        groups: GroupsRead,
        users: UsersRound,
        rereads: Rereads,
        managers: ManagersPhase,
        deletions: Deletions,
        provisioner: GroupProvisioner,
        tally: Tally,
        run: RunRecord,
        clock: Callable[[], datetime],
        elapsed: Callable[[], float],
    ) -> None:
        self.job = job
        self.source = source
        self.target = target
        self.ledger = ledger
        self.live = live
        self.position = position
        self.groups = groups
        self.users = users
        self.rereads = rereads
        self.managers = managers
        self.deletions = deletions
        self.provisioner = provisioner
        self.tally = tally
        self.run = run
        self.clock = clock
        self.elapsed = elapsed

    def execute(self) -> CycleResult:
        p = self.position.progress
        self.live.start(self.job, run_id=p.run_id, mode=p.mode, phase=p.phase, read=p.seen_users)
        try:
            self.ledger.start_run(self.run)
            self.position.save()
            try:
                self._phases()
            except ResyncRequired:
                if self.position.progress.mode == Mode.FULL:
                    raise
                # The delta token is no longer valid: only a full read can know the state.
                self.position.restart_full()
                self._phases()
        except SyncError as error:
            return self._finish(
                status="failed", error=str(error), transient=isinstance(error, Transient)
            )
        except Exception as error:
            self._finish(status="failed", error=f"internal error: {error!r}")
            raise
        self.position.complete(self.clock())
        return self._finish(status="success")

    def catch_up(self) -> None:
        """One incremental pass from the cycle's new deltaLinks: groups, users, changed members."""
        self.groups.catch_up()
        self.users.catch_up()
        # Replays are harmless, so a crash here just reads the pass again from the saved links.
        self.position.save()
        self.rereads.pending()

    def _phases(self) -> None:
        self.source.sign_in()
        self.target.sign_in()
        position = self.position
        full = position.progress.mode == Mode.FULL
        # Each phase runs only if the cycle has not passed it (a resumed cycle starts later).
        if position.progress.phase is Phase.GROUPS:
            self.groups.read(full=full)
            position.advance(Phase.USERS)
        if position.progress.phase is Phase.USERS:
            self.users.read(full=full)
            position.advance(Phase.SWEEP if full else Phase.PENDING)
        if position.progress.phase is Phase.PENDING:
            self.rereads.pending()
            position.advance(Phase.ESCROW)
        if position.progress.phase is Phase.ESCROW:
            self.rereads.escrows()
            position.advance(Phase.PROVISION_GROUPS)
        if position.progress.phase is Phase.SWEEP:
            self.rereads.sweep()
            position.advance(Phase.PROVISION_GROUPS)
        if position.progress.phase is Phase.PROVISION_GROUPS:
            # After the users, so that members created in this cycle are linked already.
            self.provisioner.run()
            position.advance(Phase.RECHECK)
        if position.progress.phase is Phase.RECHECK:
            self.deletions.recheck()
            position.advance(Phase.MANAGERS)
        if position.progress.phase is Phase.MANAGERS:
            # After every page (the recheck's too): both ends of a reference exist by now.
            self.managers.run()
            position.advance(Phase.DELETIONS)
        if position.progress.phase is Phase.DELETIONS:
            self.deletions.carry_out()
            position.advance(Phase.DONE)

    def _finish(self, *, status: str, error: str = "", transient: bool = False) -> CycleResult:
        p = self.position.progress
        self.live.finish(self.job)
        run = self.run
        run.mode = p.mode
        run.status = status
        run.error = error
        run.counts = dict(p.counts)
        run.finished_at = self.clock()
        try:
            self.ledger.finish_run(run)
        except SyncError as failure:
            # The state database is gone too: the result still reaches the caller, and the
            # run, left open, is resumed by the next cycle from the saved position.
            log.warning("the end of the run could not be recorded", error=str(failure))
            if status == "success":
                status, error, transient = "failed", str(failure), True
        return CycleResult(
            job=self.job,
            run_id=p.run_id,
            mode=p.mode,
            dry_run=run.dry_run,
            counts={**empty_counts(), **p.counts},
            duration_s=self.elapsed(),
            status=status,
            error=error,
            transient=transient,
            outcomes=self.tally.outcomes,
            reported=self.tally.reported,
            deletion_check=self.deletions.check,
        )
