"""The work one request may cause, through HTTP: the work budget answers 400
``limit_exceeded`` naming the limit before anything is rendered; a render past
``RENDER_TIMEOUT_SECONDS`` answers 503 ``render_timeout`` with its slot free and its thread
idle, and its URL is then refused at once; a client that goes away mid-render stops it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips

from origin.services import Services
from origin.settings import Settings
from tests.origin.delivery.conftest import (
    Service,
    add_image,
    decode,
    get_scope,
    pixel,
    signed,
    start_service,
    started_app,
)

COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 220), (240, 230, 20), (200, 40, 200)]
HEAVY = "w_2400/e_blur:2000"  # 2400x1800 x σ 100 = 432,000,000 of 625,000,000: allowed, ~1 s


def animation(frames: int, side: int = 8) -> bytes:
    strip = pyvips.Image.arrayjoin(
        [
            (pyvips.Image.black(side, side, bands=3) + list(COLOURS[i % len(COLOURS)])).cast(
                "uchar"
            )
            for i in range(frames)
        ],
        across=1,
    ).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    return bytes(strip.gifsave_buffer())


async def add_gif(services: Services, user_id: str, data: bytes, side: int) -> str:
    """A GIF stored as the upload would store it (without the upload's checks)."""
    image_id, _ = await add_image(services, user_id, "gif", side, side, data=data)
    return image_id


def assert_error(answer: httpx.Response, status: int, code: str, *words: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    message: str = body["error"]["message"]
    for word in words:
        assert word in message, message
    return message


async def renders(service: Service) -> float:
    """Render jobs run so far (each observes its time, whatever its outcome)."""
    return await service.metric("imgorigin_render_seconds_count")


async def timed_get(service: Service, url: str) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    answer = await service.get(url)
    return answer, time.perf_counter() - began


# ---- the work budget ---------------------------------------------------------------------


async def test_thirty_frames_at_1024_square_are_over_max_output_pixels(service: Service) -> None:
    data = animation(30)
    assert len(data) < 2000
    image_id = await add_gif(service.services, await service.user(), data, 8)
    answer, took = await timed_get(service, signed(f"/i/{image_id}/w_1024,h_1024,c_scale/a.gif"))
    assert_error(
        answer, 400, "limit_exceeded", "MAX_OUTPUT_PIXELS", "31457280", "30 frames of 1024x1024"
    )
    print(f"\n30-frame GIF at 1024² as .gif: 400 in {took * 1000:.0f} ms")
    still, took = await timed_get(service, signed(f"/i/{image_id}/w_1024,h_1024,c_scale/a.jpg"))
    assert still.status_code == 200, still.text
    img = decode(still.content)
    assert (img.width, img.height) == (1024, 1024)
    assert not img.get_typeof("n-pages") or img.get("n-pages") == 1
    assert all(abs(a - b) < 12 for a, b in zip(pixel(img, 512, 512), COLOURS[0], strict=True))
    smaller = await service.get(signed(f"/i/{image_id}/w_256,h_256,c_scale/a.gif"))
    assert smaller.status_code == 200
    frames = pyvips.Image.new_from_buffer(smaller.content, "", n=-1)
    assert frames.get("n-pages") == 30 and frames.width == 256
    assert all(
        abs(a - b) < 12 for a, b in zip(pixel(frames, 128, 256 * 2 + 128), COLOURS[2], strict=True)
    )


async def test_chained_blurs_over_the_effect_budget_are_refused_before_a_render(
    service: Service,
) -> None:
    image_id, _ = await service.image()
    chain = "w_2048,h_2048,c_scale/e_blur:2000/e_blur:2000"
    answer, took = await timed_get(service, signed(f"/i/{image_id}/{chain}/a.jpg"))
    assert_error(answer, 400, "limit_exceeded", "effect budget", "838860800", "MAX_OUTPUT_PIXELS")
    print(f"\ne_blur:2000 x 2 at 2048²: 400 in {took * 1000:.0f} ms")
    assert await renders(service) == 0  # refused in the request path, from the image's size


async def test_three_chained_strong_blurs_at_1024_square_render(service: Service) -> None:
    image_id, _ = await service.image()
    chain = "w_1024,h_1024,c_scale/e_blur:2000/e_blur:2000/e_blur:2000"
    answer, took = await timed_get(service, signed(f"/i/{image_id}/{chain}/a.png"))
    assert answer.status_code == 200, answer.text
    print(f"\ne_blur:2000 x 3 at 1024²: 200 in {took:.2f} s")
    img = decode(answer.content)
    assert (img.width, img.height) == (1024, 1024)
    # three σ-100 blurs: the centre is the four quadrants' average, the red-green edge a ramp
    centre = pixel(img, 512, 512)
    assert all(abs(c - m) < 10 for c, m in zip(centre, (132, 122, 75), strict=True)), centre
    ramp = [pixel(img, x, 256) for x in (256, 448, 512, 576)]
    assert [r for r, _, _ in ramp] == sorted((r for r, _, _ in ramp), reverse=True), ramp
    assert 100 < ramp[2][0] < 160 and 100 < ramp[2][1] < 140, ramp


async def test_a_whole_original_over_max_output_pixels(
    make_settings: Callable[..., Settings],
) -> None:
    async for service in start_service(make_settings(MAX_OUTPUT_PIXELS="100000")):
        image_id, _ = await service.image()  # 400 x 300 = 120,000 pixels
        answer = await service.get(signed(f"/i/{image_id}/a.webp"))
        assert_error(answer, 400, "limit_exceeded", "MAX_OUTPUT_PIXELS 100000", "400x300")
        half = await service.get(signed(f"/i/{image_id}/w_0.5/a.webp"))
        assert half.status_code == 200 and decode(half.content).width == 200


async def test_an_animation_over_max_frames_renders_only_as_a_still(
    make_settings: Callable[..., Settings],
) -> None:
    async for service in start_service(make_settings(MAX_FRAMES="10")):
        image_id = await add_gif(service.services, await service.user(), animation(12), 8)
        for ext in ("gif", "webp"):
            answer = await service.get(signed(f"/i/{image_id}/w_16/a.{ext}"))
            assert_error(answer, 400, "limit_exceeded", "12 frames", "MAX_FRAMES 10")
        still = await service.get(signed(f"/i/{image_id}/w_16/a.png"))
        assert still.status_code == 200
        img = decode(still.content)
        assert img.width == 16 and pixel(img, 8, 8) == list(COLOURS[0])


# ---- the render deadline -----------------------------------------------------------------


async def test_a_render_past_the_deadline_is_stopped_and_its_url_refused_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(RENDER_TIMEOUT_SECONDS="0.3", CONCURRENCY="1")
    async for service in start_service(settings):
        await deadline_case(service)


async def deadline_case(service: Service) -> None:
    image_id, _ = await service.image(width=2000, height=1500)
    url = signed(f"/i/{image_id}/{HEAVY}/a.png")
    answer, took = await timed_get(service, url)
    assert_error(answer, 503, "render_timeout", "RENDER_TIMEOUT_SECONDS (0.3 s)")
    assert answer.headers["retry-after"] == "600"
    print(f"\nrender past a 0.3 s deadline: 503 in {took:.2f} s")
    # the thread has returned: its slot is free, and the process goes idle
    pool = service.services.pool
    assert pool.busy == 0 and pool.waiting == 0
    cpu = time.process_time()
    await asyncio.sleep(0.5)
    idle = time.process_time() - cpu
    print(f"CPU used in the 0.5 s after the 503: {idle * 1000:.0f} ms")
    assert idle < 0.2
    assert await renders(service) == 1
    # the same URL again: refused at once, without a render
    again, took = await timed_get(service, url)
    message = assert_error(again, 503, "render_timeout", "refused for")
    assert 590 <= int(again.headers["retry-after"]) <= 600, message
    print(f"the same URL again: 503 in {took * 1000:.1f} ms")
    assert await renders(service) == 1
    # another URL of the same image renders at once
    other, took = await timed_get(service, signed(f"/i/{image_id}/w_120/a.png"))
    assert other.status_code == 200, other.text
    print(f"another URL right after: 200 in {took * 1000:.0f} ms")
    img = decode(other.content)
    assert (img.width, img.height) == (120, 90)
    assert pixel(img, 10, 10) == [230, 30, 30] and pixel(img, 110, 80) == [240, 230, 20]
    assert await renders(service) == 2


@pytest.fixture
async def raw_app(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Any, Any]]:
    async for started in started_app(make_settings(CONCURRENCY="1")):  # deadline: 10 s
        yield started


async def test_a_client_gone_mid_render_stops_it(raw_app: tuple[Any, Any]) -> None:
    app, state = raw_app
    services, origin = state["services"], state["origin"]
    user_id = secrets.token_hex(16)
    await services.users.create(user_id, f"{user_id[:8]}@example.com", "x", datetime.now(UTC))
    image_id, _ = await add_image(services, user_id, "png", 2000, 1500)
    scope = get_scope(signed(f"/i/{image_id}/{HEAVY}/a.png"), state)
    inbox: list[dict[str, Any]] = [{"type": "http.request", "body": b"", "more_body": False}]
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    request = asyncio.create_task(app(scope, receive, send))
    while services.pool.busy == 0:  # the render has its slot
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    gone.set()
    await asyncio.wait_for(request, 5)
    assert sent[0]["status"] == 499

    def jobs_ended() -> float:
        count = origin.metrics.registry.get_sample_value(
            "imgorigin_render_seconds_count", {"format": "png"}
        )
        return count or 0.0

    for _ in range(500):  # the job observes its time when it ends, whatever the outcome
        if jobs_ended():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # what a job that rendered to the end does next: write the file
    assert jobs_ended() == 1 and services.pool.busy == 0
    derived = Path(services.settings.storage_path) / user_id / image_id / "derived"
    assert not derived.exists() or list(derived.iterdir()) == []
    assert origin.metrics.hit["render"].value == 0
