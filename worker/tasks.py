"""Thin Celery tasks: ids in, one service call, transient failures retried a few times."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from celery import Task, shared_task

from worker.bootstrap import Runtime, open_runtime
from worker.config import Config
from worker.ports import AlreadyRunning, JobPaused, NotDue

MAX_RETRIES = 3
RETRY_DELAY_S = 60

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime(config: Config) -> Runtime:
    """One Runtime per worker process, made after the fork so no connection is shared."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = open_runtime(config, migrate=False, metrics=config.metrics.port > 0)
        return _runtime


class JobTask(Task):  # type: ignore[misc]
    """Binds job_id and task_id into every log line the task's code writes."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        job_id = args[0] if args else kwargs.get("job_id")
        with structlog.contextvars.bound_contextvars(job_id=job_id, task_id=self.request.id):
            return super().__call__(*args, **kwargs)


@shared_task(bind=True, base=JobTask, name="tenant_sync.run_job", max_retries=MAX_RETRIES)
def run_job(
    self: JobTask, job_id: str, mode: str = "auto", trigger: str = "schedule"
) -> dict[str, Any]:
    log = structlog.get_logger("tenant_sync.tasks")
    config: Config = self.app.tenant_sync_config
    state = runtime(config)
    guard = state.queue_guard()
    guard.release_queue(job_id, self.request.id)
    if trigger == "schedule":
        interval = int(config.job(job_id).raw.schedule.interval.total_seconds())
        if not guard.claim_slot(job_id, int(time.time()) // interval, ttl_s=2 * interval):
            log.info("cycle skipped", status="duplicate", reason="this interval's cycle was sent")
            return {"job": job_id, "status": "duplicate", "error": "another beat sent this cycle"}
    service = state.cycle(job_id)
    try:
        result = service.run(mode=mode, trigger=trigger)
    except (AlreadyRunning, JobPaused, NotDue) as exc:
        status = {AlreadyRunning: "already_running", JobPaused: "paused", NotDue: "not_due"}[
            type(exc)
        ]
        log.info("cycle skipped", status=status, reason=str(exc))
        return {"job": job_id, "status": status, "error": str(exc)}
    with structlog.contextvars.bound_contextvars(run_id=result.run_id):
        log.info("cycle finished", status=result.status, mode=result.mode, counts=result.counts)
    if result.status != "success" and result.transient:
        # The cycle saved its position; running it again soon resumes it.
        raise self.retry(
            countdown=RETRY_DELAY_S,
            args=[job_id],
            kwargs={"mode": mode, "trigger": "retry"},
        )
    return {**result.summary(), "status": result.status, "error": result.error}
