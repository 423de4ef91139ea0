"""The work budget of one render (MAX_OUTPUT_PIXELS over every frame, MAX_FRAMES, the effect
budget), computed before any pixel is decoded, and the render deadline: libvips' kill flag,
the GIF writer's checks between frames, the pool giving a slot back only when its thread has
returned. Real libvips throughout."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import zlib
from functools import cache

import numpy as np
import pytest
import pyvips

from origin import gif, render
from origin.deadline import WATCHDOG, Deadline
from origin.errors import InvalidImage, LimitExceeded, RenderTimeout
from origin.probe import probe_upload
from origin.render_pool import RenderPool
from origin.settings import Settings, SettingsError
from origin.transforms import budget
from origin.transforms.declarations import StageContext
from origin.transforms.limits import DEFAULT_LIMITS, Limits
from origin.transforms.parse import parse_chain, parse_path
from origin.transforms.plan import Plan
from tests.origin.conftest import FRAME_COLOURS, IMAGE_ID, close, colour_at, decode, solid


@cache
def tiny_animation(frames: int = 30, side: int = 8) -> bytes:
    """`frames` side x side frames, each a solid colour (the issue's 1.5 KB GIF)."""
    strip = pyvips.Image.arrayjoin(
        [solid(side, side, FRAME_COLOURS[i % len(FRAME_COLOURS)]) for i in range(frames)],
        across=1,
    ).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    return bytes(strip.gifsave_buffer())


@cache
def noise_jpeg(width: int = 2000, height: int = 1500) -> bytes:
    img = pyvips.Image.gaussnoise(width, height, mean=128, sigma=60, seed=1).cast("uchar")
    return bytes(img.bandjoin([img, img]).copy(interpretation="srgb").jpegsave_buffer(Q=90))


def plan(chain: str, ext: str = "png") -> Plan:
    return parse_path(f"/i/{IMAGE_ID}/{chain}/x.{ext}")


# ---- the formula -------------------------------------------------------------------------


def test_the_work_of_a_chain_from_its_geometry() -> None:
    stages = parse_chain("w_1000,h_500,c_scale,e_blur:200/r_90,e_sharpen,e_pixelate/w_100")
    work = budget.plan_work(4000, 3000, stages, DEFAULT_LIMITS, frames=3)
    assert work.size == (100, 200)
    assert work.largest == (1000, 500) and work.pixels == 3 * 500_000
    # stage 1: blur σ 10 at 1000x500; stage 2 (turned): sharpen 50 + pixelate 5 at 500x1000
    assert work.effects == 3 * (10 * 500_000 + 55 * 500_000)
    assert budget.plan_work(400, 300, (), DEFAULT_LIMITS).largest == (400, 300)


def test_every_frame_counts_against_max_output_pixels() -> None:
    stages = parse_chain("w_1024,h_1024,c_scale")
    assert budget.output_size(8, 8, stages, DEFAULT_LIMITS) == (1024, 1024)
    assert budget.output_size(8, 8, stages, DEFAULT_LIMITS, frames=23) == (1024, 1024)
    with pytest.raises(LimitExceeded) as refused:
        budget.output_size(8, 8, stages, DEFAULT_LIMITS, frames=30)
    assert refused.value.message == (
        "the chain makes 31457280 pixels (30 frames of 1024x1024), above MAX_OUTPUT_PIXELS 25000000"
    )


def test_an_intermediate_stage_counts_too() -> None:
    stages = parse_chain("w_6000,h_6000,c_scale/w_100")
    with pytest.raises(LimitExceeded, match="6000x6000"):
        budget.output_size(100, 100, stages, DEFAULT_LIMITS)
    budget.output_size(100, 100, stages, Limits(max_output_pixels=36_000_000))


def test_the_effect_budget_sums_the_chain() -> None:
    chain = "w_2048,h_2048,c_scale/e_blur:2000/e_blur:2000"
    with pytest.raises(LimitExceeded) as refused:
        budget.output_size(400, 300, parse_chain(chain), DEFAULT_LIMITS)
    assert "cost 838860800" in refused.value.message
    assert "effect budget 625000000 (25 × MAX_OUTPUT_PIXELS)" in refused.value.message
    # one of them passes; so does the strongest blur on 2600x1950 (a test elsewhere signs it)
    budget.output_size(400, 300, parse_chain("w_2048,h_2048,c_scale/e_blur:2000"), DEFAULT_LIMITS)
    budget.output_size(2000, 1500, parse_chain("w_2609/e_blur:2000"), DEFAULT_LIMITS)


def test_effects_without_a_neighbourhood_cost_nothing() -> None:
    chain = "w_5000,h_5000,c_scale,e_grayscale,e_sepia,e_saturation:50,e_contrast:9"
    assert budget.plan_work(10, 10, parse_chain(chain), DEFAULT_LIMITS).effects == 0


# ---- in the renderer, from the header ----------------------------------------------------


def test_an_animation_over_max_output_pixels_is_refused_before_decoding() -> None:
    source = tiny_animation()
    assert len(source) < 2000
    with pytest.raises(LimitExceeded, match="MAX_OUTPUT_PIXELS"):
        render.render(source, plan("w_1024,h_1024,c_scale", "gif"))
    with pytest.raises(LimitExceeded, match="MAX_OUTPUT_PIXELS"):
        render.render(source, plan("w_1024,h_1024,c_scale", "webp"))
    still = render.render(source, plan("w_1024,h_1024,c_scale", "jpg"))  # its first frame
    img = decode(still.body)
    assert (img.width, img.height) == (1024, 1024)
    assert not img.get_typeof("n-pages") or img.get("n-pages") == 1
    assert close(colour_at(img, 512, 512), FRAME_COLOURS[0], 12)


def test_an_animation_within_the_budget_keeps_every_frame() -> None:
    made = render.render(tiny_animation(), plan("w_512,h_512,c_scale", "gif"))
    frames = decode(made.body, n=-1)
    assert frames.get("n-pages") == 30 and frames.width == 512
    assert close(colour_at(frames, 256, 3 * 512 + 256), FRAME_COLOURS[3], 12)


def test_max_frames_bounds_an_animated_output_only() -> None:
    limits = Limits(max_frames=29)
    with pytest.raises(LimitExceeded) as refused:
        render.render(tiny_animation(), plan("w_16", "gif"), limits=limits)
    assert refused.value.message == (
        "the source has 30 frames, above MAX_FRAMES 29 for an animated output"
    )
    made = render.render(tiny_animation(), plan("w_16", "png"), limits=limits)
    assert (made.width, made.height) == (16, 16)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height and whose pixels are not there."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("chain", "limit"),
    [("", "MAX_OUTPUT_PIXELS"), ("w_3000,h_3000,c_scale/e_blur:2000", "effect budget")],
)
def test_the_budget_is_checked_on_the_header_before_decoding(chain: str, limit: str) -> None:
    """36 megapixels declared, none there: the budget answers, not the decoder."""
    source = header_only_png(6000, 6000)
    assert len(source) < 200
    path = f"/i/{IMAGE_ID}/{chain}/x.png" if chain else f"/i/{IMAGE_ID}/x.png"
    with pytest.raises(LimitExceeded, match=limit):
        render.render(source, parse_path(path))


