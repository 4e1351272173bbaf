"""Every public method of a state adapter speaks the domain's errors: none can let a SQLAlchemy
or redis-py exception reach the service, even a method a ledger part added without the
decorator (docs/architecture.md, "Errors")."""

from __future__ import annotations

import inspect

import pytest

from worker.adapters.state.audit import SqlAuditLog
from worker.adapters.state.errors import TRANSLATED, speaks_domain_errors
from worker.adapters.state.rate_limit import RedisPacer
from worker.adapters.state.redis_store import (
    RedisCursorStore,
    RedisJobLock,
    RedisLiveProgress,
)
from worker.adapters.state.sql import SqlLedger

pytestmark = pytest.mark.unit

ADAPTERS = [SqlLedger, SqlAuditLog, RedisCursorStore, RedisJobLock, RedisLiveProgress, RedisPacer]


def public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda cls: cls.__name__)
def test_every_public_method_of_a_state_adapter_is_translated(adapter: type) -> None:
    methods = public_methods(adapter)
    assert methods
    assert [name for name, m in methods.items() if not getattr(m, TRANSLATED, False)] == []


def test_an_undecorated_part_is_covered_by_the_decorated_whole() -> None:
    class Part:
        def read(self) -> None:
            raise AssertionError("not called")

    @speaks_domain_errors
    class Whole(Part):
        def own(self) -> None:
            raise AssertionError("not called")

    assert getattr(Whole.read, TRANSLATED, False)
    assert getattr(Whole.own, TRANSLATED, False)
    assert not getattr(Part.read, TRANSLATED, False)  # the part itself is left as it was
