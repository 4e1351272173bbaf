"""Benchmark (make bench): mapping throughput on one core.

The default mapping set plus five expression mappings, parsed once, evaluated over 100,000
synthetic users the way a cycle does (one Mapper per cycle), ROUNDS times. Target: at least
50,000 users/s, for the median round. The rate is users per second of this process's CPU time
(one core's work): on a shared machine, wall time also counts the time other processes held the
core, which is the machine's noise, not the mapper's speed; the wall-time rate is reported too.

The synthetic users repeat their values the way a directory does (a few given names, surnames,
departments and countries), which expressions' memo (docs/performance.md) turns into lookups.
The same rounds over users whose every value is distinct, where the memo can only cost, are
reported beside it (`distinct_values_*`) and not held to the target.
Writes bench-results/mapping.json.
"""

from __future__ import annotations

import json
import statistics
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
ROUNDS = 5
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


def distinct_users(count: int) -> list[SourceUser]:
    """The same users with no value repeated: names, titles and departments all differ."""
    users = []
    for index, user in enumerate(synthetic_users(count)):
        attributes = dict(user.attributes)
        attributes["givenName"] = f"{attributes['givenName']}{index}"
        attributes["surname"] = f"{attributes['surname']} {index}"
        attributes["jobTitle"] = f"Senior (Lead) Developer-{index}"
        attributes["department"] = f"Dept {index}"
        users.append(SourceUser(id=user.id, attributes=attributes))
    return users


def rates(mapper: Mapper, users: list[SourceUser]) -> tuple[list[float], list[float]]:
    """Users per CPU second and per wall second, for each of ROUNDS rounds."""
    cpu_rates, wall_rates = [], []
    for _ in range(ROUNDS):
        started, started_cpu = time.perf_counter(), time.process_time()
        for user in users:
            mapper.map(user, creating=False)
        wall_rates.append(len(users) / (time.perf_counter() - started))
        cpu_rates.append(len(users) / (time.process_time() - started_cpu))
    return cpu_rates, wall_rates


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

    cpu_rates, wall_rates = rates(mapper, users)
    rate = statistics.median(cpu_rates)
    distinct_cpu, distinct_wall = rates(mapper, distinct_users(USERS))

    result = {
        "users": USERS,
        "mappings": len(specs),
        "expressions": len(EXPRESSIONS),
        "rounds": ROUNDS,
        "users_per_cpu_s_median": round(rate),
        "users_per_cpu_s": [round(r) for r in cpu_rates],
        "users_per_wall_s_median": round(statistics.median(wall_rates)),
        "users_per_wall_s": [round(r) for r in wall_rates],
        "distinct_values_users_per_cpu_s_median": round(statistics.median(distinct_cpu)),
        "distinct_values_users_per_cpu_s": [round(r) for r in distinct_cpu],
        "distinct_values_users_per_wall_s_median": round(statistics.median(distinct_wall)),
        "target_users_per_s": TARGET_USERS_PER_S,
        "setup_s": round(setup_s, 3),
    }
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "mapping.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nmapping: {len(specs)} mappings ({len(EXPRESSIONS)} expressions), {USERS:,} users: "
        f"median of {ROUNDS} rounds {rate:,.0f} users per CPU second "
        f"({statistics.median(wall_rates):,.0f} per wall second; target {TARGET_USERS_PER_S:,}); "
        f"every value distinct: {statistics.median(distinct_cpu):,.0f} per CPU second"
    )
    assert rate >= TARGET_USERS_PER_S
