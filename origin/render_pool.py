"""The libvips thread pool: at most ``CONCURRENCY`` jobs at once, a bounded queue in front.

A job waits for a slot at most ``QUEUE_TIMEOUT_SECONDS``; when ``QUEUE_MAX`` jobs already
wait, one more is refused at once. Both answer 503 ``overloaded`` with ``Retry-After``.
A caller cancelled while it waits (its client went away) never starts its job;
``unless_gone`` turns "the client went away" into that cancellation. A caller cancelled
while its job runs calls the job's ``on_cancel`` (a render's ``Deadline.cancel``: libvips
stops at its next tile) and the slot is given back only once the thread has returned, so a
slot is never free while a thread still works for it. After a job its thread gives freed
heap pages back to the system when the pool falls idle, and now and then under load
(``origin.memory.Trimmer``).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from origin.errors import Overloaded
from origin.memory import Trimmer

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected while its answer was being waited for."""


class RenderPool:
    def __init__(
        self, concurrency: int, queue_max: int, queue_timeout: float, background_share: float = 1.0
    ) -> None:
        self.slots = anyio.CapacityLimiter(concurrency)
        # Background jobs (eager derivatives) hold at most this many slots, so requests always
        # have the rest (docs/background.md).
        self.background = anyio.CapacityLimiter(max(1, int(concurrency * background_share)))
        # anyio's default thread limiter is shared with all other thread work (file I/O,
        # bcrypt); ours has exactly as many threads as slots, so a held slot always runs.
        self.threads = anyio.CapacityLimiter(concurrency)
        self.queue_max = queue_max
        self.queue_timeout = queue_timeout
        self.waiting = 0
        # A job that ends still holds its slot: the others are the rest of ``busy``.
        self.trimmer = Trimmer(others=lambda: self.busy - 1 + self.waiting)

    @property
    def busy(self) -> int:
        return int(self.slots.borrowed_tokens)

    def _overloaded(self, why: str) -> Overloaded:
        retry = str(max(1, math.ceil(self.queue_timeout)))
        return Overloaded(
            f"the server is busy ({why}); retry later", headers={"Retry-After": retry}
        )

    async def run(self, job: Callable[[], T], on_cancel: Callable[[], object] | None = None) -> T:
        """Run ``job`` in a worker thread once a slot is free; ``on_cancel`` is called when
        the caller is cancelled while the job runs."""
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
            return await self._in_thread(job, on_cancel)
        finally:
            self.slots.release()

    async def run_background(
        self, job: Callable[[], T], on_cancel: Callable[[], object] | None = None
    ) -> T:
        """Run a background job: first one of the background share's slots, then a pool slot
        as requests get them (no queue bound, no wait limit: it waits as long as it must and
        never counts in the request queue's depth)."""
        async with self.background:
            await self.slots.acquire()
            try:
                return await self._in_thread(job, on_cancel)
            finally:
                self.slots.release()

    async def _in_thread(self, job: Callable[[], T], on_cancel: Callable[[], object] | None) -> T:
        work = functools.partial(_then, job, self.trimmer.after_job)
        running = asyncio.ensure_future(anyio.to_thread.run_sync(work, limiter=self.threads))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            if on_cancel is not None:
                on_cancel()
            with anyio.CancelScope(shield=True):  # anyio re-cancels every await otherwise
                await _ended(running)
            raise


def _then(job: Callable[[], T], after: Callable[[], None]) -> T:
    """``job()``, then ``after()`` in the same thread whatever the job did."""
    try:
        return job()
    finally:
        after()


async def _ended(running: asyncio.Future[T]) -> None:
    """Wait until a thread, which cannot be interrupted, has returned, however often this
    wait is cancelled (asyncio's ``Task.cancel`` again); its answer is dropped (whoever
    wanted it has gone)."""
    while not running.done():
        try:
            await asyncio.wait((running,))
        except asyncio.CancelledError:
            continue
    if not running.cancelled():
        running.exception()


async def unless_gone(work: Awaitable[T], gone: Callable[[], Awaitable[object]]) -> T:
    """Await ``work`` unless ``gone()`` finishes first (the client disconnected).

    Then ``work`` is cancelled (a job still waiting for a slot never starts) and
    ``ClientGone`` is raised. ``gone`` is, over ASGI, "receive until ``http.disconnect``".
    """
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(gone())
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone()
