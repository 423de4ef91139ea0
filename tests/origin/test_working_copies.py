"""Working copies (origin.working_copies) on real photographs: which levels an original gets, which
level a chain may use, and — on pixels — that a derivative made from a level is
indistinguishable from the one made from the original.

The metric: SSIM (scikit-image, data range 255, per channel) between the two derivatives,
compared losslessly (PNG out), must be at least 0.99 for every chain. For lossy outputs
(JPEG, WebP q80) the encoder's own error dominates any comparison of two encodes, so there
the derivative from a level must be as close to the lossless reference (a full decode of the
original, no shrink-on-load) as the derivative from the original is, within 0.005.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips
import skimage
from skimage.metrics import structural_similarity

from origin import working_copies
from origin.pixels import scale_to, to_srgb
from origin.probe import probe_upload
from origin.records import WorkingCopy
from origin.render import Rendered, StandIn, render
from origin.transforms.limits import DEFAULT_LIMITS
from origin.transforms.parse import parse_path

IMAGE_ID = "0" * 32
PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "grass.png",
    "gravel.png",
    "brick.png",
    "camera.png",
    "text.png",
    "ihc.png",
    "coins.png",
    "motorcycle_right.png",
    "page.png",
)


def photo(name: str) -> pyvips.Image:
    path = Path(skimage.__file__).parent / "data" / name
    return to_srgb(pyvips.Image.new_from_file(str(path)))


@cache
def mosaic(width: int = 3200, height: int = 2400) -> pyvips.Image:
    """A 4×4 grid of scikit-image's photographs (faces, fur, textures, text, stars), each
    cropped to cover its cell: fine detail at close to its native resolution everywhere."""
    cw, ch = width // 4, height // 4
    cells = [photo(name).thumbnail_image(cw, height=ch, crop="centre") for name in PHOTOS]
    cells = [scale_to(c, (cw, ch)) for c in cells]
    return pyvips.Image.arrayjoin(cells, across=4).copy(interpretation="srgb").copy_memory()


def jpeg(img: pyvips.Image, **save: Any) -> bytes:
    return bytes(img.jpegsave_buffer(Q=90, **save))


def pixels(body: bytes, bands: int = 3) -> np.ndarray[Any, Any]:
    img = pyvips.Image.new_from_buffer(body, "")
    array = np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )
    return array[:, :, :bands]


def ssim(a: bytes, b: bytes, bands: int = 3) -> float:
    x, y = pixels(a, bands), pixels(b, bands)
    assert x.shape == y.shape
    return float(structural_similarity(x, y, channel_axis=2, data_range=255))


def over(body: bytes, background: list[int]) -> bytes:
    img = pyvips.Image.new_from_buffer(body, "").flatten(background=background)
    return bytes(img.cast("uchar").pngsave_buffer())


def levels_of(data: bytes) -> list[working_copies.Level]:
    return working_copies.build_for(data, probe_upload(data, max_source_pixels=10**8))


def from_level(
    data: bytes, chain: str, ext: str = "png", index: int | None = None
) -> tuple[Rendered, Rendered, working_copies.Level]:
    """The chain's derivative from the original and from the level `choose` picks (or the
    level at `index`), and that level."""
    probe = probe_upload(data, max_source_pixels=10**8)
    levels = working_copies.build_for(data, probe)
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.{ext}")
    copies = [WorkingCopy(lv.width, lv.height, str(i)) for i, lv in enumerate(levels)]
    if index is None:
        chosen = working_copies.choose(plan, probe.width, probe.height, copies, DEFAULT_LIMITS)
        assert chosen is not None, f"no level serves {chain}"
        index = int(chosen.storage_key)
    level = levels[index]
    stand_in = StandIn(probe.width, probe.height, probe.format)
    return render(data, plan), render(level.body, plan, stand_in=stand_in), level


# ---- which levels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "frames", "size", "levels"),
    [
        ("jpeg", 1, (4000, 3000), [(2000, 1500), (1000, 750), (500, 375)]),
        ("jpeg", 1, (3000, 4000), [(1500, 2000), (750, 1000), (375, 500)]),
        ("avif", 1, (8000, 6000), [(2000, 1500), (1000, 750), (500, 375)]),
        ("png", 1, (1920, 1080), [(960, 540), (480, 270)]),
        ("webp", 1, (1600, 1200), [(800, 600), (400, 300)]),
        ("jpeg", 1, (1599, 1200), [(800, 600)]),
        ("jpeg", 1, (800, 600), [(400, 300)]),
        ("jpeg", 1, (799, 600), []),
        ("jpeg", 1, (640, 480), []),
        ("gif", 1, (4000, 3000), []),
        ("webp", 24, (4000, 3000), []),
        ("png", 1, (20000, 10), [(2500, 1), (1250, 1), (625, 1)]),
    ],
)
def test_level_sizes(
    fmt: str, frames: int, size: tuple[int, int], levels: list[tuple[int, int]]
) -> None:
    assert working_copies.level_sizes(fmt, frames, *size) == levels


COPIES = (WorkingCopy(1000, 750, "small"), WorkingCopy(2000, 1500, "large"))


@pytest.mark.parametrize(
    ("chain", "chosen"),
    [
        ("w_300,h_200,c_fit", "small"),  # 267×200: the 1000×750 level is 3.7× that
        ("w_666,c_fit", "small"),  # 666×500: the small level is 1.5× that
        ("w_667,c_fit", "large"),
        ("w_1333,c_fit", "large"),
        ("w_1334,c_fit", None),  # more than 2/3 of the largest level: the original
        ("w_0.1,c_fit", "small"),  # a share of the original (400 px), not of the level
        ("w_600,h_600,c_fill,g_auto", "large"),  # fill scales to 800×600
        ("w_400,h_400,c_fill,g_auto", "small"),  # fill scales to 533×400
        ("w_300,h_300,c_pad,b_black", "small"),
        ("w_300,h_200,c_scale", "small"),
        ("w_300,h_700,c_scale", "large"),  # each axis needs 1.5 times its size
        ("w_8000,c_limit", None),  # limit does not enlarge: the original, unscaled
        ("x_100,y_100,w_300,h_200,c_crop", None),  # crop keeps original pixels 1:1
        ("w_300,h_200,c_crop,g_center", None),
        ("r_90/w_300,c_fit", None),  # the first stage does not scale
        ("e_grayscale", None),
        ("w_300,c_fit,e_sepia/r_90", "small"),  # only the first stage matters
    ],
)
def test_choose(chain: str, chosen: str | None) -> None:
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.jpg")
    copy = working_copies.choose(plan, 4000, 3000, COPIES, DEFAULT_LIMITS)
    assert (copy.storage_key if copy else None) == chosen
    assert working_copies.choose(plan, 4000, 3000, (), DEFAULT_LIMITS) is None


def test_choose_leaves_a_refused_plan_to_the_render() -> None:
    plan = parse_path(f"/i/{IMAGE_ID}/ar_100:1,c_fill/x.jpg")  # 3000 × 30 → a side of 300,000
    assert working_copies.choose(plan, 300_000 // 100, 3000, COPIES, DEFAULT_LIMITS) is None


# ---- what a level is ------------------------------------------------------------------------


def test_levels_of_a_photo_are_visually_lossless_jpegs() -> None:
    data = jpeg(mosaic())
    decoded = pyvips.Image.new_from_buffer(data, "")
    levels = levels_of(data)
    assert [(lv.width, lv.height, lv.ext, lv.media_type) for lv in levels] == [
        (1600, 1200, "jpg", "image/jpeg"),
        (800, 600, "jpg", "image/jpeg"),
        (400, 300, "jpg", "image/jpeg"),
    ]
    for level in levels:
        img = pyvips.Image.new_from_buffer(level.body, "")
        assert (img.width, img.height, img.bands) == (level.width, level.height, 3)
        assert img.get("interlaced") == 0 if img.get_typeof("interlaced") else True
        assert not img.get_typeof("exif-data") and not img.get_typeof("orientation")
        # At its own size a level is as close to the original's pixels as q95 gets (SSIM
        # 0.986 here; the q90 original itself is 0.982 from the mosaic it was made from);
        # derivatives, at most 2/3 of its size, are ≥ 0.99 (below).
        reference = scale_to(decoded, (level.width, level.height)).copy_memory()
        assert ssim(level.body, bytes(reference.pngsave_buffer(compression=1))) >= 0.98
    assert len(levels[0].body) < len(data)


def test_levels_with_alpha_are_png() -> None:
    source = mosaic()
    alpha = (pyvips.Image.xyz(source.width, source.height)[0] * 255 / source.width).cast("uchar")
    data = bytes(source.bandjoin(alpha).pngsave_buffer(compression=1))
    levels = levels_of(data)
    assert [(lv.width, lv.height, lv.ext) for lv in levels] == [
        (1600, 1200, "png"),
        (800, 600, "png"),
        (400, 300, "png"),
    ]
    img = pyvips.Image.new_from_buffer(levels[1].body, "")
    assert img.bands == 4 and img.get("vips-loader") == "pngload_buffer"


def test_an_undecodable_original_gets_no_levels() -> None:
    data = jpeg(mosaic())
    assert working_copies.build(data[:2] + bytes(len(data) - 2), [(1600, 1200)]) == []


# ---- derivatives from a level vs from the original -------------------------------------------

CHAINS = [
    "w_300,h_200,c_fit",
    "w_400,h_400,c_fill,g_auto",
    "w_600,h_400,c_fill,g_north_west",
    "w_0.1,c_fit",
    "w_300,h_300,c_pad,b_black,r_90,fl_h",
    "w_500,c_fit,e_sharpen",
    "w_500,c_fit,e_blur:40",
    "w_480,c_fit,e_grayscale,e_contrast:30",
    "w_400,c_fit,e_saturation:50/w_200,h_200,c_crop,g_south_east",
    "w_800,h_600,c_fill",  # exactly half the 1600×1200 level
    "w_1064,h_798,c_fill",  # 2/3 of the 1600×1200 level: the hardest case
    "w_260,h_195,c_fit",  # from the 400×300 level, 1.54× its size
    "w_120,h_90,c_fill,g_north_west",  # the 400×300 level at 1/2 scale, then lanczos3 ×1.67
]


@pytest.mark.parametrize("chain", CHAINS)
def test_derivatives_from_a_level_match_the_original(chain: str) -> None:
    original, levelled, level = from_level(jpeg(mosaic()), chain)
    assert (levelled.width, levelled.height) == (original.width, original.height)
    assert ssim(original.body, levelled.body) >= 0.99, (chain, level.width)


@pytest.mark.parametrize(
    ("ext", "chain"), [("jpg", "w_300,h_200,c_fit,q_80"), ("webp", "w_300,h_200,c_fit")]
)
def test_lossy_derivatives_from_a_level_are_as_close_to_the_truth(ext: str, chain: str) -> None:
    data = jpeg(mosaic())
    original, levelled, _ = from_level(data, chain, ext)
    full = bytes(mosaic().pngsave_buffer(compression=1))  # no shrink-on-load for PNG
    truth = render(full, parse_path(f"/i/{IMAGE_ID}/{chain}/x.png")).body
    assert ssim(truth, levelled.body) >= ssim(truth, original.body) - 0.005
    assert abs(len(levelled.body) - len(original.body)) <= 0.05 * len(original.body)


def test_exif_orientation_is_applied_once() -> None:
    upright = mosaic()
    sideways = upright.rot270().copy()  # stored turned, tagged "rotate 90° clockwise to view"
    sideways.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = jpeg(sideways)
    levels = levels_of(data)
    assert [(lv.width, lv.height) for lv in levels] == [(1600, 1200), (800, 600), (400, 300)]
    original, levelled, _ = from_level(data, "w_300,h_300,c_fit")
    assert (original.width, original.height) == (levelled.width, levelled.height) == (300, 225)
    assert ssim(original.body, levelled.body) >= 0.99
    direct = render(jpeg(upright), parse_path(f"/i/{IMAGE_ID}/w_300,h_300,c_fit/x.png"))
    assert ssim(direct.body, levelled.body) >= 0.99


def test_an_icc_profile_is_converted_once_and_kept_as_srgb() -> None:
    p3 = mosaic().icc_transform("p3", input_profile="srgb")
    data = jpeg(p3, keep=pyvips.ForeignKeep.ICC)
    level = levels_of(data)[1]
    assert pyvips.Image.new_from_buffer(level.body, "").get_typeof("icc-profile-data")
    original, levelled, _ = from_level(data, "w_300,h_200,c_fit")
    for body in (original.body, levelled.body):
        assert pyvips.Image.new_from_buffer(body, "").get_typeof("icc-profile-data")
    assert ssim(original.body, levelled.body) >= 0.99


def test_alpha_survives_a_level() -> None:
    source = mosaic()
    alpha = (pyvips.Image.xyz(source.width, source.height)[0] * 255 / source.width).cast("uchar")
    data = bytes(source.bandjoin(alpha).pngsave_buffer(compression=1))
    original, levelled, _ = from_level(data, "w_400,h_300,c_fit")
    assert pyvips.Image.new_from_buffer(levelled.body, "").bands == 4
    # what a viewer sees: the derivative over a background (colour under alpha 0 is moot)
    for background in ([255, 255, 255], [0, 0, 0]):
        seen = [over(body, background) for body in (original.body, levelled.body)]
        assert ssim(*seen) >= 0.99
    alphas = [pixels(body, 4)[:, :, 3].astype(int) for body in (original.body, levelled.body)]
    assert np.abs(alphas[0] - alphas[1]).max() <= 2


def test_a_png_original_of_text_and_lines() -> None:
    page = photo("page.png").resize(8)  # 3072×1528 of printed text, scaled up sharp-edged
    data = bytes(page.pngsave_buffer(compression=1))
    for chain in ("w_400,c_fit", "w_700,c_fit,e_sharpen"):
        original, levelled, level = from_level(data, chain)
        assert level.ext == "jpg"
        assert ssim(original.body, levelled.body) >= 0.99, chain


def test_a_stand_in_needs_a_scaling_first_stage() -> None:
    data = jpeg(mosaic())
    level = levels_of(data)[1]
    plan = parse_path(f"/i/{IMAGE_ID}/x_10,y_10,w_50,h_50,c_crop/x.png")
    with pytest.raises(Exception, match="could not be rendered"):
        render(level.body, plan, stand_in=StandIn(3200, 2400, "jpeg"))


@pytest.mark.parametrize("chain", ["w_300,h_200,c_fit", "w_400,h_400,c_fill,g_auto"])
def test_a_webp_original_renders_closer_to_the_truth_from_a_level(chain: str) -> None:
    """libvips shrinks WebP on load with libwebp's scaler, which softens; a JPEG level is
    scaled by libvips' lanczos3 instead, so its derivative is nearer a full-decode render."""
    data = bytes(mosaic().webpsave_buffer(Q=90))
    original, levelled, _ = from_level(data, chain)
    decoded = bytes(pyvips.Image.new_from_buffer(data, "").pngsave_buffer(compression=1))
    truth = render(decoded, parse_path(f"/i/{IMAGE_ID}/{chain}/x.png")).body
    assert ssim(truth, levelled.body) >= max(0.99, ssim(truth, original.body))
