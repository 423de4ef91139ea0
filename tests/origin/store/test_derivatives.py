"""The derivative index (origin.store.derivatives), on an SQLite file and on PostgreSQL; its
request-path statements run straight to the driver (origin.store.derivative_index)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from origin.records import DerivativeRecord
from origin.store.database import Database
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.tables import transformed_images
from origin.store.users import Users
from tests.origin.store.records import NOW, image_for, make_user, new_id


async def test_derivative_of_deleted_image_is_not_recorded(derivatives: Derivatives) -> None:
    gone = DerivativeRecord(new_id(), "v", "u/i/derived/v.png", "image/png", 1, 1, 1, NOW)
    assert not await derivatives.add(gone, "hash")


async def test_a_derivative_of_pixels_replaced_meanwhile_is_not_recorded(
    users: Users, images: Images, derivatives: Derivatives
) -> None:
    """A render that ends after its image was replaced has nothing to record: its variant
    names the old pixels, which no request asks for again (it was recorded, and its row and
    object stayed until a sweep, or for ever without a storage budget)."""
    import dataclasses

    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    new = dataclasses.replace(image, content_hash="f" * 64, version=image.version + 1)
    await images.replace(image, new, 10**9)
    old = DerivativeRecord(image.id, "old", "u/i/derived/old.png", "image/png", 1, 1, 1, NOW)
    assert not await derivatives.add(old, image.content_hash)
    assert await derivatives.get(image.id, "old") is None
    assert await derivatives.add(dataclasses.replace(old, variant="new"), new.content_hash)


# ---- the derivative index (origin.store.derivative_index): one statement, straight to the driver


async def test_direct_rows_are_the_engines_rows(
    users: Users, images: Images, derivatives: Derivatives, database: Database
) -> None:
    """A row written straight to the driver reads back equal through SQLAlchemy and the
    other way round, times included (an aware time in another zone is stored as UTC)."""
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    at = datetime(2026, 11, 29, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    direct = DerivativeRecord(image.id, "direct", "u/i/derived/d.jpg", "image/jpeg", 9, 4, 3, at)
    assert await derivatives.add(direct, image.content_hash)
    read = (await derivatives.among(image.id, ["direct"]))["direct"]  # SQLAlchemy's read
    assert read == direct and read.created_at.tzinfo == UTC
    by_core = DerivativeRecord(image.id, "core", "u/i/derived/core.png", "image/png", 7, 2, 1, NOW)
    assert await database.insert_new(transformed_images, vars(by_core))  # SQLAlchemy's write
    assert await derivatives.get(image.id, "core") == by_core


async def test_direct_sees_what_transactions_commit(
    users: Users, images: Images, derivatives: Derivatives, database: Database
) -> None:
    """The direct path has its own connection(s): a delete committed through the engine shows
    at once, and a row it wrote is gone with its image (the foreign key cascades)."""
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    record = DerivativeRecord(image.id, "v", "u/i/derived/v.gif", "image/gif", 5, 2, 2, NOW)
    assert await derivatives.add(record, image.content_hash)
    assert await images.delete(image.id, user_id) == (image, [record.storage_key])
    assert await derivatives.get(image.id, "v") is None
    assert not await derivatives.add(
        record, image.content_hash
    )  # its image is gone: refused, nothing left
    async with database.read() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(transformed_images))
    assert count == 0


async def test_direct_records_a_derivative_once_under_concurrency(
    users: Users, images: Images, derivatives: Derivatives
) -> None:
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    record = DerivativeRecord(image.id, "same", "u/i/derived/s.jpg", "image/jpeg", 5, 2, 2, NOW)
    outcomes = await asyncio.gather(
        *(derivatives.add(record, image.content_hash) for _ in range(12))
    )
    assert outcomes.count(True) == 1
    assert await derivatives.get(image.id, "same") == record


async def test_rows_removed_for_a_missing_object_mark_their_eager_entries_evicted(
    users: Users, images: Images, derivatives: Derivatives, database: Database
) -> None:
    """``imgorigin gc`` removes a derivative row whose object is gone; an eager entry that
    said ``done`` for it now says ``evicted``, as after the sweep (it used to stay ``done``,
    its URL a render, not the store hit it promised)."""
    from origin.settings_groups import Background
    from origin.store import eager

    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    plan = eager.EagerPlan("w_33", "webp", f"/i/{image.id}/w_33/eager.webp", "v" * 64)
    async with database.write() as conn:
        (eager_id,) = await eager.add(conn, Background(), image.id, user_id, [plan])
    await eager.set_state(database, eager_id, eager.DONE)
    record = DerivativeRecord(image.id, "v" * 64, "u/i/derived/v.webp", "image/webp", 5, 2, 2, NOW)
    assert await derivatives.add(record, image.content_hash)
    assert await derivatives.remove_missing(set(), datetime.now(UTC)) == 1
    (entry,) = (await eager.of_images(database, [image.id]))[image.id]
    assert entry.state == eager.EVICTED


async def test_a_row_added_while_a_replace_commits_waits_for_it(
    users: Users, images: Images, derivatives: Derivatives, database: Database
) -> None:
    """A render of the old pixels that records its row while a replace has moved the image
    but not committed: it waits for the replace and then records nothing (a hunt on
    PostgreSQL: under READ COMMITTED the row went in, after the replace's delete had run,
    and old pixels stayed stored and counted)."""
    import dataclasses

    from origin.store.tables import images as image_rows

    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    late = DerivativeRecord(image.id, "late", "u/i/derived/late.png", "image/png", 1, 1, 1, NOW)
    async with database.write() as conn:  # the replace, between its update and its commit
        await conn.execute(
            image_rows.update()
            .where(image_rows.c.id == image.id)
            .values(content_hash="f" * 64, version=image.version + 1)
        )
        adding = asyncio.ensure_future(derivatives.add(late, image.content_hash))
        await asyncio.sleep(0.3)
        assert not adding.done()  # it waits for the replace
    assert not await adding
    assert await derivatives.get(image.id, "late") is None
    fresh = dataclasses.replace(late, variant="fresh")
    assert await derivatives.add(fresh, "f" * 64)
