"""Rendering with real libvips: dimensions and pixel colours for every token, formats,
animation, EXIF orientation, colour management, metadata, errors and a fuzz property."""

from __future__ import annotations

import blurhash as blurhash_reference
import numpy as np
import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origin.analysis import source_summary
from origin.decode import read_header
from origin.encode import ENCODERS
from origin.errors import BadTransform, InvalidImage, LimitExceeded, OriginError
from origin.pixels import to_srgb
from origin.render import Rendered, facts, fixed_cut, render
from origin.transforms.limits import Limits
from origin.transforms.parse import parse_path
from tests.origin.conftest import (
    BLUE,
    FRAME_COLOURS,
    GREEN,
    IMAGE_ID,
    OTHER_ID,
    RED,
    YELLOW,
    animated,
    close,
    colour_at,
    decode,
    exif_jpeg,
    gps_jpeg,
    p3_jpeg,
    photo,
    quadrant,
    rgba_png,
    solid,
)

MAGENTA, WHITE = (255, 0, 255), (255, 255, 255)


def run(chain: str, ext: str = "png", source: bytes | None = None, **kw: object) -> Rendered:
    path = f"/i/{IMAGE_ID}/{chain}/x.{ext}" if chain else f"/i/{IMAGE_ID}/x.{ext}"
    return render(source if source is not None else quadrant("png"), parse_path(path), **kw)  # type: ignore[arg-type]


def pixels(r: Rendered) -> pyvips.Image:
    return decode(r.body)


def array(img: pyvips.Image) -> np.ndarray:  # type: ignore[type-arg]
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )


Q = ((50, 50, RED), (350, 50, GREEN), (50, 250, BLUE), (350, 250, YELLOW))


