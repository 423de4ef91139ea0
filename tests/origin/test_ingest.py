"""Upload ingestion (origin.ingest) without HTTP, on every (database × storage) pair: what is
stored (original, working copies, analysis, hash, usage), what is refused before any work,
and that a failure at any step leaves no row and no object."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pyvips

from origin.analysis import analyse
from origin.errors import BadRequest, QuotaExceeded, Unavailable
from origin.ingest import image_record, ingest_upload, inspect_upload, store_image
from origin.records import UserRecord, new_id
from origin.services import Services
from origin.settings import Settings
from tests.conftest import migrated_services
from tests.origin.conftest import encode, quadrant_image
from tests.origin.test_working_copies import jpeg, mosaic


@pytest.fixture
def ingest_settings(
    database_url: str, storage_env: dict[str, str], make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        return make_settings(DATABASE_URL=database_url, **storage_env, **env)

    return make


@pytest.fixture
async def services(ingest_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    async with migrated_services(ingest_settings()) as services:
        yield services


@pytest.fixture
async def local_services(
    database_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[Services]:
    """Local storage only: for the test that blocks one object's path on disk."""
    async with migrated_services(make_settings(DATABASE_URL=database_url)) as services:
        yield services


async def new_user(services: Services) -> UserRecord:
    return await services.users.create(
        new_id(), f"{new_id()[:8]}@example.com", "!", datetime.now(UTC)
    )


async def object_keys(services: Services) -> list[str]:
    return sorted([info.key async for info in services.storage.objects()])


async def usage(services: Services, user: UserRecord) -> tuple[int, int]:
    stored = await services.users.by_id(user.id)
    assert stored is not None
    return stored.image_count, stored.storage_used_bytes


async def test_ingest_stores_the_original_its_working_copies_and_the_row(
    services: Services,
) -> None:
    user = await new_user(services)
    data = jpeg(mosaic())  # 3200×2400: levels 1600×1200 and 800×600
    image = await ingest_upload(services, user, "../holiday/My\x00 Cat.jpg", data)

    stored = await services.images.get(image.id)  # the copies read back smallest first
    assert stored is not None
    assert stored == dataclasses.replace(image, working_copies=image.working_copies[::-1])
    prefix = f"{user.id}/{image.id}"
    assert (image.original_filename, image.storage_key) == ("My Cat.jpg", f"{prefix}/original.jpg")
    assert (image.format, image.mime_type, image.width, image.height) == (
        "jpeg",
        "image/jpeg",
        3200,
        2400,
    )
    assert (image.size_bytes, image.content_hash) == (len(data), hashlib.sha256(data).hexdigest())
    assert [(c.width, c.height, c.storage_key) for c in stored.working_copies] == [
        (400, 300, f"{prefix}/work/400x300.jpg"),
        (800, 600, f"{prefix}/work/800x600.jpg"),
        (1600, 1200, f"{prefix}/work/1600x1200.jpg"),
    ]
    assert await object_keys(services) == sorted(
        [
            f"{prefix}/original.jpg",
            f"{prefix}/work/400x300.jpg",
            f"{prefix}/work/800x600.jpg",
            f"{prefix}/work/1600x1200.jpg",
        ]
    )
    assert await services.storage.get(image.storage_key) == data
    # the analysis is made from the smallest working copy, as stored
    smallest = await services.storage.get(f"{prefix}/work/400x300.jpg")
    assert pyvips.Image.new_from_buffer(smallest, "").width == 400
    assert image.analysis is not None and image.analysis == analyse(smallest)
    assert await usage(services, user) == (1, len(data))  # the original only


async def test_a_small_image_is_analysed_from_the_original(services: Services) -> None:
    user = await new_user(services)
    data = encode(quadrant_image(64, 48), "png")
    image = await ingest_upload(services, user, "quadrants.png", data)
    assert image.working_copies == ()
    assert image.analysis is not None and image.analysis == analyse(data)
    assert await object_keys(services) == [image.storage_key]


async def test_an_empty_file_and_one_over_the_quota_are_refused_before_any_work(
    ingest_settings: Callable[..., Settings],
) -> None:
    async with migrated_services(ingest_settings(USER_QUOTA_BYTES="1000")) as services:
        user = await new_user(services)
        with pytest.raises(BadRequest, match="the file is empty"):
            await ingest_upload(services, user, "empty.png", b"")
        with pytest.raises(QuotaExceeded, match="would exceed your storage quota"):
            await ingest_upload(services, user, "big.bin", b"\0" * 1001)  # never probed
        assert await object_keys(services) == []
        assert await usage(services, user) == (0, 0)


async def test_the_quota_refused_by_the_row_removes_the_objects(
    ingest_settings: Callable[..., Settings],
) -> None:
    """Two uploads racing past the early check: the repository refuses the second row."""
    data = encode(quadrant_image(200, 150), "png")
    quota = str(len(data) * 3 // 2)  # one copy fits, two do not
    async with migrated_services(ingest_settings(USER_QUOTA_BYTES=quota)) as services:
        user = await new_user(services)
        first = await ingest_upload(services, user, "first.png", data)
        second = image_record(user.id, "second.png", inspect_upload(data, services.limits))
        with pytest.raises(QuotaExceeded, match="would exceed your storage quota"):
            await store_image(services, second, data)
        assert await services.images.get(second.id) is None
        assert await object_keys(services) == [first.storage_key]
        assert await usage(services, user) == (1, len(data))


async def test_a_failed_working_copy_write_removes_the_original(local_services: Services) -> None:
    services = local_services
    user = await new_user(services)
    data = encode(quadrant_image(2000, 1500), "jpeg")  # working copies 1000×750 and 500×375
    inspected = inspect_upload(data, services.limits)
    assert [(lv.width, lv.height) for lv in inspected.levels] == [(1000, 750), (500, 375)]
    image = image_record(user.id, "photo.jpg", inspected)
    # an empty folder where the working copy goes: its write fails after the original's
    Path(services.settings.storage_path, user.id, image.id, "work", "1000x750.jpg").mkdir(
        parents=True
    )
    with pytest.raises(Unavailable):
        await store_image(services, image, data, inspected.levels)
    assert await services.images.get(image.id) is None
    assert await object_keys(services) == []
    assert await usage(services, user) == (0, 0)
