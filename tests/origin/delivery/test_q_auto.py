"""`q_auto` through HTTP on a real photograph: the first render searches and remembers the
quality in the metadata store; `.json`, other processes and restarts use it without searching;
the served image decodes at the right size and keeps the SSIM target against the unencoded
render; deleting the image drops its choices."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
import pyvips
import skimage
import sqlalchemy as sa

from origin import quality
from origin.records import ImageRecord
from origin.services import Services
from origin.settings import Settings
from origin.store.tables import auto_qualities, transformed_images
from tests.conftest import migrated_services, serving
from tests.origin.delivery.conftest import Service, decode, metric, signed, start_service

NAME = "astronaut.png"  # 512 x 512


def photo_bytes(name: str = NAME) -> bytes:
    with open(os.path.join(os.path.dirname(skimage.__file__), "data", name), "rb") as file:
        return file.read()


async def add_photo(services: Services, user_id: str | None = None) -> tuple[str, str]:
    """The photograph stored as an upload would store it: (image id, owner id)."""
    if user_id is None:
        user_id = secrets.token_hex(16)
        await services.users.create(user_id, f"{user_id[:8]}@x.io", "x", datetime.now(UTC))
    data = photo_bytes()
    header = pyvips.Image.new_from_buffer(data, "")
    image_id = secrets.token_hex(16)
    key = f"{user_id}/{image_id}/original.png"
    await services.storage.put(key, data, content_type="image/png")
    record = ImageRecord(
        id=image_id,
        user_id=user_id,
        original_filename=NAME,
        mime_type="image/png",
        format="png",
        size_bytes=len(data),
        width=header.width,
        height=header.height,
        storage_key=key,
        content_hash=hashlib.sha256(data).hexdigest(),
        created_at=datetime.now(UTC),
    )
    await services.images.add(record, services.settings.user_quota_bytes)
    return image_id, user_id


async def choices(services: Services, image_id: str) -> list[sa.Row[tuple[str, int, float]]]:
    async with services.db.read() as conn:
        rows = await conn.execute(
            sa.select(auto_qualities.c.format, auto_qualities.c.quality, auto_qualities.c.ssim)
            .where(auto_qualities.c.image_id == image_id)
            .order_by(auto_qualities.c.format)
        )
        return list(rows)


def ssim(served: bytes, reference: bytes) -> float:
    return quality.ssim(quality.luma(decode(reference)), quality.luma(decode(served)))


async def searches(service: Service, fmt: str) -> float:
    return await service.metric("imgorigin_auto_quality_searches_total", format=fmt)


async def test_the_first_render_searches_and_the_choice_is_remembered(service: Service) -> None:
    image_id, owner = await add_photo(service.services)
    target = service.services.settings.auto_quality_ssim
    url = signed(f"/i/{image_id}/w_400,q_auto/a.jpg")
    first = await service.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    img = decode(first.content)
    assert (img.width, img.height) == (400, 400)
    assert await searches(service, "jpeg") == 1
    reference = (await service.get(signed(f"/i/{image_id}/w_400/a.png"))).content  # lossless
    assert ssim(first.content, reference) >= target
    default = (await service.get(signed(f"/i/{image_id}/w_400/a.jpg"))).content
    assert len(first.content) < len(default)  # this photo needs less than q80

    await service.origin.derivatives.drain()  # the choice is stored after the answer
    [(fmt, chosen, searched_ssim)] = await choices(service.services, image_id)
    assert fmt == "jpeg" and chosen in quality.RANGES["jpeg"].grid and chosen < 80
    assert searched_ssim == pytest.approx(ssim(first.content, reference), abs=1e-6)
    explicit = await service.get(signed(f"/i/{image_id}/w_400,q_{chosen}/a.jpg"))
    assert explicit.content == first.content  # what q_auto serves is that quality's bytes
    assert explicit.headers["etag"] != first.headers["etag"]  # but its own derivative

    again = await service.get(url)
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    facts = (await service.get(signed(f"/i/{image_id}/w_400,q_auto,f_jpg/a.json"))).json()
    assert (facts["width"], facts["height"], facts["format"]) == (400, 400, "jpeg")
    assert facts["bytes"] == len(first.content)  # .json uses the remembered choice
    assert await searches(service, "jpeg") == 1

    negotiated = await service.get(
        signed(f"/i/{image_id}/w_400,q_auto,f_auto/a.jpg"), headers={"Accept": "image/webp"}
    )
    assert negotiated.headers["content-type"] == "image/webp"
    assert await searches(service, "webp") == 1  # a format of its own: its own choice
    await service.origin.derivatives.drain()
    assert [row.format for row in await choices(service.services, image_id)] == ["jpeg", "webp"]
    explicit_webp = await service.get(signed(f"/i/{image_id}/w_400,q_auto,f_webp/a.webp"))
    assert explicit_webp.content == negotiated.content
    assert await searches(service, "webp") == 1  # f_auto and f_webp share the choice

    deleted = await service.http.delete(f"/api/images/{image_id}", headers=service.bearer(owner))
    assert deleted.status_code == 204
    assert await choices(service.services, image_id) == []


async def test_lossless_output_is_not_searched(service: Service) -> None:
    image_id, _ = await add_photo(service.services)
    auto = await service.get(signed(f"/i/{image_id}/w_200,q_auto/a.png"))
    plain = await service.get(signed(f"/i/{image_id}/w_200/a.png"))
    assert auto.content == plain.content
    await service.origin.derivatives.drain()
    assert await searches(service, "png") == 0
    assert await choices(service.services, image_id) == []


async def forget_derivatives(services: Services, image_id: str) -> None:
    async with services.db.write() as conn:
        await conn.execute(
            sa.delete(transformed_images).where(transformed_images.c.image_id == image_id)
        )


class TestAcrossProcesses:
    @pytest.fixture
    def service_env(self) -> dict[str, str]:
        return {"CACHE_MAX_BYTES": "0"}  # nothing kept in memory: every miss goes to the store

    async def test_another_origin_uses_the_stored_quality_without_searching(
        self, service: Service, make_settings: Callable[..., Settings]
    ) -> None:
        image_id, _ = await add_photo(service.services)
        url = signed(f"/i/{image_id}/w_300,h_300,c_fill,q_auto/a.avif")
        first = await service.get(url)
        await service.origin.derivatives.drain()
        assert await searches(service, "avif") == 1
        [(_, chosen, _)] = await choices(service.services, image_id)
        await forget_derivatives(service.services, image_id)  # so the next origin must render

        async for other in start_service(make_settings(CACHE_MAX_BYTES="0")):
            again = await other.get(url)
            assert again.content == first.content
            assert again.headers["etag"] == first.headers["etag"]
            assert await metric(other.http, "imgorigin_cache_hits_total", tier="render") == 1
            assert await searches(other, "avif") == 0
            img = decode(again.content)
            assert (img.width, img.height) == (300, 300)

            # The stored number is what it encodes with: set another, render again.
            await other.origin.derivatives.drain()
            other_quality = 30 if chosen != 30 else 35
            async with other.services.db.write() as conn:
                await conn.execute(
                    sa.update(auto_qualities)
                    .where(auto_qualities.c.image_id == image_id)
                    .values(quality=other_quality)
                )
            await forget_derivatives(other.services, image_id)
            changed = await other.get(url)
            fixed = await other.get(
                signed(f"/i/{image_id}/w_300,h_300,c_fill,q_{other_quality}/a.avif")
            )
            assert changed.content == fixed.content != first.content
            assert await searches(other, "avif") == 0


@pytest.mark.slow
async def test_a_restarted_server_remembers(base_env: dict[str, str]) -> None:
    """Live ``imgorigin serve``: the search runs in the first server; after a restart the
    `.json` of the same chain (a derivative not rendered yet) is rendered without one."""
    settings = Settings.from_environ(base_env)
    async with migrated_services(settings) as services:
        image_id, _ = await add_photo(services)
    image = signed(f"/i/{image_id}/w_360,q_auto/a.webp")
    facts = signed(f"/i/{image_id}/w_360,q_auto,f_webp/a.json")
    async with httpx.AsyncClient(timeout=30) as http:
        with serving(base_env) as base:
            first = await http.get(base + image)
            assert first.status_code == 200
            assert await metric_at(http, base, format="webp") == 1
            await wait_for_choice(settings, image_id)
        with serving(base_env) as base:
            answer = await http.get(base + facts)
            assert answer.status_code == 200
            assert answer.json()["bytes"] == len(first.content)
            assert await metric_at(http, base, format="webp") == 0
    img = decode(first.content)
    assert (img.width, img.height) == (360, 360)


async def metric_at(http: httpx.AsyncClient, base: str, **labels: str) -> float:
    text = (await http.get(base + "/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("imgorigin_auto_quality_searches_total{") and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def wait_for_choice(settings: Settings, image_id: str) -> None:
    """The first server stores the choice just after its answer."""
    async with migrated_services(settings) as services:
        began = time.monotonic()
        while not await choices(services, image_id):
            assert time.monotonic() - began < 10, "the choice was never stored"
            await asyncio.sleep(0.1)


async def test_a_choice_is_kept_even_when_derivative_writes_are_skipped(service: Service) -> None:
    """The bound on pending writes (PENDING_WRITES_MAX) drops derivatives, which hold their
    bytes, never a q_auto choice: searching again would cost several encodes."""
    image_id, _ = await add_photo(service.services)
    service.origin.derivatives.after.limit = 0
    answer = await service.get(signed(f"/i/{image_id}/w_300,q_auto/a.jpg"))
    assert answer.status_code == 200
    await service.origin.derivatives.drain()
    assert [row.format for row in await choices(service.services, image_id)] == ["jpeg"]
    assert await service.metric("imgorigin_derivative_writes_skipped_total") == 1
