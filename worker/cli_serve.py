"""`tenant-sync expr` (evaluate a mapping expression) and `tenant-sync serve` (the console and
API server)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from worker.cli_common import (
    ConfigOption,
    UnusedConfigOption,
    _config,
    _runtime,
    emit_json,
    err,
    fail,
)


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
