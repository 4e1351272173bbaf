"""Carrying out decisions against the target directory, and saying what happened.

Each object's work is written as plain sequential code — match, invite, patch; restore, patch;
delete — in a generator that *yields* the requests it needs and receives their answers (or has
their errors raised at the `yield`). `Exporter.apply` drives the generators of a whole page in
lock-step: every round, each unfinished object asks for one request, and the round goes to the
target in one call (which the Graph adapter sends as `$batch`). A round's match lookups
(`FindUsers` of a string property) go as grouped `in` lookups of up to 15 values each, whose
answers are handed back to each asker as its own request's (worker/service/lookups.py): a page's
creates ask theirs in its first round, so its matches cost one request per 15 creates, and those a
rule found nothing for ask the next rule's in the next round. Per-object failures become
failure outcomes; only `StopSync` escapes, because it stops the whole cycle. A target that
answers writes without making them (a dry run's, see worker/adapters/dryrun.py) answers
`Simulated` (or an `Invitation` marked simulated): the outcome then says what would be done.

One target user stands for one source user. A create takes the target user it matched or its
invitation answered only if no other source user of the job is linked to it (the ledger) or took
it earlier in the same `apply` (two users sharing an address are invited in the same round, and
Graph answers both with one user): otherwise it fails as `AmbiguousMatch`, before writing
anything, and goes to escrow (`Claims`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.domain.errors import Conflict, NotFound, StopSync, SyncError
from worker.domain.job import Deprovision, JobSpec
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
    DeprovisionUser,
    NoChange,
    RestoreUser,
    UpdateUser,
)
from worker.ports import (
    DeleteUser,
    FindUsers,
    GetUser,
    Invitation,
    Invite,
    Ledger,
    LiveProgress,
    NoLiveProgress,
    PatchUser,
    Simulated,
    TargetDirectory,
    TargetRequest,
)
from worker.ports import RestoreUser as RestoreRequest
from worker.schema import user_property_types
from worker.service import lookups

REDACT = "[Redact]"


@dataclass
class Applied:
    outcome: ObjectOutcome
    link: Link | None
    link_changed: bool = False


@dataclass
class Task:
    """One object to carry out: its decision and what is known of it."""

    decision: Decision
    item: SourceItem
    link: Link | None
    steps: list[Step]
    redacted: frozenset[str] = frozenset()


class Claims:
    """Which source user each target user stands for, in one `apply`: the job's links to it
    (read from the ledger once per round for the target users the round's answers name), and
    the target users this `apply`'s creates took so far. (Two pages exported at the same time
    on different workers do not see each other's claims until they commit: the ledger keeps one
    link per target user, so the second page's commit is a Conflict, and the page pipeline then
    fails that user as AmbiguousMatch: worker/service/pipeline.py.)"""

    def __init__(self, ledger: Ledger, job: str) -> None:
        self.ledger = ledger
        self.job = job
        self._linked: dict[str, list[Link]] = {}  # target id -> the job's links to it
        self._taken: dict[str, tuple[str, str]] = {}  # target id -> (source id, label)
        self._invited: dict[str, tuple[str, str]] = {}  # address -> (source id, label)

    def read(self, target_ids: Sequence[str]) -> None:
        """Read the links to these target users, in one ledger call."""
        wanted = [t for t in dict.fromkeys(target_ids) if t not in self._linked]
        if wanted:
            found = self.ledger.links_by_target(self.job, wanted)
            self._linked.update({t: found.get(t, []) for t in wanted})

    def take(self, target_id: str, work: _Work) -> None:
        """Let this source user stand for the target user, or raise Conflict (AmbiguousMatch)
        when another source user already does."""
        self.read([target_id])
        others = [
            (x.source_id, x.source_label)
            for x in self._linked[target_id]
            if x.source_id != work.item.id
        ]
        taken = self._taken.get(target_id)
        if taken is not None and taken[0] != work.item.id:
            others.append(taken)
        if others:
            _refuse(f"target user {target_id} is already linked to", others[0], work)
        self._taken[target_id] = (work.item.id, work.label)

    def take_address(self, address: str, work: _Work) -> None:
        """A dry run's invitation names no user: two of one address would get one user."""
        taken = self._invited.setdefault(address.lower(), (work.item.id, work.label))
        if taken[0] != work.item.id:
            _refuse(f"{address} is already invited for", taken, work)


def _refuse(taken: str, owner: tuple[str, str], work: _Work) -> None:
    """Fail the object as AmbiguousMatch: what is `taken` by which other source user."""
    source_id, label = owner
    who = f"{label} ({source_id})" if label else source_id
    message = (
        f"{taken} source user {who}: two source users match one target user; fix the source "
        "or the matching mappings"
    )
    work.steps.append(Step("matching", Status.FAILURE, message))
    raise Conflict(message, code="AmbiguousMatch")


