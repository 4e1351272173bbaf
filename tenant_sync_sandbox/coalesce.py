"""One write per response: the HTTP protocol uvicorn runs, with its writes coalesced.

uvicorn writes a response's status line and headers, then its body, each straight to the TLS
transport: two TLS records and two `send()`s, and the client woken twice (for the headers it
cannot use alone). Measured under the scale benchmark those `send()`s were a sixth of the
sandbox's CPU. Here what the protocol writes during one turn of the event loop is joined and
written once, at the end of that turn: the bytes and their order are the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class CoalescingTransport:
    """A transport that holds the writes of one event-loop turn and passes them on as one;
    everything else goes straight to the transport it wraps."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self.flush()  # what was written before close() still goes out, as it would have
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()  # an abort drops unsent data
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol on a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]
