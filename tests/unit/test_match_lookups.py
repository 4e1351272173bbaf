"""A page's match lookups go grouped: `in` requests of up to 15 values, each asker answered as
its own `eq` lookup would have been (worker/service/lookups.py, worker/service/apply.py)."""

from __future__ import annotations

import pytest

from tests.unit.test_cycle import World
from worker.domain.errors import BadRequest, Transient
from worker.domain.mapping import MappingSpec, default_mappings
from worker.domain.model import TargetUser
from worker.ports import MAX_IN_VALUES, FindUsers, FindUsersIn, GetUser, Invite
from worker.service.lookups import answer_round, plan_round, refused, users_by_value

pytestmark = pytest.mark.unit

SELECT = ("displayName", "mail")


def find(value: str, attribute: str = "mail", select: tuple[str, ...] = SELECT) -> FindUsers:
    return FindUsers(attribute, value, select)


# ---------------------------------------------------------------- grouping


def test_sixteen_values_make_two_groups_and_other_requests_go_as_they_are() -> None:
    values = [f"u{i}@x.example" for i in range(16)]
    other = GetUser("id-1")
    requests = [find(values[0]), other, *(find(v) for v in values[1:])]

    plan = plan_round(requests, {"mail"})

    assert plan.alone == (1,)
    assert [len(g.request.values) for g in plan.groups] == [MAX_IN_VALUES, 1]
    assert plan.groups[0].request == FindUsersIn("mail", tuple(values[:15]), SELECT)
    assert plan.groups[1].request.values == (values[15],)
    assert plan.sent == (other, plan.groups[0].request, plan.groups[1].request)


def test_values_equal_but_for_case_are_one_value_of_a_group() -> None:
    requests = [find("Ann@x.example"), find("ann@X.EXAMPLE"), find("bob@x.example")]

    (group,) = plan_round(requests, {"mail"}).groups

    assert group.request.values == ("Ann@x.example", "bob@x.example")  # as first asked
    assert group.asked == ((0, "ann@x.example"), (1, "ann@x.example"), (2, "bob@x.example"))


def test_a_value_beyond_ascii_is_looked_up_alone() -> None:
    # casefold says "straße" is "STRASSE"; Graph's comparison need not: grouped, one of the two
    # would be given the other's answer.
    requests = [find("STRASSE@x.example"), find("straße@x.example"), find("ünï@x.example")]

    plan = plan_round(requests, {"mail"})

    assert plan.alone == (1, 2)
    (group,) = plan.groups
    assert group.request.values == ("STRASSE@x.example",)


def test_one_group_per_attribute_and_select_and_none_for_other_attributes() -> None:
    requests = [
        find("a@x.example"),
        find("E1", attribute="employeeId"),
        find("b@x.example", select=("mail",)),
        find("c@x.example", attribute="otherMails"),  # a collection: looked up alone
    ]

    plan = plan_round(requests, {"mail", "employeeId"})

    assert plan.alone == (3,)
    assert [(g.request.attribute, g.request.select) for g in plan.groups] == [
        ("mail", SELECT),
        ("employeeId", SELECT),
        ("mail", ("mail",)),
    ]


# ---------------------------------------------------------------- answers mapped back


def user(uid: str, **attributes: object) -> TargetUser:
    return TargetUser(uid, dict(attributes))


def test_found_users_go_to_their_values_as_eq_compares_at_most_two_each() -> None:
    request = FindUsersIn("mail", ("Ann@x.example", "bob@x.example", "cyd@x.example"), SELECT)
    found = [
        user("t1", mail="ANN@x.example", displayName="Ann"),
        user("t2", mail="bob@x.example"),
        user("t3", mail="Bob@X.example"),
        user("t4", mail="bob@x.EXAMPLE"),
    ]

    by_value = users_by_value(request, found)

    assert by_value is not None
    assert [u.id for u in by_value["ann@x.example"]] == ["t1"]
    assert [u.id for u in by_value["bob@x.example"]] == ["t2", "t3"]  # as `$top=2` answers
    assert by_value["cyd@x.example"] == []


def test_the_attribute_read_only_to_place_users_is_not_handed_on() -> None:
    request = FindUsersIn("userPrincipalName", ("a@x.example",), ("displayName",))
    found = [user("t1", userPrincipalName="a@x.example", displayName="A")]

    by_value = users_by_value(request, found)

    assert by_value == {"a@x.example": [user("t1", displayName="A")]}


