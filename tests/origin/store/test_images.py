"""Images with their owner's usage (origin.store.images), on an SQLite file and on
PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from origin.records import DerivativeRecord, QuotaWouldBeExceeded, ReplacedMeanwhile
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.users import Users
from tests.origin.store.records import NOW, image_for, make_user, new_id


async def test_image_row_and_usage_in_one_transaction(users: Users, images: Images) -> None:
    user_id = await make_user(users)
    image = image_for(user_id, size=600)
    await images.add(image, quota_bytes=1000)
    user = await users.by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (600, 1)
    assert await images.get(image.id) == image
    assert (await images.get(image.id)).metadata == {"Make": "Test"}  # type: ignore[union-attr]
    assert await images.get(image.id, user_id=new_id()) is None
    with pytest.raises(QuotaWouldBeExceeded):
        await images.add(image_for(user_id, size=401), quota_bytes=1000)
    user = await users.by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (600, 1)
    _, total = await images.page(user_id, offset=0, limit=10)
    assert total == 1


async def test_concurrent_adds_never_exceed_quota(users: Users, images: Images) -> None:
    user_id = await make_user(users)
    results = await asyncio.gather(
        *(images.add(image_for(user_id, size=300), quota_bytes=1000) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 3
    assert all(r is None or isinstance(r, QuotaWouldBeExceeded) for r in results)
    user = await users.by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (900, 3)


async def test_listing_newest_first_and_paged(users: Users, images: Images) -> None:
    user_id = await make_user(users)
    other = await make_user(users, "other@example.com")
    added = []
    for i in range(5):  # three in the same second keep their upload order
        at = NOW + timedelta(seconds=min(i, 2))
        image = image_for(user_id, at=at)
        await images.add(image, quota_bytes=10**9)
        added.append(image.id)
    await images.add(image_for(other), quota_bytes=10**9)
    page1, total = await images.page(user_id, offset=0, limit=2)
    page2, _ = await images.page(user_id, offset=2, limit=2)
    page3, _ = await images.page(user_id, offset=4, limit=2)
    assert total == 5
    assert [i.id for i in page1 + page2 + page3] == list(reversed(added))


async def test_delete_removes_rows_and_usage(
    users: Users, images: Images, derivatives: Derivatives
) -> None:
    user_id = await make_user(users)
    image = image_for(user_id, size=250)
    await images.add(image, quota_bytes=10**9)
    derivative = DerivativeRecord(
        image.id, "v1", f"{user_id}/{image.id}/derived/v1.webp", "image/webp", 10, 3, 2, NOW
    )
    assert await derivatives.add(derivative, image.content_hash)
    assert not await derivatives.add(derivative, image.content_hash)  # recorded once
    assert await derivatives.get(image.id, "v1") == derivative
    assert await images.referenced_keys() == {image.storage_key, derivative.storage_key}
    assert await images.delete(image.id, new_id()) is None  # not the owner
    removed = await images.delete(image.id, user_id)
    assert removed == (image, [derivative.storage_key])
    assert await images.get(image.id) is None
    assert await derivatives.get(image.id, "v1") is None
    assert await images.delete(image.id, user_id) is None
    user = await users.by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (0, 0)
    assert await images.referenced_keys() == set()


async def test_concurrent_deletes_remove_the_image_and_its_usage_once(
    users: Users, images: Images
) -> None:
    """Five deletes of one image at once: one removes it, the others find nothing (on
    PostgreSQL each used to subtract the usage again: a negative count, quota to spare)."""
    user_id = await make_user(users)
    image = image_for(user_id, size=250)
    await images.add(image, quota_bytes=10**9)
    events: list[str] = []

    async def also(conn: object, deleted: object) -> None:
        events.append("deleted")

    results = await asyncio.gather(*(images.delete(image.id, user_id, also) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert events == ["deleted"]  # its events and purge queued once
    user = await users.by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (0, 0)


async def test_a_delete_racing_a_replace_subtracts_what_it_removes(
    users: Users, images: Images
) -> None:
    """A replace that tries to commit while a delete is between reading the row and removing
    it: the delete wins, the replace finds the row gone, and the usage ends at zero (the
    delete used to subtract the size it had read, leaving the replace's growth charged)."""
    user_id = await make_user(users)
    old = image_for(user_id, size=100)
    await images.add(old, quota_bytes=10**9)
    new = dataclasses.replace(old, size_bytes=900, version=old.version + 1)
    replacing: list[asyncio.Task[list[str]]] = []

    async def also(conn: object, deleted: object) -> None:
        replacing.append(asyncio.create_task(images.replace(old, new, quota_bytes=10**9)))
        await asyncio.wait(replacing, timeout=0.5)  # it may not get past the delete's lock

    assert await images.delete(old.id, user_id, also) is not None
    with pytest.raises(ReplacedMeanwhile):
        await replacing[0]
    user = await users.by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (0, 0)
