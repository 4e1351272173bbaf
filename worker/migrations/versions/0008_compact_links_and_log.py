"""compact links and provisioning log: packed ids, deflated JSON, no stored hash

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06

The two tables that grow with the users are rewritten (docs/performance.md):
- ids (links.source_id, target_id, last_seen_run; provisioning_log.change_id, run_id, source_id,
  target_id) become binary: a GUID in its 16 bytes, any other id as its text after a marker
  byte (worker/adapters/state/compact.py);
- links.attributes and provisioning_log.steps and modified become binary: compact JSON deflated
  against a preset dictionary;
- links.attributes_hash goes: it was written, never read (the values themselves are compared);
- the log's indexes on job, action and status go: a handful of values each, they cost bytes per
  row and find nothing faster than the id order.
Every row is kept with the same values; log row ids are kept, so keyset pages and the id
sequence go on where they were. The tables are copied in batches into new ones, which then take
the old names and indexes. The downgrade copies them back (the hash computed again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from worker.adapters.state.compact import pack_id, pack_json, unpack_id, unpack_json

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 2000
LINK_IDS = ("source_id", "target_id", "last_seen_run")
LOG_IDS = ("change_id", "run_id", "source_id", "target_id")


def _id_type(packed: bool, length: int) -> sa.types.TypeEngine[Any]:
    return sa.LargeBinary() if packed else sa.String(length=length)


def _json_type(packed: bool) -> sa.types.TypeEngine[Any]:
    return sa.LargeBinary() if packed else sa.JSON()


def _links(name: str, packed: bool) -> sa.Table:
    columns = [
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("source_id", _id_type(packed, 64), nullable=False),
        sa.Column("target_id", _id_type(packed, 64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attributes", _json_type(packed), nullable=False),
    ]
    if not packed:
        columns.append(sa.Column("attributes_hash", sa.String(length=64), nullable=False))
    columns += [
        sa.Column("last_seen_run", _id_type(packed, 36), nullable=True),
        sa.Column("source_label", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_mail", sa.String(length=320), nullable=False, server_default=""),
    ]
    return sa.Table(name, sa.MetaData(), *columns, sa.PrimaryKeyConstraint("job", "source_id"))


def _log(name: str, packed: bool) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("change_id", _id_type(packed, 36), nullable=False),
        sa.Column("run_id", _id_type(packed, 36), nullable=False),
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("source_id", _id_type(packed, 64), nullable=False),
        sa.Column("source_label", sa.String(length=320), nullable=False),
        sa.Column("target_id", _id_type(packed, 64), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("steps", _json_type(packed), nullable=False),
        sa.Column("modified", _json_type(packed), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_mail", sa.String(length=320), nullable=False, server_default=""),
        sa.Column("approved", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("object_type", sa.String(20), nullable=False, server_default="User"),  # 0007
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("change_id"),
    )


LOW_SELECTIVITY = ("action", "job", "status")  # the log's indexes 0008 drops


def _indexes(name: str, packed: bool) -> list[tuple[str, list[str]]]:
    if name == "links":
        return [("ix_links_target_id", ["target_id"])]
    columns = ["created_at", "run_id", "source_id"]
    if not packed:
        columns += LOW_SELECTIVITY
    return [(f"ix_provisioning_log_{c}", [c]) for c in sorted(columns)]


def _plain(value: Any) -> Any:
    """A JSON column's value as read: a document (or, on some drivers, its text)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _packed_link(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("attributes_hash", None)
    for name in LINK_IDS:
        row[name] = None if row[name] is None else pack_id(row[name])
    row["attributes"] = pack_json(_plain(row["attributes"]))
    return row


def _plain_link(row: dict[str, Any]) -> dict[str, Any]:
    for name in LINK_IDS:
        row[name] = None if row[name] is None else unpack_id(row[name])
    row["attributes"] = unpack_json(row["attributes"])
    canonical = json.dumps(row["attributes"], sort_keys=True, separators=(",", ":"), default=str)
    row["attributes_hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    return row


def _packed_log(row: dict[str, Any]) -> dict[str, Any]:
    for name in LOG_IDS:
        row[name] = None if row[name] is None else pack_id(row[name])
    row["steps"] = pack_json(_plain(row["steps"]))
    row["modified"] = pack_json(_plain(row["modified"]))
    return row


def _plain_log(row: dict[str, Any]) -> dict[str, Any]:
    for name in LOG_IDS:
        row[name] = None if row[name] is None else unpack_id(row[name])
    row["steps"] = unpack_json(row["steps"])
    row["modified"] = unpack_json(row["modified"])
    return row


def _rebuild(
    old: sa.Table,
    new: sa.Table,
    order: Sequence[str],
    convert: Callable[[dict[str, Any]], dict[str, Any]],
    indexes: Sequence[tuple[str, list[str]]],
) -> None:
    """Copy `old` into `new` in batches (keyset on `order`), drop `old`, give `new` its name."""
    bind = op.get_bind()
    new.create(bind)
    keys = [old.c[name] for name in order]
    last: tuple[Any, ...] | None = None
    while True:
        query = sa.select(old).order_by(*keys).limit(BATCH)
        if last is not None:
            query = query.where(sa.tuple_(*keys) > sa.tuple_(*last))
        rows = [dict(row) for row in bind.execute(query).mappings()]
        if not rows:
            break
        last = tuple(rows[-1][name] for name in order)
        bind.execute(new.insert(), [convert(row) for row in rows])
    op.drop_table(old.name)
    op.rename_table(new.name, old.name)
    for index, columns in indexes:
        op.create_index(index, old.name, columns)
    if bind.dialect.name == "postgresql" and old.name == "provisioning_log":
        # The copied ids were given explicitly: the sequence goes on after the highest.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('provisioning_log', 'id'), "
            "coalesce((SELECT max(id) FROM provisioning_log), 0) + 1, false)"
        )


def _migrate(packed: bool) -> None:
    for name, table, order, convert in (
        ("links", _links, ("job", "source_id"), _packed_link if packed else _plain_link),
        ("provisioning_log", _log, ("id",), _packed_log if packed else _plain_log),
    ):
        for index, _ in _indexes(name, not packed):
            op.drop_index(index, table_name=name)
        _rebuild(
            table(name, not packed),
            table(f"{name}_0008", packed),
            order,
            convert,
            _indexes(name, packed),
        )


def upgrade() -> None:
    _migrate(packed=True)


def downgrade() -> None:
    _migrate(packed=False)