# One row per token and value form: chain, output size, (x, y, colour) checks on a
# 400x300 quadrant (red | green / blue | yellow).
@pytest.mark.parametrize(
    ("chain", "size", "checks"),
    [
        ("", (400, 300), Q),
        ("w_200", (200, 150), ((25, 25, RED), (175, 125, YELLOW))),
        ("h_150", (200, 150), ((25, 25, RED), (175, 125, YELLOW))),
        ("w_0.5", (200, 150), ((25, 25, RED), (175, 25, GREEN))),
        # a half pixel goes up (round() took it to the even side: 6×4, 14×10)
        ("w_6", (6, 5), ()),
        ("w_14", (14, 11), ()),
        ("w_101,ar_2:1,c_fill", (101, 51), ()),
        ("h_0.5", (200, 150), ((25, 125, BLUE),)),
        ("w_200,h_200", (200, 150), ((25, 25, RED),)),
        ("w_200,h_200,c_fit", (200, 150), ((25, 25, RED),)),
        ("w_100,dpr_2", (200, 150), ((25, 25, RED),)),
        ("w_800", (800, 600), ((100, 100, RED), (700, 500, YELLOW))),
        ("w_800,c_limit", (400, 300), Q),
        ("w_200,c_limit", (200, 150), ((175, 125, YELLOW),)),
        ("w_100,h_100,c_scale", (100, 100), ((10, 10, RED), (90, 90, YELLOW))),
        ("w_100,c_scale", (100, 75), ((10, 10, RED),)),
        ("w_200,h_200,c_fill", (200, 200), ((10, 10, RED), (190, 10, GREEN), (10, 190, BLUE))),
        ("w_400,h_150,c_fill,g_north", (400, 150), ((50, 140, RED), (350, 140, GREEN))),
        ("w_400,h_150,c_fill,g_south", (400, 150), ((50, 10, BLUE), (350, 10, YELLOW))),
        ("w_150,h_300,c_fill,g_west", (150, 300), ((140, 10, RED), (140, 290, BLUE))),
        ("w_150,h_300,c_fill,g_east", (150, 300), ((10, 10, GREEN), (10, 290, YELLOW))),
        ("w_150,h_150,c_fill,g_south_east", (150, 150), ((140, 140, YELLOW),)),
        ("w_200,h_200,c_fill,g_auto", (200, 200), ()),
        ("w_200,h_200,c_fill,g_entropy", (200, 200), ()),
        ("w_200,ar_1:1,c_fill", (200, 200), ((10, 10, RED), (190, 190, YELLOW))),
        ("ar_1:1,c_fill", (300, 300), ((10, 10, RED), (290, 290, YELLOW))),
        (
            "w_300,h_300,c_pad,b_ff00ff",
            (300, 300),
            ((150, 10, MAGENTA), (150, 290, MAGENTA), (10, 50, RED), (290, 250, YELLOW)),
        ),
        ("w_300,h_300,c_pad,g_north,b_ff00ff", (300, 300), ((150, 290, MAGENTA), (10, 10, RED))),
        ("w_300,h_300,c_pad", (300, 300), ((150, 10, WHITE), (10, 50, RED))),
        (
            "ar_2:1,c_pad,b_ff00ff",
            (600, 300),
            ((10, 150, MAGENTA), (110, 10, RED), (590, 150, MAGENTA)),
        ),
        ("w_100,h_50,c_crop,x_10,y_10", (100, 50), ((50, 25, RED), (95, 45, RED))),
        ("w_100,h_50,c_crop,x_250,y_200", (100, 50), ((50, 25, YELLOW),)),
        (
            "w_100,h_100,c_crop",
            (100, 100),
            ((10, 10, RED), (90, 10, GREEN), (10, 90, BLUE), (90, 90, YELLOW)),
        ),
        ("w_100,h_100,c_crop,g_south_east", (100, 100), ((50, 50, YELLOW),)),
        ("w_100,h_100,c_crop,g_north_east", (100, 100), ((50, 50, GREEN),)),
        ("w_100,h_100,c_crop,g_auto", (100, 100), ()),
        ("c_crop,x_300,y_200", (100, 100), ((50, 50, YELLOW),)),
        ("w_1000,h_1000,c_crop", (400, 300), Q),
        ("w_200,h_200,c_crop,x_300,y_250", (100, 50), ((50, 25, YELLOW),)),
        ("w_0.5,h_0.5,c_crop,g_north_west", (200, 150), ((100, 75, RED),)),
        ("ar_1:1,c_crop,g_west", (300, 300), ((10, 10, RED), (290, 10, GREEN))),
        (
            "r_90",
            (300, 400),
            ((50, 50, BLUE), (250, 50, RED), (50, 350, YELLOW), (250, 350, GREEN)),
        ),
        ("r_180", (400, 300), ((50, 50, YELLOW), (350, 250, RED))),
        ("r_270", (300, 400), ((50, 50, GREEN), (250, 50, YELLOW), (50, 350, RED))),
        ("r_-90", (300, 400), ((50, 50, GREEN), (50, 350, RED))),
        ("r_45", None, ((2, 2, WHITE), (230, 124, RED), (372, 230, GREEN))),
        ("r_45,b_ff00ff", None, ((2, 2, MAGENTA),)),
        ("fl_h", (400, 300), ((50, 50, GREEN), (350, 50, RED), (50, 250, YELLOW))),
        ("fl_v", (400, 300), ((50, 50, BLUE), (50, 250, RED))),
        ("fl_hv", (400, 300), ((50, 50, YELLOW), (350, 250, RED))),
        ("w_200,r_90,fl_h", (150, 200), ((25, 25, RED), (125, 25, BLUE))),
        ("w_200/r_90", (150, 200), ((25, 25, BLUE),)),
        ("w_0.5/w_0.5", (100, 75), ((10, 10, RED),)),
    ],
)
def test_geometry_rows(
    chain: str, size: tuple[int, int] | None, checks: tuple[tuple[int, int, tuple[int, ...]], ...]
) -> None:
    r = run(chain)
    img = pixels(r)
    if size is not None:
        assert (r.width, r.height) == (img.width, img.height) == size
    for x, y, colour in checks:
        assert close(colour_at(img, x, y)[:3], colour, 8), (x, y, colour_at(img, x, y))


def test_r_45_grows_to_the_rotated_bounding_box() -> None:
    r = run("r_45")
    assert 490 <= r.width <= 500 and 490 <= r.height <= 500


def test_c_crop_outside_the_image_is_bad_transform() -> None:
    with pytest.raises(BadTransform, match="x_400"):
        run("w_10,h_10,c_crop,x_400,y_0")


