"""The `tenant-sync sandbox ...` and `tenant-sync demo` commands, added to the worker's CLI.

The worker never imports this package (pyproject's import contracts): `worker.cli` loads this
module by name when it is installed (a development install, `pip install -e '.[dev]'`) and calls
`register`. The production image holds only `worker/`, so there these commands answer with one
line and exit 2. Everything heavier than typer is imported inside the commands, so loading this
module costs every other command nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

sandbox_app = typer.Typer(
    help="The Graph-compatible sandbox (emulated tenants) for demos and tests."
)
UNUSED_CONFIG = typer.Option(
    None, "--config", help="Accepted like everywhere; this command reads no configuration."
)


def register(app: typer.Typer) -> None:
    """Add `sandbox serve`, `sandbox seed` and `demo` to the `tenant-sync` command `app`."""
    app.add_typer(sandbox_app, name="sandbox")
    app.command()(demo)


@sandbox_app.command("serve")
def sandbox_serve(
    seed: Path | None = typer.Option(
        None, "--seed", help="Seed file (JSON): tenants, users, groups, apps (docs/sandbox.md)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback)."),
    port: int = typer.Option(0, "--port", help="Port (0: any free port)."),
    tls_dir: Path | None = typer.Option(
        None, "--tls-dir", help="Where the CA (ca.pem) and server certificate go."
    ),
    config: Path | None = UNUSED_CONFIG,
) -> None:
    """Serve emulated tenants over HTTPS (Entra sign-in + Graph v1.0) until SIGTERM/SIGINT."""
    from tenant_sync_sandbox.server import serve

    serve(seed, host=host, port=port, tls_dir=tls_dir)


@sandbox_app.command("seed")
def sandbox_seed(
    users: int = typer.Option(100, "--users", help="Members in the source tenant (contoso)."),
    groups: int = typer.Option(
        1, "--groups", help="Security groups; the first is 'Sync scope', the config's scope."
    ),
    nested: int = typer.Option(
        0, "--nested", help="Depth of a chain of groups nested under 'Sync scope'."
    ),
    guests: int = typer.Option(0, "--guests", help="B2B guests in the source tenant."),
    m365_groups: int = typer.Option(0, "--m365-groups", help="Microsoft 365 groups."),
    dynamic_groups: int = typer.Option(
        0, "--dynamic-groups", help="Dynamic groups (a membership rule per department)."
    ),
    unicode: bool = typer.Option(
        False, "--unicode", help="Names with accents, other scripts, apostrophes and hyphens."
    ),
    managers: bool = typer.Option(
        True, "--managers/--no-managers", help="A manager tree (five reports per manager)."
    ),
    random_seed: int = typer.Option(
        1, "--random-seed", help="The same options and number give the same file."
    ),
    tenants: int = typer.Option(
        2,
        "--tenants",
        help="Tenants, for an organization: (2 to 100): contoso, fabrikam, then adatum, "
        "northwind, ... with a tenth of --users members each; all partners of each other.",
    ),
    out_path: Path | None = typer.Option(
        None, "--out", help="Where to write the seed (JSON); default: standard output."
    ),
    config: Path | None = UNUSED_CONFIG,
) -> None:
    """Write a seed file of the shape asked for (docs/sandbox-seed.md): a source tenant with
    users, guests, groups and managers, and a target tenant, with the ids and secrets the
    shipped config/tenant-sync.yaml uses. Serve it with `tenant-sync sandbox serve --seed FILE`."""
    from tenant_sync_sandbox.generate import Shape, ShapeError, generate, summary
    from tenant_sync_sandbox.seed import SeedError, validate_seed
    from worker.cli import err, fail

    shape = Shape(
        users=users,
        groups=groups,
        nested=nested,
        guests=guests,
        m365_groups=m365_groups,
        dynamic_groups=dynamic_groups,
        unicode=unicode,
        managers=managers,
        random_seed=random_seed,
        tenants=tenants,
    )
    try:
        seed = generate(shape)
        validate_seed(seed)  # what serve will load: never write a file it would refuse
    except (ShapeError, SeedError) as exc:
        fail(str(exc))
    text = json.dumps(seed, indent=1, ensure_ascii=False) + "\n"
    if out_path is None:
        sys.stdout.write(text)
        return
    if not out_path.parent.is_dir():
        fail(f"--out {out_path}: the directory {out_path.parent} does not exist")
    try:
        out_path.write_text(text, "utf-8")
    except OSError as exc:
        fail(f"--out {out_path}: cannot write: {exc.strerror or exc}")
    err.print(f"wrote {out_path}: {summary(seed)}")


def demo(
    workdir: Path = typer.Option(
        Path(".tenant-sync-demo"), "--workdir", help="Where the demo keeps its state."
    ),
    users: int = typer.Option(240, "--users", help="Source users to seed (at least 200)."),
    console: bool = typer.Option(
        False,
        "--console",
        help="Instead of the demo: the console and API (serve) on the state the last demo left, "
        "with the sandbox signing people in; runs until Ctrl-C.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="With --console: address to bind."),
    port: int = typer.Option(8080, "--port", help="With --console: port (0: any free one)."),
    config: Path | None = UNUSED_CONFIG,
) -> None:
    """Sandbox tenants, embedded Redis, SQLite and a Celery worker: full, then incremental.
    With --console: the operator service on the demo's state."""
    from worker.cli import fail, out

    if console:
        from tenant_sync_demo.console import open_console

        if not 0 <= port <= 65535:
            fail(f"--port must be 0 to 65535, not {port}")
        raise typer.Exit(open_console(workdir, host=host, port=port, console=out))
    from tenant_sync_demo.demo import run_demo

    if users < 200:
        fail("--users must be at least 200")
    raise typer.Exit(run_demo(workdir, users=users, console=out))
