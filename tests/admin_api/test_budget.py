"""The work budget and the render deadline on the admin API: MAX_FRAMES at upload (counted
by the block scan, before libvips), ``/transform`` and srcset under the same budget, and
``/transform`` under ``RENDER_TIMEOUT_SECONDS``."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pyvips

from origin.settings import Settings
from tests.admin_api.conftest import Api, make_image, start_api

COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 220)]


def animation(frames: int, side: int = 16) -> bytes:
    strip = pyvips.Image.arrayjoin(
        [
            (pyvips.Image.black(side, side, bands=3) + list(COLOURS[i % 3])).cast("uchar")
            for i in range(frames)
        ],
        across=1,
    ).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    return bytes(strip.gifsave_buffer())


def one_pixel_frames(count: int) -> bytes:
    one = bytes(pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb").gifsave_buffer())
    start = one.index(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00")
    return one[:start] + one[start:-1] * count + b"\x3b"


def assert_error(answer: httpx.Response, status: int, code: str, *words: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]


async def test_an_upload_over_max_frames_is_422(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    async for api in start_api(make_settings(MAX_FRAMES="10"), password_hash):
        _, headers = await api.user()
        answer = await api.upload(headers, animation(12), "anim.gif")
        assert_error(answer, 422, "invalid_image", "12 frames", "MAX_FRAMES 10")
        kept = await api.upload(headers, animation(10), "anim.gif")
        assert kept.status_code == 201, kept.text
        assert kept.json()["format"] == "gif"


async def test_a_10_mb_gif_of_690000_frames_is_refused_quickly(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    data = one_pixel_frames(690_000)
    async for api in start_api(make_settings(), password_hash):
        _, headers = await api.user()
        assert len(data) <= api.services.settings.max_upload_size
        began = time.perf_counter()
        answer = await api.upload(headers, data, "many.gif")
        took = time.perf_counter() - began
        print(
            f"\n690,000 one-pixel frames ({len(data):,} bytes): {answer.status_code} in {took:.2f} s"
        )
        assert_error(answer, 422, "invalid_image", "690000 frames", "MAX_FRAMES 1000")
        listed = await api.http.get("/api/images", headers=headers)
        assert listed.json()["total"] == 0


async def upload_photo(api: Api, width: int, height: int) -> tuple[str, dict[str, str]]:
    _, headers = await api.user()
    answer = await api.upload(headers, make_image("png", width, height), "photo.png")
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"]), headers


async def test_transform_and_srcset_keep_to_the_budget(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    async for api in start_api(make_settings(), password_hash):
        image_id, headers = await upload_photo(api, 400, 300)
        over = await api.http.get(
            f"/api/images/{image_id}/transform?resize=6000x6000!", headers=headers
        )
        assert_error(over, 400, "limit_exceeded", "MAX_OUTPUT_PIXELS", "6000x6000")
        blurred = await api.http.get(
            f"/api/images/{image_id}/transform?resize=4000x3000!&blur=2000", headers=headers
        )
        assert_error(blurred, 400, "limit_exceeded", "effect budget")
        within = await api.http.get(
            f"/api/images/{image_id}/transform?resize=4000x3000!&format=jpg", headers=headers
        )
        assert within.status_code == 200
        img = pyvips.Image.new_from_buffer(within.content, "")
        assert (img.width, img.height) == (4000, 3000)
        srcset = await api.http.get(
            f"/api/images/{image_id}/srcset", headers=headers, params={"widths": "400,7000"}
        )
        assert_error(srcset, 400, "limit_exceeded", "MAX_OUTPUT_PIXELS", "7000x5250")


async def test_transform_past_the_deadline_is_503(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    settings = make_settings(RENDER_TIMEOUT_SECONDS="0.3", CONCURRENCY="1")
    async for api in start_api(settings, password_hash):
        image_id, headers = await upload_photo(api, 2000, 1500)
        slow = await api.http.get(
            f"/api/images/{image_id}/transform?resize=2400x&blur=2000", headers=headers
        )
        assert_error(slow, 503, "render_timeout", "RENDER_TIMEOUT_SECONDS (0.3 s)")
        assert api.services.pool.busy == 0
        quick = await api.http.get(f"/api/images/{image_id}/transform?resize=200x", headers=headers)
        assert quick.status_code == 200
        img = pyvips.Image.new_from_buffer(quick.content, "")
        assert (img.width, img.height) == (200, 150)
        assert [round(v) for v in img(10, 10)[:3]] == [230, 30, 30]
