"""The keys nginx stored an image's answers under (origin.store.edge_keys), on an SQLite
file and on PostgreSQL: recorded once, and handed back for a purge when the image changed
or went after the answer was served."""

from __future__ import annotations

import asyncio
import dataclasses

from origin.store import edge_keys
from origin.store.database import Database
from origin.store.images import Images
from origin.store.users import Users
from tests.origin.store.records import image_for, make_user


async def test_keys_are_recorded_once_and_stale_ones_handed_back(
    database: Database, users: Users, images: Images
) -> None:
    user_id = await make_user(users)
    kept, changed, gone, private = (image_for(user_id) for _ in range(4))
    for image in (kept, changed, gone, private):
        await images.add(image, quota_bytes=10**9)
    served = {
        (image.id, f"/i/{image.id}/w_40/a.png?s=x|"): (image.version, image.public)
        for image in (kept, changed, gone, private)
    }
    await images.replace(changed, dataclasses.replace(changed, version=changed.version + 1), 10**9)
    await images.delete(gone.id, user_id)
    await images.set_public(private.id, user_id, not private.public)

    twice = await asyncio.gather(edge_keys.add(database, served), edge_keys.add(database, served))
    expected = sorted(k for (i, k) in served if i != kept.id)
    assert [sorted(stale) for stale in twice] == [expected, expected]
    async with database.write() as conn:
        assert await edge_keys.take_of_image(conn, kept.id) == [f"/i/{kept.id}/w_40/a.png?s=x|"]
        for image in (changed, private):
            assert await edge_keys.take_of_image(conn, image.id) == []
