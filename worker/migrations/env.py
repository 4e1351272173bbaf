"""Alembic environment: runs migrations on the connection `worker.adapters.state.db` hands over."""

from __future__ import annotations

from alembic import context

from worker.adapters.state import audit  # noqa: F401  (its model joins Base's metadata)
from worker.adapters.state.sql import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - migrations always run through upgrade_database()
    raise RuntimeError("run migrations with `tenant-sync db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
