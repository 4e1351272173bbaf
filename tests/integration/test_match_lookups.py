"""A page's match lookups through the real sandbox over HTTPS: grouped `in` lookups of up to 15
values (Graph's limit), each source user answered as its own `eq` lookup would have been
(worker/service/lookups.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SyncEnv, sync_world
from tests.support.world import TARGET, build_world_seed

pytestmark = pytest.mark.integration


def target_user(mail: str, name: str) -> dict[str, Any]:
    # The name makes the UPN: users sharing a mail may not share a UPN.
    local = "".join(c for c in name.lower() if c.isalnum())
    return {
        "userPrincipalName": f"{local}_contoso.com#EXT#@{TARGET.domain}",
        "mail": mail,
        "displayName": name,
        "userType": "Guest",
        "creationType": "Invitation",
        "accountEnabled": True,
    }


def rows(env: SyncEnv) -> dict[str, dict[str, Any]]:
    logs = json.loads(env.cli("logs", "sync", "--json", "--all", check=True).stdout)
    return {r["sourceId"]: r for r in logs}


def matching(row: dict[str, Any]) -> list[str]:
    return [s["detail"] for s in row["steps"] if s["name"] == "matching"]


def test_a_page_of_creates_is_matched_with_grouped_lookups_as_eq_would_match(
    tmp_path: Path,
) -> None:
    seed = build_world_seed(users=40)  # 36 members in scope, one page: 3 groups
    source = seed["tenants"][0]["users"]
    source[11]["mail"] = "o'neil@contoso.com"  # a quote, matched by a target user
    source[12]["mail"] = "d'arcy@contoso.com"  # a quote, nobody to match: invited
    targets = seed["tenants"][1]["users"]
    targets += [
        target_user("USER7@Contoso.COM", "Case differs"),
        target_user("user9@contoso.com", "Twin one"),
        target_user("User9@contoso.com", "Twin two"),
        target_user("O'Neil@contoso.com", "Quoted"),
    ]
    with sync_world(tmp_path, seed) as env:
        env.sandbox.admin("POST", "/_sandbox/stats/reset").raise_for_status()

        result = env.run_json("--full")

        stats = env.sandbox.admin("GET", "/_sandbox/stats").json()["requests"]["by_method_path"]
        # 36 match lookups in 3 grouped ones (15, 15, 6), and the full cycle's listing of ids;
        # 32 creates: an invitation and a write each.
        assert stats["GET /v1.0/users"] == 4
        assert stats["POST /v1.0/invitations"] == 32
        counts = result["counts"]
        # user0 (invited by hand), user7 (mail in other case), o'neil: matched and linked
        assert (counts["create"], counts["update"], counts["failure"]) == (32, 3, 1)
        by_id = rows(env)
        by_mail = {u["mail"].lower(): u for u in env.target_users() if u.get("mail")}

        case = by_id[source[7]["id"]]
        assert case["targetId"] == by_mail["user7@contoso.com"]["id"]
        assert matching(case) == [f"matched target user {case['targetId']} on mail"]
        assert by_mail["user7@contoso.com"]["displayName"] == "User 7"

        twins = by_id[source[9]["id"]]
        assert (twins["status"], twins["errorCode"]) == ("failure", "AmbiguousMatch")
        assert matching(twins) == ["2 target users have mail"]
        assert "more than one target user has mail = 'user9@contoso.com'" in twins["reason"]

        quoted = by_id[source[11]["id"]]
        assert (quoted["action"], quoted["status"]) == ("update", "success")
        assert quoted["targetId"] == by_mail["o'neil@contoso.com"]["id"]
        assert by_mail["o'neil@contoso.com"]["displayName"] == "User 11"
        invited = by_id[source[12]["id"]]
        assert (invited["action"], invited["status"]) == ("create", "success")
        assert matching(invited) == ["no target user matches: create"]

        # Exact: one target user per source user in scope, the twins left alone.
        mails = [(u.get("mail") or "").lower() for u in env.target_users()]
        assert mails.count("user9@contoso.com") == 2
        assert mails.count("user7@contoso.com") == mails.count("o'neil@contoso.com") == 1
        assert len([m for m in mails if m != "user9@contoso.com"]) == 36 - 1


def test_a_grouped_answer_of_more_than_one_page_is_read_to_its_end(tmp_path: Path) -> None:
    """1,000 target users share one source user's mail: the grouped lookup's first page (999
    users, Graph's largest) holds only them, and another source user's match is on the next."""
    seed = build_world_seed(users=12)  # 8 members in scope
    source = seed["tenants"][0]["users"]
    source[6]["mail"] = "many@contoso.com"
    targets = seed["tenants"][1]["users"]
    for i in range(1000):
        many = target_user("many@contoso.com", f"Many {i}")
        targets.append({**many, "id": f"00000000-0000-0000-0000-{i:012d}"})
    late = {
        **target_user("user5@contoso.com", "Late"),
        "id": "ffffffff-0000-0000-0000-000000000000",
    }
    targets.append(late)
    with sync_world(tmp_path, seed) as env:
        result = env.run_json("--full")

        assert (result["counts"]["update"], result["counts"]["failure"]) == (2, 1)
        by_id = rows(env)
        assert matching(by_id[source[5]["id"]]) == [f"matched target user {late['id']} on mail"]
        assert by_id[source[6]["id"]]["errorCode"] == "AmbiguousMatch"
        assert matching(by_id[source[6]["id"]]) == ["2 target users have mail"]