def _source_pixels(source: bytes) -> np.ndarray:  # type: ignore[type-arg]
    return array(to_srgb(decode(source).autorot()))


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("jpeg", lambda: photo()),
        ("rgba png", lambda: rgba_png()),
        ("grey png", lambda: bytes(decode(photo("camera")).pngsave_buffer())),
        ("exif jpeg", lambda: exif_jpeg(6)),
    ],
)
@pytest.mark.parametrize("rotate", ["", "/r_90"])
def test_a_fixed_cut_is_the_sources_own_pixels(name: str, source: object, rotate: str) -> None:
    """A first-stage c_crop/c_fill that does not scale is decoded top to bottom and stopped
    below the cut (render.fixed_cut): the answer is, pixel for pixel, the cut of the whole
    decoded source, for JPEG, PNG with alpha, grey PNG and an EXIF-rotated JPEG."""
    data = source()  # type: ignore[operator]
    whole = _source_pixels(data)
    r = run(f"w_60,h_40,c_crop,x_30,y_20{rotate}", source=data)
    expected = whole[20:60, 30:90]
    if rotate:
        expected = np.rot90(expected, k=-1)
    got = array(pixels(r))
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("chain", "cut"),
    [
        ("w_60,h_40,c_crop,x_30,y_20", (30, 20, 60, 40)),
        ("w_400,h_100,c_fill,g_south", (0, 200, 400, 100)),
        ("w_100,h_50,c_fill,g_auto", None),  # placed by libvips attention
        ("w_200,h_150,c_fill", None),  # scales
        ("w_100", None),
        ("e_blur", None),
    ],
)
def test_which_first_stages_cut_while_loading(chain: str, cut: object) -> None:
    data = quadrant("png")  # 400x300
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.png")
    assert fixed_cut(read_header(data, 10**8), plan, Limits()) == cut
    exif = exif_jpeg(6)  # upright 400x300, stored rotated: cut after the whole decode
    assert fixed_cut(read_header(exif, 10**8), plan, Limits()) is None


# ---------------------------------------------------------------- effects


@pytest.mark.parametrize(
    "effect",
    [
        "grayscale",
        "sepia",
        "blur",
        "blur:2000",
        "sharpen",
        "sharpen:500",
        "brightness:50",
        "brightness:-100",
        "contrast:60",
        "contrast:-100",
        "saturation:80",
        "saturation:-100",
        "pixelate",
        "pixelate:200",
        "vignette",
    ],
)
def test_each_effect_changes_pixels_and_keeps_size(effect: str) -> None:
    source = photo("chelsea")
    before = array(pixels(run("w_200", source=source)))
    r = run(f"w_200/e_{effect}", source=source)
    after = array(pixels(r))
    assert after.shape == before.shape
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.3


def test_grayscale_has_equal_channels() -> None:
    a = array(pixels(run("e_grayscale", source=photo("coffee"))))
    assert np.array_equal(a[:, :, 0], a[:, :, 1]) and np.array_equal(a[:, :, 1], a[:, :, 2])


def test_sepia_tints_grey_brown() -> None:
    grey = bytes(solid(50, 50, (128, 128, 128)).pngsave_buffer())
    r, g, b = colour_at(pixels(run("e_sepia", source=grey)), 25, 25)[:3]
    assert r > g > b


def test_blur_reduces_edge_contrast() -> None:
    def edge(img: pyvips.Image) -> int:
        return abs(colour_at(img, 198, 50)[1] - colour_at(img, 201, 50)[1])

    assert edge(pixels(run(""))) > 200
    assert edge(pixels(run("e_blur:200"))) < 150


def test_brightness_raises_mean_and_contrast_flattens() -> None:
    source = photo("astronaut")
    base = array(pixels(run("w_100", source=source))).mean()
    assert array(pixels(run("w_100/e_brightness:40", source=source))).mean() > base + 30
    flat = array(pixels(run("w_100/e_contrast:-100", source=source)))
    assert flat.min() >= 127 and flat.max() <= 129


def test_saturation_minus_100_is_grey() -> None:
    a = array(pixels(run("e_saturation:-100"))).astype(int)
    assert np.abs(a[:, :, 0] - a[:, :, 1]).max() <= 3


def test_pixelate_makes_blocks() -> None:
    a = array(pixels(run("w_200/e_pixelate:20", source=photo("astronaut"))))
    for by in range(0, 200, 20):
        for bx in range(0, 200, 20):
            block = a[by : by + 20, bx : bx + 20]
            assert (block == block[0, 0]).all()


