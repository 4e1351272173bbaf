"""`tenant-sync` builds a command only when it is asked for (worker/cli_group.py): what a user
sees, every help text and every command-line error with its exit code, is what typer's group of
every command built at once shows."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from worker.cli import app
from worker.cli_group import on_demand_group

pytestmark = pytest.mark.unit


def outcome(command: Any, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, ...]:
    """(exit code, stdout, stderr) of `tenant-sync ARGS` run by the click group `command`."""
    try:
        command.main(args, prog_name="tenant-sync")
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - every case here ends in SystemExit
        code = None
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def every_invocation() -> list[list[str]]:
    """--help of the program, of every command and sub-command, and mistakes of each kind."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    cases: list[list[str]] = [[], ["--help"], ["nosuch"], ["statu"], ["--bogus"]]
    for name, command in group.commands.items():
        cases.append([name, "--help"])
        cases.append([name, "--bogus"])
        for sub in getattr(command, "commands", {}):
            cases += [[name, sub, "--help"], [name, sub, "--bogus"]]
        if getattr(command, "commands", None):
            cases += [[name], [name, "nosuch"]]
    cases += [["status", "a", "b"], ["logs"], ["validate", "--json", "extra"]]
    return cases


@pytest.mark.parametrize("args", every_invocation(), ids=" ".join)
def test_a_command_built_on_demand_says_what_every_command_built_at_once_says(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    eager = outcome(typer.main.get_command(app), args, capsys)
    assert outcome(on_demand_group(app), args, capsys) == eager
    assert eager[1] or eager[2]  # something was said


def test_running_a_command_builds_that_command_alone() -> None:
    """`tenant-sync status` does not pay for the other commands' options and help."""
    group = on_demand_group(app)
    with pytest.raises(SystemExit):
        group.main(["status", "--help"], prog_name="tenant-sync")
    assert set(group.commands._built) == {"status"}
    assert list(group.commands) == list(typer.main.get_command(app).commands)  # listed as ever
