"""The derivative budget's eviction (origin.store.budget.evict), on an SQLite file and on
PostgreSQL: least recently used first, and the user's bytes summed in the transaction that
deletes, so two sweeps at once (two processes' timers) remove the excess once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from origin.records import DerivativeRecord
from origin.store import budget
from origin.store.database import Database
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.users import Users
from tests.origin.store.records import NOW, image_for, make_user

SIZE = 1000  # bytes of each derivative


async def eight_derivatives(users: Users, images: Images, derivatives: Derivatives) -> str:
    """A user with eight derivatives of ``SIZE`` bytes, used in the order v0 … v7."""
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    for n in range(8):
        at = NOW + timedelta(minutes=n)
        record = DerivativeRecord(image.id, f"v{n}", f"k/v{n}.png", "image/png", SIZE, 1, 1, at)
        assert await derivatives.add(record, image.content_hash)
    return user_id


async def test_eviction_takes_the_least_recently_used_down_to_the_budget(
    users: Users, images: Images, derivatives: Derivatives, database: Database
) -> None:
    user_id = await eight_derivatives(users, images, derivatives)
    evicted = await budget.evict(database, user_id, 3 * SIZE)
    assert (evicted.rows, evicted.bytes, evicted.left) == (5, 5 * SIZE, 3 * SIZE)
    assert sorted(evicted.keys) == [f"k/v{n}.png" for n in range(5)]
    assert await budget.usage(database, user_id) == 3 * SIZE
    again = await budget.evict(database, user_id, 3 * SIZE)  # within the budget: nothing
    assert (again.rows, again.left) == (0, 3 * SIZE)


async def test_two_sweeps_at_once_remove_the_excess_once(
    users: Users, images: Images, derivatives: Derivatives, database: Database
) -> None:
    """A hunt: two processes' sweeps, each with the total read before either evicted, took
    the excess twice — a user 26 KB over a 20 KB budget lost every derivative."""
    user_id = await eight_derivatives(users, images, derivatives)
    first, second = await asyncio.gather(
        budget.evict(database, user_id, 3 * SIZE), budget.evict(database, user_id, 3 * SIZE)
    )
    assert first.rows + second.rows == 5
    assert await budget.usage(database, user_id) == 3 * SIZE
    assert {first.left, second.left} == {3 * SIZE}
