"""`tenant-sync … | head`: a reader that stops early is not an error (exit 0, nothing printed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import SyncEnv

pytestmark = pytest.mark.integration


def closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command with its stdout a pipe whose reader has already gone."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read()
    return subprocess.CompletedProcess(proc.args, proc.wait(timeout=300), "", stderr)


def test_a_cycle_piped_into_a_closed_reader_exits_0(sync_env: SyncEnv) -> None:
    config = ("--config", str(sync_env.config))
    run = closed_pipe("run", "sync", *config)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "Broken pipe" not in run.stderr
    # The cycle did its work all the same.
    assert len(sync_env.target_users()) > 1
    for args in (["status"], ["logs", "sync"], ["run", "sync", "--json"]):
        result = closed_pipe(*args, *config)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_command_without_state_piped_into_a_closed_reader_exits_0() -> None:
    result = closed_pipe("sandbox", "seed", "--users", "300")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
