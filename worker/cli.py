"""The `tenant-sync` command line (also `python -m worker`), per docs/contracts.md (section 2).

Exit codes: 0 success, 1 a cycle or check failed, 2 bad input (config, arguments, expression).
`--json` prints machine-readable output on stdout; logs go to stderr.

This module holds the `app`, registers the commands of the modules that own them, in the order
`--help` lists them (cli_read, cli_cycle, cli_serve, cli_state, cli_provision, cli_admin; the
shared plumbing is cli_common), adds the development tools, and re-exports the names other code
imports from `worker.cli`.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from worker.cli_admin import (
    _check_dict,
    _print_checks,
    allow_deletes,
    check,
    pause,
    restart,
    resume,
)
from worker.cli_common import (
    OnFailure,
    _audited,
    _config,
    _database,
    _job,
    _json_error,
    _refuse,
    _runtime,
    emit_json,
    err,
    fail,
    out,
    report,
)
from worker.cli_cycle import print_cycle, run, trigger
from worker.cli_group import on_demand_group
from worker.cli_provision import provision
from worker.cli_read import audit, logs, status, validate
from worker.cli_serve import expr, serve
from worker.cli_state import db_app, redis_app
from worker.config import CONFIG_ENV

__all__ = [
    "OnFailure",
    "_audited",
    "_check_dict",
    "_config",
    "_database",
    "_job",
    "_json_error",
    "_print_checks",
    "_refuse",
    "_runtime",
    "app",
    "emit_json",
    "err",
    "fail",
    "main",
    "out",
    "print_cycle",
    "report",
]

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
app.add_typer(db_app, name="db")
app.add_typer(redis_app, name="redis")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", envvar=CONFIG_ENV, help="Configuration file.", show_default=False
    ),
) -> None:
    ctx.obj = {"config": config}


# The commands, in the order `--help` lists them.
app.command()(validate)
app.command()(run)
app.command()(trigger)
app.command()(status)
app.command()(logs)
app.command()(audit)
app.command()(expr)
app.command()(serve)
app.command()(provision)
app.command()(check)
app.command()(pause)
app.command()(resume)
app.command("allow-deletes")(allow_deletes)
app.command()(restart)


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
    # As `app()`, with each command built only when asked for (worker/cli_group.py). typer's
    # `app()` also installs its exception hook, which with pretty exceptions off (above) hands
    # every exception to Python's own: not needed.
    on_demand_group(app)()
