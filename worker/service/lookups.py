"""Grouped match lookups: a round's `FindUsers` of one string attribute, sent as `in` requests.

Each create looks up the target user it may already be (`Exporter._match`: one `FindUsers` per
matching rule). Sent as they are, that is one Graph request per created user. Before a round goes
to the target, `plan_round` replaces its `FindUsers` of a groupable attribute (a string property
that is not a collection) by `FindUsersIn` requests of up to `MAX_IN_VALUES` distinct values of
one attribute and `$select` each (Graph's default limit on `in`); `answer_round` then gives every
`FindUsers` the answer its own request would have had, taken from its group's answer: the users
whose attribute equals its value as Graph compares strings (case-insensitively: casefolded, as
the sandbox compares; only ASCII values are grouped, see `plan_round`), at most two (what
`FindUsers` answers; the ambiguity step counts them). Values equal but for case are one value
of a group, so the source users asking them get one answer (and the claims in apply.py make the
second an AmbiguousMatch, as before).

No asker of a group that failed is taken as unmatched (that would create a second target user
for it). A group refused as a bad request, or whose answer holds a user carrying none of its
values (Graph compared otherwise than casefolding does), answers nobody: its `FindUsers` are sent
again one by one, so each meets the answer or the error it would have met alone (one value may be
what Graph refused). When every one of a refused group's values was accepted alone, the refusal
was of `in` itself (an attribute whose `in` Graph does not accept, though the sandbox accepts it
on every string property): `refused` names the attribute, and the exporter then looks it up one
value at a time. Any other error (throttled after the
adapter's retries, a server error) is every asker's answer, as it would have been alone: sending
fifteen lookups again to a target that is failing would only add to its load.

Pure: no I/O; the exporter sends what it plans.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from worker.domain.errors import BadRequest, SyncError
from worker.domain.model import TargetUser
from worker.ports import FOUND_AT_MOST, MAX_IN_VALUES, FindUsers, FindUsersIn, TargetRequest


@dataclass(frozen=True)
class Group:
    """One grouped lookup, and the FindUsers it answers: their positions in the round, each
    with its value folded."""

    request: FindUsersIn
    asked: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class RoundPlan:
    """What a round sends: the requests that go as they are (`alone`, their positions in the
    round), then one request per group."""

    alone: tuple[int, ...]
    groups: tuple[Group, ...]
    sent: tuple[TargetRequest, ...]


def fold(value: str) -> str:
    """A string as `eq` and `in` compare it: case-insensitively (as the sandbox compares; the
    values grouped are ASCII, where every case-insensitive comparison agrees)."""
    return value.casefold()


def plan_round(requests: Sequence[TargetRequest], groupable: Collection[str]) -> RoundPlan:
    """Group the round's FindUsers of `groupable` attributes by attribute and `$select`, up to
    `MAX_IN_VALUES` distinct (folded) values a group, in the order they are asked.

    Only ASCII values are grouped: for them every case-insensitive comparison agrees (casefold,
    lower case, .NET's ordinal ignore-case), so folding cannot merge two values Graph tells
    apart. Beyond ASCII they can disagree (`ß` casefolds to `ss`, the Kelvin sign to `k`), and
    a value merged with another would be given that value's answer: a person invited although
    they exist, or matched to someone else. Those go alone, as `eq`."""
    alone: list[int] = []
    # (attribute, select) -> folded value -> (the value as first asked, the positions asking it)
    wanted: dict[tuple[str, tuple[str, ...]], dict[str, tuple[str, list[int]]]] = {}
    for index, request in enumerate(requests):
        if (
            isinstance(request, FindUsers)
            and request.attribute in groupable
            and request.value.isascii()
        ):
            values = wanted.setdefault((request.attribute, request.select), {})
            values.setdefault(fold(request.value), (request.value, []))[1].append(index)
        else:
            alone.append(index)
    groups: list[Group] = []
    for (attribute, select), values in wanted.items():
        entries = list(values.values())
        for start in range(0, len(entries), MAX_IN_VALUES):
            chunk = entries[start : start + MAX_IN_VALUES]
            groups.append(
                Group(
                    request=FindUsersIn(attribute, tuple(value for value, _ in chunk), select),
                    asked=tuple((i, fold(value)) for value, positions in chunk for i in positions),
                )
            )
    sent = tuple([requests[i] for i in alone] + [g.request for g in groups])
    return RoundPlan(alone=tuple(alone), groups=tuple(groups), sent=sent)


def users_by_value(
    request: FindUsersIn, found: Sequence[TargetUser]
) -> dict[str, list[TargetUser]] | None:
    """Each (folded) value's users, at most `FOUND_AT_MOST`, as a FindUsers of that value answers
    them (without the attribute when the lookup did not select it); None when a user carries
    none of the values."""
    by_value: dict[str, list[TargetUser]] = {fold(v): [] for v in request.values}
    keep = request.attribute in request.select
    for user in found:
        actual = user.attributes.get(request.attribute)
        users = by_value.get(fold(actual)) if isinstance(actual, str) else None
        if users is None:
            return None
        if len(users) < FOUND_AT_MOST:
            if not keep:
                attributes = {k: v for k, v in user.attributes.items() if k != request.attribute}
                user = TargetUser(id=user.id, attributes=attributes)
            users.append(user)
    return by_value


def answer_round(plan: RoundPlan, answers: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """Every request's answer (in the round's order) from the answers to `plan.sent`, and the
    positions of the FindUsers whose group answered nobody (refused, or an answer that places
    a user nowhere: to be sent again one by one; their answers are None until then). A group's
    other error is the answer of each of its askers."""
    asked = len(plan.alone) + sum(len(g.asked) for g in plan.groups)
    results: list[Any] = [None] * asked
    alone = len(plan.alone)
    for index, answer in zip(plan.alone, answers[:alone], strict=True):
        results[index] = answer
    again: list[int] = []
    for group, answer in zip(plan.groups, answers[alone:], strict=True):
        if isinstance(answer, SyncError) and not isinstance(answer, BadRequest):
            for index, _ in group.asked:
                results[index] = answer
            continue
        by_value = None if isinstance(answer, SyncError) else users_by_value(group.request, answer)
        if by_value is None:
            again.extend(index for index, _ in group.asked)
            continue
        for index, folded in group.asked:
            results[index] = list(by_value[folded])
    return results, sorted(again)


def refused(plan: RoundPlan, answers: Sequence[Any], results: Sequence[Any]) -> set[str]:
    """The attributes Graph will not look up with `in`: a group of theirs was refused as a bad
    request while every one of its values, asked alone, was accepted (`results`: the round's
    answers after those single lookups). When a value alone is refused too (one too long, say),
    the refusal was that value's, and grouping goes on."""
    alone = len(plan.alone)
    return {
        group.request.attribute
        for group, answer in zip(plan.groups, answers[alone:], strict=True)
        if isinstance(answer, BadRequest)
        and not any(isinstance(results[index], BadRequest) for index, _ in group.asked)
    }
