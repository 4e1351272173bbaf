"""The `db` and `redis` sub-commands: the state database (purge-logs, upgrade) and the embedded
Redis server (status, stop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from worker.cli_common import (
    ConfigOption,
    JsonOption,
    _config,
    _database,
    _json_error,
    fail,
    report,
)

db_app = typer.Typer(help="The state database.")
redis_app = typer.Typer(help="The embedded Redis server (redis_url: embedded).")


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
