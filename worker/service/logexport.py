"""The provisioning log as a CSV file: one format for `tenant-sync logs --format csv` and the
console's download."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

LOG_COLUMNS = (
    "activityDateTime",
    "changeId",
    "cycleId",
    "jobId",
    "sourceId",
    "sourceIdentity",
    "sourceMail",
    "targetId",
    "action",
    "status",
    "reason",
    "errorCode",
    "errorMessage",
    "durationMs",
    "objectType",  # User or Group (docs/groups.md)
)
# Nested fields go into one CSV cell each, as JSON.
LOG_JSON_COLUMNS = ("modifiedProperties", "steps")


def logs_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*LOG_COLUMNS, *LOG_JSON_COLUMNS])
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                **{c: row.get(c, "User") if c == "objectType" else row[c] for c in LOG_COLUMNS},
                **{c: json.dumps(row[c]) for c in LOG_JSON_COLUMNS},
            }
        )
    return buffer.getvalue()
