"""The keys nginx stored an image's answers under (origin.store.edge_keys), on an SQLite
file and on PostgreSQL: recorded once, and handed back for a purge when the image changed
or went after the answer was served."""

from __future__ import annotations

import asyncio
import dataclasses

from origin.named import definition
from origin.records import TransformationRecord
from origin.store import edge_keys
from origin.store.database import Database
from origin.store.images import Images
from origin.store.transformations import Transformations
from origin.store.users import Users
from tests.origin.store.records import NOW, image_for, make_user


async def test_keys_are_recorded_once_and_stale_ones_handed_back(
    database: Database, users: Users, images: Images
) -> None:
    user_id = await make_user(users)
    kept, changed, gone, private = (image_for(user_id) for _ in range(4))
    for image in (kept, changed, gone, private):
        await images.add(image, quota_bytes=10**9)
    served = {
        (image.id, f"/i/{image.id}/w_40/a.png?s=x|"): (image.version, image.public, ())
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


async def test_keys_through_a_transformation_edited_or_deleted_since_are_handed_back(
    database: Database, users: Users, images: Images
) -> None:
    """An answer served from a definition that changed before its key was written (in
    another process, up to origin.lookup's TTL after the change) is purged, not recorded."""
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    named = Transformations(database)
    card, hero, kept = (
        TransformationRecord(user_id, name, "w_40", False, (), NOW, NOW)
        for name in ("card", "hero", "kept")
    )
    for record in (card, hero, kept):
        await named.put(record, max_per_user=10)
    served = {
        (image.id, f"/i/{image.id}/t_{r.name}/a.png?s=x|"): (
            image.version,
            image.public,
            ((r.name, definition(r)),),
        )
        for r in (card, hero, kept)
    }
    await named.put(dataclasses.replace(card, chain="w_41"), max_per_user=10)
    await named.delete(user_id, "hero")

    stale = await edge_keys.add(database, served)
    assert sorted(stale) == [f"/i/{image.id}/t_card/a.png?s=x|", f"/i/{image.id}/t_hero/a.png?s=x|"]
    async with database.write() as conn:
        assert await edge_keys.take_of_image(conn, image.id) == [f"/i/{image.id}/t_kept/a.png?s=x|"]


async def test_a_transformations_keys_include_those_naming_it_percent_encoded(
    database: Database, users: Users, images: Images
) -> None:
    """``t_%63ard`` is ``t_card`` to the URL parser: an edit of ``card`` takes that key too
    (a filter on the raw key left it in nginx)."""
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    card = TransformationRecord(user_id, "card", "w_40", False, (), NOW, NOW)
    await Transformations(database).put(card, max_per_user=10)
    uses = (("card", definition(card)),)
    keys = [f"/i/{image.id}/t_%63ard/a.png?s=x|", f"/i/{image.id}/t_cards/a.png?s=y|"]
    served = {(image.id, key): (image.version, image.public, uses) for key in keys}
    assert await edge_keys.add(database, served) == []
    async with database.write() as conn:
        assert await edge_keys.take_naming(conn, user_id, "card") == [keys[0]]
