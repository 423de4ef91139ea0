"""Upload-time analysis (origin.analysis) and the stored focal point in `g_auto`, on pixels.

The test image is a textured grey field with one saturated red disc off-centre: what libvips
attention finds, the stored focal point must find too, and a `g_auto` crop centred on the
stored point must hold the disc where libvips' own crop holds it (within a grid cell).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import pyvips

from origin.analysis import ANALYSIS_SIZE, analyse, source_summary, summarise
from origin.pixels import to_srgb
from origin.render import facts, render
from origin.transforms.parse import parse_path
from tests.origin.conftest import (
    BLUE,
    GREEN,
    IMAGE_ID,
    RED,
    YELLOW,
    animated,
    close,
    decode,
    photo,
    quadrant,
)

WIDTH, HEIGHT = 600, 300
DISC = (480, 90, 30)  # centre x, centre y, radius: the only interesting thing in the image


def disc_array(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:  # type: ignore[type-arg]
    yy, xx = np.mgrid[0:height, 0:width]
    grey = (110 + 20 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.uint8)
    pixels = np.dstack([grey, grey, grey])
    cx, cy, r = (round(v * width / WIDTH) for v in DISC)
    pixels[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = (230, 20, 30)
    return pixels


@cache
def disc_jpeg() -> bytes:
    img = pyvips.Image.new_from_array(disc_array(), interpretation="srgb")
    return bytes(img.jpegsave_buffer(Q=92))


def red_centre(body: bytes) -> tuple[float, float, int]:
    """Centroid (x, y) of the red pixels of a derivative, and how many there are."""
    img = decode(body)
    a = np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )
    ys, xs = np.nonzero((a[:, :, 0] > 180) & (a[:, :, 1] < 80))
    if len(xs) == 0:
        return -1.0, -1.0, 0
    return float(xs.mean()), float(ys.mean()), len(xs)


def plan(chain: str, ext: str = "png"):  # type: ignore[no-untyped-def]
    return parse_path(f"/i/{IMAGE_ID}/{chain}/x.{ext}")


# ---------------------------------------------------------------- the analysis


def test_the_focal_point_is_on_the_feature() -> None:
    analysis = analyse(disc_jpeg())
    assert analysis is not None
    cx, cy, _ = DISC
    # one 1/32 cell of the grid libvips works on is 19 x 9 px here
    assert abs(analysis.focal_x * WIDTH - cx) <= 19
    assert abs(analysis.focal_y * HEIGHT - cy) <= 10


def test_the_focal_point_is_a_fraction_of_the_upright_original() -> None:
    """Stored as fractions: the same image at another size, or stored rotated with an EXIF
    orientation, gives the same point."""
    small = pyvips.Image.new_from_array(disc_array(300, 150), interpretation="srgb")
    a = analyse(disc_jpeg())
    b = analyse(bytes(small.jpegsave_buffer(Q=92)))
    upright = pyvips.Image.new_from_array(disc_array(), interpretation="srgb")
    stored = upright.rot270().copy()  # displayed upright after a 90° clockwise turn
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    c = analyse(bytes(stored.jpegsave_buffer(Q=92)))
    assert a is not None and b is not None and c is not None
    for other in (b, c):
        assert abs(other.focal_x - a.focal_x) <= 1 / 32 and abs(other.focal_y - a.focal_y) <= 1 / 32


def test_the_summary_is_the_pipelines_over_the_same_thumbnail() -> None:
    source = photo("chelsea")
    analysis = analyse(source)
    thumb = to_srgb(pyvips.Image.thumbnail_buffer(source, ANALYSIS_SIZE, height=ANALYSIS_SIZE))
    assert analysis is not None
    expected = summarise(thumb)
    assert (analysis.blurhash, analysis.dominant_color) == (
        expected["blurhash"],
        expected["dominant_color"],
    )
    # and close to what `.json` computes for rows without an analysis (a 32 px decode)
    assert len(analysis.blurhash) == len(str(source_summary(source)["blurhash"])) == 28


def rgb(hexcode: str) -> tuple[int, ...]:
    return tuple(int(hexcode[i : i + 2], 16) for i in (1, 3, 5))


def test_dominant_colour_of_a_quadrant_and_of_an_animation() -> None:
    analysis = analyse(quadrant("png"))
    assert analysis is not None
    assert any(close(rgb(analysis.dominant_color), c, 8) for c in (RED, GREEN, BLUE, YELLOW))
    first_frame = analyse(animated("gif"))
    assert first_frame is not None and close(rgb(first_frame.dominant_color), RED, 8)


def test_an_undecodable_source_gives_no_analysis() -> None:
    assert analyse(b"\xff\xd8\xff\xe0 not really a jpeg") is None


# ---------------------------------------------------------------- g_auto with the stored point


@pytest.mark.parametrize(
    ("chain", "centred"),
    [
        ("w_200,h_200,c_fill,g_auto", ""),  # the window is clamped at the top and right
        ("w_150,h_300,c_fill,g_auto", "x"),
        ("w_300,h_100,c_fill,g_auto", ""),
        ("w_100,h_100,c_crop,g_auto", "xy"),
    ],
)
def test_the_stored_point_crops_like_attention(chain: str, centred: str) -> None:
    source = disc_jpeg()
    analysis = analyse(source)
    assert analysis is not None
    by_attention = render(source, plan(chain))
    by_point = render(source, plan(chain), focal=analysis.focal)
    assert (by_point.width, by_point.height) == (by_attention.width, by_attention.height)
    ax, ay, a_count = red_centre(by_attention.body)
    px, py, p_count = red_centre(by_point.body)
    assert p_count == a_count  # the whole disc in both
    # libvips centres on a cell's corner, and its blur follows the window: within ~a cell
    # of its 32 x 32 grid on the 600 x 300 input (19 x 9 px)
    assert abs(px - ax) <= 20 and abs(py - ay) <= 20
    # where the window is free to move, the stored point centres the disc in it
    if "x" in centred:
        assert abs(px - by_point.width / 2) <= 4
    if "y" in centred:
        assert abs(py - by_point.height / 2) <= 4


def test_the_stored_point_decides_the_crop() -> None:
    """A (tampered) point at the far left moves the window there: attention is not run."""
    source = disc_jpeg()
    chain = "w_150,h_300,c_fill,g_auto"
    moved = render(source, plan(chain), focal=(0.0, 0.5))
    west = render(source, plan("w_150,h_300,c_fill,g_west"))
    assert moved.body == west.body
    assert red_centre(render(source, plan(chain)).body)[2] > 0


def test_later_stages_run_attention_on_their_own_input() -> None:
    """After a rotation the stored point no longer describes the pixels: libvips decides."""
    source = disc_jpeg()
    chain = "r_90/w_150,h_150,c_fill,g_auto"
    assert render(source, plan(chain), focal=(0.0, 0.0)).body == render(source, plan(chain)).body
    assert red_centre(render(source, plan(chain)).body)[2] > 0


def test_entropy_ignores_the_stored_point() -> None:
    source = disc_jpeg()
    chain = "w_150,h_300,c_fill,g_entropy"
    assert render(source, plan(chain), focal=(0.0, 0.0)).body == render(source, plan(chain)).body


def test_animations_cut_every_frame_at_the_stored_point() -> None:
    made = render(animated("gif"), plan("w_20,h_40,c_fill,g_auto", "gif"), focal=(1.0, 0.5))
    frames = decode(made.body, n=-1)
    assert (made.width, frames.height) == (20, 40 * 6)
    east = render(animated("gif"), plan("w_20,h_40,c_fill,g_east", "gif"))
    assert made.body == east.body


def test_json_uses_the_stored_summary_and_point() -> None:
    source = disc_jpeg()
    stored = {"blurhash": "L00000fQfQfQfQfQfQfQfQfQfQfQ", "dominant_color": "#123456"}
    chain = "w_150,h_300,c_fill,g_auto"
    made = render(source, plan(chain, "json"), focal=(0.0, 0.5))
    answer = facts(made, source, summary=stored)
    assert answer["blurhash"] == stored["blurhash"] and answer["dominant_color"] == "#123456"
    jpeg = render(source, plan("w_150,h_300,c_fill,g_west", "jpg"))
    assert answer["bytes"] == len(jpeg.body)
