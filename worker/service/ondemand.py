"""Provisioning one user, or one group, now, outside the cycles (it works while the job is
paused).

The same decisions as a cycle, made for one source user and carried out at once: a
deprovisioning is sent directly, since an operator asked for exactly this user. A group of a
job with `groups.provision: true` is created or updated and its members set as the groups
phase does (docs/groups.md); members not provisioned yet are reported, never created. The
result is recorded as a run of mode `on_demand`, with its provisioning-log row.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.domain.job import JobSpec
from worker.domain.mapping import EvaluationContext, Mapper
from worker.domain.model import ObjectOutcome, SourceItem, SourceRemoval, SourceUser, Status
from worker.ports import Ledger, PageWrite, RunRecord, SourceDirectory, TargetDirectory
from worker.service.apply import Exporter
from worker.service.group_provision import GroupProvisioner
from worker.service.managers import ManagerReferences, page_references
from worker.service.page import prepare


class UnknownSourceUser(LookupError):
    """The id names no user of the source tenant, and no user this job ever provisioned."""


class GroupRefused(LookupError):
    """The group named is not one this job provisions (not in scope.groups, or the job does not
    provision groups): bad input, nothing done."""


@dataclass
class GroupResult:
    outcome: ObjectOutcome
    unlinked: list[str] = field(default_factory=list)  # source members not provisioned yet


_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


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
        run = _on_demand_run(spec.name, run_id, started_at)
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

    def group_for(self, name: str) -> str | None:
        """The id of the group of `scope.groups` that `name` (an object id or a displayName)
        names, or None when it names no group (then it is a user). Raises GroupRefused for a
        group this job does not provision."""
        spec = self.spec
        scoped = {g.lower() for g in spec.scope.group_ids}
        if _GUID.match(name):
            group_id = name.lower()
            if group_id not in scoped:
                if self.source.get_group(group_id, ["id"]) is None:
                    return None  # not a group: a user id
                raise GroupRefused(
                    f"group {group_id} is not in scope.groups of {spec.name}: only the groups "
                    "in scope.groups are provisioned"
                )
        elif "@" in name or not spec.groups.enabled:
            return None  # a UPN or a mail (a job without groups knows only users)
        else:
            found = [
                g
                for g in spec.scope.group_ids
                if (group := self.source.get_group(g, ["id", "displayName"])) is not None
                and group.display_name.casefold() == name.casefold()
            ]
            if len(found) != 1:
                raise GroupRefused(
                    f"{len(found)} groups of scope.groups of {spec.name} are named {name!r}: "
                    "give the group's object id"
                    if found
                    else f"no group named {name!r} in scope.groups of {spec.name} (a user is "
                    "named by its object id, UPN or mail)"
                )
            group_id = found[0].lower()
        if not spec.groups.enabled:
            raise GroupRefused(
                f"{spec.name} does not provision groups (groups.provision is false): "
                f"group {group_id} is only a scope"
            )
        return group_id

    def provision_group(self, group_id: str, *, run_id: str | None = None) -> GroupResult:
        """Provision one group of `scope.groups` now (see `group_for`): created or updated,
        its members set to the linked users of its in-scope members."""
        spec = self.spec
        if group_id not in {g.lower() for g in spec.scope.group_ids} or not spec.groups.enabled:
            raise GroupRefused(f"group {group_id} is not provisioned by {spec.name}")
        started_at = self.clock()
        self.source.sign_in()
        self.target.sign_in()
        run = _on_demand_run(spec.name, run_id, started_at)
        provisioner = GroupProvisioner(
            spec, source=self.source, target=self.target, ledger=self.ledger
        )
        write, unlinked = provisioner.provision_one(group_id)
        self.ledger.start_run(run)
        self.ledger.commit_page(spec.name, run.run_id, write)
        (outcome,) = write.outcomes
        run.status = "failed" if outcome.status is Status.FAILURE else "success"
        run.finished_at = self.clock()
        run.counts = {outcome.count_key: 1}
        run.error = outcome.error_message
        self.ledger.finish_run(run)
        return GroupResult(outcome, unlinked)

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


def _on_demand_run(job: str, run_id: str | None, started_at: datetime) -> RunRecord:
    """The run an on-demand provisioning is recorded under."""
    return RunRecord(
        run_id=run_id or str(uuid.uuid4()),
        job=job,
        mode="on_demand",
        dry_run=False,
        trigger="on_demand",
        started_at=started_at,
    )
