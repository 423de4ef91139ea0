"""`q_auto` on real photographs (scikit-image's), real libvips encoders and decoders: the SSIM
is scikit-image's, the search stops on the target's boundary, bytes against the default."""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pytest
import pyvips
import skimage
from skimage.metrics import structural_similarity

from origin import quality
from origin.encode import ENCODERS
from origin.render import Rendered, render
from origin.settings import DEFAULT_AUTO_QUALITY_SSIM, Settings
from origin.transforms.parse import parse_path
from tests.origin.conftest import IMAGE_ID, animated, decode

TARGET = DEFAULT_AUTO_QUALITY_SSIM
EXTENSIONS = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}


@cache
def still(name: str) -> bytes:
    """A photograph from scikit-image's data folder, as shipped (PNG or JPEG)."""
    with open(os.path.join(os.path.dirname(skimage.__file__), "data", name), "rb") as file:
        return file.read()


def run(source: bytes, chain: str, ext: str, **kw: object) -> Rendered:
    path = f"/i/{IMAGE_ID}/{chain}/x.{ext}" if chain else f"/i/{IMAGE_ID}/x.{ext}"
    return render(source, parse_path(path), **kw)  # type: ignore[arg-type]


def with_q(chain: str, token: str) -> str:
    return f"{chain},{token}" if chain else token


def luma_array(img: pyvips.Image) -> np.ndarray:  # type: ignore[type-arg]
    y = quality.luma(img)
    return np.ndarray(buffer=y.write_to_memory(), dtype=np.float32, shape=(y.height, y.width))


def served_ssim(source: bytes, chain: str, made: Rendered) -> float:
    """SSIM of the served bytes against the unencoded render (the same chain, lossless PNG)."""
    reference = decode(run(source, chain, "png").body)
    return quality.ssim(quality.luma(reference), quality.luma(decode(made.body)))


