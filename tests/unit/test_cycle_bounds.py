"""What a cycle keeps and logs stays bounded as the directory grows (docs/performance.md)."""

from __future__ import annotations

import pytest

from tests.unit.test_cycle import World
from worker.domain.model import Status
from worker.service import feed

pytestmark = pytest.mark.unit


def test_a_full_cycle_with_nothing_to_change_logs_no_row_per_user_but_counts_them() -> None:
    w = World()
    for name in ("ann", "ben", "cyd", "dan"):
        w.user(name)
    w.source.add(userPrincipalName="out@src.onmicrosoft.com", mail="o@x.com", userType="Guest")
    first = w.run(mode="full")
    assert first.counts["create"] == 4
    logged = len(w.ledger.log)

    again = w.run(mode="full")

    assert again.counts["skip"] == 5  # the four unchanged and the guest out of scope
    added = [entry.outcome for entry in w.ledger.log[logged:]]
    # Only the skip that says something (out of scope) is logged, not the unchanged users.
    assert [(o.status, o.reason) for o in added] == [(Status.SKIPPED, added[0].reason)]
    assert added[0].reason != "RedundantExport"


def test_a_real_cycle_keeps_a_sample_of_its_outcomes_and_counts_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "SAMPLE", 3)
    w = World(page_size=2)
    names = [f"user{i}" for i in range(8)]
    for name in names:
        w.user(name)

    result = w.run(mode="full")
    preview_world = World(page_size=2)
    for name in names:
        preview_world.user(name)
    preview = preview_world.run(mode="full", dry_run=True)

    assert result.counts["create"] == 8
    assert (len(result.outcomes), result.reported_count) == (3, 8)
    # A dry run is a preview: every planned object is listed.
    assert (len(preview.outcomes), preview.reported_count) == (8, 8)
