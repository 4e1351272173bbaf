"""Provisioning one user now, outside the cycles (it works while the job is paused).

The same decisions as a cycle, made for one source user and carried out at once: a
deprovisioning is sent directly, since an operator asked for exactly this user. The result is
recorded as a run of mode `on_demand`, with its provisioning-log row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from worker.domain.job import JobSpec
from worker.domain.mapping import EvaluationContext, Mapper
from worker.domain.model import ObjectOutcome, SourceItem, SourceRemoval, SourceUser, Status
from worker.ports import Ledger, PageWrite, RunRecord, SourceDirectory, TargetDirectory
from worker.service.apply import Exporter
from worker.service.managers import ManagerReferences, page_references
from worker.service.page import prepare


class UnknownSourceUser(LookupError):
    """The id names no user of the source tenant, and no user this job ever provisioned."""


class OnDemand:
    def __init__(
        self,
        spec: JobSpec,
        *,
        source: SourceDirectory,
        target: TargetDirectory,
        ledger: Ledger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.ledger = ledger
        self.clock = clock

    def provision(self, source_user_id: str, *, run_id: str | None = None) -> ObjectOutcome:
        """Provision one user now; `run_id` names the run recorded for it (default: a new id),
        so a caller can find its provisioning-log row."""
        spec = self.spec
        started_at = self.clock()
        self.source.sign_in()
        self.target.sign_in()
        user = self.source.get_user(source_user_id, spec.select)
        link = self.ledger.links_for(spec.name, [source_user_id]).get(source_user_id)
        if user is None and link is None:
            # A typo must not leave a run and a log row behind; a linked user who is gone
            # from the source is deprovisioned, as the next cycle would.
            raise UnknownSourceUser(
                f"no user {source_user_id} in the source tenant, and none linked by {spec.name}"
            )
        item: SourceItem = user if user is not None else SourceRemoval(source_user_id, "deleted")
        run = RunRecord(
            run_id=run_id or str(uuid.uuid4()),
            job=spec.name,
            mode="on_demand",
            dry_run=False,
            trigger="on_demand",
            started_at=started_at,
        )
        self.ledger.start_run(run)
        mapper = Mapper(
            spec.mappings,
            EvaluationContext(now=self.clock, is_unique=self._is_unique),
        )
        prepared = prepare(spec, mapper, item, link, assigned=self._assigned(item))
        if isinstance(prepared, ObjectOutcome):
            outcome, changed = prepared, None
        else:
            exporter = Exporter(
                spec, self.target, ledger=self.ledger, run_id=run.run_id, monotonic=time.monotonic
            )
            (applied,) = exporter.apply([prepared])
            outcome = applied.outcome
            changed = applied.link if applied.link_changed else None
            if spec.manager:
                # The manager's reference, when the manager is linked; else a warning.
                references, _ = page_references(spec, [(item, link, applied)], complete=True)
                managers = ManagerReferences(spec, ledger=self.ledger, target=self.target)
                written, _ = managers.settle(references, {}, final=True)
                changed = written[0] if written else changed
        failed = outcome.status is Status.FAILURE
        self.ledger.commit_page(
            spec.name,
            run.run_id,
            PageWrite(
                links=[changed] if changed else [],
                outcomes=[outcome],
                released=[] if failed else [source_user_id],
                unstaged=[source_user_id],
            ),
        )
        run.status = "failed" if failed else "success"
        run.finished_at = self.clock()
        run.counts = {outcome.count_key: 1}
        run.error = outcome.error_message
        self.ledger.finish_run(run)
        return outcome

    def _assigned(self, item: SourceItem) -> bool:
        scope = self.spec.scope
        if not scope.assigned_only or not isinstance(item, SourceUser):
            return True
        if item.id in scope.user_ids:
            return True
        groups = self.source.member_of(item.id, transitive=scope.nested_groups)
        return bool(groups & set(scope.group_ids))

    def _is_unique(self, attribute: str, value: str) -> bool:
        return not self.target.find_users(attribute, value, ["id"])
