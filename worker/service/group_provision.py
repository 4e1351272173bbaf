"""Group provisioning (docs/groups.md): the groups phase after the users, and group deletions.

For each group of `scope.groups` the phase reads the source group, maps its attributes, and
creates (or updates, or renames) the static security group tenant-sync made for it in the
target, then makes its members equal to the target users linked to its source members. The
source members are the job's assignments as the groups read recorded them (a groups delta round
in incremental cycles, transitive members with nested groups); with `nested: skip` and nested
groups in scope, the group's direct members are read instead. A target group of the same name
that tenant-sync did not create is never taken over: the source group is skipped with that
reason. Writes go through the target port (one `$batch` stream, paced by the job's write quota).
A 403 is logged with a reason naming the application permission the app lacks (`denied`), not
Graph's bare "Insufficient privileges".

Deletions are not made here: `departures` tells the deletion phase which provisioned groups
left the scope or the source, and it counts them with the users' against the threshold
(`worker.service.deletions`), then calls `delete` or `hold`. Every decision is the domain's
(`worker.domain.groups`); each group's write is committed with its log row in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from worker.domain.errors import NotFound, StopSync, SyncError
from worker.domain.groups import (
    FIXED_GROUP_ATTRIBUTES,
    GROUP_OBJECT_TYPE,
    GroupLink,
    MemberChanges,
    Nested,
    SourceGroup,
    attribute_changes,
    departures,
    desired_attributes,
    member_changes,
    name_collision,
    unique_name,
    wanted_members,
)
from worker.domain.job import JobSpec
from worker.domain.mapping import Mapper
from worker.domain.model import Action, Change, LinkState, ObjectOutcome, SourceUser, Status, Step
from worker.ports import (
    CreateGroup,
    DeleteGroup,
    FindGroups,
    Ledger,
    PageWrite,
    PatchGroup,
    RemoveMember,
    Simulated,
    SourceDirectory,
    TargetDirectory,
    TargetGroup,
    TargetRequest,
)
from worker.service.feed import Tally
from worker.service.pipeline import PagePipeline

GroupDeparture = tuple[GroupLink, str]
_GRANT = (
    ": add that Microsoft Graph application permission to the {side} app registration and "
    "grant admin consent (`tenant-sync check {job}` tests it)"
)


def denied(request: TargetRequest | str, job: str) -> str:
    """Why a group request was refused (403): the permission the app lacks and how to grant it.
    `request` is a target request, or "source" / "target" for a read of groups and members."""
    side = "target"
    if request == "source":
        side, lacks = "source", "Group.Read.All (or GroupMember.Read.All), to read groups"
    elif request == "target" or isinstance(request, FindGroups):
        lacks = "Group.ReadWrite.All, to read groups and their members"
    elif isinstance(request, CreateGroup):
        lacks = "Group.ReadWrite.All (or Group.Create), to create groups"
    elif isinstance(request, PatchGroup) and request.attributes:
        lacks = "Group.ReadWrite.All, to update groups"
    elif isinstance(request, (PatchGroup, RemoveMember)):
        lacks = "GroupMember.ReadWrite.All (or Group.ReadWrite.All), to change group members"
    else:
        lacks = "Group.ReadWrite.All, to delete groups"
    return f"the {side} app lacks {lacks}" + _GRANT.format(side=side, job=job)


@dataclass
class _Group:
    """One group's processing: its steps, writes' answers and result."""

    source_id: str
    label: str = ""
    steps: list[Step] = field(default_factory=list)
    modified: dict[str, Change] = field(default_factory=dict)
    simulated: bool = False
    errors: list[SyncError] = field(default_factory=list)
    denied: str = ""  # the first 403's missing permission (`denied`)

    def answer(self, result: Any, request: TargetRequest | None = None, job: str = "") -> bool:
        """Note one write's answer; True when it succeeded."""
        if isinstance(result, Simulated) or getattr(result, "simulated", False):
            self.simulated = True
        if isinstance(result, SyncError):
            self.errors.append(result)
            if result.status == 403 and request is not None and not self.denied:
                self.denied = denied(request, job)
            return False
        return True


