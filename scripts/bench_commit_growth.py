"""Micro-benchmark: CPU per created user of `SqlLedger.commit_page` on SQLite as the state grows.

Commits `--users` new users (a link and a provisioning-log row each, what a creating full
cycle's page writes) in pages of `--page`, each page read first as a cycle reads it
(`links_for`, `escrows_for`, the claims' `links_by_target`), into a copy of a database that
already holds N links and N log rows, for each N of `--sizes`, each measurement in a process of
its own, and prints the process's CPU and wall time per created user, the read syscalls SQLite
made (/proc/self/io) and peak RSS (docs/performance.md, "Growth with the table size").
`--connections` pooled connections are taken in turn, as a cycle's thread and its commit
thread take them (a commit on one empties the other's page cache).

The pre-filled databases are made once and kept under `--cache`: the first page through
`commit_page`, the other rows copies of its rows with their own ids. The measured users'
source ids sort after the pre-filled ones, as in one cycle, whose pages come in source-id
order; target ids and change ids are random, as Graph's and the ledger's are.

    nice .venv/bin/python scripts/bench_commit_growth.py --sizes 0,100000,1000000

`--pragma cache_size=-65536` (repeatable) runs PRAGMAs on each connection after the
engine's own, to try settings without changing the code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.adapters.state.db import upgrade_database
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.domain.model import (
    Action,
    Change,
    Link,
    LinkState,
    ObjectOutcome,
    Status,
    Step,
)
from worker.ports import PageWrite, RunRecord
from worker.state_view import newest_revision

JOB = "scale"
SEED = 16


def source_id(index: int, rng: random.Random) -> str:
    """A canonical GUID that sorts by `index`, random after it."""
    tail = rng.getrandbits(64)
    middle = f"{tail >> 48 & 0xFFFF:04x}-4{tail >> 36 & 0xFFF:03x}-a{tail >> 24 & 0xFFF:03x}"
    return f"{index:08x}-{middle}-{rng.getrandbits(48):012x}"


def attributes(index: int) -> dict[str, Any]:
    """What a created guest's link keeps as last written (the scale seed's shape)."""
    name = f"user{index:07d}"
    return {
        "accountEnabled": True,
        "displayName": f"User {index}",
        "givenName": "User",
        "surname": f"{index}",
        "mail": f"{name}@source.example",
        "jobTitle": "Engineer",
        "department": f"Dept {index % 50}",
        "companyName": "Source Inc",
        "userType": "Guest",
        "otherMails": [f"{name}@source.example"],
    }


def page(first: int, count: int, run_id: str, rng: random.Random) -> PageWrite:
    links: list[Link] = []
    outcomes: list[ObjectOutcome] = []
    for index in range(first, first + count):
        sid, tid = source_id(index, rng), str(uuid.uuid4())
        attrs = attributes(index)
        label, mail = f"user{index:07d}@source.example", attrs["mail"]
        links.append(Link(JOB, sid, tid, LinkState.ACTIVE, attrs, run_id, label, mail))
        outcomes.append(
            ObjectOutcome(
                sid,
                Action.CREATE,
                Status.SUCCESS,
                source_label=label,
                source_mail=mail,
                target_id=tid,
                steps=[
                    Step("import", Status.SUCCESS, "read from the source"),
                    Step("scoping", Status.SUCCESS, "in scope"),
                    Step("matching", Status.SUCCESS, "no match in the target"),
                    Step("processing", Status.SUCCESS, "create"),
                    Step("export", Status.SUCCESS, "created"),
                ],
                modified={k: Change(None, v) for k, v in attrs.items()},
                duration_ms=12,
            )
        )
    ids = [link.source_id for link in links]
    return PageWrite(links=links, seen=ids, outcomes=outcomes, released=ids)


def pages(first: int, users: int, size: int, run_id: str, seed: int) -> Iterator[PageWrite]:
    rng = random.Random(seed)
    for start in range(first, first + users, size):
        yield page(start, min(size, first + users - start), run_id, rng)


def prefilled(cache: Path, rows: int, size: int) -> Path:
    """A database holding `rows` links and log rows, made once: the first page through
    commit_page, the rest copies of its rows with their own ids (`_clone`)."""
    # Keyed by the schema's revision and the first page's size too: a cached file made before
    # a migration, or with another page, is not this one.
    path = cache / f"prefill-{rows}-r{newest_revision()}-p{size}.db"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    for leftover in cache.glob(building.name + "*"):
        leftover.unlink()
    engine = make_engine(f"sqlite:///{building}")
    try:
        upgrade_database(engine)
        ledger = SqlLedger(engine)
        run_id = str(uuid.UUID(int=SEED))
        ledger.start_run(RunRecord(run_id, JOB, "full", False, "manual", datetime.now(UTC)))
        first = min(rows, size)
        if first:
            ledger.commit_page(JOB, run_id, next(pages(0, first, size, run_id, SEED)))
    finally:
        engine.dispose()  # checkpoints the WAL into the file
    if rows > first:
        _clone(building, first, rows)
    building.replace(path)
    return path


CLONE_LINKS = (
    "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
    " INSERT INTO links (job, source_id, target_id, state, attributes,"
    " last_seen_run, source_label, source_mail, created_at, updated_at, deleted_at)"
    " SELECT l.job, sid(n.i), randomblob(16), l.state, l.attributes, l.last_seen_run,"
    " label(n.i), label(n.i), l.created_at, l.updated_at, l.deleted_at"
    " FROM n, (SELECT * FROM links ORDER BY rowid LIMIT 1) AS l"
)
CLONE_LOG = (
    "INSERT INTO provisioning_log (change_id, run_id, job, source_id,"
    " source_label, source_mail, target_id, action, status, reason, error_code,"
    " error_message, steps, modified, duration_ms, created_at, approved, object_type)"
    " SELECT randomblob(16), g.run_id, g.job, l.source_id, l.source_label,"
    " l.source_mail, l.target_id, g.action, g.status, g.reason, g.error_code,"
    " g.error_message, g.steps, g.modified, g.duration_ms, g.created_at, g.approved,"
    " g.object_type FROM links AS l, (SELECT * FROM provisioning_log ORDER BY id"
    " LIMIT 1) AS g WHERE l.rowid > ? ORDER BY l.rowid"
)


def _clone(database: Path, first: int, rows: int) -> None:
    """Rows `first`..`rows` as copies of row 0 (a created user's link and log row)."""
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA cache_size=-262144")  # fast to build; not what is measured
    rng = random.Random(SEED)
    connection.create_function(
        "sid", 1, lambda i: i.to_bytes(4, "big") + rng.getrandbits(96).to_bytes(12, "big")
    )
    connection.create_function("label", 1, lambda i: f"user{i:07d}@source.example")
    with connection:
        connection.execute(CLONE_LINKS, (first, rows - 1))
        connection.execute(CLONE_LOG, (first,))
    connection.close()


def peak_rss_mb() -> float:
    """The process's peak RSS (VmHWM; ru_maxrss would carry the parent's over the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def read_syscalls() -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["rchar"])


def measure(
    database: Path, users: int, size: int, rows: int, pragmas: list[str], connections: int
) -> dict[str, Any]:
    """One measurement, in this process: commit `users` new users into `database`."""
    engine = make_engine(f"sqlite:///{database}")
    if pragmas:

        @event.listens_for(engine, "connect")
        def _extra(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in pragmas:
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

    if connections > 1:
        # As in a cycle whose commits run beside the next page's reads: the pool holds more
        # than one connection and hands them out in turn (QueuePool is first in, first out).
        held = [engine.connect() for _ in range(connections)]
        for connection in held:
            connection.close()
    ledger = SqlLedger(engine)
    run_id = str(uuid.UUID(int=SEED + 1))
    ledger.start_run(RunRecord(run_id, JOB, "full", False, "manual", datetime.now(UTC)))
    writes = list(pages(rows, users, size, run_id, SEED + 1))  # built before the clock starts
    rss_before = peak_rss_mb()
    syscr, rchar = read_syscalls()
    cpu, wall = time.process_time(), time.monotonic()
    for write in writes:
        ids = [link.source_id for link in write.links]
        ledger.links_for(JOB, ids)  # the page's reads, as a cycle makes them
        ledger.escrows_for(JOB, ids)
        ledger.links_by_target(JOB, [link.target_id for link in write.links])  # the claims
        ledger.commit_page(JOB, run_id, write)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    syscr, rchar = (a - b for a, b in zip(read_syscalls(), (syscr, rchar), strict=True))
    engine.dispose()
    return {
        "rows": rows,
        "users": users,
        "pragmas": pragmas,
        "connections": connections,
        "pool": type(engine.pool).__name__,
        "cpu_ms_per_user": round(cpu * 1000 / users, 3),
        "wall_ms_per_user": round(wall * 1000 / users, 3),
        "read_syscalls_per_user": round(syscr / users, 1),
        "read_kib_per_user": round(rchar / 1024 / users, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_mb": round(rss_before, 1),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--sizes", default="0,100000,1000000", help="pre-filled rows, comma-separated"
    )
    parser.add_argument("--users", type=int, default=20_000, help="users created and measured")
    parser.add_argument("--page", type=int, default=500, help="users per page")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per size")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "tenant-sync-commit-growth",
        help="where the pre-filled databases are kept (about 0.8 GB at 1,000,000)",
    )
    parser.add_argument("--pragma", action="append", default=[], help="e.g. cache_size=-65536")
    parser.add_argument("--connections", type=int, default=2, help="pooled connections in turn")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a measuring child
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(
            json.dumps(
                measure(args.one, args.users, args.page, args.rows, args.pragma, args.connections)
            )
        )
        return
    for rows in [int(size) for size in args.sizes.split(",")]:
        source = prefilled(args.cache, rows, args.page)
        for _ in range(args.repeat):
            copy = args.cache / "measured.db"
            for leftover in args.cache.glob("measured.db*"):
                leftover.unlink()
            shutil.copyfile(source, copy)
            child = [sys.executable, __file__, "--one", str(copy), "--rows", str(rows)]
            child += ["--users", str(args.users), "--page", str(args.page)]
            child += ["--connections", str(args.connections)]
            child += [f"--pragma={pragma}" for pragma in args.pragma]
            result = subprocess.run(child, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"the measurement of {rows} rows failed:\n{result.stderr}")
            print(result.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
