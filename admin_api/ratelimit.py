"""Rate limits: one-minute windows per key behind a small interface.

``InProcessLimiter`` counts in this process only. A shared store (Redis, for several hosts)
implements the same ``Limiter`` protocol: ``hit(key, limit)`` counts one request and says
whether it is allowed, how many remain and when the window resets.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("imgorigin.admin")

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends
    degraded: bool = False  # the store failed and the request was let through

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


# One round trip, atomic: count the hit, start the window's expiry on the first one.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RedisLimiter:
    """Counters shared by every process and host through Redis (``REDIS_URL``).

    If Redis fails or is slow, the request is allowed (fail open: a limiter outage must not
    become an API outage); the failure is logged, counted in ``failures`` and the decision
    says ``degraded`` (counted in ``/metrics`` as ``imgorigin_ratelimit_store_failures``).
    """

    def __init__(self, client: Any, prefix: str = "imgorigin:rl:") -> None:
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(_HIT_SCRIPT)
        self.failures = 0

    async def hit(self, key: str, limit: int) -> Decision:
        try:
            count, ttl_ms = await self.script(
                keys=[self.prefix + key], args=[WINDOW_SECONDS * 1000]
            )
        except Exception as exc:  # any Redis trouble: fail open
            self.failures += 1
            log.warning("rate limiter unavailable, allowing the request: %r", exc)
            return Decision(True, limit, limit, WINDOW_SECONDS, degraded=True)
        count = int(count)
        reset = max(1, math.ceil(int(ttl_ms) / 1000))
        return Decision(count <= limit, limit, max(0, limit - count), reset)


def redis_client(url: str) -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
