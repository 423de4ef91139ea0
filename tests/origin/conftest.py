"""Image generators for the transform-engine tests (real libvips, small images)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

import pytest
import pyvips
import skimage

IMAGE_ID = "3f9c" + "0" * 28
OTHER_ID = "a" * 32

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
FRAME_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255))


def solid(width: int, height: int, colour: tuple[int, ...]) -> pyvips.Image:
    img = pyvips.Image.black(width, height, bands=len(colour)) + list(colour)
    interpretation = "srgb" if len(colour) >= 3 else "b-w"
    return img.cast("uchar").copy(interpretation=interpretation)


def quadrant_image(width: int = 400, height: int = 300) -> pyvips.Image:
    """Top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    hw, hh = width // 2, height // 2
    top = solid(hw, hh, RED).join(solid(width - hw, hh, GREEN), "horizontal")
    bottom = solid(hw, height - hh, BLUE).join(solid(width - hw, height - hh, YELLOW), "horizontal")
    return top.join(bottom, "vertical").copy(interpretation="srgb")


def encode(img: pyvips.Image, fmt: str, **kw: object) -> bytes:
    save = {
        "jpeg": img.jpegsave_buffer,
        "png": img.pngsave_buffer,
        "webp": img.webpsave_buffer,
        "avif": img.heifsave_buffer,
        "gif": img.gifsave_buffer,
    }[fmt]
    if fmt == "avif":
        kw.setdefault("compression", "av1")
        kw.setdefault("effort", 0)
    if fmt in ("jpeg", "webp", "avif"):
        kw.setdefault("Q", 95)
    return bytes(save(**kw))


@cache
def quadrant(fmt: str = "png") -> bytes:
    return encode(quadrant_image(), fmt)


@cache
def rgba_png() -> bytes:
    """200x100: left half transparent, right half opaque blue."""
    left = solid(100, 100, (255, 0, 0, 0))
    right = solid(100, 100, (0, 0, 255, 255))
    return encode(left.join(right, "horizontal").copy(interpretation="srgb"), "png")


@cache
def animated(fmt: str = "gif", frames: int = 6) -> bytes:
    """`frames` 60x40 frames, each a distinct solid colour, 100 ms apart."""
    strip = pyvips.Image.arrayjoin(
        [solid(60, 40, FRAME_COLOURS[i % len(FRAME_COLOURS)]) for i in range(frames)], across=1
    ).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    strip.set_type(pyvips.GValue.gint_type, "loop", 0)
    if fmt == "webp":
        return bytes(strip.webpsave_buffer(lossless=True))
    return bytes(strip.gifsave_buffer())


# The eight stored forms of an upright image: one of them, tagged with orientation n,
# displays upright. Found by trying (so the test does not depend on my reading of EXIF).
_DIHEDRAL: tuple[Callable[[pyvips.Image], pyvips.Image], ...] = (
    lambda i: i,
    lambda i: i.fliphor(),
    lambda i: i.rot180(),
    lambda i: i.flipver(),
    lambda i: i.rot90().fliphor(),
    lambda i: i.rot270(),
    lambda i: i.rot270().fliphor(),
    lambda i: i.rot90(),
)


def _tagged(img: pyvips.Image, orientation: int) -> pyvips.Image:
    out = img.copy()
    out.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return out


@cache
def exif_jpeg(orientation: int) -> bytes:
    """A 400x300 quadrant JPEG stored so that EXIF `orientation` displays it upright."""
    upright = quadrant_image()
    for transform in _DIHEDRAL:
        stored = _tagged(transform(upright), orientation)
        shown = stored.autorot()
        if (shown.width, shown.height) == (upright.width, upright.height) and (
            (shown - upright).abs().max() == 0
        ):
            return bytes(stored.jpegsave_buffer(Q=95))
    raise AssertionError(f"no stored form for orientation {orientation}")


@cache
def gps_jpeg() -> bytes:
    """A quadrant JPEG with EXIF GPS, an XMP packet and a camera make."""
    img = quadrant_image().copy()
    img.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Make", "Secret Camera")
    img.set_type(pyvips.GValue.gstr_type, "exif-ifd3-GPSLatitudeRef", "N")
    img.set_type(pyvips.GValue.gstr_type, "exif-ifd3-GPSLatitude", "51/1 30/1 0/1")
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>where</secret></x:xmpmeta>'
    img.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)
    return bytes(img.jpegsave_buffer(Q=95))


@cache
def avif_with_a_binary_item_type() -> bytes:
    """A 400x300 quadrant AVIF with an EXIF Copyright and an XMP item whose type is not text
    (0x80 "ime" for "mime"): libvips names that item's field ``heif-\\x80ime-1``, not UTF-8."""
    img = quadrant_image().copy()
    img.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Copyright", "(c) Jane")
    img.set_type(pyvips.GValue.blob_type, "xmp-data", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    data = bytes(img.heifsave_buffer(compression="av1", effort=0, Q=80))
    assert data.count(b"\0\0mime\0") == 1  # the XMP item's type in its infe box
    return data.replace(b"\0\0mime\0", b"\0\0\x80ime\0")


@cache
def p3_jpeg() -> bytes:
    """The quadrant converted to Display P3 with the P3 profile embedded."""
    return bytes(quadrant_image().icc_transform("p3").jpegsave_buffer(Q=95))


def photo(name: str = "astronaut") -> bytes:
    return _photo(name)


@cache
def _photo(name: str) -> bytes:
    path = os.path.join(os.path.dirname(skimage.__file__), "data", f"{name}.png")
    return bytes(pyvips.Image.new_from_file(path).jpegsave_buffer(Q=90))


def decode(body: bytes, **options: object) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "", **options)


def colour_at(img: pyvips.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(round(v) for v in img(x, y))


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


@pytest.fixture
def image_id() -> str:
    return IMAGE_ID
