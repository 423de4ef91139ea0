"""When upload derivatives were last used, for the bounded derivative store's sweep
(origin.store.budget), written in batches (origin.batches) every ``FLUSH_SECONDS``.

A store hit is always noted; a memory hit (the hot path) one time in ``SAMPLE``: a
derivative hot enough to stay in a process's memory is hit far more often than that, so it
keeps a recent ``last_used_at`` for the price of a counter per hit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from origin.batches import Batch
from origin.store import budget
from origin.store.database import Database

SAMPLE = 64
FLUSH_SECONDS = 5.0


class Uses(Batch[tuple[str, str], datetime]):
    def __init__(self, db: Database) -> None:
        super().__init__("derivative uses", lambda used: budget.touch(db, used), FLUSH_SECONDS)
        self.hits = 0

    def touch(self, image_id: str, variant: str) -> None:
        self.put((image_id, variant), datetime.now(UTC))

    def hit(self, image_id: str, variant: str) -> None:
        """A memory hit: noted one time in ``SAMPLE``."""
        self.hits += 1
        if not self.hits % SAMPLE:
            self.touch(image_id, variant)
