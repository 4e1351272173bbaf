"""Thin Celery tasks: ids in, one service call, transient failures retried a few times."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from celery import Task, shared_task

from worker.adapters.celery_dispatch import EXPORT_PAGE_TASK, CeleryDispatcher
from worker.bootstrap import Runtime, open_runtime
from worker.config import Config
from worker.ports import AlreadyRunning, JobPaused, NotDue
from worker.service.page import PageRequest

MAX_RETRIES = 3
RETRY_DELAY_S = 60

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime(config: Config) -> Runtime:
    """One Runtime per worker process, made after the fork so no connection is shared."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = open_runtime(
                config,
                migrate=False,
                metrics=config.metrics.port > 0,
                notify_kick=kick_notifications,
            )
        return _runtime


DELIVER_NOTIFICATIONS_TASK = "tenant_sync.deliver_notifications"
# A delivery round stops sending after this long (beat starts one every 30 s; what is left
# waits for the next round).
DELIVERY_ROUND_S = 25.0
KICK_EXPIRES_S = 120.0


def kick_notifications() -> None:
    """Ask a worker to deliver the notifications just queued, now rather than at the next
    periodic round. Best effort: the periodic round delivers them anyway."""
    from celery import current_app

    try:
        current_app.send_task(DELIVER_NOTIFICATIONS_TASK, expires=KICK_EXPIRES_S)
    except Exception as exc:
        structlog.get_logger("tenant_sync.tasks").warning(
            "could not ask for a notification delivery", error=repr(exc)
        )


@shared_task(bind=True, name=DELIVER_NOTIFICATIONS_TASK, ignore_result=True)
def deliver_notifications(self: Task) -> dict[str, int]:
    """Send the notifications due in the outbox (beat: every 30 s; and after a cycle queues
    some). Failed ones stay queued with their back-off; this task itself never retries."""
    config: Config = self.app.tenant_sync_config
    report = runtime(config).deliver_notifications(deadline_s=DELIVERY_ROUND_S)
    return report.as_dict()


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
        interval = int(config.job(job_id).runtime.interval.total_seconds())
        if not guard.claim_slot(job_id, int(time.time()) // interval, ttl_s=2 * interval):
            log.info("cycle skipped", status="duplicate", reason="this interval's cycle was sent")
            return {"job": job_id, "status": "duplicate", "error": "another beat sent this cycle"}
    fan_out = config.job(job_id).runtime.fan_out
    dispatcher = CeleryDispatcher(self.app, window=fan_out) if fan_out else None
    service = state.cycle(job_id, dispatcher=dispatcher)
    try:
        result = service.run(mode=mode, trigger=trigger)
    except (AlreadyRunning, JobPaused, NotDue) as exc:
        status = {AlreadyRunning: "already_running", JobPaused: "paused", NotDue: "not_due"}[
            type(exc)
        ]
        log.info("cycle skipped", status=status, reason=str(exc))
        return {"job": job_id, "status": status, "error": str(exc)}
    # The cycle has logged its end ("cycle finished"): one line per cycle.
    if result.status != "success" and result.transient:
        # The cycle saved its position; running it again soon resumes it.
        raise self.retry(
            countdown=RETRY_DELAY_S,
            args=[job_id],
            kwargs={"mode": mode, "trigger": "retry"},
        )
    return {**result.summary(), "status": result.status, "error": result.error}


@shared_task(bind=True, name="tenant_sync.purge_logs")
def purge_logs(self: Task) -> dict[str, Any]:
    """Forget provisioning-log rows older than `state.log_retention` (beat runs it daily)."""
    config: Config = self.app.tenant_sync_config
    before = datetime.now(UTC) - config.state.log_retention
    removed = runtime(config).ledger.purge_logs(before)
    structlog.get_logger("tenant_sync.tasks").info(
        "provisioning log purged", removed=removed, before=before.isoformat()
    )
    return {"removed": removed, "before": before.isoformat()}


@shared_task(bind=True, base=JobTask, name=EXPORT_PAGE_TASK)
def export_page(self: JobTask, job_id: str, run_id: str, page: dict[str, Any]) -> dict[str, Any]:
    """One page of a fanned-out cycle through the page pipeline; the cycle moves its cursor."""
    config: Config = self.app.tenant_sync_config
    with structlog.contextvars.bound_contextvars(run_id=run_id):
        outcome = runtime(config).page_pipeline(job_id, run_id).run(PageRequest.from_json(page))
    return {**outcome.to_json(), "worker": self.request.hostname}