def test_a_user_with_none_of_the_values_places_nobody() -> None:
    request = FindUsersIn("mail", ("a@x.example",), SELECT)

    assert users_by_value(request, [user("t1", mail="other@x.example")]) is None
    assert users_by_value(request, [user("t1", mail=None)]) is None


def test_a_refused_group_answers_nobody_and_the_rest_are_answered() -> None:
    requests = [find("a@x.example"), GetUser("id-1"), find("b@x.example")]
    plan = plan_round(requests, {"mail"})
    bad = BadRequest("Unsupported query.", code="Request_UnsupportedQuery", status=400)

    answers, again = answer_round(plan, [user("id-1"), bad])

    assert answers == [None, user("id-1"), None]
    assert again == [0, 2]
    # Every value accepted alone: `in` itself was refused.
    assert refused(plan, [user("id-1"), bad], [[], user("id-1"), []]) == {"mail"}
    # One value refused alone too: the refusal was that value's.
    assert refused(plan, [user("id-1"), bad], [bad, user("id-1"), []]) == set()


def test_a_failing_group_gives_its_error_to_every_asker_and_is_not_sent_again() -> None:
    requests = [find("a@x.example"), GetUser("id-1"), find("b@x.example")]
    plan = plan_round(requests, {"mail"})
    error = Transient("busy", status=503)

    answers, again = answer_round(plan, [user("id-1"), error])

    assert answers == [error, user("id-1"), error]
    assert again == []
    assert refused(plan, [user("id-1"), error], answers) == set()  # worth grouping again


# ---------------------------------------------------------------- through the exporter


def lookups(w: World) -> list[object]:
    return [r for r in w.target.asked if isinstance(r, FindUsers | FindUsersIn)]


def test_sixteen_creates_of_one_page_are_matched_with_two_lookups() -> None:
    w = World(page_size=20)
    for i in range(16):
        w.user(f"user{i}")
    existing = w.target.add_existing(mail="USER7@src.example", displayName="Old")

    result = w.run()

    assert [len(r.values) for r in lookups(w) if isinstance(r, FindUsersIn)] == [15, 1]
    assert not [r for r in lookups(w) if isinstance(r, FindUsers)]
    assert (result.counts["create"], result.counts["update"]) == (15, 1)
    assert len(w.target.users) == 16  # user7 was linked to the existing user, not invited
    assert w.target.users[existing]["displayName"] == "User7"
    (linked,) = [o for o in result.outcomes if o.target_id == existing]
    assert [s.detail for s in linked.steps if s.name == "matching"] == [
        f"matched target user {existing} on mail"
    ]


def test_a_value_two_target_users_have_is_ambiguous_as_before() -> None:
    w = World(page_size=5)
    w.user("ann")
    w.user("bob")
    for _ in range(3):
        w.target.add_existing(mail="ann@SRC.example")

    result = w.run()

    (failed,) = [o for o in result.outcomes if o.error_code == "AmbiguousMatch"]
    assert "more than one target user has mail = 'ann@src.example'" in failed.error_message
    assert [s.detail for s in failed.steps if s.name == "matching"] == [
        "2 target users have mail"  # FindUsers' answer: at most two
    ]
    assert result.counts["create"] == 1  # bob
    assert not [x for x in w.target.writes if x[0] == "invite" and x[1] == "ann@src.example"]


def test_two_source_users_whose_values_differ_in_case_get_one_answer() -> None:
    w = World(page_size=5)
    first = w.user("ann", mail="ann@src.example")
    second = w.user("ann2", mail="ANN@src.example")
    existing = w.target.add_existing(mail="Ann@Src.Example")

    result = w.run()

    (lookup,) = lookups(w)
    assert isinstance(lookup, FindUsersIn)
    assert len(lookup.values) == 1
    # Both matched the one target user: whichever came first is linked, the other refused.
    outcomes = sorted((o.error_code, o.target_id, o.source_id) for o in result.outcomes)
    assert [(code, target) for code, target, _ in outcomes] == [
        ("", existing),
        ("AmbiguousMatch", None),
    ]
    assert {source for _, _, source in outcomes} == {first, second}
    assert len(w.target.users) == 1


def test_a_later_rule_is_asked_only_for_users_the_first_found_nothing_for() -> None:
    mappings = [
        *(m for m in default_mappings() if m.target not in ("employeeId", "mail")),
        MappingSpec(target="employeeId", source="employeeId", match=1),
        MappingSpec(target="mail", source="mail", match=2),
    ]
    w = World(page_size=5, mappings=mappings)
    w.user("ann", employeeId="E1")
    w.user("bob", employeeId="E2")
    by_id = w.target.add_existing(employeeId="e1", mail="someone@else.example")
    by_mail = w.target.add_existing(mail="bob@src.example")

    result = w.run()

    assert [(r.attribute, sorted(r.values)) for r in lookups(w) if isinstance(r, FindUsersIn)] == [
        ("employeeId", ["E1", "E2"]),
        ("mail", ["bob@src.example"]),  # the second round: only bob's
    ]
    assert {o.target_id for o in result.outcomes} == {by_id, by_mail}
    assert result.counts["update"] == 2


