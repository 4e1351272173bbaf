"""Users a cycle reads one by one after its users round: pending members, escrows, the sweep.

- pending (incremental): users whose group membership changed but whose attributes did not;
- escrow (incremental): objects whose export failed before and whose next attempt is due (not
  those that failed in this very cycle: they wait for the next one);
- sweep (full): live links the round did not see; each user is read to confirm it is gone, then
  its departure is decided like any other. A link already deprovisioned the way the job
  deprovisions (disabled, with `deprovision: disable`) has nothing left to do unless its user
  comes back, which a delta round shows: it is not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from worker.domain.job import JobSpec
from worker.domain.model import SourceItem, SourceRemoval
from worker.domain.plan import departure_settled
from worker.ports import Ledger, SourceDirectory
from worker.service.feed import PageFeed

PENDING_BATCH = 100
SWEEP_BATCH = 200
ESCROW_BATCH = 100


class Rereads:
    def __init__(
        self,
        spec: JobSpec,
        *,
        source: SourceDirectory,
        ledger: Ledger,
        feed: PageFeed,
        run_id: str,
        started_at: datetime,
    ) -> None:
        self.spec = spec
        self.source = source
        self.ledger = ledger
        self.feed = feed
        self.run_id = run_id
        self.started_at = started_at

    def pending(self) -> None:
        # Each page resolves its users in the ledger, so the next batch is the next users.
        while True:
            batch = self.ledger.pending(self.spec.name, PENDING_BATCH)
            if not batch:
                break
            self.feed.process(self._read(batch), full=False, resolved_pending=batch)

    def escrows(self) -> None:
        # What failed in this very cycle waits for the next one.
        done: set[str] = set(self.feed.tally.failed)
        while True:
            due = self.ledger.due_escrows(self.spec.name, self.started_at, ESCROW_BATCH + len(done))
            batch = [source_id for source_id in due if source_id not in done][:ESCROW_BATCH]
            if not batch:
                break
            self.feed.process(self._read(batch), full=False, resolved_pending=[])
            done.update(batch)

    def sweep(self) -> None:
        policy = self.spec.policy
        for links in self.ledger.unseen_links(self.spec.name, self.run_id, SWEEP_BATCH):
            ids = [link.source_id for link in links if not departure_settled(link, policy)]
            if ids:
                self.feed.process(self._read(ids), full=True, resolved_pending=[])

    def _read(self, ids: Sequence[str]) -> list[SourceItem]:
        items: list[SourceItem] = []
        for source_id in ids:
            user = self.source.get_user(source_id, self.spec.select)
            items.append(user if user is not None else SourceRemoval(source_id, "deleted"))
        return items
