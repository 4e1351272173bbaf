"""`python -m tenant_sync_sandbox [--seed FILE] [--host 127.0.0.1] [--port N] [--tls-dir DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .server import serve
from .tls import DEFAULT_TLS_DIR


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tenant_sync_sandbox",
        description="Run the tenant-sync Graph sandbox (HTTPS, foreground, SIGTERM to stop).",
    )
    parser.add_argument(
        "--seed", type=Path, default=None, help="seed JSON file (docs/sandbox-seed.md)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=DEFAULT_TLS_DIR,
        help=f"where the CA and server certificate live (default {DEFAULT_TLS_DIR})",
    )
    args = parser.parse_args(argv)
    serve(args.seed, host=args.host, port=args.port, tls_dir=args.tls_dir)


if __name__ == "__main__":
    main()
