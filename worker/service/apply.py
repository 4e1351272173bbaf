"""Carrying out one decision against the target directory, and saying what happened.

`Exporter.apply` turns a `Decision` into target writes (match, invite, patch, delete, restore)
and returns the provisioning-log outcome plus the link as it stands afterwards. Per-object
failures become failure outcomes; only `StopSync` escapes, because it stops the whole cycle.
In dry-run mode it reads (matching) but never writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.domain.errors import Conflict, NotFound, StopSync, SyncError
from worker.domain.job import JobSpec
from worker.domain.mapping import MappedValues, diff, remembered, writable
from worker.domain.model import (
    Action,
    Change,
    Link,
    LinkState,
    ObjectOutcome,
    SourceItem,
    SourceUser,
    Status,
    Step,
    TargetUser,
)
from worker.domain.plan import (
    CreateUser,
    Decision,
    Deprovision,
    DeprovisionUser,
    NoChange,
    RestoreUser,
    UpdateUser,
)
from worker.ports import TargetDirectory

REDACT = "[Redact]"


@dataclass
class Applied:
    outcome: ObjectOutcome
    link: Link | None
    link_changed: bool = False


@dataclass
class _Work:
    """The outcome being built for one object."""

    item: SourceItem
    steps: list[Step]
    redacted: frozenset[str] = frozenset()
    modified: dict[str, Change] = field(default_factory=dict)
    label: str = ""


class Exporter:
    def __init__(
        self,
        spec: JobSpec,
        target: TargetDirectory,
        *,
        run_id: str,
        dry_run: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.target = target
        self.run_id = run_id
        self.dry_run = dry_run
        self._monotonic = monotonic

    def apply(
        self,
        decision: Decision,
        item: SourceItem,
        link: Link | None,
        steps: list[Step],
        redacted: frozenset[str] = frozenset(),
    ) -> Applied:
        started = self._monotonic()
        label = item.label if isinstance(item, SourceUser) else (link.source_label if link else "")
        work = _Work(item=item, steps=steps, redacted=redacted, label=label)
        try:
            applied = self._apply(decision, link, work)
        except StopSync:
            raise
        except SyncError as error:
            work.steps.append(Step("export", Status.FAILURE, str(error)))
            applied = Applied(
                outcome=self._outcome(
                    work,
                    decision.action,
                    Status.FAILURE,
                    target_id=link.target_id if link else None,
                    error=error,
                ),
                link=link,
            )
        applied.outcome.duration_ms = int((self._monotonic() - started) * 1000)
        if applied.link is not None and isinstance(item, SourceUser):
            applied.link.last_seen_run = self.run_id
            if applied.link.source_label != label:
                applied.link.source_label = label
                applied.link_changed = not self.dry_run
        return applied

    # decisions ----------------------------------------------------------------------------------
    def _apply(self, decision: Decision, link: Link | None, work: _Work) -> Applied:
        if isinstance(decision, NoChange):
            status = Status.SKIPPED
            return Applied(
                outcome=self._outcome(
                    work,
                    Action.SKIP,
                    status,
                    target_id=link.target_id if link else None,
                    reason=decision.reason,
                ),
                link=link,
            )
        if isinstance(decision, CreateUser):
            return self._create(decision.address, decision.values, work)
        if isinstance(decision, UpdateUser):
            return self._update(decision, work)
        if isinstance(decision, RestoreUser):
            return self._restore(decision, work)
        return self._deprovision(decision, work)

    def _create(self, address: str, values: MappedValues, work: _Work) -> Applied:
        matched = self._match(address, values, work)
        if matched is not None:
            changes = diff(values.values, matched.attributes)
            self._write(matched.id, changes, work)
            link = self._new_link(
                work.item.id, matched.id, {**_known(matched), **_new(changes, work.redacted)}
            )
            return Applied(
                outcome=self._outcome(
                    work,
                    Action.UPDATE,
                    Status.SUCCESS,
                    target_id=matched.id,
                    reason="linked to the existing target user",
                ),
                link=link,
                link_changed=True,
            )
        if self.dry_run:
            work.modified = {k: Change(None, v) for k, v in writable(values.values).items()}
            work.steps.append(Step("export", Status.SUCCESS, f"would invite {address}"))
            return Applied(
                outcome=self._outcome(work, Action.CREATE, Status.SUCCESS, reason="dry run"),
                link=None,
            )
        invitation = self.target.invite(address, _display_name(values), self.spec.user_type)
        work.steps.append(
            Step("export", Status.SUCCESS, f"invited {address}: user {invitation.user_id}")
        )
        # The link is kept even if the attribute write fails: the target user exists now.
        link = self._new_link(work.item.id, invitation.user_id, {})
        changes = {k: Change(None, v) for k, v in writable(values.values).items()}
        try:
            self._write(invitation.user_id, changes, work)
        except SyncError as error:
            work.steps.append(Step("export", Status.FAILURE, str(error)))
            return Applied(
                outcome=self._outcome(
                    work, Action.CREATE, Status.FAILURE, target_id=invitation.user_id, error=error
                ),
                link=link,
                link_changed=True,
            )
        link.attributes = _new(changes, work.redacted)
        return Applied(
            outcome=self._outcome(
                work, Action.CREATE, Status.SUCCESS, target_id=invitation.user_id
            ),
            link=link,
            link_changed=True,
        )

    def _recreate(self, why: str, values: MappedValues, work: _Work) -> Applied:
        work.steps.append(Step("export", Status.WARNING, why))
        address = work.item.invitation_address if isinstance(work.item, SourceUser) else None
        if address is None:
            raise NotFound(f"{why}, and the source user has no address to invite")
        return self._create(address, values, work)

    def _match(self, address: str, values: MappedValues, work: _Work) -> TargetUser | None:
        """Find the target user this source user already is, if any; ambiguity is an error."""
        rules: list[tuple[str, str]] = [
            (m.target, str(values.values[m.target]))
            for m in self.spec.match_mappings
            if m.target in values.values
        ] or [("mail", address)]
        for attribute, value in rules:
            found = self.target.find_users(attribute, value, self.spec.target_select)
            if len(found) > 1:
                work.steps.append(
                    Step("matching", Status.FAILURE, f"{len(found)} target users have {attribute}")
                )
                raise Conflict(
                    f"ambiguous match: more than one target user has {attribute} = {value!r}; "
                    "fix the target or the matching mappings",
                    code="AmbiguousMatch",
                )
            if found:
                work.steps.append(
                    Step(
                        "matching",
                        Status.SUCCESS,
                        f"matched target user {found[0].id} on {attribute}",
                    )
                )
                return found[0]
        work.steps.append(Step("matching", Status.SUCCESS, "no target user matches: create"))
        return None

    def _update(self, decision: UpdateUser, work: _Work) -> Applied:
        link = decision.link
        try:
            self._write(link.target_id, decision.changes, work)
        except NotFound:
            # The target user vanished (deleted or purged by an admin): provision it again.
            return self._recreate("target user no longer exists", decision.values, work)
        updated = self._link_after(link, decision.changes, LinkState.ACTIVE, work)
        return Applied(
            outcome=self._outcome(work, decision.action, Status.SUCCESS, target_id=link.target_id),
            link=updated,
            link_changed=not self.dry_run,
        )

    def _restore(self, decision: RestoreUser, work: _Work) -> Applied:
        link = decision.link
        if not self.dry_run:
            try:
                self.target.restore_user(link.target_id)
            except NotFound:
                if self.target.get_user(link.target_id, ["id"]) is None:
                    # Purged from the recycle bin (after 30 days): a new user is needed.
                    return self._recreate("no longer restorable", decision.values, work)
        work.steps.append(Step("export", Status.SUCCESS, f"restored {link.target_id}"))
        try:
            self._write(link.target_id, decision.changes, work)
        except SyncError as error:
            restored = self._link_after(link, {}, LinkState.ACTIVE, work)
            return Applied(
                outcome=self._outcome(
                    work, Action.RESTORE, Status.FAILURE, target_id=link.target_id, error=error
                ),
                link=restored,
                link_changed=not self.dry_run,
            )
        restored = self._link_after(link, decision.changes, LinkState.ACTIVE, work)
        return Applied(
            outcome=self._outcome(
                work,
                Action.RESTORE,
                Status.SUCCESS,
                target_id=link.target_id,
                reason="restored from the target's recycle bin (same object id)",
            ),
            link=restored,
            link_changed=not self.dry_run,
        )

    def _deprovision(self, decision: DeprovisionUser, work: _Work) -> Applied:
        link = decision.link
        if decision.mode is Deprovision.SOFT_DELETE:
            state = LinkState.SOFT_DELETED
            changes: dict[str, Change] = {}
            if not self.dry_run:
                try:
                    self.target.delete_user(link.target_id)
                    work.steps.append(Step("export", Status.SUCCESS, "soft-deleted"))
                except NotFound:
                    work.steps.append(
                        Step("export", Status.WARNING, "already gone from the target")
                    )
        else:
            state = LinkState.DISABLED
            changes = {"accountEnabled": Change(link.attributes.get("accountEnabled"), False)}
            try:
                self._write(link.target_id, changes, work)
            except NotFound:
                work.steps.append(Step("export", Status.WARNING, "already gone from the target"))
                state = LinkState.SOFT_DELETED
        updated = self._link_after(link, changes, state, work)
        return Applied(
            outcome=self._outcome(
                work,
                decision.action,
                Status.SUCCESS,
                target_id=link.target_id,
                reason=decision.reason,
            ),
            link=updated,
            link_changed=not self.dry_run,
        )

    # helpers ----------------------------------------------------------------------------------
    def _write(self, target_id: str, changes: dict[str, Change], work: _Work) -> None:
        work.modified.update(changes)
        if not changes:
            return
        if self.dry_run:
            work.steps.append(Step("export", Status.SUCCESS, f"would update {sorted(changes)}"))
            return
        self.target.update_user(target_id, {name: c.new for name, c in changes.items()})
        work.steps.append(Step("export", Status.SUCCESS, f"updated {len(changes)} attributes"))

    def _new_link(self, source_id: str, target_id: str, attributes: dict[str, object]) -> Link:
        return Link(
            job=self.spec.name,
            source_id=source_id,
            target_id=target_id,
            state=LinkState.ACTIVE,
            attributes=dict(attributes),
            last_seen_run=self.run_id,
        )

    def _link_after(
        self, link: Link, changes: dict[str, Change], state: LinkState, work: _Work
    ) -> Link:
        return Link(
            job=link.job,
            source_id=link.source_id,
            target_id=link.target_id,
            state=state,
            attributes={**link.attributes, **_new(changes, work.redacted)},
            last_seen_run=link.last_seen_run,
            source_label=link.source_label,
        )

    def _outcome(
        self,
        work: _Work,
        action: Action,
        status: Status,
        *,
        target_id: str | None = None,
        reason: str = "",
        error: SyncError | None = None,
    ) -> ObjectOutcome:
        modified = {
            name: Change(REDACT, REDACT) if name in work.redacted else change
            for name, change in work.modified.items()
        }
        return ObjectOutcome(
            source_id=work.item.id,
            source_label=work.label,
            action=action,
            status=status,
            target_id=target_id,
            reason=reason or (error.message if error else ""),
            error_code=error.code if error else "",
            error_message=str(error) if error else "",
            steps=work.steps,
            modified=modified,
        )


def _new(changes: dict[str, Change], redacted: frozenset[str]) -> dict[str, object]:
    return remembered({name: change.new for name, change in changes.items()}, redacted)


def _known(user: TargetUser) -> dict[str, object]:
    return {k: v for k, v in user.attributes.items() if v is not None}


def _display_name(values: MappedValues) -> str | None:
    name = values.values.get("displayName")
    return name if isinstance(name, str) else None