def test_held_effects_give_the_same_pixels() -> None:
    """A blur or sharpen more of the chain reads is computed into memory: same pixels."""
    img = decode(noise_jpeg(300, 200))
    (stage,) = parse_chain("e_blur:300,e_sharpen:200,e_pixelate:3")
    lazy = render.run_stage((img,), stage, StageContext(DEFAULT_LIMITS), later_stages=False)
    held = render.run_stage((img,), stage, StageContext(DEFAULT_LIMITS), later_stages=True)
    assert np.array_equal(lazy[0].numpy(), held[0].numpy())
    chained = render.render(noise_jpeg(300, 200), plan("e_blur:2000/e_blur:2000/e_blur:2000"))
    flat = decode(chained.body)
    assert (flat.width, flat.height) == (300, 200)
    assert flat.deviate() < 6  # three σ-100 blurs leave noise (σ 60) nearly flat grey


def test_probe_counts_frames_against_max_frames() -> None:
    data = tiny_animation()
    with pytest.raises(InvalidImage) as refused:
        probe_upload(data, max_frames=29)
    assert str(refused.value) == "the image has 30 frames, more than the MAX_FRAMES 29"
    assert probe_upload(data, max_frames=30).frames == 30
    webp = bytes(
        decode(data, n=-1).webpsave_buffer(lossless=True)  # its frames counted by the scan
    )
    with pytest.raises(InvalidImage, match="MAX_FRAMES"):
        probe_upload(webp, max_frames=10)


