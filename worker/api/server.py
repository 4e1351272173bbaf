"""Running the service: bind first (a clear error if the port is taken), then uvicorn."""

from __future__ import annotations

import signal
import socket
from types import FrameType

import uvicorn

from worker.bootstrap import Runtime
from worker.config import Config

from .app import create_app


class BindError(Exception):
    pass


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, socktype, proto, _, address = infos[0]
        sock = socket.socket(family, socktype, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(256)
    except OSError as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(config: Config, runtime: Runtime, sock: socket.socket) -> None:
    """Serve until SIGTERM/SIGINT, then return (the process exits 0)."""
    app = create_app(config, runtime)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    # uvicorn raises the signal that stopped it again once it is done, to the handler that was
    # in place before it: this one, so a requested stop ends the process with status 0.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.run(sockets=[sock])
