"""Real receivers for notification tests: an HTTP server and an SMTP server, on loopback.

`http_receiver` records every POST (path, headers, JSON body) and answers with the statuses it
is told to, then 200. `smtp_receiver` is aiosmtpd's server, optionally with STARTTLS (a trustme
CA) and a login; it records every message it accepts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEADLINE_S = 30.0


def poll(check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Wait for `check()` to be truthy, or fail naming `what`."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    raw: str


@dataclass
class HttpReceiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered first, in order; then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests if path is None or r.path == path]


@contextmanager
def http_receiver(port: int = 0) -> Iterator[HttpReceiver]:
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            with receiver.lock:
                receiver.requests.append(
                    Request(self.path, dict(self.headers.items()), json.loads(raw), raw)
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"1" if status == 200 else b"receiver failed")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver = HttpReceiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class SmtpReceiver:
    host: str
    port: int
    ca_path: Path | None = None
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)  # from, to, mail
    logins: list[str] = field(default_factory=list)


@contextmanager
def smtp_receiver(
    tls_dir: Path | None = None, login: tuple[str, str] | None = None
) -> Iterator[SmtpReceiver]:
    """An SMTP server on loopback; with `tls_dir`, STARTTLS required (its CA written there);
    with `login`, AUTH required and only that user and password accepted."""
    import ssl

    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    port = free_port()
    receiver = SmtpReceiver("127.0.0.1", port)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mail = message_from_bytes(envelope.original_content or envelope.content)
            receiver.messages.append((envelope.mail_from, list(envelope.rcpt_tos), mail))
            return "250 OK"

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or login is None:
            return AuthResult(success=False, handled=False)
        ok = (data.login.decode(), data.password.decode()) == login
        if ok:
            receiver.logins.append(data.login.decode())
        return AuthResult(success=ok)

    options: dict[str, Any] = {}
    if tls_dir is not None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        tls_dir.mkdir(parents=True, exist_ok=True)
        receiver.ca_path = tls_dir / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(receiver.ca_path))
        options.update(tls_context=context, require_starttls=True)
    if login is not None:
        options.update(authenticator=authenticate, auth_required=True)
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
