"""Rate limits: one-minute windows per key behind a small interface.

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
    """A one-minute window per key that opens at the key's first hit (as a Redis counter
    with an expiry set on its first increment would); stale keys are pruned as time passes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.windows: dict[str, tuple[float, int]] = {}  # key -> (window start, count)
        self.next_prune = 0.0

    async def hit(self, key: str, limit: int) -> Decision:
        now = self.clock()
        if now >= self.next_prune:
            self.windows = {k: w for k, w in self.windows.items() if now - w[0] < WINDOW_SECONDS}
            self.next_prune = now + WINDOW_SECONDS
        start, count = self.windows.get(key, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, count = now, 0
        count += 1
        self.windows[key] = (start, count)
        reset = max(1, math.ceil(start + WINDOW_SECONDS - now))
        return Decision(count <= limit, limit, max(0, limit - count), reset)
