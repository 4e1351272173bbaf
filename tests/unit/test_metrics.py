"""The Prometheus observer turns a cycle's result into the documented metrics."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from worker.metrics import PrometheusObserver, graph_observer, set_quota
from worker.ports import JobSnapshot

pytestmark = pytest.mark.unit


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_finished_cycle_is_counted_by_action_and_status() -> None:
    before = value(
        "tenant_sync_objects_total", job="metrics-job", action="create", status="success"
    )
    PrometheusObserver().cycle_finished(
        job="metrics-job",
        mode="full",
        status="success",
        counts={"create": 3, "skip": 5, "failure": 2, "failure.update": 2},
        duration_s=4.2,
        snapshot=JobSnapshot("metrics-job", "Quarantine", escrows=2, staged_deletes=7),
    )
    assert (
        value("tenant_sync_objects_total", job="metrics-job", action="create", status="success")
        == before + 3
    )
    assert (
        value("tenant_sync_objects_total", job="metrics-job", action="skip", status="skipped") >= 5
    )
    assert (
        value("tenant_sync_objects_total", job="metrics-job", action="update", status="failure")
        >= 2
    )
    assert (
        value(
            "tenant_sync_cycle_duration_seconds_count",
            job="metrics-job",
            mode="full",
            status="success",
        )
        >= 1
    )
    assert value("tenant_sync_escrows", job="metrics-job") == 2
    assert value("tenant_sync_staged_deletes", job="metrics-job") == 7
    assert value("tenant_sync_job_state", job="metrics-job", code="Quarantine") == 1
    assert value("tenant_sync_job_state", job="metrics-job", code="Active") == 0


def test_graph_answers_and_quota_per_tenant() -> None:
    observe = graph_observer("fabrikam-metrics")
    observe("PATCH", 204)
    observe("POST", 429)
    observe("POST", 429)
    assert (
        value(
            "tenant_sync_graph_responses_total",
            tenant="fabrikam-metrics",
            method="POST",
            status="429",
        )
        == 2
    )
    set_quota("fabrikam-metrics", 19.0)
    assert value("tenant_sync_write_quota_per_second", tenant="fabrikam-metrics") == 19.0
