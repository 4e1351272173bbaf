"""The Celery page dispatcher: a cycle's users pages exported by any worker, N at a time.

The cycle submits each page as an `export_page` task (worker/tasks.py), which runs the same page
pipeline as the cycle's own process (decide, export, commit, log) and answers the page's
`PageOutcome` as JSON. A page no worker has started within `start_timeout_s` is revoked and the
cycle exports it itself (`PageNotTaken`); a page that failed on its worker raises a SyncError.
"""

from __future__ import annotations

import time
from typing import Any

from worker.domain.errors import SyncError, Transient
from worker.service.page import PageRequest
from worker.service.pipeline import PageNotTaken, PageOutcome

EXPORT_PAGE_TASK = "tenant_sync.export_page"
PAGE_START_TIMEOUT_S = 120.0  # then the cycle exports the page itself
# A page no worker has started by then never starts: the cycle takes it back a little later,
# and a page redelivered after its worker died (the broker's visibility timeout, an hour) would
# carry source values that may be stale by then.
PAGE_EXPIRES_S = 0.8 * PAGE_START_TIMEOUT_S
PAGE_TIMEOUT_S = 3600.0
POLL_S = 0.05


class CeleryDispatcher:
    """Pages to any worker through Celery; the cycle's own task waits for them in order."""

    def __init__(
        self, app: Any, *, window: int, start_timeout_s: float = PAGE_START_TIMEOUT_S
    ) -> None:
        self.app = app
        self.window = window
        self.start_timeout_s = start_timeout_s

    def submit(self, job: str, run_id: str, page: PageRequest) -> object:
        # A page no worker has started by then never starts (see PAGE_EXPIRES_S).
        return self.app.send_task(
            EXPORT_PAGE_TASK,
            args=[job, run_id, page.to_json()],
            expires=PAGE_EXPIRES_S * self.start_timeout_s / PAGE_START_TIMEOUT_S,
        )

    def wait(self, handle: object) -> PageOutcome:
        result: Any = handle
        started = time.monotonic()
        while result.state == "PENDING":
            if time.monotonic() - started > self.start_timeout_s:
                result.revoke()  # a worker that takes it after all will not run it
                raise PageNotTaken(f"no worker started page {result.id}")
            time.sleep(POLL_S)
        try:
            data = result.get(timeout=PAGE_TIMEOUT_S, disable_sync_subtasks=False)
        except SyncError:
            raise
        except Exception as exc:
            raise Transient(f"a page export failed on a worker: {exc!r}") from exc
        return PageOutcome.from_json(data)

    def abandon(self) -> None:
        """Pages on other workers run to their end (or expire unstarted) without the cycle."""
