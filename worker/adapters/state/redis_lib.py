"""redis-py as the worker loads it: without OpenTelemetry.

redis-py loads OpenTelemetry's metrics SDK at import whenever it is installed (msgraph-sdk brings
it into a development install), for metrics that only an explicit `redis.observability` set-up
records, and none does here. Every module of the worker imports redis-py from here, so whichever
of them loads it first, OpenTelemetry is hidden while it loads: about 0.1 s of CPU at the start
of every command, Celery worker and server process that uses Redis (docs/performance.md, "CLI
start-up"). Hidden only then: whatever imports OpenTelemetry later gets it. Where OpenTelemetry
or redis-py is already loaded, nothing changes.
"""

from __future__ import annotations

import sys


def _load_without_telemetry() -> None:
    if "redis" in sys.modules or "opentelemetry" in sys.modules:
        return
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails: not loaded
    try:
        import redis  # noqa: F401
    finally:
        del sys.modules["opentelemetry"]


_load_without_telemetry()

import redis as redis  # noqa: E402
from redis.lock import Lock as Lock  # noqa: E402

__all__ = ["Lock", "redis"]
