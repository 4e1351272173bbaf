"""The `tenant-sync` command line (also `python -m worker`), per docs/contracts.md (section 2).

Exit codes: 0 success, 1 a cycle or check failed, 2 bad input (config, arguments, expression).
`--json` prints machine-readable output on stdout; logs go to stderr.
"""

from __future__ import annotations

import errno
import gc
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text  # loaded by rich.console anyway
from typer.core import TyperGroup

from worker.config import (
    CONFIG_ENV,
    GUID_RE,
    Config,
    ConfigError,
    config_path,
    load_config,
    notifier_label,
)

HELP = (
    "Cross-tenant synchronization of Microsoft Entra ID users, self-hosted.\n\n"
    "Every command reads the configuration file given by --config (default "
    "config/tenant-sync.yaml, or the TENANT_SYNC_CONFIG environment variable). "
    "Exit codes: 0 success, 1 a cycle or check failed, 2 bad input. "
    "Operator commands (run, trigger, provision, pause, resume, allow-deletes, restart) are "
    "recorded in the audit trail with the OS user who ran them: see `tenant-sync audit`."
)


class _Commands(TyperGroup):
    """The command group; a reader that closes the pipe (`tenant-sync run J | head`) is not an
    error: the command's work is done, so it ends quietly with exit 0."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # Whatever is still buffered goes nowhere, rather than failing again at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise typer.Exit(0) from None


app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
db_app = typer.Typer(help="The state database.")
redis_app = typer.Typer(help="The embedded Redis server (redis_url: embedded).")
app.add_typer(db_app, name="db")
app.add_typer(redis_app, name="redis")

# Piped or captured output has no terminal width to respect: rich's 80 columns would cut the
# tables' ids and names short, so give them room unless COLUMNS says otherwise.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200


class _Output(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1; a closed pipe ends the command quietly (see _Commands).
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")


out = _Output(highlight=False, soft_wrap=True, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = typer.Option(
    None,
    "--config",
    help="Configuration file (default: config/tenant-sync.yaml, or $TENANT_SYNC_CONFIG).",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
# Every command takes --config (docs/contracts.md, section 2); these do not need one.
UnusedConfigOption = typer.Option(
    None, "--config", help="Accepted like everywhere; this command reads no configuration."
)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"tenant-sync: {message}", markup=False)
    raise typer.Exit(code)


def report(as_json: bool, data: dict[str, Any], text: str) -> None:
    """A command's result: `data` as JSON with --json, else `text` for people."""
    if as_json:
        emit_json(data)
    else:
        out.print(text, markup=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")
    sys.stdout.flush()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", envvar=CONFIG_ENV, help="Configuration file.", show_default=False
    ),
) -> None:
    ctx.obj = {"config": config}


OnFailure = Callable[[str], None] | None

# Set by a command that only reads and prints, so has nothing to clean up at exit: the launcher
# (worker/__main__.py) then ends the process without Python's teardown (docs/performance.md).
quick_exit = False


def _quick_exit() -> None:
    global quick_exit
    quick_exit = True


def _json_error(as_json: bool, **fields: Any) -> OnFailure:
    """For a `--json` command: print `{**fields, "error": message}` when it fails before its
    result (a bad configuration, a refused job, a state store that cannot be used)."""
    if not as_json:
        return None
    return lambda message: emit_json({**fields, "error": message})


_PYDANTIC_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"


@contextmanager
def _without_pydantic_plugins() -> Iterator[None]:
    """Pydantic looks for plugins (every installed package's entry points) when it first builds
    a model's validator; the configuration's models need none, and the search cost `validate`
    and `status` some 20 ms of CPU (docs/performance.md, "CLI start-up"). Pydantic's own
    switch, set only while the CLI, before any thread starts, loads the configuration."""
    previous = os.environ.get(_PYDANTIC_PLUGINS)
    os.environ[_PYDANTIC_PLUGINS] = "__all__"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[_PYDANTIC_PLUGINS]
        else:
            os.environ[_PYDANTIC_PLUGINS] = previous


def _config(
    ctx: typer.Context, explicit: Path | None, on_failure: OnFailure = None, *, logs: bool = True
) -> Config:
    """The configuration, or the command ends (exit 2) naming its problems. With `logs`, the
    logging it asks for is set up; `status` logs nothing and saves structlog's import."""
    chosen = explicit or (ctx.obj or {}).get("config")
    try:
        with _without_pydantic_plugins():
            config = load_config(config_path(chosen))
    except ConfigError as exc:
        if on_failure is not None:
            on_failure("the configuration has problems: " + "; ".join(exc.problems))
        err.print("tenant-sync: the configuration has problems:", markup=False)
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False)
        raise typer.Exit(2) from None
    if not logs:
        return config
    from worker.logging import configure_logging  # structlog: not for `validate`

    configure_logging(config.logging.format, config.logging.level)
    return config


def _job(config: Config, name: str, *, graph: bool = False, on_failure: OnFailure = None) -> None:
    """End the command (exit 2) if JOB is unknown, or, for a command that talks to Graph
    (`graph`), if a tenant it uses is unusable (an environment variable unset); reading and
    changing the job's state needs neither tenant. `on_failure` is told the line first."""
    message = None
    if name not in config.jobs:
        known = ", ".join(sorted(config.jobs)) or "none"
        message = f"unknown job {name!r} (known jobs: {known})"
    elif graph:
        try:
            config.job(name)
        except ConfigError as exc:
            message = "; ".join(exc.problems)
    if message is not None:
        _refuse(message, 2, on_failure)


