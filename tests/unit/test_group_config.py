"""The `groups:` section of a job: defaults, and each mistake named with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_config import GOOD, write
from worker.config import ConfigError, load_config
from worker.domain.groups import Nested

pytestmark = pytest.mark.unit

ENV = {"CONTOSO_SECRET": "x"}
JOB = "jobs.contoso-to-fabrikam"


def with_groups(block: str, *, nested_groups: bool = False) -> str:
    text = GOOD.split("    mappings:")[0]
    if nested_groups:
        text = text.replace("      filters:", "      nested_groups: true\n      filters:")
    return text + block


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    return caught.value.problems


def test_provisioning_is_off_unless_asked_and_defaults_to_name_description_nickname(
    tmp_path: Path,
) -> None:
    off = load_config(write(tmp_path, with_groups("")), env=ENV).job("contoso-to-fabrikam")
    assert not off.spec.groups.enabled
    on = load_config(write(tmp_path, with_groups("    groups: {provision: true}\n")), env=ENV).job(
        "contoso-to-fabrikam"
    )
    groups = on.spec.groups
    assert groups.enabled
    assert groups.nested is Nested.SKIP
    assert [m.target for m in groups.mappings] == ["displayName", "description", "mailNickname"]
    assert groups.source_select == ["description", "displayName", "id", "mailNickname"]
    # turning provisioning on changes what the job does: a full cycle is due
    assert on.spec.fingerprint != off.spec.fingerprint


def test_nested_defaults_to_flatten_with_nested_groups_and_mappings_may_be_expressions(
    tmp_path: Path,
) -> None:
    block = (
        "    groups:\n"
        "      provision: true\n"
        "      mappings:\n"
        '        - {target: displayName, expression: \'Join(" ", "[EU]", [displayName])\'}\n'
        "        - {target: description, constant: synced}\n"
    )
    job = load_config(write(tmp_path, with_groups(block, nested_groups=True)), env=ENV).job(
        "contoso-to-fabrikam"
    )
    assert job.spec.groups.nested is Nested.FLATTEN
    assert [m.kind for m in job.spec.groups.mappings] == ["expression", "constant"]


def test_provision_without_scope_groups_is_named(tmp_path: Path) -> None:
    text = (
        with_groups("    groups: {provision: true}\n")
        .replace("      groups: [9a0b0000-0000-4000-8000-00000000a001]\n", "      user_ids: []\n")
        .replace("users: assigned", "users: all")
    )
    assert (
        f"{JOB}.groups.provision: needs scope.groups (the source groups to create in the "
        "target)" in problems(tmp_path, text)
    )


def test_each_mistake_in_the_groups_section_is_named_with_its_path(tmp_path: Path) -> None:
    block = (
        "    groups:\n"
        "      provision: true\n"
        "      nested: flatten\n"
        "      colour: blue\n"
        "      mappings:\n"
        "        - {target: securityEnabled, constant: false}\n"
        "        - {target: jobTitle, source: displayName}\n"
        "        - {target: description, source: department}\n"
        "        - {target: displayName, expression: 'ToUpper([surname])'}\n"
        "        - {target: mailNickname, expression: 'SelectUniqueValue([displayName], [mailNickname])'}\n"
    )
    found = problems(tmp_path, with_groups(block))
    assert f"{JOB}.groups.colour: unknown setting" in found
    block = block.replace("      colour: blue\n", "")
    found = problems(tmp_path, with_groups(block))
    assert (
        f"{JOB}.groups.nested: flatten needs scope.nested_groups: true "
        "(members of nested groups are otherwise out of scope)" in found
    )
    assert any(
        p.startswith(f"{JOB}.groups.mappings[0].target: 'securityEnabled' is fixed") for p in found
    )
    assert any(
        p.startswith(f"{JOB}.groups.mappings[1].target: 'jobTitle' cannot be mapped") for p in found
    )
    assert (
        f"{JOB}.groups.mappings[2].source: 'department' is not a property of "
        "microsoft.graph.group" in found
    )
    assert (
        f"{JOB}.groups.mappings[3].expression: 'surname' is not a property of "
        "microsoft.graph.group" in found
    )
    assert any(
        p.startswith(f"{JOB}.groups.mappings[4].expression: SelectUniqueValue is for users only")
        for p in found
    )
    bad_nested = with_groups("    groups: {provision: true, nested: deep}\n")
    assert any(p.startswith(f"{JOB}.groups.nested:") for p in problems(tmp_path, bad_nested))


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ("{target: mailNickname, constant: 'team sales'}", "constant"),
        ("{target: mailNickname, source: mailNickname, default: 'a@b'}", "default"),
    ],
)
def test_a_mail_nickname_written_in_the_config_that_graph_refuses_is_named(
    tmp_path: Path, mapping: str, key: str
) -> None:
    """Graph answers 400 for such a value on every group; a mapped one is Graph's to judge."""
    block = (
        "    groups:\n"
        "      provision: true\n"
        "      mappings:\n"
        "        - {target: displayName, source: displayName}\n"
        f"        - {mapping}\n"
    )
    found = problems(tmp_path, with_groups(block))
    assert found == [
        f"{JOB}.groups.mappings[1].{key}: Graph refuses this group mailNickname: at most 64 "
        'ASCII characters, none of @ ( ) \\ [ ] " ; : < > , or a space'
    ], found


def test_validate_refuses_provision_without_groups_with_exit_code_2(tmp_path: Path) -> None:
    text = (
        with_groups("    groups: {provision: true}\n")
        .replace("      groups: [9a0b0000-0000-4000-8000-00000000a001]\n", "")
        .replace("users: assigned", "users: all")
    )
    path = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(path), "validate"],
        capture_output=True,
        text=True,
        env={"CONTOSO_SECRET": "x", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "groups.provision: needs scope.groups" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
