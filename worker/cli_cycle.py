"""The cycle commands: `run` (one cycle here, with its progress, summary and the notifications it
sends before it exits) and `trigger` (one cycle queued for the workers), and `print_cycle`, the
summary of a cycle they print."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer

from worker.cli_common import (
    ConfigOption,
    JsonOption,
    _audited,
    _config,
    _job,
    _object_label,
    _runtime,
    _short,
    emit_json,
    err,
    fail,
    out,
)


def print_cycle(result: Any, title: str | None = None, limit: int = 40) -> None:
    """A readable summary of one cycle: counts, then the objects that were written or failed."""
    from rich.table import Table  # only where a table is printed: not for `validate`

    counts = Table(title=title or f"{result.job}: {result.mode} cycle {result.run_id}")
    for key in result.summary()["counts"]:
        counts.add_column(key, justify="right")
    counts.add_row(*(str(v) for v in result.summary()["counts"].values()))
    out.print(counts)
    # A dry run is a preview: every user is shown, skipped ones with the reason (e.g. the clause).
    changed = [o for o in result.outcomes if result.dry_run or o.status.value != "skipped"]
    if result.dry_run:
        limit = len(changed)
    if changed:
        table = Table(show_lines=False)
        for column in ("object", "action", "status", "changed / reason"):
            table.add_column(column)
        for outcome in changed[:limit]:
            group = outcome.object_type == "Group"
            detail = ", ".join(
                f"{name}: {_short(c.old)} → {_short(c.new)}" for name, c in outcome.modified.items()
            )
            if outcome.action.value == "create" and outcome.status.value == "success":
                count = len(outcome.modified)
                if outcome.simulated:
                    made = "would create group" if group else "would invite"
                    detail = f"{made}; {count} attributes to write"
                else:
                    made = "created group" if group else "invited"
                    detail = f"{made}; {count} attributes written"
            if outcome.status.value == "failure" or not detail:
                detail = outcome.reason or outcome.error_message or detail
            elif outcome.status.value == "warning" and outcome.reason:
                detail = f"{detail} — {outcome.reason}"  # what is still pending (a held rename)
            table.add_row(
                _object_label(outcome.source_label or outcome.source_id, group),
                outcome.action.value,
                outcome.status.value,
                detail,
            )
        out.print(table)
        # A real cycle keeps a sample of its outcomes: the count says how many there were.
        total = len(changed) if result.dry_run else result.reported_count
        if total > limit:
            out.print(f"… and {total - limit} more (see `tenant-sync logs`)", markup=False)
    if result.deletions is not None:
        out.print(f"deletions: {result.deletions['message']}", markup=False)
    state = "dry run, nothing written" if result.dry_run else result.status
    out.print(f"{state} in {result.duration_s:.1f}s", markup=False)
    if result.error:
        out.print(f"error: {result.error}", markup=False, style="red")


def run(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job to run."),
    full: bool = typer.Option(False, "--full", help="Read everything instead of the delta."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read for real, write nothing."),
    fmt: str = typer.Option("table", "--format", help="table or json (json: same as --json)."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Run one cycle of JOB now, in this process, and print its summary (with --dry-run: every
    planned action, its modified properties, and the deletion count against the threshold).
    With notifications configured, up to 5 s go to sending those due; the workers send the rest."""
    from worker.ports import AlreadyRunning, JobPaused

    if fmt not in ("table", "json"):
        fail(f"--format must be table or json, not {fmt!r}")
    as_json = as_json or fmt == "json"
    mode = "full" if full else "auto"

    def failed(message: str) -> None:
        if as_json:
            emit_json(_unrun(job, full=full, dry_run=dry_run, status="failed", error=message))

    cfg = _config(ctx, config, failed)
    _job(cfg, job, graph=True, on_failure=failed)

    with (
        _runtime(cfg, on_failure=failed) as runtime,
        _progress(enabled=not as_json) as on_progress,
    ):
        try:
            with _audited(
                runtime,
                "run",
                job,
                {"mode": mode, "dry_run": dry_run},
                refused_on=(AlreadyRunning, JobPaused),
                report_anyway=True,
            ) as entry:
                result = runtime.cycle(job, on_progress=on_progress, dry_run=dry_run).run(
                    mode=mode, trigger="manual"
                )
                entry.note(run_id=result.run_id, cycle=result.mode, status=result.status)
                if result.status != "success":
                    entry.fail(result.error or f"the cycle ended {result.status}")
        except (AlreadyRunning, JobPaused) as exc:
            status = "already_running" if isinstance(exc, AlreadyRunning) else "paused"
            if as_json:
                emit_json(_unrun(job, full=full, dry_run=dry_run, status=status, error=str(exc)))
            else:
                err.print(f"tenant-sync: {exc}", markup=False)
            raise typer.Exit(1) from None
        notified = None if dry_run else _deliver_notifications(runtime)
    if as_json:
        data = {**result.summary(), "status": result.status, "error": result.error or None}
        if result.deletions is not None:
            data["deletions"] = result.deletions
        if notified is not None:
            data["notifications"] = notified
        if dry_run:
            data["planned"] = result.outcome_rows()
        emit_json(data)
    else:
        print_cycle(result)
        if not dry_run:
            out.print(f"logs: tenant-sync logs {job} --run {result.run_id}", markup=False)
        if notified and (notified["sent"] or notified["retrying"]):
            out.print(
                f"notifications: {notified['sent']} sent"
                + (
                    f", {notified['retrying']} not delivered yet (the Celery workers retry them)"
                    if notified["retrying"]
                    else ""
                ),
                markup=False,
            )
    raise typer.Exit(0 if result.status == "success" else 1)


