"""What every part of the SQL ledger shares: its sessions, one transaction per write, upserts
that another process's inserts cannot break, and ids in slices small enough for a query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

from sqlalchemy import ARRAY, LargeBinary, any_, bindparam, or_, type_coerce
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from worker.adapters.state.errors import sql_errors
from worker.adapters.state.sql_models import Base

CHUNK = 500


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    """Distinct ids in slices small enough for an IN clause."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def _among(dialect: str, column: Any, ids: list[str]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL `column = ANY(:ids)`, one array parameter: a page's IN
    list of 500 placeholders is longer than the statements psycopg keeps parsed, so it was
    parsed anew for every query (docs/performance.md, "Time per created user")."""
    if dialect == "postgresql":
        return cast(
            ColumnElement[bool], column == any_(bindparam(None, ids, type_=ARRAY(column.type)))
        )
    return cast(ColumnElement[bool], column.in_(ids))


def _unindexed(dialect: str, column: Any) -> Any:
    """`column` as SQLite's planner may not search by (`+column`): with no statistics it
    preferred an index on this column's one value, reading every row that has it, to looking a
    page's ids up in their own index (docs/performance.md, "Growth with the table size")."""
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _raw(column: Any) -> Any:
    """A packed id column as the bytes it holds (compared and read without unpacking)."""
    return type_coerce(column, LargeBinary)


class LedgerPart:
    """What each part of `SqlLedger` (sql.py) stands on: the engine, its sessions and the
    translation of database errors into the domain's vocabulary
    (`worker.adapters.state.errors.sql_error`: an unreachable or busy database is Transient).
    Each part is decorated with `speaks_domain_errors`, and so is `SqlLedger`, which wraps what
    it inherits too: a part added without the decorator is covered all the same."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name

    def _errors(self) -> AbstractContextManager[None]:
        return sql_errors(self.engine.url)

    def _session(self) -> Session:
        return self.sessions()

    def _write(self) -> _WriteSession:
        return _WriteSession(self.sessions)

    def _upsert(
        self,
        session: Session,
        model: type[Base],
        rows: Sequence[dict[str, Any]],
        keep_true: Sequence[str] = (),
    ) -> None:
        """Insert rows, or update those whose primary key exists, in one statement per chunk.
        Unlike session.merge (read, then insert), nothing another process inserts in between
        can make it fail; both databases have INSERT ... ON CONFLICT DO UPDATE. The boolean
        columns in `keep_true` are never turned from true to false by an update."""
        if not rows:
            return
        keys = [column.name for column in model.__table__.primary_key]
        # PostgreSQL refuses to touch one row twice in a statement: a key's last row wins.
        unique = list({tuple(row[key] for key in keys): row for row in rows}.values())
        # Imported here, the one dialect used: read-only commands (`status`) start without the
        # dialects' insert code, and a worker on SQLite without PostgreSQL's dialect.
        insert: Callable[..., Any]
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            insert = postgresql_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            insert = sqlite_insert
        for start in range(0, len(unique), CHUNK):
            statement = insert(model).values(unique[start : start + CHUNK])
            table = model.__table__.c
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={
                    name: or_(table[name], statement.excluded[name])
                    if name in keep_true
                    else statement.excluded[name]
                    for name in unique[0]
                    if name not in keys
                },
            )
            session.execute(statement)


class _WriteSession:
    """A session whose block is one transaction: committed if the block ends well, else rolled
    back. (Its errors are translated by the adapter's method, like every other.)"""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.session: Session | None = None

    def __enter__(self) -> Session:
        self.session = self.factory()
        self.session.begin()
        return self.session

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self.session is not None
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
