"""`tenant-sync expr` end to end: a handful of the reference's cases through the real command.

The table in test_expressions_reference.py runs the same path in-process; this spot-checks the
process itself (argument handling, JSON on stdout, exit codes, the message on stderr), so it
is marked integration: it starts processes, which unit tests do not.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def expr(expression: str, attrs: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "worker", "expr", expression]
    if attrs is not None:
        args += ["--attrs", attrs]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_reference_example_prints_its_value() -> None:
    result = expr(
        'Append([userPrincipalName], ".test")', '{"userPrincipalName": "John.Doe@contoso.com"}'
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"value": "John.Doe@contoso.com.test"}


def test_numbers_booleans_lists_and_ignored_print_as_json() -> None:
    assert json.loads(expr('InStr("The quick brown fox","quick")').stdout) == {"value": 5}
    assert json.loads(expr("IsNull([displayName])").stdout) == {"value": True}
    split = expr('Split([e], ",")', '{"e": "PermissionSetOne, PermissionSetTwo"}')
    assert json.loads(split.stdout) == {"value": ["PermissionSetOne", "PermissionSetTwo"]}
    ignored = expr("IgnoreFlowIfNullOrEmpty([department])", '{"department": ""}')
    assert ignored.returncode == 0
    assert json.loads(ignored.stdout) == {"ignored": True}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_hostile_expression_typed_on_a_command_line() -> None:
    # Quotes, backslashes, $, <, > and ( ) as a user types them in single quotes.
    expression = (
        'Replace([telephoneNumber], , "\\\\+(?<isdCode>\\\\d* )(?<phoneNumber>\\\\d{10})", ,'
        ' "${phoneNumber}", , )'
    )
    attrs = '{"telephoneNumber": "+91 9998887777"}'
    command = (
        f"{shlex.quote(sys.executable)} -m worker expr {shlex.quote(expression)}"
        f" --attrs {shlex.quote(attrs)}"
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"value": "9998887777"}

    quoted = expr('Append("Company name: \\"Contoso\\" \\\\ ", [x])', '{"x": "O\'Neil"}')
    assert quoted.returncode == 0, quoted.stderr
    assert json.loads(quoted.stdout) == {"value": 'Company name: "Contoso" \\ O\'Neil'}


@pytest.mark.parametrize(
    ("expression", "position"),
    [
        ('Append([userPrincipalName], ".test"', 6),  # '(' never closed
        ('toLower("ABC")', 0),  # names are case-sensitive
        ('Left("John Doe")', 0),  # Left takes two arguments
    ],
)
def test_invalid_expression_exits_2_with_a_position(expression: str, position: int) -> None:
    result = expr(expression)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"at position {position}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_valid_expression_failing_on_the_given_values_says_so() -> None:
    # IIF's condition check fails on a null source (the reference's rule): exit 2 as bad input,
    # but the message must not call a valid expression invalid.
    result = expr('IIF([country]="USA","US","Other")', "{}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "fails on these attributes" in result.stderr
    assert "invalid expression" not in result.stderr
    assert "IIF" in result.stderr


def test_extension_attributes_read_as_in_a_cycle() -> None:
    attrs = '{"onPremisesExtensionAttributes": {"extensionAttribute3": "E3"}, "city": "Oslo"}'
    both = 'Join("-", [extensionAttribute3], [onPremisesExtensionAttributes.extensionAttribute3])'
    result = expr(both, attrs)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"value": "E3-E3"}
