"""What the API and the console do to a job: one implementation for both, audited.

Reads come straight from SQL and Redis; triggers go to Celery like `tenant-sync trigger`.
Refusals are ApiErrors (404 unknown job or user, 409 paused / running / queued, 400 bad input).
Every operator action lands in the audit trail (docs/audit.md) with the caller as the actor;
a request refused before it started (unknown job or user) records nothing, as in the CLI.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from worker.adapters.state.sql import LogCondition
from worker.bootstrap import Runtime, job_spec
from worker.config import Config, ConfigError, Job, format_duration
from worker.domain.audit import Actor, ActorKind, AuditAction, Via
from worker.domain.errors import SyncError, Transient
from worker.domain.model import ObjectOutcome
from worker.ports import AlreadyRunning, RunRecord
from worker.service import admin
from worker.service.audit import audited
from worker.service.ondemand import GroupRefused, UnknownSourceUser
from worker.service.status import job_status

from .auth import Principal
from .errors import ApiError, bad_request, not_found

_KINDS = {"user": ActorKind.USER, "token": ActorKind.TOKEN, "app": ActorKind.APP}


def actor(who: Principal) -> Actor:
    return Actor(name=who.name, kind=_KINDS[who.kind], via=Via(who.via))


class Refused(ApiError):
    """The action was not carried out: the job is paused, running or queued (409)."""

    def __init__(self, message: str) -> None:
        super().__init__(409, "Conflict", message)


def _conflict(message: str) -> Refused:
    return Refused(message)


class Operations:
    def __init__(self, config: Config, runtime: Runtime, celery: Callable[[], Any]) -> None:
        self.config = config
        self.runtime = runtime
        self._celery = celery

    # reading ------------------------------------------------------------------------------------
    def job_names(self) -> list[str]:
        return sorted(self.config.jobs)

    def job(self, name: str) -> Job:
        job = self.config.jobs.get(name)
        if job is None:
            raise not_found(f"Job '{name}' does not exist.")
        return job

    def _runnable(self, name: str) -> None:
        """409 for a job that cannot run now: a tenant it uses is unusable (its secret unset).
        Reading it, pausing it and the like still work."""
        try:
            self.config.job(name)
        except ConfigError as exc:
            raise _conflict("; ".join(exc.problems)) from None

    def status(self, name: str) -> dict[str, Any]:
        self.job(name)
        runtime = self.runtime
        return job_status(
            name,
            runtime.ledger,
            runtime.cursors.load(name),
            running=runtime.job_lock().is_held(name),
            live=runtime.live.load(name),
            threshold=job_spec(self.job(name)).deletion_threshold,
        )

    # operating ----------------------------------------------------------------------------------
    def _audited(self, who: Principal, action: AuditAction, name: str, **detail: Any) -> Any:
        return audited(
            self.runtime.audit,
            actor(who),
            action,
            name,
            detail=detail,
            refused_on=(Refused,),
            bad_input=(UnknownSourceUser,),
        )

    def pause(self, name: str, who: Principal) -> None:
        self.job(name)
        with self._audited(who, AuditAction.PAUSE, name):
            admin.pause(self.runtime.ledger, name)

    def resume(self, name: str, who: Principal) -> None:
        self.job(name)
        with self._audited(who, AuditAction.RESUME, name):
            admin.resume(self.runtime.ledger, name)

    def allow_deletes(self, name: str, who: Principal) -> int:
        self.job(name)
        with self._audited(who, AuditAction.ALLOW_DELETES, name) as entry:
            admin.allow_deletes(self.runtime.ledger, name)
            held = admin.held_deletions(self.runtime.ledger, name)
            entry.note(held=held)
        return held

    def restart(self, name: str, scopes: list[admin.RestartScope], who: Principal) -> list[str]:
        self.job(name)
        done: list[str] = []
        with self._audited(who, AuditAction.RESTART, name, scope=[s.value for s in scopes]):
            try:
                for scope in scopes:
                    done += admin.restart(
                        self.runtime.ledger,
                        self.runtime.cursors,
                        self.runtime.job_lock(),
                        name,
                        scope,
                    )
            except AlreadyRunning:
                raise _conflict(
                    f"A cycle of {name} is running; restart it once it has finished."
                ) from None
        return done

    def trigger(self, name: str, *, full: bool, who: Principal) -> str:
        """Queue a cycle; 409 when the job is paused, running, or has one queued already."""
        self.job(name)
        with self._audited(
            who, AuditAction.TRIGGER, name, mode="full" if full else "auto"
        ) as entry:
            task_id = self._enqueue(name, full=full)
            entry.note(task_id=task_id)
        return task_id

    def _enqueue(self, name: str, *, full: bool) -> str:
        from worker.celery_app import enqueue_cycle

        self._runnable(name)
        if self.runtime.ledger.job_state(name).paused:
            raise _conflict(f"{name} is paused: resume it (or start it) first.")
        if self.runtime.job_lock().is_held(name):
            raise _conflict(f"A cycle of {name} is already running.")
        task_id, queued = enqueue_cycle(
            self._celery(),
            self.runtime.queue_guard(),
            self.config,
            name,
            mode="full" if full else "auto",
            trigger="manual",
        )
        if queued:
            raise _conflict(f"A cycle of {name} is already queued ({queued}).")
        return task_id

    def start(self, name: str, who: Principal) -> str | None:
        """Graph's start: resume a paused job and run a cycle now (none if one runs or waits)."""
        self.job(name)
        with self._audited(who, AuditAction.START, name) as entry:
            self._runnable(name)
            admin.resume(self.runtime.ledger, name)
            try:
                task_id: str | None = self._enqueue(name, full=False)
            except ApiError as exc:
                task_id = None
                entry.note(cycle=exc.message)
            entry.note(task_id=task_id)
        return task_id

    def provision(
        self,
        name: str,
        source_user_id: str,
        who: Principal,
        *,
        run_id: str | None = None,
        group: bool = False,
    ) -> ObjectOutcome:
        """Provision one source user now (works while paused); 404 for an unknown user.
        `run_id` names the run it is recorded as (default: a new id). With `group`, the id is
        a group of scope.groups of a job with groups.provision (400 for any other group)."""
        self.job(name)
        if group:
            self._provisioned_group(name, source_user_id)
        detail = {"group_id" if group else "user_id": source_user_id}
        try:
            with self._audited(who, AuditAction.PROVISION, name, **detail) as entry:
                self._runnable(name)
                try:
                    on_demand = self.runtime.on_demand(name)
                    outcome = (
                        on_demand.provision_group(source_user_id, run_id=run_id).outcome
                        if group
                        else on_demand.provision(source_user_id, run_id=run_id)
                    )
                except Transient as exc:
                    raise ApiError(
                        503,
                        "ServiceUnavailable",
                        f"provisioning {source_user_id} failed for now; try again: {exc}",
                        {"Retry-After": str(int(exc.retry_after or 30))},
                    ) from None
                except SyncError as exc:
                    raise ApiError(
                        502, "BadGateway", f"provisioning {source_user_id} failed: {exc}"
                    ) from None
                entry.note(
                    action=outcome.action.value,
                    status=outcome.status.value,
                    target_id=outcome.target_id,
                )
                if outcome.status.value == "failure":
                    entry.fail(outcome.reason or outcome.error_message or "the export failed")
        except UnknownSourceUser as exc:
            # Asked wrongly, nothing done: not an operator action (the CLI records none either).
            raise not_found(str(exc)) from None
        return outcome

    def _provisioned_group(self, name: str, group_id: str) -> None:
        """Refuse (nothing done, nothing recorded) a group the job does not provision."""
        if not job_spec(self.job(name)).groups.enabled:
            raise bad_request(
                "subjects[0].objectTypeName 'Group' is not supported for this job: it does not "
                "provision groups (groups.provision is false)"
            )
        try:
            found = self.runtime.on_demand(name).group_for(group_id)
        except GroupRefused as exc:
            raise bad_request(str(exc)) from None
        except SyncError as exc:
            raise ApiError(502, "BadGateway", f"cannot read group {group_id}: {exc}") from None
        if found is None:
            raise not_found(f"no group {group_id} in the source tenant")

    # Graph API and /api extensions (graph_jobs.py, graph_logs.py, extensions.py) ----------------
    def provision_logged(
        self, name: str, source_user_id: str, who: Principal, *, group: bool = False
    ) -> dict[str, Any]:
        """`provision`, answered with the provisioning-log row it recorded (Graph's
        provisionOnDemand reports the row's changeId, steps and modified properties)."""
        run_id = str(uuid.uuid4())
        self.provision(name, source_user_id.lower(), who, run_id=run_id, group=group)
        rows = self.runtime.ledger.log_page(
            [LogCondition("run_id", "eq", run_id)], before=None, limit=1
        )
        return rows[0][1]

    def log_page(
        self, conditions: list[LogCondition], *, before: int | None, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        return self.runtime.ledger.log_page(conditions, before=before, limit=limit)

    def runs(self, name: str, limit: int) -> list[RunRecord]:
        self.job(name)
        return self.runtime.ledger.recent_runs(name, limit=limit)

    def staged(self, name: str) -> dict[str, Any]:
        """The deletions held for the job, each with the target object it would delete: the
        users' and the provisioned groups' (worker/service/held.py)."""
        from worker.service.held import held_deletions

        job = self.job(name)
        ledger = self.runtime.ledger
        held = held_deletions(ledger, name)
        rt = job.runtime
        return {
            "job": name,
            "count": len(held),
            "threshold": {"count": rt.deletion_count, "percent": rt.deletion_percent},
            "allowDeletes": ledger.job_state(name).allow_deletes,
            "deprovision": rt.deprovision.value,
            "deletions": [h.as_dict() for h in held],
        }

    def overview(self, name: str) -> dict[str, Any]:
        """One job at a glance: state, last and next cycle, counts, quarantine, progress."""
        job = self.job(name)
        status = self.status(name)
        last = status["lastExecution"]
        quarantine = status["quarantine"]
        interval = job.runtime.interval
        next_cycle: str | None = None
        if status["code"] == "Paused":
            next_cycle = None
        elif quarantine and quarantine.get("nextAttempt"):
            next_cycle = quarantine["nextAttempt"]
        elif last:
            began = datetime.fromisoformat(last["timeBegan"])
            next_cycle = (began + interval).isoformat()
        return {
            "job": name,
            "source": job.source,
            "target": job.target,
            "state": status["code"],
            "running": status["running"],
            "interval": format_duration(interval),
            "lastCycle": last,
            "nextCycle": next_cycle,
            "counts": (last or {}).get("counts") or {},
            "quarantine": quarantine,
            "progress": status["progress"],
            "linkedUsers": status["linkedUsers"],
            "escrows": status["escrows"],
            "stagedDeletes": status["stagedDeletes"],
            "allowDeletes": status["allowDeletes"],
        }
