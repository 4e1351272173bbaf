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
from dataclasses import dataclass, field, replace
from typing import Any

from worker.domain.errors import NotFound, StopSync, SyncError
from worker.domain.groups import (
    FIXED_GROUP_ATTRIBUTES,
    GROUP_OBJECT_TYPE,
    MEMBER_COUNT,
    GroupLink,
    MemberWrites,
    Nested,
    SourceGroup,
    attribute_changes,
    departures,
    desired_attributes,
    mail_nickname,
    member_changes,
    missing_members_reason,
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
    warnings: list[str] = field(default_factory=list)  # reasons the row is a warning

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
        # Groups renamed to a temporary name this cycle (source id -> the name they had).
        self._parked: dict[str, str] = {}
        self._may_park = False  # only in a cycle, where the other group's rename follows

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
        self._parked.clear()
        self._may_park = True
        for group_id in self.spec.scope.group_ids:
            started = self.monotonic()
            write = self._one(group_id, links.get(group_id), recorded.get(group_id, set()))
            for outcome in write.outcomes:
                outcome.duration_ms = int((self.monotonic() - started) * 1000)
            self._commit(write)
        if self._parked:
            self._unpark(recorded)

    def _unpark(self, recorded: dict[str, set[str]]) -> None:
        """Groups parked under a temporary name to free their name for a group waiting for it
        (two names swapped in the source) take their own name now: the row each wrote this
        cycle is rewritten with the whole rename (one row per object per cycle)."""
        parked, self._parked, self._may_park = dict(self._parked), {}, False
        links = {g.source_id: g for g in self.ledger.group_links(self.spec.name)}
        assert self.pipeline is not None
        first = self.ledger.run_rows(self.spec.name, self.pipeline.run_id, list(parked))
        for group_id, original in parked.items():
            write = self._one(group_id, links.get(group_id), recorded.get(group_id, set()))
            earlier = first.get(group_id)
            for outcome in write.outcomes:
                note = Step(
                    "processing",
                    Status.SUCCESS,
                    f"renamed through a temporary name: another group of this job was waiting "
                    f"for {original!r}",
                )
                renamed = outcome.modified.get("displayName")
                if earlier is not None:
                    # The row keeps what the first pass did (members, other attributes).
                    outcome.modified = {**earlier.modified, **outcome.modified}
                    later = [s for s in outcome.steps if s.name != "import"]
                    outcome.steps = [*earlier.steps, note, *later]
                else:
                    outcome.steps.insert(0, note)
                if renamed is not None:
                    outcome.modified["displayName"] = Change(original, renamed.new)
            self._commit(write, replacing=True)

    def _commit(self, write: PageWrite, *, replacing: bool = False) -> None:
        # The cycle's phases commit through its pipeline (`provision_one` returns its write).
        assert self.pipeline is not None
        assert self.tally is not None
        if replacing:
            # One row per object per cycle: a deletion made or held rewrites, in place, the row
            # the groups phase wrote for the group ("source group not found; …").
            ids = [o.source_id for o in write.outcomes]
            rows = self.ledger.run_rows(self.spec.name, self.pipeline.run_id, ids)
            if rows:
                self.tally.replaced(list(rows.values()))
                write = replace(write, replaces=sorted(rows))
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
            left_out = (
                f"{len(unlinked)} source member(s) not provisioned yet, left out: "
                + ", ".join(unlinked[:10])
                + (" …" if len(unlinked) > 10 else "")
            )
            for outcome in write.outcomes:
                outcome.steps.append(Step("members", Status.WARNING, left_out))
                # The row is the worst of its steps: members left out are a warning.
                if outcome.status in (Status.SKIPPED, Status.SUCCESS):
                    outcome.status = Status.WARNING
                    kept = "" if outcome.reason == "no change" else outcome.reason
                    outcome.reason = f"{kept}; {left_out}" if kept else left_out
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
            adopted = None if link is not None else self._orphan(work)
            reason = "source group not found" + (
                "; its target group is deleted at the end of the cycle" if link or adopted else ""
            )
            link = link or adopted
            return PageWrite(
                group_links=[adopted] if adopted else [],
                outcomes=[self._outcome(work, Action.SKIP, Status.SKIPPED, link, reason=reason)],
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

    def _swapped(self, holders: list[TargetGroup], link: GroupLink) -> bool:
        """Whether the group of this job holding the wanted name wants this group's name."""
        if not self._may_park or link.source_id in self._parked or not link.display_name:
            return False  # parked once already: no loop
        provisioned = self._provisioned()
        for holder in holders:
            other = provisioned.get(holder.id)
            if other is None or other == link.source_id:
                continue
            with self._reading("source"):
                group = self.source.get_group(other, self.spec.groups.source_select)
            if group is not None:
                wanted = self._desired(group, creating=False).get("displayName")
                if str(wanted or "").casefold() == link.display_name.casefold():
                    return True
        return False

    def _desired(self, group: SourceGroup, *, creating: bool) -> dict[str, Any]:
        mapped = self.mapper.map(SourceUser(group.id, group.attributes), creating=creating)
        return desired_attributes(mapped.values, group.id)

    def _holders(self, work: _Group, name: str) -> list[TargetGroup]:
        request = FindGroups(name)
        (found,) = self.target.execute([request])
        if isinstance(found, SyncError):
            work.answer(found, request, self.spec.name)
            raise found
        return list(found)

    def _collision(self, name: str, holders: list[TargetGroup], linked: str | None) -> str | None:
        return name_collision(
            name,
            [g.id for g in holders],
            linked,
            self._provisioned(),
            {g.id: g.unique_name for g in holders},
        )

    def _provisioned(self) -> dict[str, str]:
        """This job's target groups, each to the source group it was made for."""
        return {g.target_id: g.source_id for g in self.ledger.group_links(self.spec.name)}

    def _ours(self, unique: str) -> TargetGroup | None:
        """The target group carrying this uniqueName: one tenant-sync created earlier."""
        (found,) = self.target.execute([FindGroups("", unique_name=unique)])
        if isinstance(found, SyncError):
            raise found
        return found[0] if found else None

    def _orphan(self, work: _Group) -> GroupLink | None:
        """A source group gone with no link: the group an interrupted creation made for it (it
        carries this job's uniqueName) is linked now, so that the deletion phase deletes it
        like any provisioned group (through the threshold) and no orphan is left behind."""
        found = self._ours(unique_name(self.spec.name, work.source_id))
        if found is None:
            return None
        work.steps.append(
            Step(
                "matching",
                Status.SUCCESS,
                f"target group {found.id} carries this group's uniqueName (created by "
                "tenant-sync earlier, not linked): linked, to be deleted",
            )
        )
        work.label = work.label or found.display_name
        return GroupLink(self.spec.name, work.source_id, found.id, found.display_name, {})

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
        collision = self._collision(name, holders, None)
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
        members = self._members(work, link, set(), recorded)
        link.attributes[MEMBER_COUNT] = members.count_after(0)
        work.steps.append(Step("export", self._status(work), f"created; {members.describe()}"))
        status = self._status(work)
        outcome = self._outcome(work, Action.CREATE, status, link, reason=self._reason(work))
        return PageWrite(group_links=[link], outcomes=[outcome])

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
            holders = self._holders(work, name)
            collision = self._collision(name, holders, link.target_id)
            if collision and self._swapped(holders, link):
                # The two wait for each other: this one steps aside under a temporary name,
                # the other takes its name, and this one is renamed at the end of the phase.
                self._parked[link.source_id] = link.display_name
                changes["displayName"] = (link.display_name, _temporary(link))
                collision = None
            if collision:
                # The rename waits until the name is free; the rest flows.
                warning = "rename held: " + collision
                changes.pop("displayName")
                nickname = changes.get("mailNickname")
                if nickname and nickname[1] == mail_nickname(name, group.id):
                    changes.pop("mailNickname")  # made from the held name: it waits with it
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
        last = link.attributes.get(MEMBER_COUNT)
        stored[MEMBER_COUNT] = members.count_after(len(current))
        if members.planned.empty and isinstance(last, int) and last != len(current):
            # The target already holds the wanted members, but not what the link last recorded:
            # written by a cycle stopped before its commit (or by hand). Logged now.
            work.modified["members"] = Change(last, len(current))
            work.steps.append(
                Step(
                    "members",
                    Status.SUCCESS,
                    f"the target group already has its {len(current)} wanted member(s); "
                    f"{last} were recorded (changed by a cycle stopped before its commit, "
                    "or in the target)",
                )
            )
        if warning:
            work.steps.append(Step("processing", Status.WARNING, warning))
            work.warnings.insert(0, warning)
        if not work.modified and not members.done and not work.errors and not adopted:
            status = self._status(work) if work.warnings else Status.SKIPPED
            work.steps.append(
                Step("export", status, members.describe() if members.missing else "no change")
            )
            return PageWrite(
                group_links=[new_link] if new_link != link else [],
                outcomes=[
                    self._outcome(
                        work, Action.SKIP, status, new_link, reason=self._reason(work, "no change")
                    )
                ],
            )
        status = self._status(work)
        work.steps.append(Step("export", status, members.describe()))
        return PageWrite(
            group_links=[new_link],
            outcomes=[
                self._outcome(
                    work,
                    Action.CREATE if adopted else Action.UPDATE,  # finishing its creation
                    status,
                    new_link,
                    reason=self._reason(work),
                )
            ],
        )

    def _members(
        self, work: _Group, link: GroupLink, current: set[str], recorded: set[str]
    ) -> MemberWrites:
        """Make the target group's members the linked users of its source members; what Graph
        confirmed is what the row says."""
        source_members = self._source_members(link.source_id, recorded)
        linked = self._linked_targets(source_members)
        wanted = wanted_members(source_members, linked, set())
        changes = member_changes(current, wanted)
        if changes.empty:
            return MemberWrites(changes)
        requests: list[TargetRequest] = [
            PatchGroup(link.target_id, add_members=batch) for batch in changes.add_batches()
        ]
        requests += [RemoveMember(link.target_id, member) for member in changes.remove]
        answers = self.target.execute(requests)
        added: list[str] = []
        removed: list[str] = []
        refused: list[str] = []  # additions whose request Graph refused for a missing object
        missing: list[str] = []
        for request, answer in zip(requests, answers, strict=True):
            if isinstance(request, RemoveMember):
                if isinstance(answer, NotFound) or work.answer(answer, request, self.spec.name):
                    removed.append(request.member_id)  # a member already gone is gone
            elif not isinstance(request, PatchGroup):
                continue
            elif isinstance(answer, NotFound) and len(request.add_members) > 1:
                # Graph refuses the whole request when one user it binds does not exist:
                # the others are added one by one, so one missing user holds none back.
                refused += request.add_members
            else:
                added += self._added(work, request, answer, missing)
        if refused:
            singles = [PatchGroup(link.target_id, add_members=(m,)) for m in refused]
            for single, answer in zip(singles, self.target.execute(list(singles)), strict=True):
                added += self._added(work, single, answer, missing)
        writes = MemberWrites(changes, tuple(added), tuple(removed), tuple(missing))
        if missing:
            by_target = {t: s for s, t in linked.items()}
            work.warnings.append(
                missing_members_reason({m: by_target.get(m, "?") for m in missing})
            )
        if writes.done:
            work.modified["members"] = Change(len(current), writes.count_after(len(current)))
        return writes

    def _added(
        self,
        work: _Group,
        request: PatchGroup,
        answer: Any,
        missing: list[str] | None = None,
    ) -> list[str]:
        """The members one addition request confirmed; with `missing`, a lone member refused
        as not found (Graph names it) goes there instead of failing the row."""
        if (
            missing is not None
            and isinstance(answer, NotFound)
            and request.add_members[0].lower() in str(answer).lower()
        ):
            missing += request.add_members
            return []
        return list(request.add_members) if work.answer(answer, request, self.spec.name) else []

    @staticmethod
    def _reason(work: _Group, default: str = "") -> str:
        return "; ".join(work.warnings) or default

    @staticmethod
    def _status(work: _Group) -> Status:
        if work.errors:
            return Status.FAILURE
        return Status.WARNING if work.warnings else Status.SUCCESS

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
        self._commit(PageWrite(outcomes=outcomes), replacing=True)

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
        self._commit(PageWrite(outcomes=outcomes, dropped_groups=dropped), replacing=True)


def _temporary(link: GroupLink) -> str:
    """A name no one else has, for a group stepping aside while two names are swapped."""
    return f"{link.display_name} (tenant-sync rename {link.target_id[:8]})"
