"""The job administration commands: `check` (a job's checks; `--fix` is worker.cli_onboarding),
`pause`, `resume`, `allow-deletes` and `restart`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from worker.cli_common import (
    ConfigOption,
    JsonOption,
    _audited,
    _config,
    _job,
    _json_error,
    _runtime,
    emit_json,
    fail,
    out,
    report,
)
from worker.config import Config


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


@contextmanager
def _admin(ctx: typer.Context, config: Path | None, job: str, as_json: bool) -> Iterator[Any]:
    """The runtime for a job administration command (no Graph needed)."""
    failed = _json_error(as_json, job=job)
    cfg = _config(ctx, config, failed)
    _job(cfg, job, on_failure=failed)
    with _runtime(cfg, on_failure=failed) as runtime:
        yield runtime


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