def _unrun(job: str, *, full: bool, dry_run: bool, status: str, error: str) -> dict[str, Any]:
    """`run --json`'s object for a cycle that did not run: the summary's shape, every count 0,
    so scripts read it one way."""
    from worker.domain.model import empty_counts

    return {
        "job": job,
        "run_id": None,
        "mode": "full" if full else "incremental",
        "dry_run": dry_run,
        "counts": empty_counts(),
        "duration_s": 0.0,
        "status": status,
        "error": error,
    }


# How long `run` spends sending its cycle's notifications before it exits.
NOTIFY_DEADLINE_S = 5.0


def _deliver_notifications(runtime: Any) -> dict[str, int] | None:
    """A best-effort delivery of the notifications due (this cycle's among them) before `run`
    exits; what is not sent stays in the outbox for the workers. Never fails the command."""
    if not runtime.config.notifications:
        from worker.bootstrap import report_unusable_notifiers

        report_unusable_notifiers(runtime.config)  # those left out for an unset variable
        return None
    try:
        report = runtime.deliver_notifications(deadline_s=NOTIFY_DEADLINE_S)
    except Exception as exc:
        from worker.bootstrap import notification_secrets
        from worker.domain.notifications import scrub
        from worker.logging import get_logger

        get_logger("tenant_sync.notify").warning(
            "notifications could not be delivered",
            error=scrub(repr(exc), notification_secrets(runtime.config)),
        )
        return None
    counts: dict[str, int] = report.as_dict()
    return counts


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Any]:
    """A live line of counts and rate for a long cycle, on a terminal only (never with --json)."""
    if not (enabled and sys.stdout.isatty()):
        yield None
        return
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task("starting", total=None)

        def update(phase: str, counts: dict[str, int]) -> None:
            done = sum(v for k, v in counts.items() if "." not in k)
            shown = ", ".join(
                f"{k} {v}" for k, v in counts.items() if v and k != "skip" and "." not in k
            )
            rate = done / max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                description=f"{phase}: {done} users ({shown or 'nothing to write'}), {rate:.0f}/s",
            )

        yield update


def trigger(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job to run."),
    full: bool = typer.Option(False, "--full", help="Read everything instead of the delta."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Enqueue a cycle of JOB for the Celery workers and print its task id. Refused (exit 1)
    when JOB is paused, or a cycle of it is running or queued already."""
    from worker.celery_app import create_celery, enqueue_cycle

    mode = "full" if full else "auto"
    refusal: tuple[str, str] | None = None

    def failed(message: str) -> None:
        if as_json:
            emit_json({"job": job, "status": "failed", "error": message})

    cfg = _config(ctx, config, failed)
    _job(cfg, job, graph=True, on_failure=failed)

    with _runtime(cfg, on_failure=failed) as runtime:
        with _audited(runtime, "trigger", job, {"mode": mode}) as entry:
            celery = create_celery(cfg)
            if runtime.ledger.job_state(job).paused:
                # A worker would take the task and skip it: say so instead of a task id.
                refusal = (
                    "paused",
                    f"{job} is paused: no cycle runs until `tenant-sync resume {job}`",
                )
            elif runtime.job_lock().is_held(job):
                refusal = ("already_running", f"a cycle of {job} is already running")
            else:
                task_id, queued = enqueue_cycle(
                    celery, runtime.queue_guard(), cfg, job, mode=mode, trigger="manual"
                )
                if queued:
                    refusal = ("already_queued", f"a cycle of {job} is already queued: {queued}")
                else:
                    entry.note(task_id=task_id)
            if refusal:
                entry.refuse(refusal[1])
        if refusal:
            _refuse_trigger(job, *refusal, as_json)
        # Queued either way; but a cycle nobody will run soon deserves a word.
        workers = len(celery.control.ping(timeout=1.0) or [])
    if not workers:
        err.print(
            "tenant-sync: warning: no Celery worker answered; the cycle runs when one starts "
            "(celery -A worker.celery_app worker)",
            markup=False,
        )
    if as_json:
        emit_json({"job": job, "task_id": task_id, "mode": mode, "workers": workers})
    else:
        out.print(task_id, markup=False)


def _refuse_trigger(job: str, status: str, message: str, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"job": job, "status": status, "error": message})
        raise typer.Exit(1)
    fail(message, 1)
