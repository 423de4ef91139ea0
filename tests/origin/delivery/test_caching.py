"""Cache tiers (memory, store, render), single flight, and forgetting deleted images."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from origin.derivatives import PENDING_WRITES_MAX
from origin.settings import Settings
from origin.store import budget
from origin.store.objects import LocalStorage
from tests.origin.delivery.conftest import Service, decode, metric, signed, start_service


async def renders(service: Service) -> float:
    return await service.metric("imgorigin_cache_hits_total", tier="render")


async def test_second_request_comes_from_memory(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_120,e_grayscale/a.png")
    first = await service.get(url)
    second = await service.get(url)
    assert first.content == second.content
    assert await renders(service) == 1
    assert await service.metric("imgorigin_cache_hits_total", tier="memory") == 1
    assert await service.metric("imgorigin_cache_misses_total", tier="memory") == 1
    assert await service.metric("imgorigin_render_seconds_count", format="png") == 1
    assert await service.metric("imgorigin_bytes_out_total") == 2 * len(first.content)
    img = decode(second.content)
    assert img.width == 120
    r, g, b = (round(v) for v in img(5, 5)[:3])
    assert r == g == b  # grayscale


async def test_hot_path_makes_no_database_round_trip(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_10/a.png")
    await service.get(url)
    before = service.origin.lookup.queries
    for _ in range(20):
        assert (await service.get(url)).status_code == 200
    assert service.origin.lookup.queries == before


async def test_twenty_concurrent_identical_requests_render_once(service: Service) -> None:
    image_id, _ = await service.image(width=1200, height=900)
    url = signed(f"/i/{image_id}/w_300,h_200,c_fill,g_auto/a.webp")
    answers = await asyncio.gather(*(service.get(url) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert await renders(service) == 1
    assert (decode(answers[0].content).width, decode(answers[0].content).height) == (300, 200)


class TestWithoutMemoryTier:
    """CACHE_MAX_BYTES=0: every answer after the first comes from the store."""

    @pytest.fixture
    def service_env(self) -> dict[str, str]:
        return {"CACHE_MAX_BYTES": "0"}

    async def test_without_memory_tier_the_store_answers(
        self, service: Service, make_settings: Callable[..., Settings]
    ) -> None:
        image_id, owner = await service.image()
        url = signed(f"/i/{image_id}/w_90/a.jpg")
        first = await service.get(url)
        await service.origin.derivatives.drain()  # the derivative is written after the answer
        second = await service.get(url)
        assert first.content == second.content
        assert await renders(service) == 1
        assert await service.metric("imgorigin_cache_hits_total", tier="store") == 1
        assert await service.metric("imgorigin_cache_hits_total", tier="memory") == 0
        variant = second.headers["etag"].strip('"')
        record = await service.services.derivatives.get(image_id, variant)
        assert record is not None
        # Its own object for each write: {variant}-{8 hex}.jpg (see the test below).
        assert re.fullmatch(
            rf"{owner}/{image_id}/derived/{variant}-[0-9a-f]{{8}}\.jpg", record.storage_key
        )
        assert (record.width, record.height, record.size_bytes) == (90, 68, len(first.content))

    async def test_past_the_bound_on_pending_writes_a_derivative_is_answered_not_stored(
        self, service: Service
    ) -> None:
        """A store so slow that PENDING_WRITES_MAX writes wait: the next derivative is
        answered whole and counted, not queued (its bytes are not held); once writes drain,
        derivatives are stored again."""
        image_id, _ = await service.image()
        derivatives = service.origin.derivatives
        derivatives.after.limit = 0  # the bound already reached
        url = signed(f"/i/{image_id}/w_70/a.jpg")
        first = await service.get(url)
        assert first.status_code == 200 and decode(first.content).width == 70
        await derivatives.drain()
        variant = first.headers["etag"].strip('"')
        assert await service.services.derivatives.get(image_id, variant) is None
        assert await service.metric("imgorigin_derivative_writes_skipped_total") == 1
        derivatives.after.limit = PENDING_WRITES_MAX
        second = await service.get(url)
        await derivatives.drain()
        assert second.content == first.content and await renders(service) == 2
        assert await service.services.derivatives.get(image_id, variant) is not None
        assert await service.metric("imgorigin_derivative_writes_skipped_total") == 1

    async def test_a_derivative_that_cannot_be_written_leaves_no_row(
        self, service: Service
    ) -> None:
        """Local files: the render job writes the object, and ``persist`` tries once more
        through the event loop. When neither can (a file blocks the derived folder), the
        answer is still whole, no row is recorded, and the next miss renders again; once
        the folder can be made, the derivative is stored."""
        storage = service.services.storage
        if not isinstance(storage, LocalStorage):
            pytest.skip("a blocked folder is a local-files failure")
        image_id, owner = await service.image()
        blocker = storage.root / owner / image_id / "derived"
        blocker.write_bytes(b"not a folder")
        url = signed(f"/i/{image_id}/w_60/a.png")
        first = await service.get(url)
        await service.origin.derivatives.drain()
        assert first.status_code == 200 and decode(first.content).width == 60
        variant = first.headers["etag"].strip('"')
        assert await service.services.derivatives.get(image_id, variant) is None
        blocker.unlink()
        second = await service.get(url)
        await service.origin.derivatives.drain()
        assert second.content == first.content
        assert await renders(service) == 2
        record = await service.services.derivatives.get(image_id, variant)
        assert record is not None and record.size_bytes == len(first.content)
        assert (storage.root / record.storage_key).read_bytes() == first.content

    async def test_a_late_sweep_never_leaves_a_row_without_its_object(
        self, service: Service
    ) -> None:
        """The sweep removes evicted rows, then their objects one by one (slowly, on S3); a
        request in between renders the derivative again and writes it. Its object must not
        be the one the sweep then deletes (a hunt on S3: rows whose object was gone, their
        bytes still counted in the budget)."""
        image_id, owner = await service.image()
        url = signed(f"/i/{image_id}/w_64/a.png")
        first = await service.get(url)
        await service.origin.derivatives.drain()
        evicted = await budget.evict(service.services.db, owner, 0)  # the rows, in one go
        assert evicted.rows == 1
        again = await service.get(url)  # no row: rendered and written again
        await service.origin.derivatives.drain()
        for key in evicted.keys:  # the sweep's deletes, late
            await service.services.storage.delete(key)
        variant = again.headers["etag"].strip('"')
        record = await service.services.derivatives.get(image_id, variant)
        assert record is not None
        assert await service.services.storage.get(record.storage_key) == first.content

    @pytest.mark.parametrize("damage", ["zeroed", "missing"])
    async def test_a_damaged_stored_derivative_is_rendered_and_stored_again(
        self, service: Service, damage: str
    ) -> None:
        """Derivatives are written without fsync: after a power cut an object may be a file
        of the recorded size full of zeros, or gone. The next request renders it, and the one after is a store hit again (its row names the new object; before,
        the old row kept refusing the new one and every request rendered)."""
        image_id, _ = await service.image()
        url = signed(f"/i/{image_id}/w_66/a.png")
        first = await service.get(url)
        await service.origin.derivatives.drain()
        variant = first.headers["etag"].strip('"')
        record = await service.services.derivatives.get(image_id, variant)
        assert record is not None
        storage = service.services.storage
        if damage == "zeroed":
            await storage.put(record.storage_key, bytes(record.size_bytes))
        else:
            await storage.delete(record.storage_key)
        again = await service.get(url)  # not served from the store: rendered
        assert again.content == first.content and await renders(service) == 2
        assert decode(again.content).width == 66
        await service.origin.derivatives.drain()
        third = await service.get(url)
        assert third.content == first.content and await renders(service) == 2
        assert await service.metric("imgorigin_cache_hits_total", tier="store") == 1

    async def test_a_second_process_uses_the_store_and_distrusts_objects_without_rows(
        self, service: Service, make_settings: Callable[..., Settings]
    ) -> None:
        image_id, owner = await service.image()
        url = signed(f"/i/{image_id}/w_70/a.png")
        first = await service.get(url)
        await service.origin.derivatives.drain()
        async for other in start_service(make_settings(CACHE_MAX_BYTES="0")):
            again = await other.get(url)
            assert again.content == first.content
            assert await renders(other) == 0
            assert await other.metric("imgorigin_cache_hits_total", tier="store") == 1
            # an object whose row is missing is not trusted: rendered again
            stray_url = signed(f"/i/{image_id}/w_71/a.png")
            etag = (await service.get(stray_url)).headers["etag"].strip('"')
            await service.origin.derivatives.drain()
            stray_key = f"{owner}/{image_id}/derived/{etag}.png"
            await other.services.storage.put(stray_key, b"not an image")  # same key...
            async with other.services.db.write() as conn:  # ...but the row is gone
                import sqlalchemy as sa

                from origin.store.tables import transformed_images

                await conn.execute(
                    sa.delete(transformed_images).where(transformed_images.c.variant == etag)
                )
            answer = await other.get(stray_url)
            assert decode(answer.content).width == 71
            assert await renders(other) == 1


async def test_deleting_through_the_api_forgets_at_once(service: Service) -> None:
    image_id, owner = await service.image()
    url = signed(f"/i/{image_id}/w_50/a.png")
    assert (await service.get(url)).status_code == 200
    deleted = await service.http.delete(f"/api/images/{image_id}", headers=service.bearer(owner))
    assert deleted.status_code == 204
    answer = await service.get(url)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_memory_tier_is_bounded_by_bytes(
    make_settings: Callable[..., Settings],
) -> None:
    async for small in start_service(make_settings(CACHE_MAX_BYTES="20000")):
        image_id, _ = await small.image()
        for width in range(100, 400, 20):
            assert (await small.get(signed(f"/i/{image_id}/w_{width}/a.png"))).status_code == 200
        assert 0 < small.origin.derivatives.memory.bytes <= 20000
        assert await metric(small.http, "imgorigin_cache_hits_total", tier="render") == 15


async def test_concurrent_misses_for_one_id_read_the_database_once(service: Service) -> None:
    """At TTL expiry a burst for one image costs one query, not one per request."""
    image_id, owner = await service.image()
    made = await service.http.post("/api/keys", headers=service.bearer(owner))
    secret = made.json()["secret"]
    before = service.origin.lookup.queries
    urls = [signed(f"/i/{image_id}/w_{20 + i}/a.png", secret) for i in range(10)]
    answers = await asyncio.gather(*(service.get(u) for u in urls))
    assert [decode(a.content).width for a in answers] == [20 + i for i in range(10)]
    assert service.origin.lookup.queries - before == 2  # the image, and its owner's keys
