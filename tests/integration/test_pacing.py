"""The shared write pacer on a real Redis server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.adapters.state.rate_limit import Quota, RedisPacer

pytestmark = pytest.mark.integration


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    server = EmbeddedRedis(tmp_path / "state")
    connection = redis.Redis.from_url(server.ensure_running())
    yield connection
    connection.close()
    server.stop()


def pacer(client: redis.Redis, app: str = "app") -> RedisPacer:
    return RedisPacer(
        client,
        tenant_id="tenant",
        client_id=app,
        writes=Quota(limit=300, window_s=150, pace=0.95),  # 1.9 per second, 15 in hand
        invitations=Quota(limit=150, window_s=5, pace=0.95),
    )


def test_a_burst_of_the_spare_capacity_then_the_paced_rate(client: redis.Redis) -> None:
    first = pacer(client)
    assert first.reserve(writes=15, invitations=0) == 0.0
    wait = first.reserve(writes=19, invitations=0)
    assert wait == pytest.approx(19 / 1.9, abs=0.05)


def test_every_process_shares_the_buckets_of_an_app_and_tenant(client: redis.Redis) -> None:
    one, other = pacer(client), pacer(client)
    one.reserve(writes=15, invitations=0)
    # the second "process" queues behind the first one's reservation
    assert other.reserve(writes=4, invitations=0) == pytest.approx(4 / 1.9, abs=0.05)
    # another app in the same tenant has its own write quota ...
    assert pacer(client, app="another").reserve(writes=5, invitations=0) == 0.0


def test_invitations_are_paced_per_tenant_whatever_the_app(client: redis.Redis) -> None:
    pacer(client, app="a").reserve(writes=7, invitations=7)  # 142.5 per 5 s, 7.5 in hand
    wait = pacer(client, app="b").reserve(writes=0, invitations=57)
    assert wait == pytest.approx((57 - 0.5) / 28.5, abs=0.05)


def test_a_429_holds_every_writer(client: redis.Redis) -> None:
    first = pacer(client)
    first.hold(4.0)
    assert pacer(client).reserve(writes=1, invitations=0) == pytest.approx(4.0 + 1 / 1.9, abs=0.1)


def test_no_window_of_the_quota_can_exceed_it() -> None:
    for limit, window in ((3000, 150.0), (150, 5.0), (30000, 150.0)):
        quota = Quota(limit, window, pace=0.95)
        assert quota.capacity + quota.rate * window <= limit + 1e-9


def test_a_batch_of_invitations_waits_for_the_longer_of_its_two_buckets(
    client: redis.Redis,
) -> None:
    # Both buckets are reserved in one call: the invitations' is emptier here, so it sets the wait.
    pacer(client, app="a").reserve(writes=0, invitations=57)  # 49.5 owed at 28.5 per second
    wait = pacer(client, app="b").reserve(writes=10, invitations=10)
    assert wait == pytest.approx((49.5 + 10) / 28.5, abs=0.05)
    # ... and the write bucket was drawn on too: 10 of its 15 in hand are gone.
    assert pacer(client, app="b").reserve(writes=6, invitations=0) == pytest.approx(
        1 / 1.9, abs=0.05
    )


def test_a_429_on_an_invitation_holds_the_invitations_too(client: redis.Redis) -> None:
    pacer(client).hold(4.0, invitations=True)
    wait = pacer(client, app="another").reserve(writes=0, invitations=1)
    assert wait == pytest.approx(4.0 + 1 / 28.5, abs=0.1)
