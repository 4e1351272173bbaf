"""The Celery application: `celery -A worker.celery_app worker|beat`.

The broker and result backend are the configured Redis (the embedded server when the config says
`embedded`). Beat runs every job on its own `schedule.interval`. The config file is the one named by
`TENANT_SYNC_CONFIG` (default `config/tenant-sync.yaml`); a bad one stops the process with the
list of problems and exit code 2.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from celery import Celery, signals

from worker.adapters.state.redis_store import RedisQueueGuard
from worker.bootstrap import open_database, redis_url, settle_heap
from worker.config import Config, ConfigError, load_config
from worker.logging import configure_logging

RUN_JOB_TASK = "tenant_sync.run_job"
PURGE_LOGS_TASK = "tenant_sync.purge_logs"
DELIVER_NOTIFICATIONS_TASK = "tenant_sync.deliver_notifications"
NOTIFICATIONS_EVERY_S = 30.0


def beat_schedule(config: Config) -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {
        "tenant-sync:purge-logs": {
            "task": PURGE_LOGS_TASK,
            "schedule": 24 * 3600.0,
            "options": {"expires": 24 * 3600.0},
        }
    }
    if config.notifications:
        # Retries of undelivered notifications (a cycle's new ones are also sent at once).
        schedule["tenant-sync:notifications:deliver"] = {
            "task": DELIVER_NOTIFICATIONS_TASK,
            "schedule": NOTIFICATIONS_EVERY_S,
            "options": {"expires": NOTIFICATIONS_EVERY_S},
        }
    return schedule | {
        f"tenant-sync:{name}": {
            "task": RUN_JOB_TASK,
            "schedule": job.runtime.interval.total_seconds(),
            "args": [name],
            "kwargs": {"mode": "auto", "trigger": "schedule"},
            # A cycle not started within one interval is superseded by the next one.
            "options": {"expires": job.runtime.interval.total_seconds()},
        }
        for name, job in config.jobs.items()
    }


def enqueue_cycle(
    app: Celery, guard: RedisQueueGuard, config: Config, job: str, *, mode: str, trigger: str
) -> tuple[str, str | None]:
    """Queue one cycle of `job` unless one is queued already: (task id, the id of the task
    already queued, or None when this one was sent)."""
    task_id = str(uuid.uuid4())
    ttl = int(config.job(job).runtime.interval.total_seconds())
    queued = guard.claim_queue(job, task_id, ttl_s=ttl)
    if queued is None:
        app.send_task(
            RUN_JOB_TASK, args=[job], kwargs={"mode": mode, "trigger": trigger}, task_id=task_id
        )
    return task_id, queued


def create_celery(config: Config) -> Celery:
    url = redis_url(config)
    app = Celery("tenant_sync", broker=url, backend=url, include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_track_started=True,  # a fanned-out cycle tells a page in progress from one waiting
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        beat_schedule=beat_schedule(config),
        beat_schedule_filename=str(Path(config.state.state_dir) / "celerybeat-schedule"),
        worker_hijack_root_logger=False,
    )
    app.tenant_sync_config = config
    return app


_app: Celery | None = None


def get_app() -> Celery:
    """The process's Celery app, built on first use from the configuration file."""
    global _app
    if _app is None:
        _app = create_celery(_load_or_exit())
    return _app


def _load_or_exit() -> Config:
    try:
        return load_config()
    except ConfigError as exc:
        print("tenant-sync: the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


@signals.worker_init.connect
def _migrate_at_start(sender: Any = None, **_: Any) -> None:
    config: Config = get_app().tenant_sync_config
    engine, _ledger = open_database(config, migrate=True)
    engine.dispose()
    settle_heap()  # before the pool forks: every worker process starts with it settled
    if config.metrics.port:
        # Worker processes are forked from this one: their metrics meet in files that this
        # process serves. The variable must be set before prometheus_client is first imported.
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(
            Path(config.state.state_dir).resolve() / "metrics" / str(os.getpid())
        )
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        from worker import metrics

        metrics.prepare_multiprocess_dir(Path(directory))


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    config: Config = get_app().tenant_sync_config
    if config.metrics.port:
        from worker import metrics

        metrics.serve(config.metrics.port, config.metrics.host)


@signals.worker_ready.connect
def _resume_interrupted_cycles(sender: Any = None, **_: Any) -> None:
    """A cycle whose worker was killed (kill -9, OOM, a lost node) waits for nobody: the next
    worker to start queues it again, and it resumes from its last committed page."""
    import structlog

    from worker.bootstrap import open_runtime
    from worker.service.admin import interrupted

    app = get_app()
    config: Config = app.tenant_sync_config
    log = structlog.get_logger("tenant_sync.worker")
    runtime = open_runtime(config, migrate=False)
    try:
        guard = runtime.queue_guard()
        for job in interrupted(
            runtime.ledger, runtime.cursors, runtime.job_lock(), list(config.jobs)
        ):
            task_id, queued = enqueue_cycle(app, guard, config, job, mode="auto", trigger="resume")
            if queued is None:  # else another worker that started too queued it
                log.info("interrupted cycle queued again", job_id=job, task_id=task_id)
    except Exception as exc:  # the worker must start even if this fails
        log.warning("could not look for interrupted cycles", error=repr(exc))
    finally:
        runtime.close()


@signals.worker_process_shutdown.connect
def _forget_process(pid: int | None = None, **_: Any) -> None:
    if get_app().tenant_sync_config.metrics.port and pid:
        from worker import metrics

        metrics.process_exited(pid)


@signals.after_setup_logger.connect
def _structlog(**_: Any) -> None:
    logging_config = get_app().tenant_sync_config.logging
    configure_logging(logging_config.format, logging_config.level)


def __getattr__(name: str) -> Any:
    # `celery -A worker.celery_app` looks up `app`; building it lazily keeps a plain import
    # (by the CLI, say) from reading the default configuration file.
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(name)