def test_effects_on_alpha_keep_alpha() -> None:
    r = run("e_sepia,e_blur:20,e_contrast:20", source=rgba_png())
    img = pixels(r)
    assert img.bands == 4
    assert colour_at(img, 20, 50)[3] == 0 and colour_at(img, 180, 50)[3] == 255


# ---------------------------------------------------------------- overlays


def test_text_overlay_changes_only_the_south_east_corner() -> None:
    source = photo("astronaut")
    base = array(pixels(run("w_400", source=source)))
    over = array(pixels(run("w_400/l_text:Hello%2C%20world,fs_24,co_ff0000", source=source)))
    changed = np.abs(over.astype(int) - base.astype(int)).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert len(xs) > 100
    assert xs.min() > 200 and ys.min() > 300
    assert changed[370:, 200:].any()


def test_text_overlay_gravity_and_offsets() -> None:
    blank = bytes(solid(300, 200, WHITE).pngsave_buffer())
    a = array(pixels(run("l_text:XX,g_north_west,x_10,y_20,fs_30", source=blank)))
    ys, xs = np.nonzero((a < 128).any(axis=2))
    assert 10 <= xs.min() <= 20 and 20 <= ys.min() <= 35 and xs.max() < 150 and ys.max() < 100


def test_image_overlay_with_opacity_blends() -> None:
    blue = bytes(solid(400, 300, BLUE).pngsave_buffer())
    red_mark = bytes(solid(50, 50, RED).pngsave_buffer())
    r = run(f"l_{OTHER_ID},o_50,g_north_west", source=blue, overlays={OTHER_ID: red_mark})
    img = pixels(r)
    assert close(colour_at(img, 25, 25), (128, 0, 127), 4)
    assert close(colour_at(img, 200, 200), BLUE, 1)


def test_image_overlay_width_share_and_south_east_default() -> None:
    blue = bytes(solid(400, 300, BLUE).pngsave_buffer())
    red_mark = bytes(solid(50, 50, RED).pngsave_buffer())
    img = pixels(run(f"l_{OTHER_ID},w_0.25,x_10,y_10", source=blue, overlays={OTHER_ID: red_mark}))
    assert close(colour_at(img, 385, 285), RED, 2)  # 100x100 mark, 10 px from the corner
    assert close(colour_at(img, 295, 195), RED, 2)
    assert close(colour_at(img, 285, 185), BLUE, 2)
    assert close(colour_at(img, 395, 295), BLUE, 2)


def test_missing_overlay_is_bad_transform_naming_it() -> None:
    with pytest.raises(BadTransform, match=OTHER_ID):
        run(f"l_{OTHER_ID}")


def test_overlay_on_animation_marks_every_frame() -> None:
    r = run("l_text:Hi,fs_20,co_ffffff,g_north_west", "gif", source=animated("gif"))
    strip = decode(r.body, n=-1)
    assert strip.get("n-pages") == 6
    frames = [array(strip.extract_area(0, i * 40, 60, 40)) for i in range(6)]
    assert all((f > 200).all(axis=2).any() for f in frames)


# ---------------------------------------------------------------- formats and alpha


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
def test_every_source_format_decodes(fmt: str) -> None:
    r = run("w_200", "png", source=quadrant(fmt))
    img = pixels(r)
    for x, y, colour in ((25, 25, RED), (175, 25, GREEN), (25, 125, BLUE), (175, 125, YELLOW)):
        assert close(colour_at(img, x, y)[:3], colour, 40)


@pytest.mark.parametrize(
    ("ext", "loader", "media"),
    [
        ("jpg", "jpegload_buffer", "image/jpeg"),
        ("jpeg", "jpegload_buffer", "image/jpeg"),
        ("png", "pngload_buffer", "image/png"),
        ("webp", "webpload_buffer", "image/webp"),
        ("avif", "heifload_buffer", "image/avif"),
        ("gif", "gifload_buffer", "image/gif"),
    ],
)
def test_output_format_round_trips(ext: str, loader: str, media: str) -> None:
    r = run("w_200", ext)
    img = pixels(r)
    assert img.get("vips-loader") == loader and r.media_type == media
    assert (img.width, img.height) == (200, 150)
    assert close(colour_at(img, 175, 125)[:3], YELLOW, 40)
    assert close(colour_at(img, 25, 125)[:3], BLUE, 40)


def test_f_overrides_extension_and_quality_changes_size() -> None:
    source = photo("astronaut")
    r = run("f_webp", "jpg", source=source)
    assert r.format == "webp" and pixels(r).get("vips-loader") == "webpload_buffer"
    assert len(run("q_20", "jpg", source=source).body) < len(run("q_95", "jpg", source=source).body)
    assert run("q_auto", "png", source=source).body == run("", "png", source=source).body
    assert len(run("q_50", "png", source=source).body) < len(run("", "png", source=source).body)


def test_jpeg_output_is_progressive() -> None:
    r = run("w_200", "jpg")
    assert b"\xff\xc2" in r.body
    assert pixels(r).get("interlaced") == 1


@pytest.mark.parametrize(
    ("chain", "colour"),
    [
        ("", WHITE),
        ("b_ff00ff", MAGENTA),
        ("w_200/b_00ff00", GREEN),
        ("b_transparent", WHITE),  # a b_ with alpha is itself on white (was black)
        ("b_ff000080", (255, 127, 127)),  # half red on white (was solid red)
    ],
)
def test_jpeg_of_rgba_is_flattened(chain: str, colour: tuple[int, int, int]) -> None:
    r = run(chain, "jpg", source=rgba_png())
    img = pixels(r)
    assert img.bands == 3
    assert close(colour_at(img, 10, 10), colour, 10)
    assert close(colour_at(img, img.width - 10, 10), BLUE, 20)


@pytest.mark.parametrize(
    ("background", "colour", "alpha"),
    [("b_transparent", WHITE, 0), ("b_ff000080", (255, 127, 127), 128)],
)
@pytest.mark.parametrize(
    "chain", ["w_300,h_300,c_pad,{b}", "r_30,{b}", "w_300,h_300,c_pad,{b}/w_200"]
)
def test_a_b_with_alpha_paints_a_jpeg_as_on_white(
    chain: str, background: str, colour: tuple[int, int, int], alpha: int
) -> None:
    """A pad or a turn's corners in an output without alpha: the b_ colour laid on white, as
    the transparent parts are flattened (b_transparent was black, b_ff000080 solid red)."""
    img = pixels(run(chain.format(b=background), "jpg"))
    assert close(colour_at(img, 1, 1), colour, 3)
    kept = pixels(run(chain.format(b=background), "png"))
    assert kept.bands == 4 and colour_at(kept, 1, 1)[3] == alpha  # as it is where alpha is kept


@pytest.mark.parametrize("ext", ["png", "webp", "avif"])
def test_alpha_kept_where_the_format_has_it(ext: str) -> None:
    img = pixels(run("w_100", ext, source=rgba_png()))
    assert img.bands == 4 and colour_at(img, 10, 10)[3] < 10


def test_pad_and_rotate_on_alpha_default_to_transparent() -> None:
    img = pixels(run("w_300,h_300,c_pad", source=rgba_png()))
    assert colour_at(img, 150, 10)[3] == 0 and colour_at(img, 290, 150)[3] == 255
    img = pixels(run("r_30", source=rgba_png()))
    assert colour_at(img, 1, 1)[3] == 0


def test_transparent_background_adds_alpha() -> None:
    img = pixels(run("w_300,h_300,c_pad,b_transparent"))
    assert img.bands == 4 and colour_at(img, 150, 5)[3] == 0


# ---------------------------------------------------------------- animation


@pytest.mark.parametrize(
    ("source_fmt", "ext", "frames"),
    [
        ("gif", "gif", 6),
        ("gif", "webp", 6),
        ("webp", "webp", 6),
        ("webp", "gif", 6),
        ("gif", "png", 1),
        ("gif", "jpg", 1),
        ("webp", "avif", 1),
        ("webp", "png", 1),
    ],
)
def test_animation_frames(source_fmt: str, ext: str, frames: int) -> None:
    r = run("w_30,fl_h", ext, source=animated(source_fmt))
    strip = decode(r.body, n=-1) if ext in ("gif", "webp") else decode(r.body)
    pages = strip.get("n-pages") if strip.get_typeof("n-pages") else 1
    assert pages == frames
    assert (r.width, r.height) == (30, 20)
    page_height = strip.height // pages
    assert page_height == 20
    for i in range(pages):
        assert close(colour_at(strip, 15, i * 20 + 10)[:3], FRAME_COLOURS[i], 30)
    if frames > 1:
        assert strip.get("loop") == 0
        assert list(strip.get("delay"))[:frames] == [100] * frames


def test_animation_fill_with_smart_gravity() -> None:
    r = run("w_20,h_20,c_fill,g_auto", "gif", source=animated("gif"))
    assert decode(r.body, n=-1).get("n-pages") == 6 and (r.width, r.height) == (20, 20)


# ---------------------------------------------------------------- orientation, colour, metadata


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("chain", ["", "w_200", "e_grayscale,fl_h/fl_h"])
def test_exif_orientation_is_applied_first(orientation: int, chain: str) -> None:
    r = run(chain, "png", source=exif_jpeg(orientation))
    img = pixels(r)
    scale = img.width / 400
    assert img.height == round(300 * scale)
    expected = Q if "grayscale" not in chain else ()
    for x, y, colour in expected:
        assert close(colour_at(img, round(x * scale), round(y * scale))[:3], colour, 30)


def test_icc_profile_is_converted_to_srgb() -> None:
    for chain in ("", "w_200"):
        img = pixels(run(chain, "png", source=p3_jpeg()))
        assert close(colour_at(img, 20, 20)[:3], RED, 12)
        assert close(colour_at(img, img.width - 20, img.height - 20)[:3], YELLOW, 12)


@pytest.mark.parametrize("tag", ["srgb", "b-w", "multiband"])
@pytest.mark.parametrize("bands", [1, 2])
def test_grey_under_any_tag_becomes_srgb_with_its_alpha(tag: str, bands: int) -> None:
    """A grey image (with alpha) tagged as colour used to stay one or two bands: b_auto's
    border colour then read past the pixel (IndexError)."""
    grey = (pyvips.Image.black(8, 6, bands=bands) + [90, 200][:bands]).cast("uchar")
    img = to_srgb(grey.copy(interpretation=tag))
    assert (img.bands, img.interpretation, img.format) == (bands + 2, "srgb", "uchar")
    assert img.getpoint(3, 3) == [90.0, 90.0, 90.0, 200.0][: bands + 2]


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "avif"])
@pytest.mark.parametrize("chain", ["", "w_100", "r_90"])
def test_metadata_is_stripped(ext: str, chain: str) -> None:
    body = run(chain, ext, source=gps_jpeg()).body
    img = decode(body)
    fields = img.get_fields()
    assert not [f for f in fields if f.startswith(("exif", "xmp", "iptc"))], fields
    assert b"Secret Camera" not in body and b"<secret>" not in body


def test_only_an_srgb_profile_survives() -> None:
    with_profile = decode(run("w_100", "jpg", source=p3_jpeg()).body)
    assert with_profile.get_typeof("icc-profile-data")
    assert b"P3" not in with_profile.get("icc-profile-data")
    assert not decode(run("w_100", "jpg").body).get_typeof("icc-profile-data")


# ---------------------------------------------------------------- describe, summary


def describe(source: bytes, path: str) -> dict[str, object]:
    return facts(render(source, parse_path(path)), source)


def test_facts_report_the_derivative_and_the_source() -> None:
    source = photo("astronaut")
    info = describe(source, f"/i/{IMAGE_ID}/w_200,h_100,c_fill/x.json")
    assert (info["width"], info["height"], info["format"]) == (200, 100, "jpeg")
    jpeg = run("w_200,h_100,c_fill", "jpg", source=source)
    assert info["bytes"] == len(jpeg.body)
    assert info["blurhash"] == source_summary(source)["blurhash"]
    info = describe(source, f"/i/{IMAGE_ID}/f_webp/x.json")
    assert info["format"] == "webp" and info["width"] == 512


def test_source_summary_matches_the_reference_blurhash() -> None:
    source = quadrant("png")
    summary = source_summary(source)
    img = to_srgb(pyvips.Image.thumbnail_buffer(source, 32, height=32))
    rows = array(img)[:, :, :3].tolist()
    assert summary["blurhash"] == blurhash_reference.encode(rows, 4, 3)
    assert len(str(summary["blurhash"])) == 28


@pytest.mark.parametrize(
    ("colour", "hexcode"), [((200, 30, 40), "#c81e28"), ((0, 0, 0), "#000000")]
)
def test_dominant_colour(colour: tuple[int, int, int], hexcode: str) -> None:
    img = solid(64, 48, colour)
    img = img.insert(solid(10, 10, (0, 255, 0)), 0, 0)
    assert source_summary(bytes(img.pngsave_buffer()))["dominant_color"] == hexcode


# ---------------------------------------------------------------- errors and limits


@pytest.mark.parametrize(
    "source",
    [
        b"",
        b"not an image",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
        quadrant("jpeg")[:200],
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    ],
)
def test_undecodable_sources_are_invalid_image(source: bytes) -> None:
    with pytest.raises(InvalidImage):
        run("w_100", source=source)
    with pytest.raises(InvalidImage):
        source_summary(source)


def test_truncated_jpeg_never_leaks_libvips_text() -> None:
    try:
        run("", source=quadrant("jpeg")[: len(quadrant("jpeg")) // 2])
    except OriginError as exc:
        assert "vips" not in exc.message.lower()


def test_source_pixel_limit_is_checked_before_decoding() -> None:
    limits = Limits(max_source_pixels=400 * 300 - 1)
    with pytest.raises(InvalidImage, match="pixels"):
        run("w_10", source=quadrant("png"), limits=limits)
    with pytest.raises(InvalidImage, match="pixels"):
        run("", "gif", source=animated("gif"), limits=Limits(max_source_pixels=60 * 40 * 5))


@pytest.mark.parametrize(
    ("chain", "named"),
    [
        ("r_45", "r_45"),
        ("w_300,h_300,c_pad", "c_pad"),
        ("w_0.9,h_1.0,c_fill", "c_fill"),
        ("w_10,h_250,c_fill", "c_fill"),
    ],
)
def test_output_side_limit(chain: str, named: str) -> None:
    limits = Limits(max_output_dimension=260)
    with pytest.raises(LimitExceeded, match=named):
        render(quadrant("png"), parse_path(f"/i/{IMAGE_ID}/{chain}/x.png"), limits=limits)


def test_output_limit_on_a_whole_image() -> None:
    with pytest.raises(LimitExceeded):
        render(
            quadrant("png"),
            parse_path(f"/i/{IMAGE_ID}/x.png"),
            limits=Limits(max_output_dimension=399),
        )


def test_encoder_table_covers_every_format() -> None:
    assert set(ENCODERS) == {"jpeg", "png", "webp", "avif", "gif"}
    assert ENCODERS["jpeg"].default_quality == 80


# ---------------------------------------------------------------- property

_stage_tokens = st.lists(
    st.sampled_from(
        [
            "w_40",
            "h_30",
            "w_0.5",
            "h_0.7",
            "c_fill",
            "c_pad",
            "c_limit",
            "c_scale",
            "c_crop",
            "g_north",
            "g_south_east",
            "g_auto",
            "g_entropy",
            "x_5",
            "y_300",
            "ar_16:9",
            "dpr_1.5",
            "r_90",
            "r_33",
            "r_-200",
            "fl_h",
            "fl_hv",
            "e_grayscale",
            "e_sepia",
            "e_blur:40",
            "e_sharpen",
            "e_brightness:-30",
            "e_contrast:70",
            "e_saturation:50",
            "e_pixelate:7",
            "b_ff000080",
            "b_transparent",
            "l_text:Hi%2C",
            f"l_{OTHER_ID}",
            "o_40",
            "co_00ff00",
            "fs_10",
        ]
    ),
    min_size=1,
    max_size=5,
    unique=True,
).map(",".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_stage_tokens, max_size=3),
    st.sampled_from(["png", "jpg", "webp", "gif"]),
    st.sampled_from(["png", "gif"]),
)
def test_render_random_plans_raises_only_contract_errors(
    stages: list[str], ext: str, source_kind: str
) -> None:
    source = bytes(quadrant_small()) if source_kind == "png" else animated("gif", 2)
    path = "/".join([f"/i/{IMAGE_ID}", *stages, f"x.{ext}"])
    try:
        plan = parse_path(path)
    except (BadTransform, LimitExceeded):
        return
    try:
        r = render(
            source,
            plan,
            overlays={OTHER_ID: quadrant_small()},
            limits=Limits(max_output_dimension=400),
        )
    except (BadTransform, LimitExceeded):
        return
    img = decode(r.body)
    assert (img.width, img.height) == (r.width, r.height)


def quadrant_small() -> bytes:
    return _QUADRANT_SMALL


_QUADRANT_SMALL = bytes(
    pyvips.Image.new_from_buffer(quadrant("png"), "").resize(0.1).pngsave_buffer()
)
