"""Rate limits: one-minute windows per key behind a small interface.

``InProcessLimiter`` counts in this process only. A shared store (Redis, for several hosts)
implements the same ``Limiter`` protocol: ``hit(key, limit)`` counts one request and says
whether it is allowed, how many remain and when the window resets; ``peek(key, limit)`` says
the same of one more hit without counting it (the login throttle checks before it knows
whether the attempt fails, and counts only failures).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("imgorigin")

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

    def refusal_headers(self) -> dict[str, str]:
        """A 429's headers: the limit's, and when to try again."""
        return {**self.headers(), "Retry-After": str(self.reset_seconds)}


class Limiter(Protocol):
    async def hit(self, key: str, limit: int) -> Decision: ...
    async def peek(self, key: str, limit: int) -> Decision: ...


def _decision(count: int, limit: int, reset: int, *, counted: bool) -> Decision:
    """After ``count`` hits in the window: was the last one (``counted``) or would the next
    one be allowed."""
    allowed = count <= limit if counted else count < limit
    return Decision(allowed, limit, max(0, limit - count), reset)


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
        start, count = self._window(key, now)
        count += 1
        self.windows[key] = (start, count)
        return _decision(count, limit, self._reset(start, now), counted=True)

    async def peek(self, key: str, limit: int) -> Decision:
        now = self.clock()
        start, count = self._window(key, now)
        return _decision(count, limit, self._reset(start, now), counted=False)

    def _window(self, key: str, now: float) -> tuple[float, int]:
        start, count = self.windows.get(key, (now, 0))
        return (now, 0) if now - start >= WINDOW_SECONDS else (start, count)

    @staticmethod
    def _reset(start: float, now: float) -> int:
        """Whole seconds until the window ends, 1 to 60: ``start + 60 - now`` in floating
        point can be a hair above 60 at the window's first hit, and must not round to 61."""
        return min(WINDOW_SECONDS, max(1, math.ceil(start + WINDOW_SECONDS - now)))


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

# The count and the time left, without counting (a missing key: 0 and no expiry).
_PEEK_SCRIPT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
return {count, redis.call('PTTL', KEYS[1])}
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
        self.hit_script = client.register_script(_HIT_SCRIPT)
        self.peek_script = client.register_script(_PEEK_SCRIPT)
        self.failures = 0

    async def hit(self, key: str, limit: int) -> Decision:
        return await self._run(self.hit_script, key, limit, counted=True)

    async def peek(self, key: str, limit: int) -> Decision:
        return await self._run(self.peek_script, key, limit, counted=False)

    async def _run(self, script: Any, key: str, limit: int, *, counted: bool) -> Decision:
        try:
            count, ttl_ms = await script(keys=[self.prefix + key], args=[WINDOW_SECONDS * 1000])
        except Exception as exc:  # any Redis trouble: fail open
            self.failures += 1
            log.warning("rate limiter unavailable, allowing the request: %r", exc)
            return Decision(True, limit, limit, WINDOW_SECONDS, degraded=True)
        ttl_ms = int(ttl_ms)
        reset = max(1, math.ceil(ttl_ms / 1000)) if ttl_ms > 0 else WINDOW_SECONDS
        return _decision(int(count), limit, reset, counted=counted)


def redis_client(url: str) -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
