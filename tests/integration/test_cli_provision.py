"""`tenant-sync provision JOB USER` takes the source user's object id, UPN or mail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sync_world
from tests.support.world import build_world_seed

pytestmark = pytest.mark.integration


def test_provision_accepts_a_upn_or_a_mail_and_refuses_an_unknown_or_ambiguous_one(
    tmp_path: Path,
) -> None:
    seed = build_world_seed()
    users = seed["tenants"][0]["users"]
    by_upn, by_mail, clash = users[2], users[3], users[5]
    clash["mail"] = users[4]["userPrincipalName"]  # one user's mail is another's UPN
    with sync_world(tmp_path, seed) as env:
        upn = env.cli("provision", "sync", by_upn["userPrincipalName"].upper(), "--json")
        assert upn.returncode == 0, upn.stderr
        assert json.loads(upn.stdout)["sourceId"] == by_upn["id"]
        assert json.loads(upn.stdout)["action"] == "create"
        mail = env.cli("provision", "sync", by_mail["mail"], "--json")
        assert mail.returncode == 0, mail.stderr
        assert json.loads(mail.stdout)["sourceId"] == by_mail["id"]

        unknown = env.cli("provision", "sync", "nobody@contoso.com")
        assert unknown.returncode == 2
        assert unknown.stderr.strip() == (
            "tenant-sync: no user with the UPN or mail 'nobody@contoso.com' in the source "
            "tenant of sync"
        )
        ambiguous = env.cli("provision", "sync", users[4]["userPrincipalName"])
        assert ambiguous.returncode == 2
        line = ambiguous.stderr.strip()
        assert "names 2 source users" in line
        assert users[4]["id"] in line
        assert clash["id"] in line
        assert "give the object id" in line
        assert "Traceback" not in unknown.stderr + ambiguous.stderr
