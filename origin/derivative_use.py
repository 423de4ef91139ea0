"""When upload derivatives were last used, for the bounded derivative store's sweep
(origin.store.budget): kept in memory and written in one batch every ``FLUSH_SECONDS``.

A store hit is always noted; a memory hit (the hot path) one time in ``SAMPLE``: a
derivative hot enough to stay in a process's memory is hit far more often than that, so it
keeps a recent ``last_used_at`` for the price of a counter per hit. At most ``MAX_PENDING``
distinct derivatives wait for the next write (more are dropped until then: their
``last_used_at`` is only older than it could be).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from origin.store import budget
from origin.store.database import Database

log = logging.getLogger("imgorigin.derivatives")

SAMPLE = 64
FLUSH_SECONDS = 5.0
MAX_PENDING = 10_000


class Uses:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending: dict[tuple[str, str], datetime] = {}
        self.hits = 0

    def touch(self, image_id: str, variant: str) -> None:
        if len(self.pending) < MAX_PENDING or (image_id, variant) in self.pending:
            self.pending[image_id, variant] = datetime.now(UTC)

    def hit(self, image_id: str, variant: str) -> None:
        """A memory hit: noted one time in ``SAMPLE``."""
        self.hits += 1
        if not self.hits % SAMPLE:
            self.touch(image_id, variant)

    async def flush(self) -> None:
        taken, self.pending = self.pending, {}
        try:
            await budget.touch(self.db, taken)
        except Exception:  # the next flush tries again with newer uses; nothing else waits
            log.exception("could not record %d derivative uses", len(taken))

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())
