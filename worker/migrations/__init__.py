"""Alembic migrations of the state database (applied by `tenant-sync db upgrade` and at start)."""
