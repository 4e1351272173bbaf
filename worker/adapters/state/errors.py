"""The state stores' library errors in the domain's vocabulary, translated once per adapter.

`speaks_domain_errors` is a class decorator: every public method of the adapter, inherited ones
too, runs inside the adapter's `_errors()` context manager (a returned generator for each step
of its iteration, a returned context manager on entry and exit), so no method translates by
hand and none can forget to. `sql_errors` and `redis_errors` are those context managers for
SQLAlchemy and redis-py; their messages name the store (its URL without the password) and the
driver's own first line, never a statement or its parameters (they hold user data). See
docs/architecture.md ("Errors").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from worker.adapters.state.redis_lib import redis
from worker.domain.errors import BadRequest, Conflict, StopSync, SyncError, Transient
from worker.urls import MASK, redacted_url, url_secrets

if TYPE_CHECKING:
    # SQLAlchemy itself is loaded by the SQL adapters' use of it, not by a Redis adapter's
    # import of this module (`status` reads SQL without it: docs/performance.md).
    from sqlalchemy import exc as sa
    from sqlalchemy.engine import URL

T = TypeVar("T")


class _Translating(Protocol):
    def _errors(self) -> AbstractContextManager[None]: ...


def speaks_domain_errors(cls: type[T]) -> type[T]:
    """Wrap every public method of `cls` in `self._errors()`: its own and those it inherits
    (an adapter composed of parts, as the SQL ledger is, is covered whole even where a part
    was not decorated); a method wrapped already is left as it is."""
    seen: set[str] = set()
    for klass in cls.__mro__[:-1]:  # not `object`
        for name, member in vars(klass).items():
            if name in seen or name.startswith("_"):
                continue
            seen.add(name)
            if inspect.isfunction(member) and not getattr(member, TRANSLATED, False):
                setattr(cls, name, _translated(member))
    return cls


TRANSLATED = "_speaks_domain_errors"  # set on a wrapped method


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: _Translating, *args: Any, **kwargs: Any) -> Any:
        with self._errors():
            result = method(self, *args, **kwargs)
        if isinstance(result, Generator):
            return _generator(self, result)
        if isinstance(result, AbstractContextManager):
            return _ContextManager(self, result)
        return result

    setattr(call, TRANSLATED, True)
    return call


def _generator(owner: _Translating, inner: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    with owner._errors():
        return (yield from inner)


class _ContextManager(AbstractContextManager[Any]):
    def __init__(self, owner: _Translating, inner: AbstractContextManager[Any]) -> None:
        self.owner = owner
        self.inner = inner

    def __enter__(self) -> Any:
        with self.owner._errors():
            return self.inner.__enter__()

    def __exit__(self, *exc_info: Any) -> bool | None:
        with self.owner._errors():
            return self.inner.__exit__(*exc_info)


def _first_line(error: BaseException, secrets: Sequence[str] = ()) -> str:
    text = (str(error).strip().splitlines() or [""])[0].strip()
    for secret in secrets:
        text = text.replace(secret, MASK)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# SQL ------------------------------------------------------------------------------------------

_UNIQUE = {"23505", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
_NOT_ALLOWED = {"42501"}  # PostgreSQL's insufficient_privilege


def database_name(url: URL) -> str:
    """The database's URL for people: without its password (in the userinfo or the query)."""
    return redacted_url(url.render_as_string(hide_password=False))


def sql_error(error: sa.SQLAlchemyError, url: URL) -> SyncError:
    """The domain's error for a SQLAlchemy error raised while using the database at `url`.

    Transient is the rule: a server down or restarting, a connection lost, SQLite busy or its
    file unopenable, a schema another process is still migrating (SQLite and PostgreSQL report
    that one differently, OperationalError and ProgrammingError, and must not differ here).
    A quarantine still follows if it keeps failing. The exceptions are writes the database
    refuses whatever the moment (Conflict for a duplicate row, BadRequest for a value) and
    what needs a person (StopSync: a missing privilege, a feature the database lacks, our own
    request malformed before it reached the database).
    """
    from sqlalchemy import exc as sa

    original = getattr(error, "orig", None) or error
    where = f"the state database {database_name(url)}"
    reason = _first_line(original, url_secrets(url.render_as_string(hide_password=False)))
    code = getattr(original, "sqlstate", None) or getattr(original, "sqlite_errorname", "")
    # Not the database's answer to a request but the way to it: no pooled connection in time,
    # a connection found dead.
    if isinstance(error, sa.TimeoutError | sa.DisconnectionError):
        return Transient(f"{where} is unavailable: {reason}")
    if isinstance(error, sa.IntegrityError):
        if code in _UNIQUE:
            return Conflict(f"{where} already holds that row: {reason}")
        return BadRequest(f"{where} refused the row: {reason}")
    if isinstance(error, sa.DataError):
        return BadRequest(f"{where} refused a value: {reason}")
    if isinstance(error, sa.NotSupportedError) or code in _NOT_ALLOWED:
        return StopSync(f"{where} cannot be used: {reason}")
    if isinstance(error, sa.DBAPIError):
        return Transient(f"{where} is unavailable: {reason}")
    return StopSync(f"{where} cannot be used: {reason}")


@contextmanager
def sql_errors(url: URL) -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as error:
        raise sql_error(error, url) from error


# Redis ----------------------------------------------------------------------------------------


def redis_name(client: redis.Redis) -> str:
    """The client's server as a URL for people: without user name or password."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def redis_error(error: redis.RedisError, where: str) -> SyncError:
    """The domain's error for a redis-py error raised while using the server named `where`."""
    reason = _first_line(error)
    if isinstance(error, redis.AuthenticationError | redis.exceptions.NoPermissionError):
        return StopSync(f"Redis at {where} refused the credentials: {reason}")
    if isinstance(error, redis.BusyLoadingError):
        return Transient(f"Redis at {where} is still loading its data: {reason}")
    # Unreachable, timed out, read-only after a failover, out of memory: all pass.
    return Transient(f"Redis at {where} is unavailable: {reason}")


@contextmanager
def redis_errors(where: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as error:
        raise redis_error(error, where) from error
