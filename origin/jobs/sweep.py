"""The derivative store's sweep: every ``DERIVATIVE_SWEEP_SECONDS``, each user over
``USER_DERIVATIVE_BYTES`` loses their least recently used derivatives until under it
(origin.store.budget), in every process that runs jobs. Two sweeping at once remove nothing
twice: the rows go in a transaction, and removing an object already gone is no error.

Between two sweeps a user can pass the budget by what they render meanwhile — at most
``USER_KEY_RENDERS_PER_MINUTE`` derivatives a minute per signing key (and the operator's and
eager renders) — and the store settles back within one sweep.
"""

from __future__ import annotations

import asyncio
import logging

from origin.metrics import Metrics
from origin.services import Services
from origin.store import budget

log = logging.getLogger("imgorigin.derivatives")


async def sweep_once(services: Services, metrics: Metrics) -> int:
    """Bring every user under the budget; how many derivatives were removed."""
    limit = services.settings.user_derivative_bytes
    removed = 0
    for user_id, total in await budget.over_budget(services.db, limit):
        while total > limit:
            evicted = await budget.evict(services.db, user_id, limit)
            total = evicted.left
            if not evicted.rows:
                break
            removed += evicted.rows
            metrics.evicted.inc(evicted.rows)
            for key in evicted.keys:  # the rows are gone: an object left behind is gc's
                try:
                    await services.storage.delete(key)
                except Exception:
                    log.warning("evicted derivative %s stays for gc", key, exc_info=True)
        log.info("user %s: derivative store swept to %d bytes", user_id, max(total, 0))
    return removed


async def run_sweeps(services: Services, metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(services.settings.derivative_sweep_seconds)
        try:
            await sweep_once(services, metrics)
        except Exception:  # the next sweep tries again
            log.exception("the derivative store's sweep failed")
