"""The CLI's shared plumbing: what every `tenant-sync` command module uses.

The output consoles and `--json` (out, err, fail, report, emit_json, the JSON error helpers), the
common options, the configuration and job checks (_config, _job, _refuse), the state a command
opens (_runtime, _database, with one-line messages for Redis and SQL failures), the audit trail
around operator commands (_audited), the quick-exit flag the launcher reads, and the small text
formatters the commands share. Nothing heavy is imported here at module level: `status` and
`validate` start from this module (docs/performance.md, "CLI start-up").
"""

from __future__ import annotations

import errno
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from worker.config import Config, ConfigError, config_path, load_config

# Piped or captured output has no terminal width to respect: rich's 80 columns would cut the
# tables' ids and names short, so give them room unless COLUMNS says otherwise.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200


class _Output(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1; a closed pipe ends the command quietly (see worker.cli._Commands).
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


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    from datetime import timedelta

    from worker.config import format_duration

    return format_duration(timedelta(seconds=seconds))


def _short(value: Any, width: int = 30) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _object_label(identity: str, group: bool) -> str:
    """A log row's object as a table shows it: a user by its identity, a group marked so."""
    return f"{identity} (group)" if group else identity
