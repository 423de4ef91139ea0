"""Writes that may wait: kept in memory and written together every few seconds, off the
request path (derivatives' last uses: origin.derivative_use; the cache keys nginx stored:
origin.edge_keys).

At most ``max_pending`` distinct entries wait for the next write; more are dropped until
then (each such record is only a hint). A failed write is logged and not retried: the next
batch carries newer entries. The last batch is written when the loop stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("imgorigin.batches")

K = TypeVar("K")
V = TypeVar("V")


class Batch(Generic[K, V]):
    def __init__(
        self,
        name: str,
        write: Callable[[dict[K, V]], Awaitable[None]],
        seconds: float,
        max_pending: int = 10_000,
    ) -> None:
        self.name = name
        self.write = write
        self.seconds = seconds
        self.max_pending = max_pending
        self.pending: dict[K, V] = {}

    def put(self, key: K, value: V) -> bool:
        """Keep ``value`` for ``key`` until the next write; False when it was dropped (the
        batch is full)."""
        if len(self.pending) < self.max_pending or key in self.pending:
            self.pending[key] = value
            return True
        return False

    async def flush(self) -> None:
        taken, self.pending = self.pending, {}
        if not taken:
            return
        try:
            await self.write(taken)
        except Exception:
            log.exception("could not write %d %s", len(taken), self.name)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.seconds)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())