def _named_targets(answer: Any) -> list[str]:
    """The target users an answer names, which a create may then take."""
    if isinstance(answer, Invitation) and not answer.simulated:
        return [answer.user_id]
    if isinstance(answer, list):
        return [u.id for u in answer if isinstance(u, TargetUser)]
    return []


@dataclass
class _Work:
    """The outcome being built for one object."""

    item: SourceItem
    steps: list[Step]
    claims: Claims
    redacted: frozenset[str] = frozenset()
    modified: dict[str, Change] = field(default_factory=dict)
    label: str = ""
    mail: str = ""
    simulated: bool = False  # a write was answered without being made

    def answered(self, answer: Any) -> bool:
        """Note a write's answer; whether it was only simulated."""
        simulated = isinstance(answer, Simulated) or getattr(answer, "simulated", False)
        self.simulated = self.simulated or simulated
        return simulated


Flow = Generator[TargetRequest, Any, Applied]
Steps = Generator[TargetRequest, Any, None]


class Exporter:
    def __init__(
        self,
        spec: JobSpec,
        target: TargetDirectory,
        *,
        ledger: Ledger,
        run_id: str,
        monotonic: Callable[[], float] = time.monotonic,
        live: LiveProgress | None = None,
    ) -> None:
        self.spec = spec
        self.target = target
        self.ledger = ledger
        self.run_id = run_id
        # Asked for every create: worked out once (the spec does not change).
        self._match_mappings = tuple(spec.match_mappings)
        self._target_select = tuple(spec.target_select)
        # Match lookups that go grouped (`in`): string properties of Graph's schema. Others go
        # one by one as before: collections (`any` per value), other types, and directory
        # extensions (not in the schema, whose `in` support is not established).
        types = user_property_types()
        self._groupable = frozenset(
            name
            for name in {"mail", *(m.target for m in self._match_mappings)}
            if types.get(name) == "Edm.String"
        )
        self._monotonic = monotonic
        self.live: LiveProgress = live or NoLiveProgress()

    # driving ------------------------------------------------------------------------------------
    def apply(self, tasks: Sequence[Task]) -> list[Applied]:
        """Carry out every task; the requests of each round go to the target together."""
        claims = Claims(self.ledger, self.spec.name)
        flows = [self._object(task, claims) for task in tasks]
        results: list[Applied | None] = [None] * len(flows)
        asking: dict[int, TargetRequest] = {}
        # People watching see each round's objects done, not only each page's.
        writing = {i for i, task in enumerate(tasks) if not isinstance(task.decision, NoChange)}
        self.live.add(self.spec.name, planned=len(writing))
        for index, flow in enumerate(flows):
            _advance(flow, None, index, asking, results)
        self.live.add(self.spec.name, exported=len(writing - set(asking)))
        while asking:
            order = list(asking)
            answers = self._round([asking[i] for i in order])
            claims.read([t for answer in answers for t in _named_targets(answer)])
            for index, answer in zip(order, answers, strict=True):
                _advance(flows[index], answer, index, asking, results)
            done = sum(1 for i in order if i not in asking and i in writing)
            self.live.add(self.spec.name, exported=done)
        return [r for r in results if r is not None]

    def _round(self, requests: Sequence[TargetRequest]) -> list[Any]:
        """One round's answers, its match lookups sent grouped (worker/service/lookups.py)."""
        plan = lookups.plan_round(requests, self._groupable)
        sent = self.target.execute(plan.sent)
        answers, again = lookups.answer_round(plan, sent)
        if again:
            # A grouped lookup refused, or answered so that a user fits no value: its askers'
            # own lookups, one by one, so that each meets the answer or error it would have met
            # alone (never "no match" by mistake).
            alone = list(dict.fromkeys(requests[i] for i in again))
            found = dict(zip(alone, self.target.execute(alone), strict=True))
            for index in again:
                answers[index] = found[requests[index]]
            # `in` refused for an attribute is refused every page: those go one by one from now.
            self._groupable -= lookups.refused(plan, sent, answers)
        return answers

    # one object ---------------------------------------------------------------------------------
    def _object(self, task: Task, claims: Claims) -> Flow:
        started = self._monotonic()
        item, link = task.item, task.link
        if isinstance(item, SourceUser):
            label, mail = item.label, item.mail or ""
        else:
            label, mail = (link.source_label, link.source_mail) if link else ("", "")
        work = _Work(
            item=item,
            steps=task.steps,
            claims=claims,
            redacted=task.redacted,
            label=label,
            mail=mail,
        )
        try:
            applied = yield from self._decision(task.decision, link, work)
        except StopSync:
            raise
        except SyncError as error:
            work.steps.append(Step("export", Status.FAILURE, str(error)))
            applied = Applied(
                outcome=self._outcome(
                    work,
                    task.decision.action,
                    Status.FAILURE,
                    target_id=link.target_id if link else None,
                    error=error,
                ),
                link=link,
            )
        applied.outcome.duration_ms = int((self._monotonic() - started) * 1000)
        if applied.link is not None and isinstance(item, SourceUser):
            applied.link.last_seen_run = self.run_id
            if (applied.link.source_label, applied.link.source_mail) != (label, mail):
                applied.link.source_label, applied.link.source_mail = label, mail
                applied.link_changed = True
        return applied

    def _decision(self, decision: Decision, link: Link | None, work: _Work) -> Flow:
        if isinstance(decision, NoChange):
            return Applied(
                outcome=self._outcome(
                    work,
                    Action.SKIP,
                    Status.SKIPPED,
                    target_id=link.target_id if link else None,
                    reason=decision.reason,
                ),
                link=link,
            )
        if isinstance(decision, CreateUser):
            return (yield from self._create(decision.address, decision.values, work))
        if isinstance(decision, UpdateUser):
            return (yield from self._update(decision, work))
        if isinstance(decision, RestoreUser):
            return (yield from self._restore(decision, work))
        return (yield from self._deprovision(decision, work))

    def _create(self, address: str, values: MappedValues, work: _Work) -> Flow:
        matched = yield from self._match(address, values, work)
        if matched is not None:
            work.claims.take(matched.id, work)
            changes = diff(values.values, matched.attributes)
            work.steps.append(
                Step(
                    "processing",
                    Status.SUCCESS,
                    f"link the matched user; changed: {', '.join(sorted(changes)) or 'none'}",
                )
            )
            yield from self._write(matched.id, changes, work)
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
        work.steps.append(Step("processing", Status.SUCCESS, f"create: invite {address}"))
        invitation: Invitation = yield Invite(address, _display_name(values), self.spec.user_type)
        simulated = work.answered(invitation)
        # An address another source user has: Graph answers with that user's target user.
        if simulated:
            work.claims.take_address(address, work)
        else:
            work.claims.take(invitation.user_id, work)
        work.steps.append(
            Step(
                "export",
                Status.SUCCESS,
                f"would invite {address}"
                if simulated
                else f"invited {address}: user {invitation.user_id}",
            )
        )
        # The link is kept even if the attribute write fails: the target user exists now.
        link = self._new_link(work.item.id, invitation.user_id, {})
        # Every written value is new: the link remembers them as they are (`_new` of these
        # changes, without building them back from the changes).
        new_values = writable(values.values)
        changes = {k: Change(None, v) for k, v in new_values.items()}
        try:
            yield from self._write(invitation.user_id, changes, work)
        except StopSync:
            raise
        except SyncError as error:
            work.steps.append(Step("export", Status.FAILURE, str(error)))
            return Applied(
                outcome=self._outcome(
                    work, Action.CREATE, Status.FAILURE, target_id=invitation.user_id, error=error
                ),
                link=link,
                link_changed=True,
            )
        link.attributes = remembered(new_values, work.redacted)
        return Applied(
            outcome=self._outcome(
                work,
                Action.CREATE,
                Status.SUCCESS,
                target_id=None if simulated else invitation.user_id,
                reason="dry run" if simulated else "",
            ),
            link=link,
            link_changed=True,
        )

    def _recreate(self, why: str, values: MappedValues, work: _Work) -> Flow:
        work.steps.append(Step("export", Status.WARNING, why))
        address = work.item.invitation_address if isinstance(work.item, SourceUser) else None
        if address is None:
            raise NotFound(f"{why}, and the source user has no address to invite")
        return (yield from self._create(address, values, work))

    def _match(
        self, address: str, values: MappedValues, work: _Work
    ) -> Generator[TargetRequest, Any, TargetUser | None]:
        """Find the target user this source user already is, if any; ambiguity is an error."""
        rules: list[tuple[str, str]] = [
            (m.target, str(values.values[m.target]))
            for m in self._match_mappings
            if m.target in values.values
        ] or [("mail", address)]
        for attribute, value in rules:
            found: list[TargetUser] = yield FindUsers(attribute, value, self._target_select)
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

    def _update(self, decision: UpdateUser, work: _Work) -> Flow:
        link = decision.link
        try:
            yield from self._write(link.target_id, decision.changes, work)
        except NotFound:
            # The target user vanished (deleted or purged by an admin): provision it again.
            return (
                yield from self._recreate("target user no longer exists", decision.values, work)
            )
        return Applied(
            outcome=self._outcome(work, decision.action, Status.SUCCESS, target_id=link.target_id),
            link=self._link_after(link, decision.changes, LinkState.ACTIVE, work),
            link_changed=True,
        )

    def _restore(self, decision: RestoreUser, work: _Work) -> Flow:
        link = decision.link
        try:
            answer = yield RestoreRequest(link.target_id)
        except NotFound:
            answer = None
            try:
                yield GetUser(link.target_id)  # restored already, by someone else?
            except NotFound:
                # Purged from the recycle bin (after 30 days): a new user is needed.
                return (yield from self._recreate("no longer restorable", decision.values, work))
        verb = "would restore" if work.answered(answer) else "restored"
        work.steps.append(Step("export", Status.SUCCESS, f"{verb} {link.target_id}"))
        try:
            yield from self._write(link.target_id, decision.changes, work)
        except StopSync:
            raise
        except SyncError as error:
            return Applied(
                outcome=self._outcome(
                    work, Action.RESTORE, Status.FAILURE, target_id=link.target_id, error=error
                ),
                link=self._link_after(link, {}, LinkState.ACTIVE, work),
                link_changed=True,
            )
        return Applied(
            outcome=self._outcome(
                work,
                Action.RESTORE,
                Status.SUCCESS,
                target_id=link.target_id,
                reason="restored from the target's recycle bin (same object id)",
            ),
            link=self._link_after(link, decision.changes, LinkState.ACTIVE, work),
            link_changed=True,
        )

    def _deprovision(self, decision: DeprovisionUser, work: _Work) -> Flow:
        link = decision.link
        changes: dict[str, Change] = {}
        if decision.mode is Deprovision.SOFT_DELETE:
            state = LinkState.SOFT_DELETED
            try:
                answer = yield DeleteUser(link.target_id)
                done = "would soft-delete" if work.answered(answer) else "soft-deleted"
                work.steps.append(Step("export", Status.SUCCESS, done))
            except NotFound:
                work.steps.append(Step("export", Status.WARNING, "already gone from the target"))
        else:
            state = LinkState.DISABLED
            changes = {"accountEnabled": Change(link.attributes.get("accountEnabled"), False)}
            try:
                yield from self._write(link.target_id, changes, work)
            except NotFound:
                work.steps.append(Step("export", Status.WARNING, "already gone from the target"))
                state = LinkState.SOFT_DELETED
        return Applied(
            outcome=self._outcome(
                work,
                decision.action,
                Status.SUCCESS,
                target_id=link.target_id,
                reason=decision.reason,
            ),
            link=self._link_after(link, changes, state, work),
            link_changed=True,
        )

    # helpers ----------------------------------------------------------------------------------
    def _write(self, target_id: str, changes: dict[str, Change], work: _Work) -> Steps:
        work.modified.update(changes)
        if not changes:
            return
        answer = yield PatchUser(target_id, {name: c.new for name, c in changes.items()})
        verb = "would update" if work.answered(answer) else "updated"
        work.steps.append(Step("export", Status.SUCCESS, f"{verb} {len(changes)} attributes"))

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
            source_mail=link.source_mail,
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
            source_mail=work.mail,
            action=action,
            status=status,
            target_id=target_id,
            reason=reason or (error.message if error else ""),
            error_code=error.code if error else "",
            error_message=str(error) if error else "",
            steps=work.steps,
            modified=modified,
            simulated=work.simulated,
        )


def _advance(
    flow: Flow,
    answer: Any,
    index: int,
    asking: dict[int, TargetRequest],
    results: list[Applied | None],
) -> None:
    """Give a flow its answer (an error is raised inside it); note its next request or result."""
    try:
        if isinstance(answer, SyncError):
            asking[index] = flow.throw(answer)
        elif answer is None and index not in asking:
            asking[index] = next(flow)
        else:
            asking[index] = flow.send(answer)
    except StopIteration as done:
        asking.pop(index, None)
        results[index] = done.value


def _new(changes: dict[str, Change], redacted: frozenset[str]) -> dict[str, object]:
    return remembered({name: change.new for name, change in changes.items()}, redacted)


def _known(user: TargetUser) -> dict[str, object]:
    return {k: v for k, v in user.attributes.items() if v is not None}


def _display_name(values: MappedValues) -> str | None:
    name = values.values.get("displayName")
    return name if isinstance(name, str) else None
