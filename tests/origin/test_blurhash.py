"""The BlurHash decoder against our encoder (round trip on colours) and the reference library,
and the PNG placeholder it makes."""

from __future__ import annotations

import base64

import blurhash as reference
import numpy as np
import pytest
import pyvips

from origin.analysis import source_summary
from origin.blurhash import (
    InvalidBlurhash,
    components,
    data_uri,
    decode,
    placeholder_png,
    placeholder_size,
)
from origin.blurhash import blurhash as encode
from tests.origin.conftest import photo, quadrant


def solid(colour: tuple[int, int, int], width: int = 32, height: int = 24) -> np.ndarray:  # type: ignore[type-arg]
    return np.tile(np.array(colour, dtype=np.uint8), (height, width, 1))


@pytest.mark.parametrize(
    "colour",
    [(200, 30, 40), (0, 0, 0), (255, 255, 255), (12, 180, 90), (128, 128, 128), (250, 220, 10)],
)
def test_a_solid_colour_round_trips(colour: tuple[int, int, int]) -> None:
    """Back to the colour in the middle and on average. (The reference encoder gives a flat
    image small first-order terms, since a sampled half cosine does not sum to zero: the
    corners drift by up to ~10 %, in the reference decoder as in ours.)"""
    hashed = encode(solid(colour))
    pixels = decode(hashed, 20, 15).astype(int)
    assert pixels.shape == (15, 20, 3)
    assert np.abs(pixels[7, 10] - colour).max() <= 1
    assert np.abs(pixels.reshape(-1, 3).mean(axis=0) - colour).max() <= 4
    assert np.abs(pixels - np.round(np.array(reference.decode(hashed, 20, 15)))).max() <= 1


def test_two_halves_round_trip_to_their_sides() -> None:
    left, right = (230, 30, 30), (30, 30, 230)
    image = np.concatenate([solid(left, 16, 24), solid(right, 16, 24)], axis=1)
    pixels = decode(encode(image), 32, 24).astype(int)
    # the low-frequency approximation keeps each side's hue at the far edges
    assert pixels[12, 1, 0] > pixels[12, 1, 2] + 100
    assert pixels[12, 30, 2] > pixels[12, 30, 0] + 100


@pytest.mark.parametrize("source", [photo("astronaut"), photo("chelsea"), quadrant("png")])
def test_decoding_matches_the_reference_library(source: bytes) -> None:
    hashed = str(source_summary(source)["blurhash"])
    ours = decode(hashed, 24, 18).astype(int)
    theirs = np.array(reference.decode(hashed, 24, 18), dtype=float)
    assert np.abs(ours - np.round(theirs)).max() <= 1


def test_components_have_the_encoded_layout() -> None:
    hashed = encode(solid((10, 20, 30)), 5, 2)
    assert components(hashed).shape == (2, 5, 3)


@pytest.mark.parametrize(
    "bad", ["", "LEHV6", "LEHV6nWB2yk8pyo0adR*.7kCMdn", "LEHV6nWB2yk8pyo0adR*.7kCMdnj!", "L\x00"]
)
def test_malformed_hashes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidBlurhash):
        decode(bad, 4, 3)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1280, 720), (16, 9)), ((300, 1200), (4, 16)), ((5000, 10), (16, 1)), ((7, 7), (16, 16))],
)
def test_placeholder_size_keeps_the_aspect_ratio(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert placeholder_size(*size) == expected


def test_placeholder_png_is_small_and_looks_like_the_image() -> None:
    source = photo("chelsea")
    hashed = str(source_summary(source)["blurhash"])
    png = placeholder_png(hashed, 451, 300)
    assert png.startswith(b"\x89PNG") and len(png) < 1500
    img = pyvips.Image.new_from_buffer(png, "")
    assert (img.width, img.height, img.bands) == (16, 11, 3)
    # its mean colour is the photograph's (a brownish cat), within a few levels
    thumb = pyvips.Image.thumbnail_buffer(source, 32).copy_memory()
    for band in range(3):
        assert abs(img.extract_band(band).avg() - thumb.extract_band(band).avg()) < 12
    uri = data_uri(png)
    assert uri.startswith("data:image/png;base64,") and base64.b64decode(uri[22:]) == png
