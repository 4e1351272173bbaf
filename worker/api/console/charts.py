"""The job page's cycle-history chart: an inline SVG drawn here, so the page needs no script.

One stacked bar per cycle, oldest on the left: what it wrote (create, update, restore, disable,
delete), what it held (staged deletions) and what failed. A bar links to that cycle's
provisioning log; its tooltip gives the numbers. A cycle that wrote nothing shows as a small
grey mark, a failed one gets a red cross, a running one a dashed outline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from markupsafe import Markup, escape

from worker.ports import RunRecord

SERIES = (
    # (count key, label, colour)
    ("create", "create", "#2f855a"),
    ("update", "update", "#2b6cb0"),
    ("restore", "restore", "#319795"),
    ("disable", "disable", "#b7791f"),
    ("delete", "delete", "#dd6b20"),
    ("staged_delete", "held deletion", "#805ad5"),
    ("failure", "failure", "#c53030"),
)
WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 34, 40
LABEL_W = 80  # room an x label ("12-06 08:27") needs


@dataclass(frozen=True)
class Bar:
    run: RunRecord
    values: tuple[int, ...]  # per SERIES

    @property
    def total(self) -> int:
        return sum(self.values)


TICKS = 4


def nice_ceiling(value: int) -> int:
    """The top of the y axis: four equal whole steps of 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times
    a power of ten, the smallest reaching `value` (26 gives 40: 0, 10, 20, 30, 40)."""
    need = max(1, value) / TICKS
    power = 10 ** math.floor(math.log10(need))
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        step = factor * power
        if step == int(step) and step * TICKS >= value:
            return int(step) * TICKS
    return int(10 * power) * TICKS  # pragma: no cover - the loop always returns


def _when(run: RunRecord) -> str:
    return run.started_at.strftime("%m-%d %H:%M")


def _tooltip(bar: Bar) -> str:
    run = bar.run
    parts = [f"{n} {label}" for (_, label, _), n in zip(SERIES, bar.values, strict=True) if n]
    return (
        f"{run.started_at:%Y-%m-%d %H:%M} UTC · {run.mode} · {run.status}"
        + (f" · {', '.join(parts)}" if parts else " · nothing written")
        + (f" · {run.error}" if run.error else "")
    )


def cycle_chart(job: str, runs: Sequence[RunRecord]) -> Markup:
    """The chart of `runs` (newest first, as the ledger lists them)."""
    bars = [
        Bar(run, tuple(int(run.counts.get(key, 0) or 0) for key, _, _ in SERIES))
        for run in reversed(runs)
    ]
    if not bars:
        return Markup('<p class="muted">No cycle has run yet.</p>')
    top = nice_ceiling(max(bar.total for bar in bars))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(bars), 12)
    bar_w = max(4.0, slot * 0.7)
    out: list[str] = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(f"Last {len(bars)} cycles of {job}: objects written per cycle")}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    # legend
    x = float(LEFT)
    for _, label, colour in SERIES:
        out.append(f'<rect x="{x:.1f}" y="8" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="17" class="legend">{escape(label)}</text>')
        x += 24 + 6.4 * len(label)
    # grid and y labels
    for i in range(TICKS + 1):
        value = top * i // TICKS
        y = TOP + plot_h - plot_h * i / TICKS
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value:,}</text>'
        )
    label_every = max(1, math.ceil(LABEL_W / slot))
    for index, bar in enumerate(bars):
        x0 = LEFT + slot * index + (slot - bar_w) / 2
        run = bar.run
        href = f"/jobs/{quote(job, safe='')}/logs?cycle={quote(run.run_id, safe='')}"
        classes = "bar" + (f" {run.status}" if run.status in ("failed", "running") else "")
        out.append(
            f'<a href="{escape(href)}" class="{classes}"><title>{escape(_tooltip(bar))}</title>'
        )
        y = float(TOP + plot_h)
        if bar.total == 0:
            out.append(
                f'<rect x="{x0:.1f}" y="{y - 2:.1f}" width="{bar_w:.1f}" height="2" class="empty"/>'
            )
        for (_, _, colour), n in zip(SERIES, bar.values, strict=True):
            if not n:
                continue
            h = max(3.0, plot_h * n / top)  # a count of one still shows
            y -= h
            out.append(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
        if run.status == "running":
            out.append(
                f'<rect x="{x0:.1f}" y="{TOP}" width="{bar_w:.1f}" height="{plot_h}" '
                f'class="running-outline"/>'
            )
        if run.status == "failed":
            cx, cy = x0 + bar_w / 2, y - 8
            out.append(
                f'<path d="M{cx - 4:.1f},{cy - 4:.1f} L{cx + 4:.1f},{cy + 4:.1f} '
                f'M{cx + 4:.1f},{cy - 4:.1f} L{cx - 4:.1f},{cy + 4:.1f}" class="failed-mark"/>'
            )
        # a transparent column over the whole slot, so thin bars are easy to hover and click
        out.append(
            f'<rect x="{LEFT + slot * index:.1f}" y="{TOP}" width="{slot:.1f}" '
            f'height="{plot_h}" class="hit"/></a>'
        )
        if index % label_every == 0:
            out.append(
                f'<text x="{x0 + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" class="axis" '
                f'text-anchor="middle">{escape(_when(run))}</text>'
            )
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        f'class="baseline"/>'
    )
    out.append(
        f'<text x="{LEFT}" y="{HEIGHT - 6}" class="axis">objects per cycle, '
        f"oldest left (UTC)</text>"
    )
    out.append("</svg>")
    # Every value that is not our own markup went through escape() above.
    return Markup("".join(out))  # noqa: S704
