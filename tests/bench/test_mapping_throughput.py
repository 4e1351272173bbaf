"""Benchmark (make bench): mapping throughput on one core.

The default mapping set plus five expression mappings, parsed once, evaluated over 100,000
synthetic users the way a cycle does (one Mapper per cycle). Target: at least 50,000 users/s.
Writes bench-results/mapping.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from random import Random
from typing import Any

import pytest

from worker.domain.expressions import parse
from worker.domain.mapping import Mapper, MappingSpec, default_mappings
from worker.domain.model import SourceUser

pytestmark = pytest.mark.bench

USERS = 100_000
TARGET_USERS_PER_S = 50_000
# Five expression mappings on top of the 21 default ones: 26 mappings in all.
EXPRESSIONS = {
    "preferredName": 'Join(" ", PCase([givenName]), PCase([surname]))',
    "employeeType": 'ToLower(NormalizeDiacritics(StripSpaces(Join(".", [givenName], [surname]))))',
    "officeLocation": 'Replace([jobTitle], , "[()\\\\s-]+", , " ", , )',
    "faxNumber": 'Switch([department], "Other", "SAL", "Sales", "ENG", "Engineering", "", "None")',
    "usageLocation": 'IIF([country]="FR", "FR", Coalesce([country], "US"))',
}


def synthetic_users(count: int) -> list[SourceUser]:
    rng = Random(7)
    given = ["Zoë", "JOHN", "maría", "Łukasz", "ann"]
    family = ["SMITH", "Gonçalves", "de la Cruz", "O'NEIL", "Dvořák"]
    users = []
    for index in range(count):
        attributes: dict[str, Any] = {
            "userPrincipalName": f"user{index}@contoso.com",
            "mail": f"user{index}@contoso.com",
            "givenName": rng.choice(given),
            "surname": rng.choice(family),
            "jobTitle": "Senior (Lead) Developer-II",
            "department": rng.choice(["SAL", "ENG", "HR", "x"]),
            "country": rng.choice(["FR", "US", "DE"]),
            "companyName": rng.choice([None, "Fabrikam"]),
            "accountEnabled": True,
            "city": "Paris",
            "businessPhones": ["+33 1 23 45 67 89"],
            "userType": "Member",
            "employeeId": f"E{index}",
        }
        users.append(SourceUser(id=f"id-{index}", attributes=attributes))
    return users


def test_mapping_throughput() -> None:
    started = time.perf_counter()
    specs = default_mappings()
    specs += [
        MappingSpec(target=target, expression=parse(text), expression_text=text)
        for target, text in EXPRESSIONS.items()
    ]
    mapper = Mapper(specs)
    users = synthetic_users(USERS)
    setup_s = time.perf_counter() - started

    started = time.perf_counter()
    for user in users:
        mapper.map(user, creating=False)
    elapsed = time.perf_counter() - started
    rate = USERS / elapsed

    result = {
        "users": USERS,
        "mappings": len(specs),
        "expressions": len(EXPRESSIONS),
        "seconds": round(elapsed, 3),
        "users_per_s": round(rate),
        "target_users_per_s": TARGET_USERS_PER_S,
        "setup_s": round(setup_s, 3),
    }
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "mapping.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nmapping: {len(specs)} mappings ({len(EXPRESSIONS)} expressions), {USERS:,} users: "
        f"{rate:,.0f} users/s on one core (target {TARGET_USERS_PER_S:,})"
    )
    assert rate >= TARGET_USERS_PER_S
