"""The console's pure parts: the cycle chart, log filters, progress and next-cycle views,
where a sign-in may send the browser back to, and how times read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.api.console.charts import SERIES, cycle_chart, nice_ceiling
from worker.api.console.filters import LogFilters
from worker.api.console.formatting import ago, plain, span, when
from worker.api.console.views import next_cycle, progress_view
from worker.api.console.web import safe_next
from worker.config import build_config
from worker.ports import RunRecord

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def run(minutes_ago: int, status: str = "success", **counts: int) -> RunRecord:
    began = NOW - timedelta(minutes=minutes_ago)
    return RunRecord(
        run_id=f"00000000-0000-4000-8000-{minutes_ago:012d}",
        job="sync",
        mode="incremental",
        dry_run=False,
        trigger="schedule",
        started_at=began,
        finished_at=None if status == "running" else began + timedelta(seconds=30),
        status=status,
        counts=dict(counts),
        error="Graph said no <b>" if status == "failed" else "",
    )


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 4), (3, 4), (5, 8), (26, 32), (40, 40), (41, 60), (229, 240), (1001, 1200)],
)
def test_the_y_axis_ends_on_four_whole_steps_just_above_the_highest_bar(
    value: int, top: int
) -> None:
    assert nice_ceiling(value) == top
    assert top % 4 == 0


def test_the_chart_has_one_linked_bar_per_cycle_oldest_left() -> None:
    runs = [run(10, update=3), run(50, "failed"), run(90, create=20, skip=4), run(5, "running")]
    svg = str(cycle_chart("a&b", sorted(runs, key=lambda r: r.started_at, reverse=True)))
    bars = re.findall(r'<a href="([^"]+)" class="([^"]+)"><title>([^<]+)</title>', svg)
    assert [b[0].rsplit("=", 1)[1][-3:] for b in bars] == ["090", "050", "010", "005"]
    assert all(b[0].startswith("/jobs/a%26b/logs?cycle=") for b in bars)
    assert [b[1] for b in bars] == ["bar", "bar failed", "bar", "bar running"]
    assert "20 create" in bars[0][2]
    assert "nothing written" in bars[1][2]
    assert "Graph said no &lt;b&gt;" in bars[1][2]  # text is escaped, never markup
    assert "<b>" not in svg
    assert 'class="failed-mark"' in svg
    assert 'class="running-outline"' in svg
    assert len(re.findall(r'class="legend"', svg)) == len(SERIES)


def test_a_job_without_cycles_says_so_instead_of_an_empty_chart() -> None:
    assert "No cycle has run yet" in str(cycle_chart("sync", []))


def test_log_filters_become_the_ledgers_arguments() -> None:
    filters = LogFilters.from_query(
        {
            "user": " user1@contoso.com ",
            "action": "StagedDelete",
            "status": "skip",
            "cycle": "0B1C0000-DEAD-4000-8000-00000000BEEF",
            "since": "2026-12-06T08:00",
            "until": "2h",
        }
    )
    assert filters.ledger_arguments(now=NOW) == {
        "user": "user1@contoso.com",
        "action": "staged_delete",
        "status": "skipped",
        "run_id": "0b1c0000-dead-4000-8000-00000000beef",
        "since": datetime(2026, 12, 6, 8, 0, tzinfo=UTC),
        "until": NOW - timedelta(hours=2),
    }
    assert filters.active
    assert "page=2" in filters.query(page=2)
    assert LogFilters().query() == ""
    assert not LogFilters().active


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"action": "erase"}, "action: unknown action 'erase' (one of: create, update"),
        ({"status": "meh"}, "status: unknown status 'meh'"),
        ({"cycle": "last"}, "cycle: must be a cycle id (a GUID"),
        ({"since": "yesterday"}, "since: must be a time (ISO 8601"),
        ({"since": "1h", "until": "2h"}, "since: must be before until"),
    ],
)
def test_a_bad_filter_is_named(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LogFilters.from_query(query).ledger_arguments(now=NOW)


def status(**fields: Any) -> dict[str, Any]:
    return {"code": "Active", "running": False, "progress": None, **fields}


def test_progress_shows_only_while_a_cycle_runs_with_its_live_figures() -> None:
    progress = {
        "activityIdentifier": "r1",
        "mode": "full",
        "phase": "users",
        "usersRead": 1234,
        "counts": {"create": 40, "update": 2, "skip": 9, "failure": 1},
        "timeBegan": NOW.isoformat(),
    }
    assert progress_view(status(progress=progress)) is None  # left over, nobody runs it
    # committed pages only (no live figures): the counts stand in
    committed = progress_view(status(running=True, progress=progress))
    assert committed is not None
    assert (committed["phase"], committed["phaseIndex"], committed["exported"]) == (
        "users",
        1,
        42,
    )
    assert committed["text"] == "syncing users · 1,234 objects read · 42 written"
    assert committed["planned"] is None
    assert committed["failures"] == 1
    live = {**progress, "planned": 300, "exported": 57, "writes": 120}
    view = progress_view(status(running=True, progress=live))
    assert view is not None
    assert (view["planned"], view["exported"], view["graphWrites"]) == (300, 57, 120)
    assert view["text"] == (
        "syncing users · 1,234 objects read · 57 of 300 changes written · 120 Graph writes"
    )


def job(interval: str = "40m") -> Any:
    config = build_config(
        {
            "tenants": {
                name: {
                    "tenant_id": tid,
                    "client_id": "aaaaaaaa-0000-4000-8000-000000000001",
                    "client_secret": "s",
                }
                for name, tid in (
                    ("a", "11111111-1111-4111-8111-111111111111"),
                    ("b", "22222222-2222-4222-8222-222222222222"),
                )
            },
            "jobs": {"sync": {"source": "a", "target": "b", "schedule": {"interval": interval}}},
        },
        env={},
    )
    return config.job("sync")


def test_the_next_cycle_follows_the_schedule_quarantine_and_pause() -> None:
    last = {"timeBegan": (NOW - timedelta(minutes=100)).isoformat()}
    scheduled = next_cycle(job("40m"), status(lastExecution=last), now=NOW)
    assert scheduled.text == "every 40m"
    assert scheduled.at == NOW + timedelta(minutes=20)
    attempt = (NOW + timedelta(minutes=7)).isoformat()
    quarantined = next_cycle(
        job(), status(code="Quarantine", quarantine={"nextAttempt": attempt}), now=NOW
    )
    assert (quarantined.text, quarantined.at) == ("next attempt", NOW + timedelta(minutes=7))
    assert next_cycle(job(), status(code="Paused"), now=NOW).text == "none while paused"
    assert next_cycle(job("1h"), status(), now=NOW).text == "every 1h, at the next beat"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/jobs/sync?x=1", "/jobs/sync?x=1"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("jobs", "/"),
    ],
)
def test_after_sign_in_the_browser_only_goes_to_a_page_of_this_site(
    given: str | None, kept: str
) -> None:
    assert safe_next(given) == kept


def test_times_read_in_utc_with_how_long_ago() -> None:
    assert when("2026-12-06T08:16:38+00:00") == "2026-12-06 08:16:38 UTC"
    assert when("2026-12-06T09:16:38+01:00") == "2026-12-06 08:16:38 UTC"
    assert when(None) == "—"
    assert ago(NOW - timedelta(minutes=3), now=NOW) == "3 min ago"
    assert ago(NOW + timedelta(hours=2, minutes=5), now=NOW) == "in 2 h 5 min"
    assert span(timedelta(days=2, hours=3)) == "2 d 3 h"
    assert span(timedelta(seconds=42)) == "42 s"
    assert [plain(v) for v in (True, False, None, ["watermark", "escrows"], 3)] == [
        "yes",
        "no",
        "—",
        "watermark, escrows",
        "3",
    ]
