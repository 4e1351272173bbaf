"""The per-cycle retry budget setting: its default, its forms, and what validate says of a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_config

pytestmark = pytest.mark.unit

ENV = {"CONTOSO_SECRET": "s"}
GOOD = """
tenants:
  contoso:
    tenant_id: 0b1c0000-0000-4000-8000-000000000001
    client_id: 5e6f0000-0000-4000-8000-000000000001
    client_secret: ${CONTOSO_SECRET}
  fabrikam:
    tenant_id: 0b1c0000-0000-4000-8000-000000000002
    client_id: 5e6f0000-0000-4000-8000-000000000002
    client_secret: ${CONTOSO_SECRET}
jobs:
  loop:
    source: contoso
    target: fabrikam
    scope: {users: all}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(text)
    return path


def with_budget(value: str) -> str:
    return GOOD.replace(
        "    client_secret: ${CONTOSO_SECRET}\n",
        f"    client_secret: ${{CONTOSO_SECRET}}\n    limits: {{retry_budget: {value}}}\n",
        1,
    )


def test_the_retry_budget_defaults_to_15_minutes_per_tenant(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    assert config.tenants["contoso"].limits.retry_budget.total_seconds() == 900


@pytest.mark.parametrize(("value", "seconds"), [("0s", 0), ("90s", 90), ("1h", 3600), ("45", 45)])
def test_the_retry_budget_is_a_duration(tmp_path: Path, value: str, seconds: int) -> None:
    config = load_config(write(tmp_path, with_budget(value)), env=ENV)
    assert config.tenants["contoso"].limits.retry_budget.total_seconds() == seconds


@pytest.mark.parametrize("value", ["2d", "soon", "-5"])
def test_a_bad_retry_budget_is_named_with_its_place(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, with_budget(value)), env=ENV)
    assert any("tenants.contoso.limits.retry_budget" in p for p in caught.value.problems)
