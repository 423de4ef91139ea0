"""The libvips thread pool: at most ``CONCURRENCY`` jobs at once, a bounded queue in front.

A job waits for a slot at most ``QUEUE_TIMEOUT_SECONDS``; when ``QUEUE_MAX`` jobs already
wait, one more is refused at once. Both answer 503 ``overloaded`` with ``Retry-After``.
A caller cancelled while it waits (its client went away) never starts its job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from origin.errors import Overloaded

T = TypeVar("T")


class VipsPool:
    def __init__(self, concurrency: int, queue_max: int, queue_timeout: float) -> None:
        self.slots = anyio.CapacityLimiter(concurrency)
        # anyio's default thread limiter is shared with all other thread work (file I/O,
        # bcrypt); ours has exactly as many threads as slots, so a held slot always runs.
        self.threads = anyio.CapacityLimiter(concurrency)
        self.queue_max = queue_max
        self.queue_timeout = queue_timeout
        self.waiting = 0

    @property
    def busy(self) -> int:
        return int(self.slots.borrowed_tokens)

    def _overloaded(self, why: str) -> Overloaded:
        retry = str(max(1, math.ceil(self.queue_timeout)))
        return Overloaded(
            f"the server is busy ({why}); retry later", headers={"Retry-After": retry}
        )

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in a worker thread once a slot is free."""
        if self.slots.available_tokens == 0 and self.waiting >= self.queue_max:
            raise self._overloaded("queue full")
        self.waiting += 1
        try:
            with anyio.fail_after(self.queue_timeout):
                await self.slots.acquire()
        except TimeoutError:
            raise self._overloaded("queue wait too long") from None
        finally:
            self.waiting -= 1
        try:
            return await anyio.to_thread.run_sync(job, limiter=self.threads)
        finally:
            self.slots.release()
