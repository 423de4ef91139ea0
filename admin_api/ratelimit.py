"""Rate limits: fixed one-minute windows behind a small interface.

``InProcessLimiter`` counts in this process only. A shared store (Redis, for several hosts)
implements the same ``Limiter`` protocol: ``hit(key, limit)`` counts one request and says
whether it is allowed, how many remain and when the window resets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class Limiter(Protocol):
    async def hit(self, key: str, limit: int) -> Decision: ...


class InProcessLimiter:
    """Counters per (key, window) in a dict; stale windows are dropped as time passes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.window = -1
        self.counts: dict[str, int] = {}

    async def hit(self, key: str, limit: int) -> Decision:
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if window != self.window:
            self.window, self.counts = window, {}
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        reset = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        return Decision(count <= limit, limit, max(0, limit - count), reset)
