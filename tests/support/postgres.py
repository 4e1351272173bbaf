"""A throwaway PostgreSQL server for the test session, started from the installed binaries.

    bindir = find_bindir()                      # None: no PostgreSQL server installed
    with running_postgres(bindir) as server:    # initdb + pg_ctl start in a temp dir
        with server.fresh_database() as url:    # CREATE DATABASE; postgresql+psycopg://...
            ...

The server owns a temp dir (data dir, unix socket, log), listens on a free TCP port on
127.0.0.1, trusts every local connection and runs without fsync: it is thrown away at the end.
PostgreSQL refuses to run as root, so when the tests run as root (CI) initdb and pg_ctl run as
the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

PG_BIN_ENV = "TENANT_SYNC_PG_BIN"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # the unprivileged account used when the tests run as root
SUPERUSER = "postgres"  # the database superuser, whoever runs the server
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# Far from UTC and not a whole hour: a datetime that loses or keeps the session's offset shows.
SERVER_TIMEZONE = "Asia/Kathmandu"

NO_POSTGRES = (
    "PostgreSQL server binaries not found (install Debian's `postgresql` package, or point "
    f"{PG_BIN_ENV} at a directory holding initdb and pg_ctl)"
)


class PostgresError(RuntimeError):
    """The binaries are there but the server could not be set up."""


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres"))


def _version(bindir: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin; () for a name that is not a version."""
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return ()


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: $TENANT_SYNC_PG_BIN, else the newest Debian version, else
    `pg_config --bindir`, else the PATH; None when no PostgreSQL server is installed."""
    explicit = os.environ.get(PG_BIN_ENV)
    if explicit:
        # Asked for by name: a wrong path is a mistake to report, not a reason to skip.
        if not _has_server(Path(explicit)):
            raise PostgresError(f"{PG_BIN_ENV}={explicit} holds no initdb, pg_ctl and postgres")
        return Path(explicit)
    debian = sorted(DEBIAN_ROOT.glob("*/bin"), key=_version, reverse=True)
    for bindir in debian:
        if _version(bindir) and _has_server(bindir):
            return bindir
    pg_config = shutil.which("pg_config")
    if pg_config:
        # Debian's libpq-dev ships pg_config without the server: check for the binaries too.
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and _has_server(Path(found)):
            return Path(found)
    initdb = shutil.which("initdb")
    if initdb and _has_server(Path(initdb).parent):
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None for ourselves, `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresError(
            f"the tests run as root and PostgreSQL refuses to; there is no `{SERVER_USER}` "
            "user to run it as (Debian's postgresql package creates one)"
        ) from None


def _as_account(account: pwd.struct_passwd | None, command: list[str]) -> list[str]:
    if account is None:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", account.pw_name, "--", *command]
    return ["su", account.pw_name, "-s", "/bin/sh", "-c", shlex.join(command)]


def _temp_root(account: pwd.struct_passwd | None) -> Path:
    """A private temp dir the server's account owns (the whole path must let it through)."""
    parent = Path(tempfile.gettempdir())
    if account is not None and any(
        not os.stat(p).st_mode & 0o001 for p in (parent, *parent.parents)
    ):
        parent = Path("/tmp")  # e.g. TMPDIR=/root/tmp, which `postgres` cannot enter
    root = Path(tempfile.mkdtemp(prefix="tenant-sync-pg-", dir=parent))
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
    return root


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    account: pwd.struct_passwd | None
    host: str = "127.0.0.1"
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t{next(self._names)}_{uuid.uuid4().hex[:8]}"
        with self.connect() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test's engine may still hold pooled connections; they are of no use now.
        with self.connect() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A SQLAlchemy URL of a database made for the caller and dropped after it."""
        name = self.create_database()
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # ------------------------------------------------------------------ lifecycle

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_account(self.account, [str(self.bindir / args[0]), *args[1:]]),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,  # the server's account may not be allowed into ours
            check=False,
        )

    def initdb(self) -> None:
        result = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            timeout=START_DEADLINE_S,
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        options = " ".join(
            f"-c {setting}"
            for setting in (
                f"listen_addresses={self.host}",
                f"port={self.port}",
                f"unix_socket_directories={shlex.quote(str(self.root))}",
                # Throwaway data: durability buys nothing and costs seconds.
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                f"timezone={SERVER_TIMEZONE}",
                "max_connections=200",
            )
        )
        result = self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(START_DEADLINE_S)),
            timeout=START_DEADLINE_S + 10,
        )
        if result.returncode != 0:
            raise PostgresError(
                f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{self.log_tail()}"
            )
        self.wait_until_accepting(time.monotonic() + START_DEADLINE_S)

    def wait_until_accepting(self, deadline: float) -> None:
        """Poll until a real connection answers a query, or fail at the deadline."""
        while True:
            try:
                with self.connect() as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise PostgresError(
                        f"PostgreSQL on port {self.port} never accepted connections: {error}\n"
                        f"{self.log_tail()}"
                    ) from error
            time.sleep(0.05)

    def stop(self) -> None:
        for mode in ("fast", "immediate"):
            result = self._run(
                "pg_ctl",
                "stop",
                "-D",
                str(self.data),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(STOP_DEADLINE_S)),
                timeout=STOP_DEADLINE_S + 10,
            )
            if result.returncode == 0:
                return
        raise PostgresError(f"pg_ctl stop failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def running_postgres(bindir: Path) -> Iterator[PostgresServer]:
    """initdb, start on a free port (retrying if someone takes it first), stop, remove."""
    account = _server_account()
    root = _temp_root(account)
    server = PostgresServer(bindir=bindir, root=root, port=_free_port(), account=account)
    try:
        server.initdb()
        for attempt in itertools.count(1):
            try:
                server.start()
                break
            except PostgresError:
                if attempt >= PORT_ATTEMPTS or "could not bind" not in server.log_tail():
                    raise
                server.port = _free_port()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