def _refuse(message: str, code: int = 2, on_failure: OnFailure = None) -> NoReturn:
    """End the command with one line and `code`; `on_failure` is told the line first (e.g. to
    print `--json`'s object)."""
    if on_failure is not None:
        on_failure(message)
    fail(message, code)


def _sqlite_writable(config: Config, on_failure: OnFailure) -> None:
    """End the command if the SQLite file cannot be created or written (before anything tries)."""
    from worker.state_errors import check_sqlite

    problem = check_sqlite(config)
    if problem is not None:
        _refuse(problem.message, problem.code, on_failure)


def _state_failed(
    config: Config, exc: BaseException, on_failure: Callable[[str], None] | None = None
) -> None:
    """End the command with one line if `exc` is a failure of Redis or the SQL database."""
    from worker.state_errors import describe

    problem = describe(config, exc)
    if problem is not None:
        _refuse(problem.message, problem.code, on_failure)


@contextmanager
def _loading_modules() -> Iterator[None]:
    """For the imports a command makes (redis-py's for `status`): what modules make lives as
    long as the process, so no cyclic collection walks it while they load nor after (frozen), as
    the launcher does for the CLI's own (worker/__main__.py, docs/performance.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def _runtime(
    config: Config,
    *,
    on_failure: Callable[[str], None] | None = None,
    read_only: bool = False,
) -> Iterator[Any]:
    """The state adapters, checked before use: the SQLite file can be made, Redis answers.

    Redis and SQL failures, when opening or later, end the command with one line naming the
    setting (exit 1 unreachable, 2 a setting that cannot work); `on_failure` is told the line
    first (e.g. to print `run --json`'s object). `read_only` opens the state alone
    (worker.state_view), without the Graph clients and services: a much faster start.
    """
    from worker.domain.errors import StopSync

    open_runtime: Callable[[Config], Any]
    with _loading_modules():
        if read_only:
            from worker.state_view import open_state_view as open_runtime
        else:
            from worker.bootstrap import open_runtime

    _sqlite_writable(config, on_failure)
    try:
        runtime = open_runtime(config)
    except StopSync as exc:
        _refuse(str(exc), 1, on_failure)
    except Exception as exc:
        _state_failed(config, exc, on_failure)
        if isinstance(exc, OSError):
            _refuse(f"state.state_dir ({config.state.state_dir}): {exc}", 1, on_failure)
        raise
    try:
        try:
            runtime.redis.ping()  # a cheap check now, rather than a failure half-way through
        except Exception as exc:
            _state_failed(config, exc, on_failure)
            raise
        if not read_only:
            from worker.bootstrap import settle_heap

            settle_heap()  # a command's process opens one runtime: its wiring is done
        yield runtime
    except Exception as exc:
        _state_failed(config, exc, on_failure)
        raise
    finally:
        runtime.close()


@contextmanager
def _database(
    config: Config, *, migrate: bool = True, on_failure: OnFailure = None
) -> Iterator[Any]:
    """The state database alone (engine, ledger), with `_runtime`'s checks and messages."""
    from worker.bootstrap import open_database

    _sqlite_writable(config, on_failure)
    try:
        engine, ledger = open_database(config, migrate=migrate)
    except Exception as exc:
        _state_failed(config, exc, on_failure)
        raise
    try:
        yield engine, ledger
    except Exception as exc:
        _state_failed(config, exc, on_failure)
        raise
    finally:
        engine.dispose()


@contextmanager
def _audited(
    runtime: Any,
    action: str,
    job: str,
    detail: dict[str, Any] | None = None,
    *,
    report_anyway: bool = False,
    **options: Any,
) -> Iterator[Any]:
    """Run an operator command's action under the audit trail, as the OS user via the CLI
    (see worker.service.audit.audited); an entry that cannot be written fails the command, or,
    with `report_anyway` (a cycle, whose summary must still be printed), is a warning."""
    from worker.domain.audit import AuditNotRecorded
    from worker.service.audit import audited, os_actor

    try:
        with audited(
            runtime.audit, os_actor(), action, job, detail=detail or {}, **options
        ) as entry:
            yield entry
    except AuditNotRecorded as exc:
        if not report_anyway:
            fail(str(exc), 1)
        err.print(f"tenant-sync: warning: {exc}", markup=False)


# validate ---------------------------------------------------------------------------------------
@app.command()
def validate(
    ctx: typer.Context, config: Path | None = ConfigOption, as_json: bool = JsonOption
) -> None:
    """Load and check the configuration; list every problem (exit 2) or summarise it: the
    jobs, those an organization: section makes marked [org] (--json: origin, organization)."""
    _quick_exit()
    chosen = config or (ctx.obj or {}).get("config")
    path = config_path(chosen)
    try:
        with _without_pydantic_plugins():
            loaded = load_config(path, strict=True)
    except ConfigError as exc:
        if as_json:
            emit_json({"valid": False, "config": str(path), "problems": exc.problems})
        else:
            err.print(f"tenant-sync: {path} has problems:", markup=False)
            for problem in exc.problems:
                err.print(f"  {problem}", markup=False)
        raise typer.Exit(2) from None
    summary: dict[str, Any] = {
        "valid": True,
        "config": str(path),
        "tenants": sorted(loaded.tenants),
        "jobs": {
            name: {
                "source": job.source,
                "target": job.target,
                "interval": job.runtime.interval.total_seconds(),
                "scope": job.runtime.scope_users,
                "mappings": len(job.mappings),
                "manager": job.spec.manager,
                "origin": job.origin,
            }
            for name, job in loaded.jobs.items()
        },
        "organization": _organization_summary(loaded),
    }
    notifiers: list[dict[str, Any]] = [
        {
            "name": notifier_label(index, n),
            "events": [e.value for e in n.events],
            "jobs": n.jobs,
        }
        for index, n in loaded.indexed_notifications()
    ]
    summary["notifications"] = notifiers
    if as_json:
        emit_json(summary)
        return
    out.print(
        f"{path}: valid — {_plural(len(loaded.tenants), 'tenant')}, "
        f"{_plural(len(loaded.jobs), 'job')}",
        markup=False,
    )
    org = summary["organization"]
    if org is not None:
        shape = org["topology"] + (
            f" around {org['hub']} ({org['direction']})" if org["hub"] else ""
        )
        out.print(
            f"  organization: {shape} of {len(org['tenants'])} tenants, "
            f"{_plural(len(org['jobs']), 'job')} (marked [org])",
            markup=False,
        )
    for name, job in loaded.jobs.items():
        out.print(
            f"  {name}: {job.source} → {job.target}, every "
            f"{_duration(job.runtime.interval.total_seconds())}, scope {job.runtime.scope_users}, "
            f"{len(job.mappings)} mappings"
            + (" + the manager reference" if job.spec.manager else "")
            + (" [org]" if job.origin == "organization" else ""),
            markup=False,
        )
    for notifier in notifiers:
        jobs = f" (jobs: {', '.join(notifier['jobs'] or [])})" if notifier["jobs"] else ""
        out.print(
            f"  notify {notifier['name']}: {', '.join(notifier['events'] or [])}{jobs}",
            markup=False,
        )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    from datetime import timedelta

    from worker.config import format_duration

    return format_duration(timedelta(seconds=seconds))


# run --------------------------------------------------------------------------------------------
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


def _short(value: Any, width: int = 30) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
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


@app.command()
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


def _organization_summary(loaded: Config) -> dict[str, Any] | None:
    """The `organization:` section as `validate --json` shows it, with the jobs it made."""
    org = loaded.organization
    if org is None:
        return None
    return {
        "tenants": list(org.tenants),
        "topology": org.topology,
        "hub": org.hub,
        "direction": org.direction,
        "jobs": [n for n in org.job_names() if n in loaded.jobs],
    }


# status and logs --------------------------------------------------------------------------------
@app.command()
def status(
    ctx: typer.Context,
    job: str | None = typer.Argument(None, help="One job (default: all)."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Show each job's status (shaped like Graph's synchronizationStatus), with the deletions
    counted against its threshold in the deletion window and the groups it provisioned; jobs
    grouped by source tenant, then target ([org]: made by the organization: section; --json adds
    source, target, origin)."""
    from worker.service.status import grouped_by_pair, job_status, with_pair

    _quick_exit()
    failed = _json_error(as_json, job=job)
    cfg = _config(ctx, config, failed, logs=False)  # reads only: nothing to log
    names = [job] if job else sorted(cfg.jobs)
    if job:
        _job(cfg, job, on_failure=failed)
    with _runtime(cfg, on_failure=failed, read_only=True) as runtime:
        lock = runtime.job_lock()
        statuses = grouped_by_pair(
            [
                with_pair(
                    job_status(
                        n,
                        runtime.ledger,
                        runtime.cursors.load(n),
                        running=lock.is_held(n),
                        live=runtime.live.load(n),
                        threshold=cfg.jobs[n].spec.deletion_threshold,
                    ),
                    cfg.jobs[n].source,
                    cfg.jobs[n].target,
                    cfg.jobs[n].origin,
                )
                for n in names
            ]
        )
    for s in statuses:
        # A job whose tenant is unusable shows why it will not run (its state is still there).
        blockers = cfg.blockers(s["job"])
        s["error"] = {"message": "; ".join(blockers)} if blockers else None
    if as_json:
        emit_json(statuses[0] if job else statuses)
        return
    from rich.table import Table

    table = Table()
    columns = ("job", "source → target", "code", "running", "last cycle", "state", "exported")
    for column in (*columns, "failed", "linked", "deletions (window)"):
        table.add_column(column)
    for index, s in enumerate(statuses):
        last = s["lastExecution"] or {}
        if index and s["source"] != statuses[index - 1]["source"]:
            table.add_section()  # one section per source tenant
        table.add_row(
            Text(s["job"] + (" [org]" if s["origin"] == "organization" else "")),
            f"{s['source']} → {s['target']}",
            s["code"],
            "yes" if s["running"] else "no",
            f"{last.get('mode', '')} {(last.get('timeEnded') or '')[:19]}".strip() or "never",
            last.get("state", "-"),
            str(last.get("countExported", "-")),
            str(last.get("countFailed", "-")),
            str(s["linkedUsers"]),
            _deletion_cell(s["deletionThreshold"])
            + (" (allowed: next cycle)" if s.get("allowDeletes") else ""),
        )
    out.print(table)
    for s in statuses:
        if s["error"]:
            out.print(f"{s['job']}: {s['error']['message']}", markup=False)
        if s.get("allowDeletes"):
            # An approval waiting is a safety fact: said in full, not only in a table cell.
            out.print(
                f"{s['job']}: allow-deletes pending: the next cycle makes its deletions "
                f"({s['stagedDeletes']} held now) whatever the threshold, then the approval lapses",
                markup=False,
            )
        groups = s["groups"]
        if groups["provisioned"] or groups["skipped"]:
            # Provisioned groups (docs/groups.md), and each one skipped with its reason.
            out.print(f"{s['job']}: {groups['provisioned']} group(s) provisioned", markup=False)
            for skip in groups["skipped"]:
                out.print(f"  skipped {skip['displayName']}: {skip['reason']}", markup=False)


def _deletion_cell(window: dict[str, Any]) -> str:
    """`3 made + 16 held / 10 in 24h`: the deletions counted against the threshold."""
    from datetime import timedelta

    from worker.config import format_duration

    limits = []
    if window["count"] is not None:
        limits.append(str(window["count"]))
    if window["percent"] is not None:
        limits.append(f"{window['percent']:g}% of {window['linkedAtWindowStart']}")
    length = format_duration(timedelta(seconds=window["windowSeconds"]))
    cell = f"{window['deletionsInWindow']} made + {window['staged']} held"
    return f"{cell} / {' or '.join(limits) or 'no limit'} in {length}"


LOGS_DEFAULT_LIMIT = 100


@app.command()
def logs(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job whose provisioning log to show."),
    run_id: str | None = typer.Option(None, "--run", help="Only this cycle."),
    user: str | None = typer.Option(
        None,
        "--user",
        help="Only this object: a user's source or target id, UPN or mail; a group's id or name.",
    ),
    action: str | None = typer.Option(
        None,
        "--action",
        help="create, update, delete, disable, restore, stagedDelete, skip or other.",
    ),
    status_: str | None = typer.Option(
        None, "--status", help="success, failure, skipped, warning."
    ),
    since: str | None = typer.Option(
        None, "--since", help="From this time (ISO 8601) or this long ago (e.g. 2h, 7d)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Before this time (ISO 8601) or this long ago."
    ),
    fmt: str = typer.Option("table", "--format", help="table, json or csv."),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=1,
        help="At most this many rows, the newest (default 100; not with --all).",
        show_default=False,
    ),
    every: bool = typer.Option(False, "--all", help="Every matching row, however many."),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Show the provisioning log of JOB, newest first: one row per object per cycle; the
    newest 100 rows unless --limit or --all says otherwise (filters apply before the limit)."""
    if fmt not in ("table", "json", "csv"):
        fail(f"--format must be table, json or csv, not {fmt!r}")
    if as_json:
        if fmt == "csv":
            fail("--json and --format csv ask for different formats; give one")
        fmt = "json"
    if every and limit is not None:
        fail("--limit and --all ask for different row counts; give one")
    shown = limit or LOGS_DEFAULT_LIMIT
    if run_id is not None and not GUID_RE.match(run_id):
        fail(f"--run must be a cycle id (a GUID, as `run` and `status` print), not {run_id!r}")
    from worker.domain.model import Action, Status

    try:
        action = Action.from_text(action).value if action else None
        status_ = Status.from_text(status_).value if status_ else None
    except ValueError as exc:
        fail(f"--action/--status: {exc}")
    start, end = _moment(since, "--since"), _moment(until, "--until")
    failed = _json_error(fmt == "json", job=job)
    cfg = _config(ctx, config, failed)
    _job(cfg, job, on_failure=failed)
    with _database(cfg, on_failure=failed) as (_engine, ledger):
        rows = ledger.logs(
            job,
            run_id=run_id,
            user=user,
            action=action,
            status=status_,
            since=start,
            until=end,
            # One more than shown, to tell whether there were more.
            limit=None if every else shown + 1,
            newest_first=True,
        )
    more = not every and len(rows) > shown
    if more:
        rows = rows[:shown]
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        from worker.service.logexport import logs_csv

        sys.stdout.write(logs_csv(rows))
    else:
        from rich.table import Table

        table = Table()
        for column in ("time", "object", "action", "status", "detail"):
            table.add_column(column)
        for row in rows:
            changed = ", ".join(
                f"{k}: {_short(v['old'])} → {_short(v['new'])}"
                for k, v in row["modifiedProperties"].items()
            )
            table.add_row(
                row["activityDateTime"][:19],
                _object_label(
                    row["sourceIdentity"] or row["sourceId"], row.get("objectType") == "Group"
                ),
                row["action"],
                row["status"],
                # A warning's reason (a held rename, members left out) beside what changed.
                f"{changed} — {row['reason']}"
                if changed and row["reason"] and row["status"] == "warning"
                else changed or row["reason"],
            )
        out.print(table)
        if more:
            out.print(f"showing the newest {shown} rows; --all for every one", markup=False)


def _object_label(identity: str, group: bool) -> str:
    """A log row's object as a table shows it: a user by its identity, a group marked so."""
    return f"{identity} (group)" if group else identity


def _moment(value: str | None, option: str) -> Any:
    """A point in time from ISO 8601 (UTC unless it says otherwise) or a duration ago."""
    from datetime import UTC, datetime

    from worker.config import parse_duration

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(value)
        except ValueError:
            fail(f"{option} must be an ISO 8601 time or a duration such as 2h or 7d, not {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# audit trail ------------------------------------------------------------------------------------
AUDIT_PAGE = 500


@app.command()
def audit(
    ctx: typer.Context,
    job: str | None = typer.Argument(None, help="One job (default: every job)."),
    limit: int = typer.Option(100, "--limit", help="At most this many entries, newest first."),
    every: bool = typer.Option(False, "--all", help="Every entry, however many."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the audit trail: who did which operator action (run, trigger, provision, pause,
    resume, allow-deletes, restart; from the CLI, the API or the console) to which job, when,
    and how it ended (success, failure, refused); newest first."""
    from worker.adapters.state.audit import SqlAuditLog
    from worker.domain.errors import SyncError

    if limit < 1:
        fail(f"--limit must be at least 1, not {limit}")
    failed = _json_error(as_json, job=job)
    cfg = _config(ctx, config, failed)
    if job is not None:
        _job(cfg, job, on_failure=failed)
    with _database(cfg, on_failure=failed) as (engine, _ledger):
        try:
            trail = SqlAuditLog(engine)
            entries = trail.entries(job, limit=AUDIT_PAGE if every else limit)
            while every and entries and len(entries) % AUDIT_PAGE == 0:
                more = trail.entries(job, limit=AUDIT_PAGE, before_id=entries[-1].id)
                if not more:
                    break
                entries.extend(more)
        except SyncError as exc:
            _state_failed(cfg, exc, failed)
            if failed is not None:
                failed(str(exc))
            fail(str(exc), 1)
    if as_json:
        emit_json([entry.as_row() for entry in entries])
        return
    if not entries:
        out.print(f"no audit entries{f' for {job}' if job else ''}", markup=False)
        return
    from rich.table import Table

    table = Table()
    # Times, actions and job names whole; who and the detail wrap (never cut short).
    for column in ("when (UTC)", "who", "via", "action", "job", "result", "detail"):
        wraps = column in ("who", "detail")
        table.add_column(column, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    for entry in entries:
        detail = ", ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v)}"
            for k, v in entry.detail.items()
            if v is not None
        )
        if entry.message:
            detail = f"{detail} — {entry.message}" if detail else entry.message
        # Text, not markup: names and messages are whatever people and errors wrote.
        table.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(f"{entry.actor.name} ({entry.actor.kind.value})"),
            entry.actor.via.value,
            entry.action,
            entry.job or "-",
            entry.result.value,
            Text(detail),
        )
    out.print(table)


# expressions ------------------------------------------------------------------------------------
@app.command()
def expr(
    expression: str = typer.Argument(..., help="An Entra mapping expression."),
    attrs: str = typer.Option("{}", "--attrs", help="Source attributes as a JSON object."),
    config: Path | None = UnusedConfigOption,
) -> None:
    """Evaluate a mapping EXPRESSION against --attrs; print {"value": ...} or {"ignored": true}.

    --attrs may be as Graph answers (onPremisesExtensionAttributes nested): a cycle reads the
    extension attributes as extensionAttribute1..15, and so does this."""
    from worker.domain import expressions
    from worker.domain import extension_attributes as ext
    from worker.domain.mapping import EvaluationContext

    try:
        attributes = json.loads(attrs)
    except json.JSONDecodeError as exc:
        fail(f"--attrs is not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(attributes, dict):
        fail("--attrs must be a JSON object of attribute names to values")
    try:
        parsed = expressions.parse(ext.canonical_expression(expression))
    except expressions.ExpressionError as exc:
        fail(f"invalid expression: {exc}")
    try:
        result = parsed.evaluate(ext.flatten(attributes), EvaluationContext())
    except expressions.ExpressionError as exc:
        # A valid expression that fails on these values, as IIF does on a null source: in a
        # cycle this is a per-user failure, not a bad config, so say which one it is.
        fail(f"the expression fails on these attributes: {exc}")
    emit_json(expressions.to_cli_json(result))


# serve, database -------------------------------------------------------------------------------
@app.command()
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: api.host)."),
    port: int | None = typer.Option(None, "--port", help="Port (default: api.port, 8080)."),
    config: Path | None = ConfigOption,
) -> None:
    """Run the operator service: web console, Graph-shaped HTTP API and /healthz, until
    SIGTERM/SIGINT. Needs a way in: api.auth.tokens, or api.auth.tenant + audience."""
    from worker.api.server import BindError, bind
    from worker.api.server import serve as run_server

    cfg = _config(ctx, config)
    if "api" in cfg.unavailable_parts:
        fail("serve cannot start: " + "; ".join(cfg.unavailable_parts["api"]))
    if not cfg.api.auth.configured:
        fail(
            "api.auth: no way in is configured: add api.auth.tokens (static tokens) or "
            "api.auth.tenant and api.auth.audience (Entra ID); see README, Operator service"
        )
    chosen_host = host or cfg.api.host
    chosen_port = cfg.api.port if port is None else port
    if not 0 <= chosen_port <= 65535:
        fail(f"--port must be 0 to 65535, not {chosen_port}")
    with _runtime(cfg) as runtime:
        try:
            sock = bind(chosen_host, chosen_port)
        except BindError as exc:
            fail(str(exc), 1)
        where = sock.getsockname()
        err.print(
            f"tenant-sync serve listening on http://{where[0]}:{where[1]}"
            f" (console /, API /v1.0, OpenAPI /api/openapi.json)",
            markup=False,
        )
        run_server(cfg, runtime, sock)


@db_app.command("purge-logs")
def db_purge_logs(
    ctx: typer.Context,
    older_than: str | None = typer.Option(
        None, "--older-than", help="Default: state.log_retention (30d)."
    ),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Forget provisioning-log rows older than the retention (the beat does it daily)."""
    from datetime import UTC, datetime

    from worker.config import parse_duration

    cfg = _config(ctx, config, _json_error(as_json))
    try:
        kept = parse_duration(older_than) if older_than else cfg.state.log_retention
    except ValueError as exc:
        fail(f"--older-than: {exc}")
    before = datetime.now(UTC) - kept
    with _database(cfg, on_failure=_json_error(as_json)) as (_engine, ledger):
        removed = ledger.purge_logs(before)
    report(
        as_json,
        {"removed": removed, "before": before.isoformat()},
        f"removed {removed} provisioning-log rows from before {before:%Y-%m-%d %H:%M} UTC",
    )


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context, config: Path | None = ConfigOption, as_json: bool = JsonOption
) -> None:
    """Apply the database migrations (Alembic) up to the newest."""
    from worker.adapters.state.db import upgrade_database

    failed = _json_error(as_json)
    cfg = _config(ctx, config, failed)
    with _database(cfg, migrate=False, on_failure=failed) as (engine, _ledger):
        before, after = upgrade_database(engine)
    report(
        as_json,
        {"before": before, "revision": after, "upgraded": before != after},
        f"database is up to date (revision {after})"
        if before == after
        else f"database upgraded: {before or 'empty'} → {after}",
    )


def _embedded(ctx: typer.Context, config: Path | None) -> Any:
    from worker.adapters.state.embedded_redis import EmbeddedRedis

    cfg = _config(ctx, config)
    if cfg.state.redis_url != "embedded":
        fail(f"redis_url is {cfg.state.redis_url!r}, not 'embedded': nothing to manage here")
    return EmbeddedRedis(Path(cfg.state.state_dir))


@redis_app.command("status")
def redis_status(
    ctx: typer.Context, config: Path | None = ConfigOption, as_json: bool = JsonOption
) -> None:
    """Say whether the embedded server runs, and where."""
    server = _embedded(ctx, config)
    url = server.running_url()
    report(
        as_json,
        {"running": url is not None, "url": url, "dir": str(server.dir)},
        f"running at {url} ({server.dir})" if url else f"not running ({server.dir})",
    )


@redis_app.command("stop")
def redis_stop(
    ctx: typer.Context, config: Path | None = ConfigOption, as_json: bool = JsonOption
) -> None:
    """Stop the embedded server (it saves first); the next command that needs it restarts it."""
    server = _embedded(ctx, config)
    stopped = server.stop()
    report(as_json, {"stopped": stopped}, "stopped" if stopped else "was not running")


@app.command()
def provision(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job."),
    source_user_id: str = typer.Argument(
        ...,
        metavar="USER",
        help="The source user: object id, UPN or mail; or a group of scope.groups (object id "
        "or displayName) when the job has groups.provision: true.",
    ),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Provision one source user now, synchronously, and print each step (works while paused).
    USER is the source user's object id, UPN or mail (an unknown or ambiguous one: exit 2).
    With groups.provision: true it may name a group of scope.groups instead (its object id or
    displayName): the group is created or updated and its members set to the linked users of
    its members; members not provisioned yet are reported, not created. A group not in
    scope.groups: exit 2."""
    from worker.domain.errors import SyncError
    from worker.service.ondemand import GroupRefused, UnknownSourceUser

    if not source_user_id.strip():
        fail("USER must be the source user's object id, UPN or mail")
    failed = _json_error(as_json, job=job)
    cfg = _config(ctx, config, failed)
    _job(cfg, job, graph=True, on_failure=failed)
    with _runtime(cfg, on_failure=failed) as runtime:
        try:
            group_id = runtime.on_demand(job).group_for(source_user_id.strip())
        except GroupRefused as exc:
            fail(str(exc))
        except SyncError as exc:
            fail(f"cannot look up {source_user_id!r} in the source tenant: {exc}", 1)
        if group_id is not None:
            _provision_group(runtime, job, group_id, as_json)
        try:
            user_id = _source_user_id(runtime, job, source_user_id.strip())
        except SyncError as exc:
            fail(f"cannot look up {source_user_id!r} in the source tenant: {exc}", 1)
        try:
            # An id that names nobody is bad input (exit 2): nothing was done, nothing recorded.
            with _audited(
                runtime, "provision", job, {"user_id": user_id}, bad_input=(UnknownSourceUser,)
            ) as entry:
                outcome = runtime.on_demand(job).provision(user_id)
                _note_outcome(entry, outcome)
        except UnknownSourceUser as exc:
            fail(str(exc))
        except SyncError as exc:
            fail(f"provisioning {source_user_id} failed: {exc}", 1)
    _print_provisioned(job, outcome, as_json)


def _note_outcome(entry: Any, outcome: Any) -> None:
    """What an on-demand provisioning did, in its audit entry (a failed export fails it)."""
    entry.note(
        action=outcome.action.value, status=outcome.status.value, target_id=outcome.target_id
    )
    if outcome.status.value == "failure":
        entry.fail(outcome.error_message or outcome.reason or "the export failed")


def _provision_group(runtime: Any, job: str, group_id: str, as_json: bool) -> NoReturn:
    """`provision JOB GROUP`: one group of scope.groups now (docs/groups.md); exits."""
    from worker.domain.errors import SyncError
    from worker.service.ondemand import GroupRefused

    try:
        with _audited(
            runtime, "provision", job, {"group_id": group_id}, bad_input=(GroupRefused,)
        ) as entry:
            result = runtime.on_demand(job).provision_group(group_id)
            outcome = result.outcome
            _note_outcome(entry, outcome)
    except GroupRefused as exc:
        fail(str(exc))
    except SyncError as exc:
        fail(f"provisioning group {group_id} failed: {exc}", 1)
    _print_provisioned(job, outcome, as_json, unlinked=result.unlinked)


def _print_provisioned(
    job: str, outcome: Any, as_json: bool, *, unlinked: list[str] | None = None
) -> NoReturn:
    """Print one on-demand provisioning's steps (or its JSON), and exit 1 when it failed."""
    group = outcome.object_type == "Group"
    if as_json:
        from worker.domain.records import outcome_record

        record = outcome_record(outcome)
        answer = {
            "job": job,
            "sourceId": record["sourceId"],
            "sourceIdentity": record["sourceIdentity"],
            "targetId": record["targetId"],
            "action": outcome.action.value,
            "status": record["status"],
            "reason": record["reason"] or None,
            "steps": record["steps"],
            "modifiedProperties": record["modifiedProperties"],
        }
        if group:
            answer |= {"objectType": "Group", "unlinkedMembers": unlinked or []}
        emit_json(answer)
    else:
        out.print(f"{outcome.source_label or outcome.source_id} ({job})", markup=False)
        for step in outcome.steps:
            mark = {"success": "✓", "skipped": "·", "warning": "!", "failure": "✗"}[
                step.status.value
            ]
            out.print(f"  {mark} {step.name:<10} {step.detail}", markup=False)
        for name, change in outcome.modified.items():
            out.print(f"      {name}: {_short(change.old)} → {_short(change.new)}", markup=False)
        out.print(
            f"result: {outcome.action.value} {outcome.status.value}"
            + (f" — {outcome.reason}" if outcome.reason else "")
            + (
                f" (target {'group' if group else 'user'} {outcome.target_id})"
                if outcome.target_id
                else ""
            ),
            markup=False,
        )
    raise typer.Exit(1 if outcome.status.value == "failure" else 0)


def _source_user_id(runtime: Any, job: str, user: str) -> str:
    """The object id of the source user named by `user` (an id, a UPN or a mail)."""
    if GUID_RE.match(user):
        return user.lower()
    source, _target = runtime.directories(runtime.config.job(job))
    wanted = user.lower()
    found = [
        u
        for u in source.search_users(user, ["id", "userPrincipalName", "mail"], limit=50)
        if wanted
        in (
            str(u.attributes.get("userPrincipalName") or "").lower(),
            str(u.attributes.get("mail") or "").lower(),
        )
    ]
    if not found:
        groups_off = "@" not in user and not runtime.config.job(job).spec.groups.enabled
        fail(
            f"no user with the UPN or mail {user!r} in the source tenant of {job}"
            + (
                f"; {job} does not provision groups (groups.provision is off), so USER names a "
                "user: its object id, UPN or mail"
                if groups_off
                else ""
            )
        )
    if len(found) > 1:
        ids = ", ".join(sorted(u.id for u in found))
        fail(f"{user!r} names {len(found)} source users ({ids}): give the object id")
    return str(found[0].id).lower()


@app.command()
def check(
    ctx: typer.Context,
    job: str | None = typer.Argument(
        None, help="The job (with --fix and no JOB: every job in the configuration)."
    ),
    config: Path | None = ConfigOption,
    fix: bool = typer.Option(
        False,
        "--fix",
        help="Write the cross-tenant access settings the job needs (automatic redemption "
        "outbound in the source, inbound in the target; user sync allowed inbound in the "
        "target) after showing them and asking; needs Policy.ReadWrite.CrossTenantAccess. "
        "See docs/onboarding.md.",
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="With --fix: write without asking (needed without a terminal)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check that JOB can work: sign-in and permissions on both sides (group permissions too
    with groups.provision), the group scope, and the partner settings (automatic redemption,
    sync allowed). Writes nothing unless --fix; exit 1 on a ✗. `check --fix` without JOB
    onboards every pair of the configuration."""
    if yes and not fix:
        fail("--yes goes with --fix (check alone writes nothing)")
    if job is None and not fix:
        fail("give JOB (or --fix without JOB for every job in the configuration)")
    cfg = _config(ctx, config, _json_error(as_json, job=job))
    if fix:
        from worker.cli_onboarding import fix_jobs

        raise typer.Exit(fix_jobs(cfg, job, yes=yes, as_json=as_json))
    assert job is not None
    _job(cfg, job, graph=True)
    checks = _job_checks(cfg, job)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        emit_json({"job": job, "ok": not failed, "checks": [_check_dict(c) for c in checks]})
    else:
        _print_checks(checks)
    raise typer.Exit(1 if failed else 0)


def _job_checks(cfg: Config, job: str) -> list[Any]:
    """`check JOB`'s checks (worker.adapters.graph.checks.Check), for a usable job."""
    from worker.onboarding_wiring import job_checks

    return list(job_checks(cfg, job))


def _check_dict(c: Any) -> dict[str, str]:
    return {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}


def _print_checks(checks: list[Any], indent: str = "") -> None:
    for c in checks:
        detail = f" — {c.detail}" if c.detail else ""
        out.print(f"{indent}{c.mark} {c.name}{detail}", markup=False)
        if c.status != "ok" and c.fix:
            out.print(f"{indent}    fix: {c.fix}", markup=False)


# job administration -----------------------------------------------------------------------------
@contextmanager
def _admin(ctx: typer.Context, config: Path | None, job: str, as_json: bool) -> Iterator[Any]:
    """The runtime for a job administration command (no Graph needed)."""
    failed = _json_error(as_json, job=job)
    cfg = _config(ctx, config, failed)
    _job(cfg, job, on_failure=failed)
    with _runtime(cfg, on_failure=failed) as runtime:
        yield runtime


@app.command()
def pause(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop JOB's cycles (scheduled and manual) until it is resumed; all state is kept."""
    from worker.service import admin

    with (
        _admin(ctx, config, job, as_json) as runtime,
        _audited(runtime, "pause", job),
    ):
        admin.pause(runtime.ledger, job)
    report(
        as_json,
        {"job": job, "paused": True},
        f"{job}: paused (a running cycle finishes first; `provision` still works)",
    )


@app.command()
def resume(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Let JOB's cycles run again, where they left off."""
    from worker.service import admin

    with (
        _admin(ctx, config, job, as_json) as runtime,
        _audited(runtime, "resume", job),
    ):
        admin.resume(runtime.ledger, job)
    report(as_json, {"job": job, "paused": False}, f"{job}: resumed")


@app.command("allow-deletes")
def allow_deletes(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Release the deletions held over JOB's threshold: its next cycle makes them, and the
    deletion window starts again after it. The approval is for that next cycle only: it lapses
    even when that cycle finds nothing held any more."""
    from worker.service import admin

    with (
        _admin(ctx, config, job, as_json) as runtime,
        _audited(runtime, "allow-deletes", job) as entry,
    ):
        admin.allow_deletes(runtime.ledger, job)
        held = admin.held_deletions(runtime.ledger, job)
        entry.note(held=held)
    report(
        as_json,
        {"job": job, "deletes_allowed": True, "held": held},
        f"{job}: the next cycle makes its deletions ({held} held now); "
        f"run it now with `tenant-sync run {job}`"
        + (
            ""
            if held
            else "\nwarning: nothing is held now: this approval applies to the next cycle only "
            "(it makes its deletions whatever the count), then lapses"
        ),
    )


@app.command()
def restart(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job."),
    scope: str = typer.Option(
        ..., "--scope", help="watermark, escrows, quarantine, full or force-deletes."
    ),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Clear part of JOB's state: watermark (next cycle full), escrows, quarantine, full (all
    three and the held deletions; links are kept) or force-deletes (as allow-deletes)."""
    from worker.ports import AlreadyRunning
    from worker.service import admin

    try:
        chosen = admin.RestartScope(scope)
    except ValueError:
        choices = ", ".join(s.value for s in admin.RestartScope)
        fail(f"--scope must be one of {choices}, not {scope!r}")
    with _admin(ctx, config, job, as_json) as runtime:
        try:
            with _audited(
                runtime, "restart", job, {"scope": chosen.value}, refused_on=(AlreadyRunning,)
            ):
                done = admin.restart(
                    runtime.ledger, runtime.cursors, runtime.job_lock(), job, chosen
                )
        except AlreadyRunning:
            fail(f"a cycle of {job} is running; restart --scope {scope} once it has finished", 1)
    report(
        as_json,
        {"job": job, "scope": chosen.value, "done": done},
        "\n".join(f"{job}: {line}" for line in done),
    )


# demo, sandbox: development tools ---------------------------------------------------------------
# They live in their own packages beside `worker` (tenant_sync_demo, tenant_sync_sandbox), which a
# development install has and the production image does not; the worker never imports them
# statically (pyproject's import contracts), so they are loaded by name.
DEV_TOOLS = "tenant_sync_demo.cli"
DEV_TOOLS_MISSING = (
    "the demo and the sandbox are development tools, not in this install "
    "(a development install has them: pip install -e '.[dev]' in a source checkout)"
)


def _dev_tool_missing() -> None:
    fail(DEV_TOOLS_MISSING)


def _add_dev_tools() -> None:
    try:
        tools = importlib.import_module(DEV_TOOLS)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in {"tenant_sync_demo", "tenant_sync_sandbox"}:
            raise  # a development tool is there but one of its own imports is broken: say so
        # Any arguments, --help included, get the same one line.
        settings = {"allow_extra_args": True, "ignore_unknown_options": True}
        for name in ("demo", "sandbox"):
            app.command(name, context_settings=settings, add_help_option=False, hidden=True)(
                _dev_tool_missing
            )
        return
    tools.register(app)


_add_dev_tools()


def main() -> None:
    app()
