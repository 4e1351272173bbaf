"""Wiring: from a validated config to the adapters and services a command or task needs."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from worker.adapters.dryrun import dry_run_cycle
from worker.adapters.graph.auth import MsalTokenProvider
from worker.adapters.graph.client import GraphClient
from worker.adapters.graph.directory import GraphSourceDirectory, GraphTargetDirectory
from worker.adapters.graph.retry import RetryBudget
from worker.adapters.notify.outbox import RedisOutbox
from worker.adapters.notify.senders import EmailNotifier, Target, TeamsNotifier, WebhookNotifier
from worker.adapters.state.audit import SqlAuditLog
from worker.adapters.state.embedded_redis import resolve_redis_url
from worker.adapters.state.rate_limit import Quota, RedisPacer
from worker.adapters.state.redis_lib import redis
from worker.adapters.state.redis_store import (
    RedisCursorStore,
    RedisJobLock,
    RedisLiveProgress,
    RedisQueueGuard,
)
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.config import (
    Config,
    EmailNotification,
    Job,
    TeamsNotification,
    TenantConfig,
    WebhookNotification,
)
from worker.domain.job import JobSpec
from worker.ports import CycleObserver, Notifier
from worker.service.cycle import CycleService, ProgressListener
from worker.service.notify import DeliveryReport, NotificationObserver, deliver_due
from worker.service.ondemand import OnDemand
from worker.service.pipeline import PageDispatcher, PagePipeline
from worker.state_view import open_state, schema_is_newest
from worker.urls import url_secrets


def job_spec(job: Job) -> JobSpec:
    return job.spec


def graph_client(
    tenant: TenantConfig, on_response: Callable[[str, int], None] | None = None
) -> GraphClient:
    tokens = MsalTokenProvider(
        tenant_id=tenant.tenant_id,
        client_id=tenant.client_id,
        authority_host=tenant.authority_host,
        graph_url=tenant.graph_url,
        client_secret=tenant.client_secret.get_secret_value() if tenant.client_secret else None,
        certificate_path=tenant.certificate_path,
        ca_bundle=tenant.ca_bundle,
    )
    return GraphClient(
        graph_url=tenant.graph_url,
        tokens=tokens,
        ca_bundle=tenant.ca_bundle,
        on_response=on_response,
    )


def redis_url(config: Config) -> str:
    """The Redis URL to use, starting the embedded server when the config asks for it."""
    return resolve_redis_url(config.state.redis_url, Path(config.state.state_dir))


@dataclass
class Runtime:
    """The state adapters of one process, and Graph clients shared by its cycles."""

    config: Config
    redis_url: str
    redis: redis.Redis
    engine: Engine
    ledger: SqlLedger
    cursors: RedisCursorStore
    live: RedisLiveProgress
    audit: SqlAuditLog  # the operator actions' trail (docs/audit.md)
    observers: list[CycleObserver] = field(default_factory=list)
    # Per tenant name, a hook told of every Graph answer (metrics).
    graph_hook: Callable[[str], Callable[[str, int], None]] | None = None
    _clients: dict[str, GraphClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, tenant_name: str) -> GraphClient:
        with self._lock:
            if tenant_name not in self._clients:
                hook = self.graph_hook(tenant_name) if self.graph_hook else None
                self._clients[tenant_name] = graph_client(self.config.tenants[tenant_name], hook)
            return self._clients[tenant_name]

    def job_lock(self) -> RedisJobLock:
        return RedisJobLock(self.redis, ttl_s=self.config.state.lock_ttl.total_seconds())

    def queue_guard(self) -> RedisQueueGuard:
        return RedisQueueGuard(self.redis)

    def directories(
        self, job: Job, *, watched: bool = True
    ) -> tuple[GraphSourceDirectory, GraphTargetDirectory]:
        """A cycle's (or page task's) directories, each with a fresh retry budget of its tenant;
        `watched`: their writes show in the live progress."""
        target = self.config.tenants[job.target]

        def budgeted(name: str) -> GraphClient:
            limit = self.config.tenants[name].limits.retry_budget.total_seconds()
            return self.client(name).with_budget(RetryBudget(limit))

        return (
            GraphSourceDirectory(budgeted(job.source)),
            GraphTargetDirectory(
                budgeted(job.target),
                invite_redirect_url=job.runtime.invite_redirect_url,
                pacer=self.pacer(target),
                concurrency=target.limits.concurrency,
                on_written=(lambda n: self.live.add(job.name, writes=n)) if watched else None,
            ),
        )

    def pacer(self, tenant: TenantConfig) -> RedisPacer:
        """The write buckets of this app in this tenant, shared by every process."""
        limits = tenant.limits
        return RedisPacer(
            self.redis,
            tenant_id=tenant.tenant_id,
            client_id=tenant.client_id,
            writes=Quota(limits.write_per_150s, 150.0, limits.pace),
            invitations=Quota(limits.invitations_per_5s, 5.0, limits.pace),
        )

    def page_pipeline(self, job_name: str, run_id: str) -> PagePipeline:
        """The page pipeline of one run, in the worker that took one of its pages."""
        return self.cycle(job_name).pipeline(run_id)

    def cycle(
        self,
        job_name: str,
        *,
        on_progress: ProgressListener | None = None,
        dispatcher: PageDispatcher | None = None,
        dry_run: bool = False,
    ) -> CycleService:
        """A job's cycle; with `dry_run`, wired to adapters that keep every write in memory."""
        job = self.config.job(job_name)
        source, target = self.directories(job, watched=not dry_run)
        service = CycleService(
            job_spec(job),
            source=source,
            target=target,
            cursors=self.cursors,
            lock=self.job_lock(),
            ledger=self.ledger,
            on_progress=on_progress,
            observers=self.observers,
            dispatcher=dispatcher,
            live=self.live,
            commit_ahead=True,  # the SQL ledger takes a commit and reads at once
        )
        return dry_run_cycle(service) if dry_run else service

    def on_demand(self, job_name: str) -> OnDemand:
        job = self.config.job(job_name)
        source, target = self.directories(job)
        return OnDemand(job_spec(job), source=source, target=target, ledger=self.ledger)

    def outbox(self) -> RedisOutbox:
        return RedisOutbox(self.redis)

    def deliver_notifications(
        self,
        *,
        deadline_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> DeliveryReport:
        """Send the notifications due now (the one delivery path: the Celery task, the end of
        `tenant-sync run`); what is not sent stays queued. A notifier left out for an unset
        environment variable is named in a warning each time."""
        report_unusable_notifiers(self.config)
        if not self.config.notifications:
            return DeliveryReport()
        return deliver_due(
            self.outbox(),
            notifiers(self.config),
            clock=clock or (lambda: datetime.now(UTC)),
            deadline_s=deadline_s,
            console_url=console_url(self.config),
            secrets=notification_secrets(self.config),
        )

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self.redis.close()
        self.engine.dispose()


def open_database(config: Config, *, migrate: bool = True) -> tuple[Engine, SqlLedger]:
    engine = make_engine(config.state.database_url)
    if migrate and not schema_is_newest(config.state.database_url, lambda: engine):
        # Alembic is loaded only when there is something to migrate (a fixed cost per process).
        from worker.adapters.state.db import upgrade_database

        upgrade_database(engine)
    return engine, SqlLedger(engine)


def settle_heap() -> None:
    """Take what start-up made (modules, config, clients, the engine: alive as long as the
    process) out of the cyclic garbage collector's passes. Every full pass walked all of it and
    found nothing to free: about a sixth of a cycle's CPU (docs/performance.md, "Time per
    created user"). Call it when a process's wiring is done (objects frozen are never freed:
    so only the first call of a process freezes anything)."""
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.freeze()


_heap_settled = False


def report_unusable_notifiers(config: Config) -> None:
    """Warn of each notifier that cannot be used (an environment variable it names is unset)."""
    from worker.logging import get_logger

    for part, problems in config.unavailable_parts.items():
        if part.startswith("notifications["):
            get_logger("tenant_sync.notify").warning(
                "notifier cannot be used: its events are not sent", notifier=part, problems=problems
            )


def notifiers(config: Config) -> list[Notifier]:
    """The configured notifiers (`notifications:`), as senders."""
    built: list[Notifier] = []
    for index, n in config.indexed_notifications():
        events = frozenset(n.events)
        jobs = frozenset(n.jobs) if n.jobs is not None else None
        if isinstance(n, EmailNotification):
            target = Target(
                "email", index, f"{n.host}:{n.port}", events, jobs, f"{n.smtp_url}|{n.to}"
            )
            built.append(
                EmailNotifier(
                    target,
                    host=n.host,
                    port=n.port,
                    security=n.security,
                    sender=n.sender,
                    to=n.to,
                    user=n.user,
                    password=n.password.get_secret_value() if n.password else None,
                    ca_bundle=n.ca_bundle,
                )
            )
            continue
        url = n.url.get_secret_value()
        target = Target(n.kind, index, n.host, events, jobs, url)
        sender = TeamsNotifier if isinstance(n, TeamsNotification) else WebhookNotifier
        built.append(sender(target, url, ca_bundle=n.ca_bundle))
    return built


def notification_secrets(config: Config) -> list[str]:
    """Values no notification may carry: credentials, webhook URLs (and their path and query,
    where their tokens are), passwords in the state URLs."""
    secrets: list[str] = []
    for tenant in config.tenants.values():
        if tenant.client_secret is not None:
            secrets.append(tenant.client_secret.get_secret_value())
    for n in config.notifications:
        if isinstance(n, WebhookNotification):
            url = n.url.get_secret_value()
            parts = urlsplit(url)
            secrets += [url, parts.path, parts.query]
        elif isinstance(n, EmailNotification) and n.password is not None:
            secrets.append(n.password.get_secret_value())
    for url in (config.state.redis_url, config.state.database_url):
        secrets += url_secrets(url)
    # Short fragments ("/", "x") would mask ordinary words.
    return [s for s in secrets if len(s) >= 6]


def console_url(config: Config) -> str | None:
    """The operator console's address (`api.public_url`), for links in notifications."""
    return config.api.public_url


def open_runtime(
    config: Config,
    *,
    migrate: bool = True,
    metrics: bool = False,
    notify_kick: Callable[[], None] | None = None,
) -> Runtime:
    """Connect to Redis (starting the embedded one if configured) and SQL (migrated).

    With `metrics`, cycles and Graph answers are counted for the worker's Prometheus endpoint.
    With `notifications:` configured, every cycle's events are queued in the outbox, and
    `notify_kick` (if given) asks for their delivery at once.
    """
    state = open_state(config, migrate=migrate)  # the same stores `status` opens
    runtime = Runtime(
        config=config,
        redis_url=state.redis_url,
        redis=state.redis,
        engine=state.engine,
        ledger=SqlLedger(state.engine),
        cursors=RedisCursorStore(state.redis),
        live=RedisLiveProgress(state.redis),
        audit=SqlAuditLog(state.engine),
    )
    if config.notifications:
        runtime.observers.append(
            NotificationObserver(
                runtime.outbox(),
                notifiers(config),
                secrets=notification_secrets(config),
                kick=notify_kick,
            )
        )
    if metrics:
        from worker import metrics as prometheus

        runtime.observers.append(prometheus.PrometheusObserver())
        runtime.graph_hook = lambda name: prometheus.graph_observer(name)
        for name, tenant in config.tenants.items():
            limits = tenant.limits
            prometheus.set_quota(name, limits.pace * limits.write_per_150s / 150.0)
    return runtime
