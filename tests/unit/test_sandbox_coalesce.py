"""The sandbox's coalescing transport: a response's writes leave as one, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tenant_sync_sandbox.coalesce import CoalescingTransport

pytestmark = pytest.mark.unit


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    def write(self, data: Any) -> None:
        self.events.append(bytes(data))

    def close(self) -> None:
        self.events.append("close")

    def abort(self) -> None:
        self.events.append("abort")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return f"extra:{name}"


def test_the_writes_of_one_turn_leave_as_one_write_in_order() -> None:
    async def run() -> list[Any]:
        inner = Recorder()
        transport = CoalescingTransport(inner)
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.write(b'{"a":1}')
        assert inner.events == []  # nothing yet: the turn is not over
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return inner.events

    assert asyncio.run(run()) == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}', b"next"]


def test_close_sends_what_was_written_first_and_abort_drops_it() -> None:
    async def run() -> tuple[list[Any], list[Any], Any]:
        closed, aborted = Recorder(), Recorder()
        a, b = CoalescingTransport(closed), CoalescingTransport(aborted)
        a.write(b"bye")
        a.close()
        b.write(b"lost")
        b.abort()
        await asyncio.sleep(0)
        return closed.events, aborted.events, a.get_extra_info("socket")

    assert asyncio.run(run()) == ([b"bye", "close"], ["abort"], "extra:socket")
