"""Dynamic membership rules: Entra's syntax for user rules, parsed and evaluated."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_sync_sandbox import rules

pytestmark = pytest.mark.unit

ANN: dict[str, Any] = {
    "department": "Sales",
    "jobTitle": "Account Manager",
    "accountEnabled": True,
    "country": None,
    "onPremisesExtensionAttributes": {"extensionAttribute3": "FTE"},
    "extension_0123456789abcdef0123456789abcdef_level": "L3",
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('user.department -eq "Sales"', True),
        ('user.department -eq "sales"', True),  # case-insensitive, as Entra compares
        ('user.department -ne "Sales"', False),
        ('user.jobTitle -startsWith "account"', True),
        ('user.jobTitle -notStartsWith "account"', False),
        ('user.jobTitle -contains "MANAGER"', True),
        ('user.jobTitle -notContains "lead"', True),
        ('user.jobTitle -match "^Acc.*ger$"', True),
        ('user.department -in ["Legal", "Sales"]', True),
        ('user.department -notIn ["Legal", "Sales"]', False),
        ("user.accountEnabled -eq true", True),
        ("user.country -eq null", True),
        ('user.extensionAttribute3 -eq "FTE"', True),
        ('user.extension_0123456789abcdef0123456789abcdef_level -eq "L3"', True),
        ('(user.department -eq "Sales") -and (user.country -ne null)', False),
        ('(user.department -eq "Legal") -or -not (user.accountEnabled -eq false)', True),
        (
            'user.department -eq "Legal" -or user.department -eq "Sales" -and user.accountEnabled -eq true',
            True,
        ),
    ],
)
def test_rules(rule: str, expected: bool) -> None:
    assert rules.evaluate(rules.parse_rule(rule), ANN) is expected


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("", "the rule is empty"),
        ('device.deviceOSType -eq "Windows"', "expected user.<property> at position 0"),
        ('user.department -like "S"', "unknown operator '-like'"),
        ('user.department -eq "Sales" -xor user.x -eq "y"', "unexpected '-xor'"),
        ('(user.department -eq "Sales"', "')'"),
        ("user.department -in Sales", "expected a list"),
    ],
)
def test_malformed_rules(rule: str, fragment: str) -> None:
    with pytest.raises(rules.RuleError) as caught:
        rules.parse_rule(rule)
    assert fragment in str(caught.value)
