"""The users round: the source's users delta, page by page, through the page dispatcher.

A full cycle starts a fresh delta round (every user); an incremental one reads from the
watermark's deltaLink. Each page goes to the dispatcher — the cycle's own process, or other
workers `window` pages at a time — and pages may finish in any order; the cursor moves past a
page only when it and every page before it are committed, so a crash re-exports at most the
pages in flight and never skips one. A page no worker took in time is run here instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import structlog

from worker.domain.errors import ResyncRequired, StopSync
from worker.domain.job import JobSpec
from worker.domain.model import SourceUser
from worker.ports import Ledger, LiveProgress, SourceDirectory, TargetDirectory, UserPage
from worker.service.feed import PageFeed
from worker.service.page import PageRequest
from worker.service.pipeline import PageDispatcher, PageNotTaken, PageOutcome
from worker.service.position import Position

log = structlog.get_logger("tenant_sync.cycle")


class UsersRound:
    def __init__(
        self,
        spec: JobSpec,
        *,
        source: SourceDirectory,
        target: TargetDirectory,
        ledger: Ledger,
        position: Position,
        feed: PageFeed,
        dispatcher: PageDispatcher,
        live: LiveProgress,
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.ledger = ledger
        self.position = position
        self.feed = feed
        self.dispatcher = dispatcher
        self.live = live

    def read(self, *, full: bool) -> None:
        """The users phase; on return the round's deltaLink is in the progress."""
        p = self.position.progress
        watermark = self.position.watermark
        if p.next_link:
            url = p.next_link
        elif full:
            url = self.source.users_delta_start(self.spec.select)
        elif watermark is not None:
            url = watermark.users_delta_link
        else:
            raise ResyncRequired("no users delta link is recorded for this job")
        if full:
            self.feed.target_ids = self.target.user_ids()
        in_flight: deque[tuple[object, PageRequest, str | None]] = deque()
        try:
            self._read_pages(url, full=full, in_flight=in_flight)
        except BaseException:
            try:
                self._settle_committed(in_flight)
            finally:
                self.dispatcher.abandon()
            raise

    def _read_pages(
        self, url: str, *, full: bool, in_flight: deque[tuple[object, PageRequest, str | None]]
    ) -> None:
        p = self.position.progress
        window = max(1, self.dispatcher.window)
        while True:
            page = self._page(url)
            if full and page.next_link is None and p.seen_users == 0:
                self._refuse_empty_source()
            request = self.feed.request(
                page.items,
                full=full,
                resolved_pending=[] if full else [i.id for i in page.items],
            )
            handle = self.dispatcher.submit(self.spec.name, p.run_id, request)
            in_flight.append((handle, request, page.next_link))
            while len(in_flight) >= window:
                self._settle_next(in_flight)
            if page.next_link:
                url = page.next_link
                continue
            while in_flight:
                self._settle_next(in_flight)
            if not page.delta_link:
                raise StopSync("the users delta round ended without a deltaLink")
            p.users_delta_link = page.delta_link
            return

    def catch_up(self) -> None:
        """The users changed since the round's deltaLink, read here, page by page."""
        p = self.position.progress
        url = p.users_delta_link
        while url:
            page = self._page(url)
            self.feed.process(page.items, full=False, resolved_pending=[i.id for i in page.items])
            if page.delta_link:
                p.users_delta_link = page.delta_link
            url = page.next_link

    def _page(self, url: str) -> UserPage:
        page = self.source.users_page(url)
        users = sum(1 for item in page.items if isinstance(item, SourceUser))
        self.position.progress.seen_users += users
        self.live.add(self.spec.name, read=users)
        return page

    def _settle_next(self, in_flight: deque[tuple[object, PageRequest, str | None]]) -> None:
        try:
            self._settle(in_flight.popleft())
        except BaseException:
            in_flight.clear()  # none after a page that failed: the cursor stays before it
            raise

    def _settle_committed(self, in_flight: deque[tuple[object, PageRequest, str | None]]) -> None:
        """After the round failed: the pages in flight whose commits succeed are counted and the
        cursor moves past them, in order, as the round would have; the first that fails (or
        that no worker took) ends it, and the pages after it are exported again by the next
        cycle. A failed cycle so ends only once its pages are no longer being written."""
        while in_flight:
            handle, _request, next_link = in_flight.popleft()
            try:
                # A page no worker took stays untaken here: the cycle has failed.
                self._settled(self.dispatcher.wait(handle), next_link)
            except Exception:
                return  # the round's own error is the one the cycle reports

    def _settle(self, entry: tuple[object, PageRequest, str | None]) -> None:
        handle, request, next_link = entry
        try:
            outcome = self.dispatcher.wait(handle)
        except PageNotTaken:
            log.warning("no worker took a page in time: exporting it here")
            # Pages committed since it was read may have changed its links: read them again.
            outcome = self.feed.pipeline.run(replace(request, links=None))
        self._settled(outcome, next_link)

    def _settled(self, outcome: PageOutcome, next_link: str | None) -> None:
        """A page committed: counted, and the cursor moved past it."""
        self.feed.tally.add(outcome)
        if next_link:
            self.position.progress.next_link = next_link
            self.position.save()

    def _refuse_empty_source(self) -> None:
        live = self.ledger.link_count(self.spec.name)
        if live:
            raise StopSync(
                f"the source returned no users while {live} target users are linked; "
                "refusing to treat that as everyone being deleted"
            )