def gif_of_one_pixel_frames(count: int) -> bytes:
    one = bytes(pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb").gifsave_buffer())
    start = one.index(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00")
    return one[:start] + one[start:-1] * count + b"\x3b"


def test_a_10_mb_gif_of_690000_frames_is_refused_before_libvips() -> None:
    data = gif_of_one_pixel_frames(690_000)
    assert 10_000_000 < len(data) < Settings().max_upload_size
    began = time.perf_counter()
    with pytest.raises(InvalidImage) as refused:
        probe_upload(data)
    took = time.perf_counter() - began
    print(f"\n690,000-frame GIF ({len(data):,} bytes) refused in {took:.2f} s")
    assert str(refused.value) == "the image has 690000 frames, more than the MAX_FRAMES 1000"


def test_the_three_settings() -> None:
    settings = Settings.from_environ(
        {"MAX_OUTPUT_PIXELS": "1000000", "MAX_FRAMES": "7", "RENDER_TIMEOUT_SECONDS": "0.5"},
        announce=lambda line: None,
    )
    assert (settings.max_output_pixels, settings.max_frames) == (1_000_000, 7)
    assert settings.render_timeout_seconds == 0.5
    defaults = Settings.from_environ({}, announce=lambda line: None)
    assert (defaults.max_output_pixels, defaults.max_frames) == (25_000_000, 1000)
    assert defaults.render_timeout_seconds == 10.0
    for name, value in (
        ("MAX_OUTPUT_PIXELS", "0"),
        ("MAX_FRAMES", "x"),
        ("RENDER_TIMEOUT_SECONDS", "0"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_environ({name: value}, announce=lambda line: None)


# ---- the deadline ------------------------------------------------------------------------

HEAVY = "w_2400/e_blur:2000"  # 2400x1800 x σ 100: within the budget, about a second


def test_a_render_past_its_deadline_is_stopped_inside_libvips() -> None:
    source = noise_jpeg()
    deadline = Deadline(0.2)
    with pytest.raises(RenderTimeout) as stopped, deadline.running():
        render.render(source, plan(HEAVY, "jpg"))
    assert stopped.value.status == 503 and stopped.value.code == "render_timeout"
    assert "RENDER_TIMEOUT_SECONDS (0.2 s)" in stopped.value.message
    assert deadline.timed_out
    # what it killed is revived: the same source renders again, here without a deadline
    again = render.render(source, plan("w_240", "jpg"))
    assert (again.width, again.height) == (240, 180)


def test_a_render_within_its_deadline_is_untouched() -> None:
    deadline = Deadline(30)
    with deadline.running():
        made = render.render(noise_jpeg(400, 300), plan("w_200/e_blur:40", "png"))
    assert (made.width, made.height) == (200, 150) and deadline.stopped is None


def test_a_cancelled_render_stops_at_once() -> None:
    deadline = Deadline(60)
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            with deadline.running():
                render.render(noise_jpeg(), plan(HEAVY, "jpg"))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.15)
    deadline.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], RenderTimeout)
    assert outcome[0].message == "the render was stopped: its client went away"
    assert not deadline.timed_out


def animation_strip(frames: int = 48, width: int = 480, height: int = 270) -> pyvips.Image:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (frames * height, width, 3), dtype=np.uint8)
    strip = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb").copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    return strip


def test_the_gif_writer_stops_between_frames() -> None:
    strip = animation_strip()  # in memory: only the writer's own checks can stop it
    assert gif.fits(strip)
    deadline = Deadline(0.05)
    with pytest.raises(RenderTimeout), deadline.running():
        gif.save_animation(strip)
    assert deadline.timed_out
    small = animation_strip(frames=3, width=16, height=16)
    with Deadline(30).running():
        frames = decode(gif.save_animation(small), n=-1)
    assert frames.get("n-pages") == 3


def test_the_gif_writer_runs_without_a_deadline() -> None:
    body = gif.save_animation(animation_strip(frames=4, width=32, height=16))
    assert decode(body, n=-1).get("n-pages") == 4


def test_the_watchdog_stops_only_what_is_due() -> None:
    early, late, ended = Deadline(0.05), Deadline(30), Deadline(0.05)
    with late.running(), early.running():
        with ended.running():
            pass
        time.sleep(0.3)
    assert early.timed_out and late.stopped is None and ended.stopped is None
    assert WATCHDOG._thread is not None and WATCHDOG._thread.daemon


# ---- the pool ----------------------------------------------------------------------------


async def test_a_cancelled_caller_cancels_the_job_and_keeps_the_slot_until_it_returns() -> None:
    pool = RenderPool(1, 1, 5)
    cancelled = threading.Event()
    returned = threading.Event()

    def job() -> None:
        cancelled.wait(10)
        time.sleep(0.2)  # the job's own way out takes a little while
        returned.set()

    caller = asyncio.ensure_future(pool.run(job, on_cancel=cancelled.set))
    while pool.busy == 0:
        await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0.05)
    assert cancelled.is_set() and not returned.is_set()
    assert pool.busy == 1  # the thread still works: its slot is not given to anyone
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert returned.is_set() and pool.busy == 0
