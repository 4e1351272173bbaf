"""Prometheus metrics of the worker, served on `metrics.port` by the Celery worker.

Objects processed by action and status, cycle durations, Graph answers per tenant (writes, 429s,
errors), the write quota in use, escrow size, held deletions and each job's state. Celery's
worker processes are separate processes, so the values live in prometheus_client's
multiprocess directory (PROMETHEUS_MULTIPROC_DIR, set before this module is imported).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from worker.domain.model import COUNT_KEYS
from worker.ports import JobSnapshot

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = structlog.get_logger("tenant_sync.metrics")
JOB_CODES = ("Active", "Quarantine", "Paused")

OBJECTS = Counter(
    "tenant_sync_objects_total",
    "Objects processed by cycles, by action and status",
    ["job", "action", "status"],
)
CYCLES = Histogram(
    "tenant_sync_cycle_duration_seconds",
    "How long cycles took",
    ["job", "mode", "status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
LAST_CYCLE = Gauge(
    "tenant_sync_last_cycle_timestamp_seconds",
    "When the job's last cycle ended",
    ["job", "status"],
    multiprocess_mode="mostrecent",
)
GRAPH = Counter(
    "tenant_sync_graph_responses_total",
    "Graph answers by tenant, method and HTTP status (0: no answer); $batch items one by one",
    ["tenant", "method", "status"],
)
QUOTA = Gauge(
    "tenant_sync_write_quota_per_second",
    "The writes per second the worker allows itself in the tenant (pace x quota)",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
ESCROWS = Gauge(
    "tenant_sync_escrows", "Objects waiting for a retry", ["job"], multiprocess_mode="mostrecent"
)
STAGED = Gauge(
    "tenant_sync_staged_deletes",
    "Deletions held over the threshold",
    ["job"],
    multiprocess_mode="mostrecent",
)
STATE = Gauge(
    "tenant_sync_job_state",
    "1 for the job's current state code",
    ["job", "code"],
    multiprocess_mode="mostrecent",
)


class PrometheusObserver:
    """The service's CycleObserver port, on the metrics above."""

    def cycle_finished(
        self,
        *,
        job: str,
        mode: str,
        status: str,
        counts: Mapping[str, int],
        duration_s: float,
        snapshot: JobSnapshot | None,
    ) -> None:
        for key in COUNT_KEYS:
            if key == "failure" or not counts.get(key):
                continue
            outcome = "skipped" if key == "skip" else "success"
            OBJECTS.labels(job, key, outcome).inc(counts[key])
        for key, count in counts.items():
            if key.startswith("failure.") and count:
                OBJECTS.labels(job, key.removeprefix("failure."), "failure").inc(count)
        CYCLES.labels(job, mode, status).observe(duration_s)
        LAST_CYCLE.labels(job, status).set(time.time())
        if snapshot is not None:
            ESCROWS.labels(job).set(snapshot.escrows)
            STAGED.labels(job).set(snapshot.staged_deletes)
            for code in JOB_CODES:
                STATE.labels(job, code).set(1 if snapshot.code == code else 0)


def graph_observer(tenant: str) -> Callable[[str, int], None]:
    """The GraphClient's on_response hook for one tenant."""

    def observe(method: str, status: int) -> None:
        GRAPH.labels(tenant, method, str(status)).inc()

    return observe


def set_quota(tenant: str, writes_per_second: float) -> None:
    QUOTA.labels(tenant).set(writes_per_second)


def prepare_multiprocess_dir(directory: Path) -> None:
    """Empty the directory the worker processes write their values to (before they start)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def serve(port: int, host: str = "0.0.0.0") -> bool:  # noqa: S104 - scraped from other hosts
    """Serve every worker process's values on http://host:port/metrics; False if the port is
    taken (another worker on this host serves them already, or something else does)."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics endpoint not started", port=port, reason=str(exc))
        return False
    log.info("metrics endpoint started", url=f"http://{host}:{port}/metrics")
    return True


def process_exited(pid: int) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
