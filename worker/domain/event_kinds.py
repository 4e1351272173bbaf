"""The kinds of notification a job raises (docs/notifications.md), which a notifier's `events`
setting names.

Apart from notifications.py, the rules that raise them and the records they travel in, which a
configuration does not need: loading it then defines none of their dataclasses (Python compiles
a dataclass's methods as it defines it: docs/performance.md, "CLI start-up").
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    QUARANTINE = "quarantine"
    STAGED_DELETIONS = "staged_deletions"
    CYCLE_FAILED = "cycle_failed"
    RECOVERED = "recovered"


ALL_EVENTS: tuple[EventKind, ...] = tuple(EventKind)
