"""`tenant-sync demo` and `tenant-sync sandbox ...`: there in a development install, one clear line
and exit 2 in an install without the development tools (the production image)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.sandbox import REPO_ROOT

pytestmark = pytest.mark.integration

# The production image's install, as far as imports go: the packages beside `worker` are absent.
WITHOUT_TOOLS = (
    "import sys; sys.modules.update(dict.fromkeys(['tenant_sync_demo', 'tenant_sync_sandbox']));"
    "from worker.cli import main; main()"
)


def tenant_sync(*args: str, tools: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["-m", "worker"] if tools else ["-c", WITHOUT_TOOLS]
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize(
    "args",
    [
        ["demo"],
        ["demo", "--users", "300", "--console"],
        ["sandbox", "serve", "--seed", "seed.json"],
        ["sandbox", "seed", "--help"],
    ],
)
def test_without_the_development_tools_they_are_one_line_and_exit_2(args: list[str]) -> None:
    result = tenant_sync(*args, tools=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "development tools, not in this install" in lines[0]
    assert "Traceback" not in result.stderr


def test_without_the_development_tools_the_worker_commands_work() -> None:
    result = tenant_sync("expr", 'Join(" ", [givenName], [surname])', "--attrs", "{}", tools=False)
    assert result.returncode == 0, result.stderr
    help_text = tenant_sync("--help", tools=False)
    assert help_text.returncode == 0
    assert "demo" not in help_text.stdout
    assert "sandbox" not in help_text.stdout.replace("Sandbox", "")


def test_in_a_development_install_they_are_commands() -> None:
    help_text = tenant_sync("--help")
    assert help_text.returncode == 0
    assert " demo " in help_text.stdout
    assert " sandbox " in help_text.stdout
    seed = tenant_sync("sandbox", "seed", "--users", "3")
    assert seed.returncode == 0, seed.stderr
    assert '"tenants"' in seed.stdout