# ---------------------------------------------------------------- the measure


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.png", "camera.png", "rocket.jpg"])
@pytest.mark.parametrize("q", [30, 60, 85])
def test_ssim_is_scikit_image_s(name: str, q: int) -> None:
    original = decode(still(name))
    encoded = decode(bytes(original.jpegsave_buffer(Q=q)))
    ours = quality.ssim(quality.luma(original), quality.luma(encoded))
    theirs = structural_similarity(
        luma_array(original).astype(np.float64),
        luma_array(encoded).astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert 0.5 < ours < 1.0
    assert quality.ssim(quality.luma(original), quality.luma(original)) == pytest.approx(1.0)


def test_luma_flattens_alpha_onto_the_background() -> None:
    opaque = decode(still("astronaut.png"))
    see_through = opaque.bandjoin(0)  # alpha 0: only the background is seen
    assert quality.luma(see_through).avg() == pytest.approx(255.0)
    assert quality.luma(see_through, (0, 0, 0)).avg() == pytest.approx(0.0)
    assert quality.luma(opaque.bandjoin(255)).avg() == pytest.approx(quality.luma(opaque).avg())


# ---------------------------------------------------------------- the search


PHOTOS = ["astronaut.png", "chelsea.png", "rocket.jpg", "camera.png"]


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
@pytest.mark.parametrize("name", PHOTOS)
def test_the_choice_is_on_the_target_s_boundary(name: str, fmt: str) -> None:
    source, ext = still(name), EXTENSIONS[fmt]
    made = run(source, "q_auto", ext)
    choice = made.choice
    assert choice is not None and choice.searched and choice.encodes <= 5
    span = quality.RANGES[fmt]
    assert choice.quality in span.grid
    achieved = served_ssim(source, "", made)
    assert achieved == pytest.approx(choice.ssim, abs=1e-9)  # searched whole: same pixels
    if choice.quality < span.high:
        assert achieved >= TARGET
    assert made.body == run(source, f"q_{choice.quality}", ext).body
    if choice.quality > span.low:
        below = run(source, f"q_{choice.quality - span.step}", ext)
        assert served_ssim(source, "", below) < TARGET


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png", "rocket.jpg"])
def test_on_these_photos_q_auto_costs_no_more_than_the_default(name: str) -> None:
    source = still(name)
    for fmt, ext in EXTENSIONS.items():
        auto, default = run(source, "q_auto", ext), run(source, "", ext)
        assert auto.choice is not None
        assert auto.choice.quality <= (ENCODERS[fmt].default_quality or 0)
        assert len(auto.body) <= len(default.body)


def test_q_auto_saves_bytes_where_the_default_is_more_than_needed() -> None:
    source = still("rocket.jpg")
    for ext in EXTENSIONS.values():
        auto, default = run(source, "q_auto", ext), run(source, "", ext)
        assert len(auto.body) < 0.85 * len(default.body)
        assert served_ssim(source, "", auto) >= TARGET


def test_where_the_default_falls_short_q_auto_is_the_default() -> None:
    """coffee.png at JPEG q80 scores 0.954: no quality in the range reaches the target, so
    q_auto takes the top of the range, the default: never more bytes than no q_ at all."""
    source = still("coffee.png")
    auto, default = run(source, "q_auto", "jpg"), run(source, "", "jpg")
    assert served_ssim(source, "", default) < TARGET
    assert auto.choice is not None and auto.choice.quality == 80
    assert auto.body == default.body


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_each_range_tops_out_at_the_format_s_default(fmt: str) -> None:
    assert quality.RANGES[fmt].high == ENCODERS[fmt].default_quality


def test_a_lower_target_never_chooses_a_higher_quality() -> None:
    source = still("astronaut.png")
    chosen = []
    for target in (0.90, 0.94, 0.96, 0.98, 0.999):
        made = run(source, "q_auto", "webp", auto=quality.AutoQuality(target))
        assert made.choice is not None
        chosen.append(made.choice.quality)
    assert chosen == sorted(chosen)
    assert chosen[0] == quality.RANGES["webp"].low and chosen[-1] == quality.RANGES["webp"].high


def test_a_quality_chosen_before_is_used_without_a_search() -> None:
    source = still("astronaut.png")
    made = run(source, "w_300,q_auto", "avif", auto=quality.AutoQuality(TARGET, chosen=45))
    assert made.choice == quality.Choice(45, None, searched=False, encodes=1)
    assert made.body == run(source, "w_300,q_45", "avif").body


def test_the_search_judges_the_chain_s_output() -> None:
    source, chain = still("chelsea.png"), "w_200,h_200,c_fill/e_grayscale"
    target = 0.94  # the default q80 scores 0.953 here: room for the search below the top
    auto = run(source, f"{chain},q_auto", "jpg", auto=quality.AutoQuality(target))
    img = decode(auto.body)
    assert (img.width, img.height) == (200, 200)
    r, g, b = img(100, 100)[:3]
    assert abs(r - g) <= 3 and abs(g - b) <= 3  # grayscale
    assert auto.choice is not None and auto.choice.quality < quality.RANGES["jpeg"].high
    assert served_ssim(source, chain, auto) == pytest.approx(auto.choice.ssim, abs=1e-9)
    assert served_ssim(source, chain, auto) >= target


def test_alpha_is_kept_and_judged_on_the_background() -> None:
    opaque = decode(still("astronaut.png"))
    mask = pyvips.Image.black(opaque.width, opaque.height).draw_circle(
        255, 256, 256, 200, fill=True
    )
    rgba = opaque.bandjoin(mask).copy(interpretation="srgb")
    source = bytes(rgba.pngsave_buffer())
    for ext in ("webp", "avif"):
        made = run(source, "q_auto", ext)
        img = decode(made.body)
        assert img.bands == 4
        assert img(10, 10)[3] == 0 and img(256, 256)[3] == 255
        assert made.choice is not None and made.choice.ssim is not None
        assert made.choice.ssim >= TARGET or made.choice.quality == quality.RANGES[ext].high


# ---------------------------------------------------------------- large outputs: a sample


def test_a_sample_is_full_resolution_tiles_over_the_whole_image() -> None:
    big = decode(still("retina.jpg")).resize(2.0)  # 2822 x 2822
    assert big.width * big.height > quality.SAMPLE_PIXELS
    cut = quality.sample(big)
    tile = quality.TILE
    assert (cut.width, cut.height) == (3 * tile, 3 * tile)  # one tile per cell of a 3 x 3 grid
    assert cut.width * cut.height <= quality.SAMPLE_PIXELS

    def at(column: int, row: int) -> pyvips.Image:
        return cut.crop(column * tile, row * tile, tile, tile)

    centre = (big.width // 2 - tile // 2) // 16 * 16  # the middle cell's tile, block-aligned
    assert (at(1, 1) - big.crop(centre, centre, tile, tile)).abs().max() == 0
    corner = (big.width // 6 - tile // 2) // 16 * 16
    assert (at(0, 0) - big.crop(corner, corner, tile, tile)).abs().max() == 0
    small = decode(still("chelsea.png"))
    assert quality.sample(small) is small


def test_a_long_thin_output_is_sampled_along_its_length() -> None:
    strip = decode(still("astronaut.png")).resize(8.0, vscale=0.5)  # 4096 x 256
    cut = quality.sample(strip)
    assert cut.height == 256 and cut.width * cut.height <= quality.SAMPLE_PIXELS
    assert cut.width >= 4 * quality.TILE


def test_a_large_output_is_searched_on_a_sample_then_encoded_whole() -> None:
    source = still("retina.jpg")  # 1411 x 1411: twice the sample budget
    for ext in ("jpg", "webp"):
        made = run(source, "q_auto", ext)
        img = decode(made.body)
        assert (img.width, img.height) == (1411, 1411)
        choice = made.choice
        assert choice is not None and choice.ssim is not None and choice.searched
        assert choice.encodes <= 6  # at most 5 on the sample, 1 of the whole
        assert made.body == run(source, f"q_{choice.quality}", ext).body
        assert served_ssim(source, "", made) >= TARGET


# ---------------------------------------------------------------- where q_auto is the default


def test_lossless_and_animated_outputs_keep_their_default() -> None:
    source = still("astronaut.png")
    for ext in ("png", "gif"):
        made = run(source, "w_120,q_auto", ext)
        assert made.choice is None
        assert made.body == run(source, "w_120", ext).body
    moving = animated("gif")
    for ext in ("webp", "gif"):
        made = run(moving, "q_auto", ext)
        assert made.choice is None
        assert made.body == run(moving, "", ext).body
        assert decode(made.body, n=-1).get("n-pages") == 6
    first_frame = run(moving, "q_auto", "jpg")  # an animation to JPEG is one still: searched
    assert first_frame.choice is not None


def test_the_default_target_is_the_setting_s() -> None:
    assert quality.SEARCH.target == Settings().auto_quality_ssim == TARGET
    env = {"JWT_SECRET": "x" * 32, "URL_SIGNING_KEYS": "k:secret", "AUTO_QUALITY_SSIM": "0.97"}
    assert Settings.from_environ(env).auto_quality_ssim == 0.97


@pytest.mark.parametrize("chain", ["w_10", "w_4", "w_600,h_10,c_fill", "w_9,h_600,c_fill"])
@pytest.mark.parametrize("ext", ["jpg", "webp", "avif"])
def test_a_still_smaller_than_the_ssim_window_takes_the_default(chain: str, ext: str) -> None:
    """No 11×11 window fits (a side of 10 px or less): nothing to measure, so the format's
    default quality, unsearched — the same bytes as no q_ at all (it was a 422)."""
    source = still("chelsea.png")
    auto, default = run(source, f"{chain},q_auto", ext), run(source, chain, ext)
    fmt = {"jpg": "jpeg"}.get(ext, ext)
    assert auto.choice == quality.Choice(quality.RANGES[fmt].high, None, False, encodes=1)
    assert auto.body == default.body
    assert min(auto.width, auto.height) <= 10


def test_the_smallest_still_a_window_fits_is_searched() -> None:
    made = run(still("chelsea.png"), "w_11,h_11,c_fill,q_auto", "jpg")
    assert made.choice is not None and made.choice.searched and made.choice.ssim is not None
