"""What the SQL ledger's reads (sql_links.py, on SQLAlchemy) and status's driver-only reads
(sql_reads.py) both ask for, defined once. Without SQLAlchemy: `status` imports it."""

from __future__ import annotations

from worker.domain.model import LinkState

LIVE_STATES = (LinkState.ACTIVE.value, LinkState.DISABLED.value)
GROUP_ROWS_READ = 1000  # the newest group rows `status` reads for skipped groups