class GroupProvisioner:
    def __init__(
        self,
        spec: JobSpec,
        *,
        source: SourceDirectory,
        target: TargetDirectory,
        ledger: Ledger,
        pipeline: PagePipeline | None = None,
        tally: Tally | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.ledger = ledger
        self.pipeline = pipeline
        self.tally = tally
        self.monotonic = monotonic
        self.mapper = Mapper(spec.groups.mappings)

    @property
    def enabled(self) -> bool:
        return self.spec.groups.enabled

    # the groups phase -------------------------------------------------------------------------
    def run(self) -> None:
        """Create, update and fill each group in scope (its log row committed with its link)."""
        if not self.enabled:
            return
        job = self.spec.name
        links = {g.source_id: g for g in self.ledger.group_links(job)}
        recorded: dict[str, set[str]] = {}
        for group_id, user_id in self.ledger.memberships(job):
            recorded.setdefault(group_id, set()).add(user_id)
        for group_id in self.spec.scope.group_ids:
            started = self.monotonic()
            write = self._one(group_id, links.get(group_id), recorded.get(group_id, set()))
            for outcome in write.outcomes:
                outcome.duration_ms = int((self.monotonic() - started) * 1000)
            self._commit(write)

    def _commit(self, write: PageWrite) -> None:
        # The cycle's phases commit through its pipeline (`provision_one` returns its write).
        assert self.pipeline is not None
        assert self.tally is not None
        self.tally.add(self.pipeline.write(write))

    def provision_one(self, group_id: str) -> tuple[PageWrite, list[str]]:
        """One group of `scope.groups` now (`tenant-sync provision`): created or updated and
        its members set, read afresh from the source. Returns the write for the caller to
        commit, and the source members not provisioned yet (left out, never created here)."""
        link = next(
            (g for g in self.ledger.group_links(self.spec.name) if g.source_id == group_id), None
        )
        transitive = self.spec.scope.nested_groups and self.spec.groups.nested is Nested.FLATTEN
        try:
            recorded = self.source.group_member_ids(group_id, transitive=transitive)
        except NotFound:
            recorded = set()  # gone from the source: `_one` says so
        members = self._source_members(group_id, recorded)
        unlinked = sorted(members - set(self._linked_targets(members)))
        write = self._one(group_id, link, recorded)
        if unlinked:
            for outcome in write.outcomes:
                outcome.steps.append(
                    Step(
                        "members",
                        Status.WARNING,
                        f"{len(unlinked)} source member(s) not provisioned yet, left out: "
                        + ", ".join(unlinked[:10])
                        + (" …" if len(unlinked) > 10 else ""),
                    )
                )
        return write, unlinked

    def _source_members(self, group_id: str, recorded: set[str]) -> set[str]:
        if self.spec.groups.nested is Nested.SKIP and self.spec.scope.nested_groups:
            # The recorded assignments hold nested groups' members too: read the direct ones.
            with self._reading("source"):
                return self.source.group_member_ids(group_id, transitive=False)
        return recorded

    def _linked_targets(self, members: set[str]) -> dict[str, str]:
        links = self.ledger.links_for(self.spec.name, sorted(members))
        return {s: x.target_id for s, x in links.items() if x.state is LinkState.ACTIVE}

    def _one(self, group_id: str, link: GroupLink | None, recorded: set[str]) -> PageWrite:
        work = _Group(source_id=group_id, label=link.display_name if link else "")
        try:
            return self._sync(work, link, recorded)
        except StopSync:
            raise
        except SyncError as error:
            # This group's failure (a read or a lookup): the next cycle tries it again.
            failed = self._outcome(work, Action.OTHER, Status.FAILURE, link, error=error)
            return PageWrite(outcomes=[failed])

    @contextmanager
    def _reading(self, side: str) -> Iterator[None]:
        """A read of groups refused (403) stops the cycle as any refused read does, with the
        permission named."""
        try:
            yield
        except StopSync as error:
            if error.status != 403:
                raise
            why = f"{denied(side, self.spec.name)} ({error})"
            raise StopSync(why, code=error.code, status=403) from error

    def _sync(self, work: _Group, link: GroupLink | None, recorded: set[str]) -> PageWrite:
        with self._reading("source"):
            group = self.source.get_group(work.source_id, self.spec.groups.source_select)
        if group is None:
            work.steps.append(Step("import", Status.SKIPPED, "source group not found"))
            reason = "source group not found" + (
                "; its target group is deleted at the end of the cycle" if link else ""
            )
            return PageWrite(
                outcomes=[self._outcome(work, Action.SKIP, Status.SKIPPED, link, reason=reason)]
            )
        work.label = group.display_name or work.label
        work.steps.append(Step("import", Status.SUCCESS, "read from the source"))
        desired = self._desired(group, creating=link is None)
        name = str(desired.get("displayName") or "")
        if not name:
            reason = "the mappings give the group no displayName"
            work.steps.append(Step("processing", Status.SKIPPED, reason))
            return PageWrite(
                outcomes=[self._outcome(work, Action.SKIP, Status.WARNING, link, reason=reason)]
            )
        current: set[str] = set()
        if link is not None:
            try:
                with self._reading("target"):
                    current = self.target.group_member_ids(link.target_id)
            except NotFound:
                # Deleted in the target by hand: made again (if its name is still free).
                work.steps.append(
                    Step("matching", Status.WARNING, f"target group {link.target_id} is gone")
                )
                link = None
        if link is None:
            return self._create(work, group, recorded)
        work.steps.append(
            Step("matching", Status.SUCCESS, f"linked to target group {link.target_id}")
        )
        return self._update(work, group, link, desired, current, recorded)

    def _desired(self, group: SourceGroup, *, creating: bool) -> dict[str, Any]:
        mapped = self.mapper.map(SourceUser(group.id, group.attributes), creating=creating)
        return desired_attributes(mapped.values, group.id)

    def _holders(self, work: _Group, name: str) -> list[str]:
        request = FindGroups(name)
        (found,) = self.target.execute([request])
        if isinstance(found, SyncError):
            work.answer(found, request, self.spec.name)
            raise found
        return [g.id for g in found]

    def _provisioned(self) -> dict[str, str]:
        """This job's target groups, each to the source group it was made for."""
        return {g.target_id: g.source_id for g in self.ledger.group_links(self.spec.name)}

    def _ours(self, unique: str) -> TargetGroup | None:
        """The target group carrying this uniqueName: one tenant-sync created earlier."""
        (found,) = self.target.execute([FindGroups("", unique_name=unique)])
        if isinstance(found, SyncError):
            raise found
        return found[0] if found else None

    def _adopt(
        self, work: _Group, group: SourceGroup, found: TargetGroup, recorded: set[str]
    ) -> PageWrite:
        """A group made by an earlier creation whose link was never committed (its answer
        lost, or the worker stopped): linked now, then updated like any linked group."""
        work.errors.clear()
        work.steps.append(
            Step(
                "matching",
                Status.SUCCESS,
                f"target group {found.id} carries this group's uniqueName (created by "
                "tenant-sync earlier, not linked): linked",
            )
        )
        link = GroupLink(self.spec.name, group.id, found.id, found.display_name, {})
        desired = self._desired(group, creating=True)
        current = self.target.group_member_ids(found.id)
        return self._update(work, group, link, desired, current, recorded, adopted=True)

    def _create(self, work: _Group, group: SourceGroup, recorded: set[str]) -> PageWrite:
        # Mapped as a creation (with the on_create mappings), whatever was mapped before.
        desired = self._desired(group, creating=True)
        name = str(desired.get("displayName") or "")
        unique = unique_name(self.spec.name, group.id)
        holders = self._holders(work, name)
        if holders:
            ours = self._ours(unique)
            if ours is not None:
                return self._adopt(work, group, ours, recorded)
        collision = name_collision(name, holders, None, self._provisioned())
        if collision:
            work.steps.append(Step("matching", Status.WARNING, collision))
            return PageWrite(
                outcomes=[self._outcome(work, Action.SKIP, Status.WARNING, None, reason=collision)]
            )
        create = CreateGroup({**desired, **FIXED_GROUP_ATTRIBUTES, "uniqueName": unique})
        (created,) = self.target.execute([create])
        if not work.answer(created, create, self.spec.name):
            # Refused or lost: the group may exist all the same (made, answer lost).
            ours = self._ours(unique)
            if ours is not None:
                return self._adopt(work, group, ours, recorded)
            work.steps.append(Step("export", Status.FAILURE, "the group could not be created"))
            return PageWrite(outcomes=[self._outcome(work, Action.CREATE, Status.FAILURE, None)])
        assert isinstance(created, TargetGroup)
        work.modified = {k: Change(None, v) for k, v in sorted(desired.items())}
        link = GroupLink(self.spec.name, group.id, created.id, name, dict(desired))
        changes = self._members(work, link, set(), recorded)
        work.steps.append(Step("export", self._status(work), f"created; {changes.describe()}"))
        status = self._status(work)
        return PageWrite(
            group_links=[link], outcomes=[self._outcome(work, Action.CREATE, status, link)]
        )

    def _update(
        self,
        work: _Group,
        group: SourceGroup,
        link: GroupLink,
        desired: dict[str, Any],
        current: set[str],
        recorded: set[str],
        *,
        adopted: bool = False,
    ) -> PageWrite:
        changes = attribute_changes(link.attributes, desired)
        warning = ""
        name = str(desired["displayName"])
        if "displayName" in changes:
            collision = name_collision(
                name, self._holders(work, name), link.target_id, self._provisioned()
            )
            if collision:
                # The rename waits until the name is free; the rest flows.
                warning = "rename held: " + collision
                changes.pop("displayName")
        stored = dict(link.attributes)
        if changes:
            patch = {k: new for k, (_, new) in changes.items()}
            request = PatchGroup(link.target_id, patch)
            (answer,) = self.target.execute([request])
            if work.answer(answer, request, self.spec.name):
                stored.update(patch)
                work.modified = {k: Change(old, new) for k, (old, new) in changes.items()}
        new_link = GroupLink(
            self.spec.name, group.id, link.target_id, str(stored.get("displayName") or ""), stored
        )
        members = self._members(work, new_link, current, recorded)
        if warning:
            work.steps.append(Step("processing", Status.WARNING, warning))
        if not changes and members.empty and not work.errors and not adopted:
            status = Status.WARNING if warning else Status.SKIPPED
            work.steps.append(Step("export", status, "no change"))
            return PageWrite(
                group_links=[new_link] if new_link != link else [],
                outcomes=[
                    self._outcome(
                        work, Action.SKIP, status, new_link, reason=warning or "no change"
                    )
                ],
            )
        status = self._status(work)
        if warning and status is Status.SUCCESS:
            status = Status.WARNING
        work.steps.append(Step("export", status, members.describe()))
        return PageWrite(
            group_links=[new_link],
            outcomes=[
                self._outcome(
                    work,
                    Action.CREATE if adopted else Action.UPDATE,  # finishing its creation
                    status,
                    new_link,
                    reason=warning,
                )
            ],
        )

    def _members(
        self, work: _Group, link: GroupLink, current: set[str], recorded: set[str]
    ) -> MemberChanges:
        """Make the target group's members the linked users of its source members."""
        source_members = self._source_members(link.source_id, recorded)
        wanted = wanted_members(source_members, self._linked_targets(source_members), set())
        changes = member_changes(current, wanted)
        if changes.empty:
            return changes
        requests: list[TargetRequest] = [
            PatchGroup(link.target_id, add_members=batch) for batch in changes.add_batches()
        ]
        requests += [RemoveMember(link.target_id, member) for member in changes.remove]
        answers = self.target.execute(requests)
        for request, answer in zip(requests, answers, strict=True):
            if isinstance(request, RemoveMember) and isinstance(answer, NotFound):
                continue  # already gone
            work.answer(answer, request, self.spec.name)
        work.modified["members"] = Change(len(current), len(wanted))
        return changes

    @staticmethod
    def _status(work: _Group) -> Status:
        return Status.FAILURE if work.errors else Status.SUCCESS

    def _outcome(
        self,
        work: _Group,
        action: Action,
        status: Status,
        link: GroupLink | None,
        *,
        reason: str = "",
        error: SyncError | None = None,
    ) -> ObjectOutcome:
        error = error or (work.errors[0] if work.errors else None)
        if work.denied:
            reason = f"{work.denied}; {reason}" if reason else work.denied
        return ObjectOutcome(
            source_id=work.source_id,
            source_label=work.label,
            target_id=link.target_id if link else None,
            action=action,
            status=Status.FAILURE if error is not None else status,
            reason=reason,
            error_code=error.code if error else "",
            error_message=str(error) if error is not None else "",
            steps=work.steps,
            modified=work.modified,
            simulated=work.simulated,
            object_type=GROUP_OBJECT_TYPE,
        )

    # deletions (called by the deletion phase) -------------------------------------------------
    def linked(self) -> int:
        """How many groups the job has provisioned (the threshold's percentage counts them)."""
        return len(self.ledger.group_links(self.spec.name))

    def departures(self) -> list[GroupDeparture]:
        """The provisioned groups to delete: out of scope, or gone from the source."""
        if not self.enabled:
            return []  # provisioning turned off: the groups made are left as they are
        links = self.ledger.group_links(self.spec.name)
        if not links:
            return []
        scope = set(self.spec.scope.group_ids)
        gone = [g.source_id for g in links if g.source_id in scope and self._gone(g.source_id)]
        return departures(links, scope, gone)

    def _gone(self, group_id: str) -> bool:
        with self._reading("source"):
            return self.source.get_group(group_id, ["id"]) is None

    def hold(self, found: Sequence[GroupDeparture], message: str) -> None:
        """Over the threshold: log each as a staged delete; nothing is sent."""
        if not found:
            return
        outcomes = [
            ObjectOutcome(
                source_id=link.source_id,
                source_label=link.display_name,
                target_id=link.target_id,
                action=Action.STAGED_DELETE,
                status=Status.WARNING,
                reason=f"{why}; {message}",
                steps=[
                    Step("scoping", Status.SKIPPED, why),
                    Step("export", Status.WARNING, "staged: " + message),
                ],
                object_type=GROUP_OBJECT_TYPE,
            )
            for link, why in found
        ]
        self._commit(PageWrite(outcomes=outcomes))

    def delete(self, found: Sequence[GroupDeparture], *, approved: bool) -> None:
        """Delete the target groups (a group already gone is a success) and their links."""
        if not found:
            return
        requests = [DeleteGroup(link.target_id) for link, _ in found]
        answers = self.target.execute(list(requests))
        outcomes: list[ObjectOutcome] = []
        dropped: list[str] = []
        for (link, why), request, answer in zip(found, requests, answers, strict=True):
            work = _Group(source_id=link.source_id, label=link.display_name)
            work.steps.append(Step("scoping", Status.SKIPPED, why))
            if isinstance(answer, NotFound):
                answer = None  # deleted by hand already: the link goes all the same
            ok = work.answer(answer, request, self.spec.name)
            work.steps.append(
                Step("export", self._status(work), "deleted" if ok else "not deleted")
            )
            if ok:
                dropped.append(link.source_id)
            outcome = self._outcome(work, Action.DELETE, Status.SUCCESS, link, reason=why)
            outcome.approved = approved
            outcomes.append(outcome)
        self._commit(PageWrite(outcomes=outcomes, dropped_groups=dropped))
