"""What the API and the console do to a job: one implementation for both.

Reads come straight from SQL and Redis; triggers go to Celery like `tenant-sync trigger`.
Refusals are ApiErrors (404 unknown job, 409 a cycle running or queued, 400 bad scope).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.bootstrap import Runtime
from worker.config import Config, Job
from worker.ports import AlreadyRunning
from worker.service import admin
from worker.service.status import job_status

from .auth import Principal
from .errors import ApiError, not_found


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

    def status(self, name: str) -> dict[str, Any]:
        self.job(name)
        runtime = self.runtime
        return job_status(
            name,
            runtime.ledger,
            runtime.cursors.load(name),
            running=runtime.job_lock().is_held(name),
            live=runtime.live.load(name),
        )

    # operating ----------------------------------------------------------------------------------
    def pause(self, name: str, who: Principal) -> None:
        self.job(name)
        admin.pause(self.runtime.ledger, name)

    def resume(self, name: str, who: Principal) -> None:
        self.job(name)
        admin.resume(self.runtime.ledger, name)

    def allow_deletes(self, name: str, who: Principal) -> int:
        self.job(name)
        admin.allow_deletes(self.runtime.ledger, name)
        return len(self.runtime.ledger.staged(name))

    def restart(self, name: str, scopes: list[admin.RestartScope], who: Principal) -> list[str]:
        self.job(name)
        done: list[str] = []
        try:
            for scope in scopes:
                done += admin.restart(
                    self.runtime.ledger, self.runtime.cursors, self.runtime.job_lock(), name, scope
                )
        except AlreadyRunning:
            raise ApiError(
                409, "Conflict", f"A cycle of {name} is running; restart it once it has finished."
            ) from None
        return done

    def trigger(self, name: str, *, full: bool, who: Principal) -> str:
        """Queue a cycle; 409 when the job is paused, running, or has one queued already."""
        from worker.celery_app import enqueue_cycle

        self.job(name)
        if self.runtime.ledger.job_state(name).paused:
            raise ApiError(409, "Conflict", f"{name} is paused: resume it (or start it) first.")
        if self.runtime.job_lock().is_held(name):
            raise ApiError(409, "Conflict", f"A cycle of {name} is already running.")
        task_id, queued = enqueue_cycle(
            self._celery(),
            self.runtime.queue_guard(),
            self.config,
            name,
            mode="full" if full else "auto",
            trigger="manual",
        )
        if queued:
            raise ApiError(409, "Conflict", f"A cycle of {name} is already queued ({queued}).")
        return task_id

    def start(self, name: str, who: Principal) -> str | None:
        """Graph's start: resume a paused job and run a cycle now (none if one runs or waits)."""
        self.resume(name, who)
        try:
            return self.trigger(name, full=False, who=who)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise
