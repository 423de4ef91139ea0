"""Trim and the padding fills on real libvips: exact sizes and colours on generated images,
and a look at real photographs."""

from __future__ import annotations

import pytest
import pyvips

from origin.errors import BadTransform
from origin.render import Rendered, facts, render
from origin.transforms.parse import parse_path
from tests.origin.conftest import FRAME_COLOURS, IMAGE_ID, animated, close, colour_at, decode, photo


def run(chain: str, source: bytes, ext: str = "png") -> Rendered:
    return render(source, parse_path(f"/i/{IMAGE_ID}/{chain}/x.{ext}"))


def framed(border: tuple[int, int, int] = (255, 255, 255), noise: int = 0) -> bytes:
    """A 200×100 image: a 60×30 red box at (40, 20) on a uniform border colour."""
    img = pyvips.Image.black(200, 100).new_from_image(list(border))
    img = img.copy(interpretation="srgb").cast("uchar")
    if noise:
        img = (img + pyvips.Image.gaussnoise(200, 100, sigma=noise)).cast("uchar")
    img = img.draw_rect([200, 30, 30], 40, 20, 60, 30, fill=True)
    return bytes(img.pngsave_buffer())


def test_trim_cuts_the_uniform_border() -> None:
    out = run("e_trim", framed())
    assert (out.width, out.height) == (60, 30)
    assert close(colour_at(decode(out.body), 30, 15), (200, 30, 30), 4)
    # the border colour is the corner's, whatever it is
    assert (
        run("e_trim", framed((10, 200, 10))).width,
        run("e_trim", framed((10, 200, 10))).height,
    ) == (60, 30)


def test_trim_tolerance_decides_what_is_border() -> None:
    noisy = framed((128, 128, 128), noise=15)
    assert (run("e_trim:40", noisy).width, run("e_trim:40", noisy).height) == (60, 30)
    assert run("e_trim:5", noisy).width == 200  # noise counts as content at a low tolerance


def test_trim_leaves_an_all_border_image_and_runs_in_chains() -> None:
    blank = bytes(pyvips.Image.black(50, 40).pngsave_buffer())
    assert (run("e_trim", blank).width, run("e_trim", blank).height) == (50, 40)
    # trim, then scale the trimmed content: w_ in a later stage sees 60×30
    out = run("e_trim/w_120", framed())
    assert (out.width, out.height) == (120, 60)
    # .json renders, so it tells the trimmed size
    plan = parse_path(f"/i/{IMAGE_ID}/e_trim/x.json")
    source = framed()
    assert facts(render(source, plan), source)["width"] == 60


@pytest.mark.parametrize(
    ("size", "chain"),
    [((1, 1), "e_trim"), ((1000, 2), "e_trim"), ((1, 1000), "e_trim"), ((200, 100), "w_2/e_trim")],
)
def test_trim_leaves_an_image_under_three_pixels_on_a_side(
    size: tuple[int, int], chain: str
) -> None:
    """find_trim's speck filter is a 3×3 median: under 3 pixels on a side there is nothing it
    can look at, and the image is left as it is (it was a 422 invalid_image)."""
    source = bytes(
        pyvips.Image.black(*size).new_from_image([200, 30, 30]).cast("uchar").pngsave_buffer()
    )
    out = run(chain, source)
    untrimmed = run(chain.replace("/e_trim", "").replace("e_trim", "w_1.0"), source)
    assert (out.width, out.height) == (untrimmed.width, untrimmed.height)
    assert close(colour_at(decode(out.body), 0, 0), (200, 30, 30), 2)


@pytest.mark.parametrize("hidden", [(0, 0, 255), (0, 0, 0)])
def test_pixelate_averages_what_shows_not_the_colour_under_transparency(
    hidden: tuple[int, int, int],
) -> None:
    """A block across opaque red and fully transparent pixels is red at half opacity,
    whatever colour the transparent pixels hide (it was (128,0,128,128) over hidden blue)."""
    red = pyvips.Image.black(100, 100).new_from_image([255, 0, 0, 255])
    clear = pyvips.Image.black(100, 100).new_from_image([*hidden, 0])
    source = red.join(clear, "horizontal").cast("uchar").copy(interpretation="srgb")
    out = decode(run("e_pixelate:8", bytes(source.pngsave_buffer())).body)
    r, g, b, a = out(99, 50)  # the block of x 96..103: half red, half transparent
    assert (r, g, b) == (255, 0, 0) and abs(a - 128) <= 1
    assert out(20, 50) == [255, 0, 0, 255] and out(180, 50)[3] == 0


def test_trim_on_a_photograph_with_a_pad_gives_back_the_photograph() -> None:
    padded = run("w_300,h_300,c_pad,b_ffffff", photo("chelsea")).body
    out = run("e_trim", padded)
    assert (out.width, out.height) == (300, 200) or abs(out.height - 200) <= 2


def quarters() -> bytes:
    """100×100: a 4 px dark-green frame around a magenta centre."""
    img = pyvips.Image.black(100, 100).new_from_image([20, 90, 40]).copy(interpretation="srgb")
    img = img.cast("uchar").draw_rect([230, 20, 200], 4, 4, 92, 92, fill=True)
    return bytes(img.pngsave_buffer())


def test_pad_auto_fills_with_the_border_colour() -> None:
    out = decode(run("w_300,h_100,c_pad,b_auto", quarters()).body)
    assert (out.width, out.height) == (300, 100)
    assert close(colour_at(out, 10, 50), (20, 90, 40), 3)
    assert close(colour_at(out, 290, 50), (20, 90, 40), 3)
    assert close(colour_at(out, 150, 50), (230, 20, 200), 3)


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_pad_auto_on_an_animation_takes_the_first_frame_s_colour(fmt: str) -> None:
    """One pad colour for every frame, found on the first (as trim, faces and g_auto are):
    it changed from frame to frame."""
    out = decode(run("w_120,h_120,c_pad,b_auto", animated(fmt), fmt).body, n=-1)
    height = out.get("page-height")
    assert (out.width, height, out.height // height) == (120, 120, 6)
    first = FRAME_COLOURS[0]
    for k in range(6):
        assert close(colour_at(out, 2, k * height + 2)[:3], first, 8), k  # the pad
        assert close(colour_at(out, 60, k * height + 60)[:3], FRAME_COLOURS[k], 8), k


def logo(margin_rgb: tuple[int, int, int]) -> bytes:
    """100×100 RGBA: a transparent 10 px margin (``margin_rgb`` under it) round an opaque
    red square."""
    img = pyvips.Image.black(100, 100).new_from_image([*margin_rgb, 0])
    img = img.copy(interpretation="srgb").cast("uchar")
    return bytes(img.draw_rect([220, 20, 20, 255], 10, 10, 80, 80, fill=True).pngsave_buffer())


def test_pad_auto_on_a_transparent_border_pads_transparent() -> None:
    """The border is transparent: so is the pad (it was the colour hidden under the
    transparency, made opaque: a black or white box round a transparent logo)."""
    for hidden in ((0, 0, 0), (255, 255, 255)):
        out = decode(run("w_300,h_100,c_pad,b_auto", logo(hidden)).body)
        assert (out.width, out.height, out.bands) == (300, 100, 4)
        assert out.getpoint(10, 50)[3] == 0 and out.getpoint(290, 50)[3] == 0
        assert out.getpoint(110, 5)[3] == 0  # the logo's own margin
        assert close(colour_at(out, 150, 50), (220, 20, 20), 3)
    # as JPEG, alpha flattens on white: pad and margin alike
    flat = decode(run("w_300,h_100,c_pad,b_auto", logo((0, 0, 0)), "jpg").body)
    assert close(colour_at(flat, 10, 50), (255, 255, 255), 6)
    # an opaque border's colour is still the pad's, opaque
    framed_rgba = decode(run("w_300,h_100,c_pad,b_auto", rgba_quarters()).body)
    assert framed_rgba.getpoint(10, 50) == [20.0, 90.0, 40.0, 255.0]


def rgba_quarters() -> bytes:
    img = pyvips.Image.new_from_buffer(quarters(), "").bandjoin(255).cast("uchar")
    return bytes(img.copy(interpretation="srgb").pngsave_buffer())


def test_pad_blurred_fills_with_a_blurred_copy() -> None:
    source = photo("chelsea")  # 451×300: a 2:1 box leaves bars left and right
    out = decode(run("w_400,h_150,c_pad,b_blurred", source).body)
    assert (out.width, out.height) == (400, 150)
    bar = out.crop(0, 0, 60, 150)
    centre = out.crop(120, 0, 160, 150)
    assert detail(bar) < detail(centre) / 4  # smooth next to the sharp photograph
    assert bar.deviate() > 5  # not a flat colour fill: the photograph's tones
    # a weaker blur keeps more detail
    weak = decode(run("w_400,h_150,c_pad,b_blurred:40", source).body).crop(0, 0, 60, 150)
    assert detail(bar) < detail(weak)


def detail(img: pyvips.Image) -> float:
    """The mean high-frequency energy: how far pixels are from a 2 px blur of themselves."""
    return float((img.cast("float") - img.gaussblur(2)).abs().avg())


def test_pad_blurred_keeps_alpha_and_every_frame() -> None:
    img = pyvips.Image.black(60, 60).new_from_image([250, 10, 10, 128]).copy(interpretation="srgb")
    out = decode(run("w_120,h_60,c_pad,b_blurred", bytes(img.cast("uchar").pngsave_buffer())).body)
    assert (out.width, out.height, out.bands) == (120, 60, 4)
    assert colour_at(out, 5, 30)[3] == 255  # the fill is opaque
    inside = colour_at(out, 60, 30)  # the half-transparent red over the (pinkish) fill
    assert inside[3] == 255 and inside[0] > 240 and 60 < inside[1] < 200, inside


def test_pad_blurred_fills_under_the_image_s_transparent_parts() -> None:
    """A hole in the image shows the blurred fill (the image flattened on white, blurred),
    opaque, with the image drawn over it: the hole was left transparent in PNG."""
    left = pyvips.Image.black(100, 200).new_from_image([0, 160, 0, 255])
    right = pyvips.Image.black(100, 200).new_from_image([0, 0, 200, 255])
    img = left.join(right, "horizontal").copy(interpretation="srgb")
    hole = pyvips.Image.black(60, 60).new_from_image([0, 0, 0, 0])
    img = img.insert(hole, 70, 70).cast("uchar")
    source = bytes(img.pngsave_buffer())
    out = decode(run("w_400,h_200,c_pad,b_blurred", source).body)
    assert (out.width, out.height, out.bands) == (400, 200, 4)
    assert out.extract_band(3).min() == 255  # opaque everywhere, the hole too
    assert colour_at(out, 150, 100) == (0, 160, 0, 255)  # the image over the fill: exact
    assert close(colour_at(out, 200, 100), (255, 255, 255, 255), 4)  # the hole: the fill
    jpeg = decode(run("w_400,h_200,c_pad,b_blurred", source, "jpg").body)
    assert close(colour_at(jpeg, 200, 100), (255, 255, 255), 4)  # the same fill


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ("w_100,b_auto", "b_auto and b_blurred need c_pad"),
        ("w_100,h_100,c_fill,b_blurred", "b_auto and b_blurred need c_pad"),
        ("w_100,h_100,c_pad,b_blurred:0", "out of range 1..2000"),
        ("w_100,h_100,c_pad,b_fuzzy", "expected rrggbb"),
        ("e_trim:101", "out of range 0..100"),
    ],
)
def test_bad_fills_and_trims_are_refused(chain: str, message: str) -> None:
    with pytest.raises(BadTransform, match=message):
        parse_path(f"/i/{IMAGE_ID}/{chain}/x.png")


def test_canonical_spellings() -> None:
    def canon(chain: str) -> str:
        return parse_path(f"/i/{IMAGE_ID}/{chain}/x.png").canonical()

    assert canon("w_10,h_10,c_pad,b_blurred") == canon("w_10,h_10,c_pad,b_blurred:400")
    assert canon("e_trim") == canon("e_trim:10")
    assert canon("fl_smaller.keep_icc") == canon("fl_keep_icc.smaller")
    assert canon("fl_keep_icc") != canon("w_10") and "fl_keep_icc" in canon("fl_keep_icc")
