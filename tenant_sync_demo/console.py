"""`tenant-sync demo --console`: the operator service on the state `tenant-sync demo` left.

The demo saves the sandbox's directory as it ended (`console-seed.json`); this starts a sandbox
from it (so the target users the demo created are there, and contoso's operator can sign in),
writes a config with an `api:` section next to the demo's, and runs `serve` in the foreground on
the demo's SQLite database and embedded Redis. Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from tenant_sync_demo.demo import JOB, build_config, sandbox_process
from tenant_sync_sandbox import default_seed as apps
from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.config import load_config
from worker.logging import configure_logging

CONSOLE_SEED = "console-seed.json"
CONSOLE_CONFIG = "console.yaml"
# A static token for scripts against the demo's API (its SHA-256 goes into the config).
DEMO_API_TOKEN = "demo-runbook-token"


def console_config(workdir: Path, sandbox_url: str, ca: Path, public_url: str) -> str:
    digest = hashlib.sha256(DEMO_API_TOKEN.encode()).hexdigest()
    return (
        build_config(workdir, sandbox_url, ca)
        + f"""api:
  public_url: {public_url}
  auth:
    tenant: contoso
    audience: {apps.API_AUDIENCE}
    app_id: {apps.API_APP_ID}
    client_id: {apps.CONSOLE_CLIENT}
    client_secret: ${{CONSOLE_SECRET:-{apps.CONSOLE_SECRET}}}
    tokens:
      - {{name: demo-runbook, sha256: {digest}, role: TenantSync.Operate}}
"""
    )


def open_console(workdir: Path, *, host: str, port: int, console: Console) -> int:
    from worker.api.server import BindError, bind, serve
    from worker.bootstrap import open_runtime

    workdir = workdir.resolve()
    seed = workdir / CONSOLE_SEED
    if not seed.is_file():
        console.print(
            f"tenant-sync: no demo state in {workdir}: run `tenant-sync demo` (make demo) first",
            markup=False,
        )
        return 1
    try:
        sock = bind(host, port)
    except BindError as exc:
        console.print(f"tenant-sync: {exc} (choose another with --port)", markup=False)
        return 1
    bound_port = sock.getsockname()[1]
    public_url = f"http://{host}:{bound_port}"
    redis = EmbeddedRedis(workdir / "state")
    with ExitStack() as stack:
        stack.callback(sock.close)
        stack.callback(redis.stop)
        url, ca = stack.enter_context(
            sandbox_process(seed, workdir / "sandbox-tls", workdir / "console-sandbox.log")
        )
        config_file = workdir / CONSOLE_CONFIG
        config_file.write_text(console_config(workdir, url, ca, public_url))
        config = load_config(config_file)
        configure_logging(config.logging.format, config.logging.level)
        runtime = open_runtime(config)
        stack.callback(runtime.close)
        console.print(
            f"tenant-sync console on the demo's state: open {public_url}\n"
            f"  sign in (the sandbox plays Entra ID) as operator@contoso.onmicrosoft.com, "
            f"password {apps.OPERATOR_PASSWORD}\n"
            f"  or as reader@contoso.onmicrosoft.com, password {apps.READER_PASSWORD} "
            "(read-only)\n"
            "  the sign-in page is the sandbox's: the browser warns that its certificate comes "
            f"from an unknown authority (the demo's own CA, {ca}); proceed, or trust that CA\n"
            f"  API: curl -H 'Authorization: Bearer {DEMO_API_TOKEN}' "
            f"{public_url}/v1.0/servicePrincipals/{JOB}/synchronization/jobs/{JOB}\n"
            f"  config: {config_file}\n"
            "Ctrl-C stops it (and the sandbox and Redis it started).",
            markup=False,
        )
        sys.stdout.flush()
        os.environ.setdefault("TENANT_SYNC_CONFIG", str(config_file))
        serve(config, runtime, sock)
    return 0
