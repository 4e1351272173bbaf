"""The commands that read and print: `validate` (the configuration), `status` (each job's state),
`logs` (the sync log) and `audit` (the audit trail), with their formatting. They change nothing;
`validate` and `status` end their process without Python's teardown (cli_common.quick_exit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text  # loaded by rich.console anyway

from worker.cli_common import (
    ConfigOption,
    JsonOption,
    _config,
    _database,
    _duration,
    _job,
    _json_error,
    _object_label,
    _plural,
    _quick_exit,
    _runtime,
    _short,
    _state_failed,
    _without_pydantic_plugins,
    emit_json,
    err,
    fail,
    out,
)
from worker.config import GUID_RE, Config, ConfigError, config_path, load_config, notifier_label


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


AUDIT_PAGE = 500


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
