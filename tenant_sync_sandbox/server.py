"""Running the sandbox: seed loading, TLS, the listening socket, uvicorn, clean shutdown.

`serve()` blocks until SIGTERM/SIGINT and then returns normally, so the process exits 0.
A bad seed prints one message and exits 2 before anything listens.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from .app import asgi_app
from .coalesce import CoalescingH11Protocol
from .default_seed import default_seed
from .seed import SeedError, load_seed, validate_seed
from .state import SandboxState
from .tls import DEFAULT_TLS_DIR, ensure_tls, write_atomic

BANNER = "tenant-sync sandbox listening on {url} (CA: {ca})"
IDLE_CLOSE_AFTER_S = 0.2


class _Server(uvicorn.Server):
    """uvicorn, but idle keep-alive connections are dropped promptly at shutdown.

    Closing a TLS connection waits for the client's close_notify, which an idle pooled client
    never sends; without this every stop would take the whole graceful-shutdown timeout.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        task = asyncio.ensure_future(super().shutdown(sockets=sockets))
        await asyncio.sleep(IDLE_CLOSE_AFTER_S)
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            idle = cycle is None or bool(getattr(cycle, "response_complete", False))
            transport = getattr(connection, "transport", None)
            if idle and transport is not None:
                transport.abort()
        await task


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(address)
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str, family: int) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind to a client address
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if family == socket.AF_INET6 or ":" in host:
        return f"[{host}]"
    return host


def serve(
    seed_path: Path | None,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_dir: Path | None = None,
) -> None:
    """Run the sandbox in the foreground until SIGTERM/SIGINT."""
    try:
        seed = load_seed(seed_path) if seed_path is not None else validate_seed(default_seed())
    except SeedError as exc:
        print(f"tenant-sync sandbox: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    stop_requested: list[int] = []
    server: _Server | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)
        if server is not None:
            server.should_exit = True

    # uvicorn re-raises the signal that stopped it once it is done; with these handlers in
    # place that only records it again, so the process ends with status 0.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    files = ensure_tls(Path(tls_dir) if tls_dir is not None else DEFAULT_TLS_DIR, (host,))
    try:
        sock = _bind(host, port)
    except OSError as exc:
        print(f"tenant-sync sandbox: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None

    # The seed was just read: its users become the directory's own, not a second copy.
    state = SandboxState(seed, owned=True)
    del seed
    state.signer.current  # noqa: B018 - make the signing key now, not on the first token request
    app = asgi_app(state)
    config = uvicorn.Config(
        app,
        ssl_certfile=str(files.cert),
        ssl_keyfile=str(files.key),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=CoalescingH11Protocol,  # a response's headers and body in one write
        server_header=False,
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    if stop_requested:
        server.should_exit = True

    actual_port = sock.getsockname()[1]
    url = f"https://{_url_host(host, sock.family)}:{actual_port}"
    info_path = files.directory / "sandbox.json"

    async def run(server: _Server) -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            write_atomic(
                info_path,
                json.dumps({"url": url, "ca": str(files.ca), "pid": os.getpid()}).encode("utf-8"),
            )
            print(BANNER.format(url=url, ca=files.ca), flush=True)
        await task

    try:
        asyncio.run(run(server))
    finally:
        sock.close()
        _remove_if_ours(info_path)


def _remove_if_ours(info_path: Path) -> None:
    try:
        data = json.loads(info_path.read_text("utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        info_path.unlink(missing_ok=True)
