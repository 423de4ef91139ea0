"""Work a request starts and leaves running after its answer is sent, waited for (bounded) at
shutdown: a derivative's object and row (origin.derivatives), a ``q_auto`` choice, a remote
object's working copies (origin.sources.cache).

A ``bounded`` piece of work holds bytes (a derivative's): past ``limit`` pieces pending it is
not started, and the caller counts the skip, so a slow store bounds memory instead of
filling it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

DRAIN_SECONDS = 10.0  # at shutdown, for work still running


class AfterAnswer:
    """This process's work still running after its answers."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # pending pieces past which ``bounded`` work is not started
        self.pending: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None], *, bounded: bool = False) -> bool:
        """Run ``work`` as a task; False (``work`` closed, never run) when it is ``bounded``
        and ``limit`` pieces are pending already."""
        if bounded and len(self.pending) >= self.limit:
            work.close()
            return False
        task = asyncio.create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return True

    async def drain(self) -> None:
        """Wait, at most ``DRAIN_SECONDS``, for the work still pending."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=DRAIN_SECONDS)
