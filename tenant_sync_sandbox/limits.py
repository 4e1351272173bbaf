"""Throttling: sliding-window quotas like Graph's identity and access limits.

Graph counts, per app + tenant, resource units per 10 s and writes per 150 s, and per tenant,
invitations per 5 s. A request that would exceed a quota is refused whole (nothing is consumed)
with the seconds to wait until enough of the window has drained: a caller that waits that long
and sends the same request again is admitted (unless others used the quota meanwhile).
Which charges a request makes is decided in `throttling.py`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Charge:
    key: tuple[str, ...]
    cost: float
    limit: float
    window_s: float
    name: str
    scope: str = ""  # x-ms-throttle-scope when this charge is the one refused


class _Window:
    def __init__(self) -> None:
        self.events: deque[tuple[float, float]] = deque()
        self.used = 0.0

    def drain(self, now: float, window_s: float) -> None:
        while self.events and self.events[0][0] <= now - window_s:
            _, cost = self.events.popleft()
            self.used -= cost

    def wait_for(self, now: float, window_s: float, cost: float, limit: float) -> float:
        """Seconds until `cost` fits, 0 when it fits now."""
        if self.used + cost <= limit:
            return 0.0
        excess = self.used + cost - limit
        freed = 0.0
        for at, c in self.events:
            freed += c
            if freed >= excess:
                return max(at + window_s - now, 0.001)
        return window_s


class Limiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], _Window] = {}

    def try_charge(self, charges: Sequence[Charge], now: float) -> tuple[int, str] | None:
        """Consume every charge, or none: then return (Retry-After seconds, quota name)."""
        worst: tuple[float, str] | None = None
        for ch in charges:
            window = self._windows.get(ch.key)
            if window is None:
                window = self._windows[ch.key] = _Window()
            window.drain(now, ch.window_s)
            wait = window.wait_for(now, ch.window_s, ch.cost, ch.limit)
            if wait > 0 and (worst is None or wait > worst[0]):
                worst = (wait, ch.name)
        if worst is not None:
            return max(1, math.ceil(worst[0])), worst[1]
        for ch in charges:
            window = self._windows[ch.key]
            window.events.append((now, ch.cost))
            window.used += ch.cost
        return None

    def used(self, key: tuple[str, ...], now: float, window_s: float) -> float:
        """What the quota `key` holds now (after draining the window)."""
        window = self._windows.get(key)
        if window is None:
            return 0.0
        window.drain(now, window_s)
        return window.used