def test_a_failing_grouped_lookup_fails_its_users_and_creates_nobody() -> None:
    w = World(page_size=5)
    w.user("ann")
    w.user("bob")
    w.target.add_existing(mail="ann@src.example")
    w.target.failing_requests.add(FindUsersIn)

    result = w.run()

    assert not [r for r in lookups(w) if isinstance(r, FindUsers)]  # not sent again one by one
    assert result.counts["failure"] == 2
    assert not [x for x in w.target.writes if x[0] == "invite"]
    assert len(w.target_by_mail("ann@src.example")) == 1


def test_a_refused_grouped_lookup_falls_back_to_one_lookup_per_user() -> None:
    w = World(page_size=5)
    w.user("ann")
    w.user("bob")
    existing = w.target.add_existing(mail="ann@src.example")
    w.target.refused_requests.add(FindUsersIn)

    result = w.run()

    assert sorted(r.value for r in lookups(w) if isinstance(r, FindUsers)) == [
        "ann@src.example",
        "bob@src.example",
    ]
    assert [o.target_id for o in result.outcomes if o.action.value == "update"] == [existing]
    assert len(w.target_by_mail("ann@src.example")) == 1  # never invited a second time
    assert [x[1] for x in w.target.writes if x[0] == "invite"] == ["bob@src.example"]


def test_a_dry_run_looks_up_grouped_and_writes_nothing() -> None:
    w = World(page_size=5)
    w.user("ann")
    w.user("bob")
    existing = w.target.add_existing(mail="Ann@src.example")

    planned = w.run(dry_run=True)

    (lookup,) = lookups(w)
    assert isinstance(lookup, FindUsersIn)
    assert (planned.counts["create"], planned.counts["update"]) == (1, 1)
    assert not w.target.writes
    assert not [r for r in w.target.asked if isinstance(r, Invite)]
    assert existing in {o.target_id for o in planned.outcomes}


def test_an_attribute_whose_grouped_lookup_is_refused_is_looked_up_alone_from_then_on() -> None:
    w = World(page_size=2)
    for name in ("ann", "bob", "cyd", "dee"):
        w.user(name)
    existing = w.target.add_existing(mail="cyd@src.example")
    w.target.refused_requests.add(FindUsersIn)

    result = w.run()

    grouped = [r for r in lookups(w) if isinstance(r, FindUsersIn)]
    assert len(grouped) == 1  # the first page's, refused: never asked again
    assert len([r for r in lookups(w) if isinstance(r, FindUsers)]) == 4
    assert (result.counts["create"], result.counts["update"], result.counts["failure"]) == (3, 1, 0)
    assert existing in {o.target_id for o in result.outcomes}


def test_a_value_refused_alone_too_does_not_stop_the_grouping() -> None:
    w = World(page_size=2)
    for name in ("ann", "bob", "cyd", "dee"):
        w.user(name)
    w.target.refused_values.add("ann@src.example")  # say, longer than Graph takes

    result = w.run()

    grouped = [r for r in lookups(w) if isinstance(r, FindUsersIn)]
    assert len(grouped) == 2  # the second page still grouped
    singles = [r.value for r in lookups(w) if isinstance(r, FindUsers)]
    assert len(singles) == 2  # ann's page only
    assert "ann@src.example" in singles
    assert (result.counts["create"], result.counts["failure"]) == (3, 1)
    assert not [x for x in w.target.writes if x[0] == "invite" and x[1] == "ann@src.example"]


def test_values_casefolding_alike_are_not_merged_and_nobody_is_invited_twice() -> None:
    w = World(page_size=5)
    w.user("joerg1", mail="STRASSE@src.example")
    w.user("joerg2", mail="straße@src.example")
    existing = w.target.add_existing(mail="Straße@src.example")

    result = w.run()

    # The target compares a character at a time: "straße" is not "strasse" there.
    assert (result.counts["create"], result.counts["update"], result.counts["failure"]) == (1, 1, 0)
    (linked,) = [o for o in result.outcomes if o.target_id == existing]
    assert linked.action.value == "update"
    assert len(w.target.users) == 2  # the existing one, linked, and one invited
