"""Animations: an opaque one loses its (always present) alpha band at load, so frames are
resized as 8-bit RGB; one with transparent pixels keeps them, in GIF and in WebP out."""

from __future__ import annotations

import pytest
import pyvips

from origin.decode import load_frames, read_header
from origin.pixels import Strip
from origin.transforms.limits import DEFAULT_LIMITS
from tests.origin.conftest import animated
from tests.origin.test_render import run


def holed(fmt: str) -> bytes:
    """Six 60x40 frames of one colour each, with a transparent 20x20 square in the middle."""
    frames = []
    for colour in ([230, 30, 30], [30, 200, 30], [30, 30, 220]) * 2:
        rgb = (pyvips.Image.black(60, 40, bands=3) + colour).cast("uchar")
        alpha = (pyvips.Image.black(60, 40) + 255).draw_rect(0, 20, 10, 20, 20, fill=True)
        frames.append(rgb.bandjoin(alpha.cast("uchar")).copy(interpretation="srgb"))
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * 6)
    if fmt == "webp":
        return bytes(strip.webpsave_buffer(lossless=True))
    return bytes(strip.gifsave_buffer())


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_an_opaque_animation_is_loaded_without_alpha(fmt: str) -> None:
    data = animated(fmt)
    frames, _ = load_frames(data, read_header(data, DEFAULT_LIMITS.max_source_pixels))
    assert len(frames) == 6 and all(f.bands == 3 for f in frames)


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_transparent_pixels_survive(fmt: str) -> None:
    data = holed(fmt)
    frames, _ = load_frames(data, read_header(data, DEFAULT_LIMITS.max_source_pixels))
    assert all(f.bands == 4 for f in frames)
    out = run("w_30,c_fit", fmt, source=data)
    strip = pyvips.Image.new_from_buffer(out.body, "", n=-1)
    assert strip.bands == 4 and strip.get("page-height") == 20
    for i in range(6):
        frame = strip.extract_area(0, i * 20, 30, 20)
        assert frame(15, 10)[3] == 0  # the hole, scaled to 10x10 in the middle
        assert frame(2, 2)[3] == 255


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_an_animation_held_in_memory_is_a_strip_of_its_pages(fmt: str) -> None:
    """Its frames are the pages of the decoded strip (origin.pixels.Strip), which keeps the
    opaque alpha band the frames leave out: resizing reads the strip, not a join."""
    data = animated(fmt)
    frames, _ = load_frames(data, read_header(data, DEFAULT_LIMITS.max_source_pixels))
    assert isinstance(frames, Strip)
    # libvips gives a GIF an alpha band always, this opaque WebP none
    assert frames.whole.bands == (4 if fmt == "gif" else 3)
    assert frames.whole.height == 6 * frames[0].height
    page = frames.whole.extract_area(0, 2 * frames[0].height, frames[0].width, frames[0].height)
    assert page.extract_band(0, n=3).write_to_memory() == frames[2].write_to_memory()


@pytest.mark.parametrize(("alpha", "where"), [(254, "last"), (254, "first"), (0, "last")])
def test_one_pixel_short_of_opaque_keeps_the_alpha_band(alpha: int, where: str) -> None:
    """White pixels (R = G = B = 255) with one pixel's alpha below 255, first or last in the
    strip: the frames keep their alpha band (the opaque test reads every pixel's alpha)."""
    frames = []
    for i in range(4):
        a = pyvips.Image.black(30, 20) + 255
        if (where, i) in (("first", 0), ("last", 3)):
            x, y = (0, 0) if where == "first" else (29, 19)
            a = a.draw_rect(alpha, x, y, 1, 1, fill=True)
        white = (pyvips.Image.black(30, 20, bands=3) + 255).bandjoin(a).cast("uchar")
        frames.append(white.copy(interpretation="srgb"))
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 20)
    data = bytes(strip.webpsave_buffer(lossless=True))
    loaded, _ = load_frames(data, read_header(data, DEFAULT_LIMITS.max_source_pixels))
    assert all(f.bands == 4 for f in loaded)
    assert loaded[-1 if where == "last" else 0](x, y)[3] == alpha
