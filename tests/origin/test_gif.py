"""Animated GIF out (origin.gif): frames stay close to the unquantised frames, a colour that
appears late or only on thin lines survives, a group of frames shares one palette, a frame
its group's palette cannot draw gets its own, a photograph maps each pixel to its nearest
colour while a smooth gradient is dithered (no false contours), and delay/loop are kept."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import pyvips
import skimage
from PIL import Image
from skimage.metrics import structural_similarity

from benchmarks.fidelity import block_rms
from benchmarks.images import gradient
from origin import gif, render
from origin.decode import load_frames, read_header
from origin.transforms.declarations import StageContext
from origin.transforms.limits import DEFAULT_LIMITS
from origin.transforms.parse import parse_path
from tests.origin.conftest import IMAGE_ID, decode

Pixels = np.ndarray  # type: ignore[type-arg]

FRAMES, WIDTH, HEIGHT = 12, 200, 150
LATE = 8  # the first frame with the green disc
CHAIN = "w_100,h_75,c_fit"


def strip_of(frames: list[Pixels], delay: int = 80, loop: int | None = 0) -> pyvips.Image:
    strip = pyvips.Image.new_from_array(np.concatenate(frames)).copy(interpretation="srgb")
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", frames[0].shape[0])
    strip.set_type(pyvips.GValue.array_int_type, "delay", [delay] * len(frames))
    if loop is not None:
        strip.set_type(pyvips.GValue.gint_type, "loop", loop)
    return strip


@cache
def pan() -> bytes:
    """A pan over a photograph (skimage's cat); from frame LATE on, a green-to-blue disc that
    no earlier frame has, and a one-pixel magenta line and a two-pixel cyan one throughout."""
    cat = skimage.data.chelsea()  # 300x451
    frames = []
    for i in range(FRAMES):
        left = round(i * (cat.shape[1] - WIDTH * 2) / (FRAMES - 1))
        frame = cat[:, left : left + WIDTH * 2][::2, ::2].copy()  # 150x200
        frame[41, 10:190] = (255, 0, 255)
        frame[60:140, 120:122] = (0, 255, 255)
        if i >= LATE:
            yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
            disc = (xx - 150) ** 2 + (yy - 75) ** 2 < 30**2
            frame[disc] = np.stack([0 * xx, 160 + 80 * xx // WIDTH, 40 + 100 * yy // HEIGHT], 2)[
                disc
            ]
        frames.append(frame)
    return bytes(strip_of(frames).gifsave_buffer(effort=7))


def unquantised(source: bytes, chain: str) -> list[Pixels]:
    """The frames the encoder is given for `chain`, before any palette."""
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.gif")
    frames, _ = load_frames(source, read_header(source, DEFAULT_LIMITS.max_source_pixels))
    for stage in plan.stages:
        frames = render.run_stage(frames, stage, StageContext(DEFAULT_LIMITS), later_stages=False)
    return [as_array(f) for f in frames]


def as_array(img: pyvips.Image) -> Pixels:
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )


def gif_frames(body: bytes) -> list[Pixels]:
    strip = decode(body, n=-1)
    page = int(strip.get("page-height"))
    pixels = as_array(strip)[:, :, :3]
    return [pixels[i * page : (i + 1) * page] for i in range(strip.height // page)]


def colour_tables(body: bytes, per_frame: bool = False) -> list[bytes]:
    """Every colour table of a GIF: the global one, then each frame's local one; with
    ``per_frame``, the one each frame uses (its own, else the global one)."""
    tables, pos = [], 13
    used: list[bytes] = []

    def table(flags: int) -> int:
        size = 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
        if size:
            tables.append(body[pos : pos + size])
        return size

    def skip_sub_blocks(at: int) -> int:
        while body[at]:
            at += body[at] + 1
        return at + 1

    pos += table(body[10])
    while body[pos] != 0x3B:  # trailer
        if body[pos] == 0x21:  # extension: introducer, label, sub-blocks
            pos = skip_sub_blocks(pos + 2)
        else:
            assert body[pos] == 0x2C  # image descriptor (10 bytes), table, LZW code size, data
            flags, pos = body[pos + 9], pos + 10
            size = table(flags)
            used.append(tables[-1] if size else tables[0])
            pos = skip_sub_blocks(pos + size + 1)
    return used if per_frame else tables


def render_gif(source: bytes, chain: str = CHAIN) -> bytes:
    return render.render(source, parse_path(f"/i/{IMAGE_ID}/{chain}/x.gif")).body


def test_frames_stay_close_to_the_unquantised_frames() -> None:
    ref = unquantised(pan(), CHAIN)
    out = gif_frames(render_gif(pan()))
    assert len(out) == FRAMES and out[0].shape == (75, 100, 3)
    scores = [
        structural_similarity(r, o, channel_axis=2, data_range=255)
        for r, o in zip(ref, out, strict=True)
    ]
    assert np.mean(scores) >= 0.95 and min(scores) >= 0.93, scores
    errors = [np.abs(r.astype(int) - o).mean() for r, o in zip(ref, out, strict=True)]
    assert max(errors) < 6, errors


def test_a_colour_that_appears_late_survives() -> None:
    ref = unquantised(pan(), CHAIN)
    out = gif_frames(render_gif(pan()))
    for i in range(LATE, FRAMES):
        want = ref[i][32:44, 69:81].reshape(-1, 3).mean(axis=0)  # the disc's middle
        got = out[i][32:44, 69:81].reshape(-1, 3).mean(axis=0)
        assert want[1] > 150 and want[0] < 20  # it is the green disc
        assert np.abs(want - got).max() < 12, (i, want, got)


def test_thin_lines_keep_their_colour() -> None:
    ref = unquantised(pan(), CHAIN)
    out = gif_frames(render_gif(pan()))
    for r, o in zip(ref, out, strict=True):
        for rows, cols in ((slice(20, 21), slice(10, 90)), (slice(32, 68), slice(60, 61))):
            want = r[rows, cols].reshape(-1, 3).mean(axis=0)
            got = o[rows, cols].reshape(-1, 3).mean(axis=0)
            assert np.abs(want - got).max() < 20, (want, got)


def coordinates(n: int, h: int, w: int) -> Pixels:
    """A group whose pixels are their own (frame, row, column)."""
    coords = np.zeros((n, h, w, 3), dtype=np.uint8)
    coords[..., 0] = np.arange(n)[:, None, None]
    coords[..., 1] = np.arange(h)[None, :, None]
    coords[..., 2] = np.arange(w)[None, None, :]
    return coords


def test_the_sample_crosses_every_row_and_every_column() -> None:
    n, h, w = gif.GROUP, 200, 250
    seen = gif.sample(coordinates(n, h, w)).reshape(-1, 3)
    assert set(seen[:, 1]) == set(range(h)) and set(seen[:, 2]) == set(range(w))
    assert len(seen) <= 1.2 * gif.SAMPLE_PIXELS


def test_a_group_of_frames_shares_one_palette() -> None:
    """The first group's frames use the global table; a later group's frames each carry its
    table (Pillow wrote one on every frame after the first, 768 bytes each)."""
    body = render_gif(pan())
    tables = colour_tables(body)
    assert len(tables) == 1 + FRAMES - gif.GROUP  # the global one, then the later groups'
    assert len(set(tables)) == math.ceil(FRAMES / gif.GROUP)
    assert len(gif_frames(body)) == FRAMES


def test_only_a_later_group_s_frames_carry_a_table() -> None:
    """24 frames of a yellow disc moving on blue: two groups, 1 + 12 tables (there were 24,
    and the GIF was 4.6 times its source); every frame decodes as it was drawn."""
    frames = []
    for i in range(24):
        frame = np.zeros((100, 160, 3), np.uint8)
        frame[:] = (20, 40, 200)
        frame[40:60, 5 + 6 * i : 25 + 6 * i] = (250, 220, 10)
        frames.append(frame)
    body = gif.save_animation(strip_of(frames))
    assert len(colour_tables(body)) == 1  # both groups quantise to the same two colours
    assert all((got == want).all() for got, want in zip(gif_frames(body), frames, strict=True))


def test_a_frame_its_group_palette_cannot_draw_gets_its_own() -> None:
    """Frame 0 is red exactly where the group's sample does not look: the group palette has
    no red, the drift check sees it and gives frame 0 a palette of its own."""
    n, h, w = gif.GROUP, 90, 120
    seen = {tuple(p) for p in gif.sample(coordinates(n, h, w)).reshape(-1, 3) if p[0] == 0}
    grey = np.broadcast_to(np.linspace(40, 200, w, dtype=np.uint8)[None, :, None], (h, w, 3))
    frames = [grey.copy() for _ in range(n)]
    for y in range(h):
        for x in range(w):
            if (0, y, x) not in seen:
                frames[0][y, x] = (220, 20, 20)
    assert not any((frames[0][y, x] == (220, 20, 20)).all() for _, y, x in seen)
    body = gif.save_animation(strip_of(frames))
    red = gif_frames(body)[0][frames[0][..., 1] == 20]
    assert np.abs(red.astype(int) - (220, 20, 20)).max() < 24
    assert len(set(colour_tables(body))) == 2


def test_a_smooth_gradient_is_dithered() -> None:
    """Mapped to each pixel's nearest colour, this gradient bands (8x8 block means ~1.4 off
    the frame's on every frame); dithered, they stay within ~0.5."""
    frames = gradient(WIDTH, HEIGHT, FRAMES, step=4)
    out = gif_frames(gif.save_animation(strip_of(frames)))
    errors = [block_rms(f, o) for f, o in zip(frames, out, strict=True)]
    assert np.mean(errors) < 1.0, errors


def undithered(frame: Pixels, table: bytes) -> Pixels:
    """`frame` mapped onto a colour table by Pillow, each pixel to its nearest colour."""
    onto = Image.new("P", (1, 1))
    onto.putpalette(table)
    mapped = Image.fromarray(np.ascontiguousarray(frame)).quantize(
        palette=onto, dither=Image.Dither.NONE
    )
    return np.frombuffer(table, dtype=np.uint8).reshape(-1, 3)[np.asarray(mapped)]


def test_a_photograph_maps_each_pixel_to_its_nearest_colour() -> None:
    """No dither grain where the palette draws the picture without false contours: every
    frame of the pan is its unquantised frame remapped, undithered, onto its own colour table
    (dithered, only ~58 % of the pixels would be)."""
    body = render_gif(pan())
    for ref, out, table in zip(
        unquantised(pan(), CHAIN), gif_frames(body), colour_tables(body, True), strict=True
    ):
        assert (undithered(ref, table) == out).all(axis=2).mean() >= 0.99


def test_a_smooth_sky_over_a_photograph_is_dithered_and_only_the_sky() -> None:
    """A third of each frame a smooth gradient, the rest the photograph: the gradient's tiles
    are dithered (8x8 block means close to the frame's), the photograph's are not."""
    sky = gradient(WIDTH, HEIGHT, FRAMES, step=4)
    frames = []
    for photo, top in zip(unquantised(pan(), "w_200,h_150,c_fit"), sky, strict=True):
        frame = photo.copy()
        frame[:50] = top[:50]
        frames.append(frame)
    body = gif.save_animation(strip_of(frames))
    out = gif_frames(body)
    errors = [block_rms(f[:48], o[:48]) for f, o in zip(frames, out, strict=True)]
    assert np.mean(errors) < 1.0, errors  # undithered: 1.4-1.6 on every frame
    for frame, got, table in zip(frames, out, colour_tables(body, True), strict=True):
        assert (undithered(frame[80:], table) == got[80:]).all(axis=2).mean() >= 0.99


def test_false_contours_are_found_in_smooth_tiles() -> None:
    """A step the remap makes (R + 2G + B at least BAND_STEP) where the frame is flat (at
    most FLAT apart), in more than BANDING_SHARE of a smooth tile's pairs: that tile and the
    smooth tiles connected to it band, textured ones do not. A 16 x 80 frame is one row of
    five tiles; here the last two are noise."""
    assert (gif.TILE, gif.BAND_STEP, gif.FLAT) == (16, 16, 4)
    frame = np.full((16, 80, 3), 100, dtype=np.uint8)
    frame[:, 48:] = np.random.default_rng(1).integers(0, 256, (16, 32, 3), dtype=np.uint8)

    def stepped(base: Pixels, by: int) -> Pixels:
        out = base.copy()
        out[:, 8:48, 0] += by  # a step of `by` in R at column 8
        return out

    assert not gif.banding(frame, frame).any()
    assert gif.banding(frame, stepped(frame, 16)).tolist() == [[True, True, True, False, False]]
    assert not gif.banding(frame, stepped(frame, 15)).any()  # too small a step
    assert gif.banding(stepped(frame, 4), stepped(frame, 20)).any()  # the frame's 4: flat
    assert not gif.banding(stepped(frame, 5), stepped(frame, 21)).any()  # the frame's own edge
    noisy = np.random.default_rng(2).integers(0, 256, frame.shape, dtype=np.uint8)
    assert not gif.banding(noisy, stepped(noisy, 16)).any()  # texture: no smooth tile


@pytest.mark.parametrize("shape", [(8, 12), (20, 36), (132, 240)])
def test_block_and_tile_sums_match_a_plain_sum_per_block(shape: tuple[int, int]) -> None:
    """The drift's 4x4 block means and banding's tile counts, summed row-first in place, are
    what numpy's plain sum over each block gives, at the extremes of their types (a pixel
    off by 255 everywhere, counts of 2) and on noise."""
    rng = np.random.default_rng(7)
    height, width = shape
    for diff in (
        rng.integers(-255, 256, (height, width, 3)).astype(np.int16),
        np.full((height, width, 3), -255, dtype=np.int16),
    ):
        blocks = diff.reshape(height // 4, 4, width // 4, 4, 3).sum(axis=(1, 3))
        worst = np.abs(blocks).max() / 16
        assert gif._block_drift(diff) == worst
        one = np.zeros_like(diff)  # a single pixel off, in the last block
        one[-1, -1, 2] = 160
        assert gif._block_drift(one) == 10.0
    down, across = -(-height // 16) * 16, -(-width // 16) * 16
    for counts in (rng.integers(0, 3, (down, across)), np.full((down, across), 2)):
        counts = counts.astype(np.uint8)
        plain = counts.reshape(down // 16, 16, across // 16, 16).sum(axis=(1, 3))
        assert gif._tile_sums(counts).tolist() == plain.tolist()


def test_dithering_stays_inside_the_banding_tiles_up_to_the_frame_edges() -> None:
    """The dithered pixels replace the nearest colours in the banding tiles only, the partial
    tiles at the frame's right and bottom edges included: there a flat 104 on a palette of 100
    and 108 averages to 104, elsewhere it stays one colour."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[0], palette[1] = (100, 100, 100), (108, 108, 108)
    onto = gif.target(palette)
    frame = np.full((37, 53, 3), 104, dtype=np.uint8)
    mapped = gif.remap(frame, onto)
    tiles = np.zeros((3, 4), dtype=bool)
    tiles[2, 3] = tiles[0, 1] = True  # the bottom-right tile is 5 x 5 px
    out = np.asarray(gif._dithered_in(tiles, frame, mapped, palette, onto))
    inside = np.repeat(np.repeat(tiles, gif.TILE, 0), gif.TILE, 1)[:37, :53]
    assert np.array_equal(out[~inside], np.asarray(mapped)[~inside])
    for rows, cols in [(slice(0, 16), slice(16, 32)), (slice(32, 37), slice(48, 53))]:
        grey = palette[out[rows, cols], 0].astype(float)
        assert set(np.unique(grey)) == {100.0, 108.0} and abs(grey.mean() - 104) <= 1.5


@pytest.mark.parametrize("count", [1, 5, 256, 300])
def test_a_palette_holds_an_image_s_own_colours(count: int) -> None:
    """An image of at most 256 colours is given exactly those (the rest of the 256 entries
    black); a richer one fills all 256 with colours near its own."""
    rng = np.random.default_rng(count)
    colours = rng.integers(0, 256, (count, 3), dtype=np.uint8)
    pixels = np.repeat(colours, 7, axis=0).reshape(count, 7, 3)
    palette = gif.quantise(np.ascontiguousarray(pixels))
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    found = {tuple(c) for c in palette.tolist()}
    if count <= 256:
        assert {tuple(c) for c in colours.tolist()} <= found
        assert len(found - {(0, 0, 0)}) <= count
    else:
        nearest = np.abs(colours[:, None, :].astype(int) - palette[None]).sum(axis=2).min(axis=1)
        assert len(found) > 200 and nearest.mean() < 12


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 5), (1, 7)])
def test_frames_under_four_pixels_keep_their_colours(shape: tuple[int, int]) -> None:
    """A frame too small for a 4x4 block is checked pixel by pixel: the group's sample can
    miss a tiny frame's colours altogether (frame i gives rows i, i+n...), and it then gets a
    palette of its own."""
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(3)]
    out = gif_frames(gif.save_animation(strip_of(frames)))
    assert len(out) == len(frames)
    for want, got in zip(frames, out, strict=True):
        assert np.abs(want.astype(int) - got).max() <= 8


@pytest.mark.parametrize(("loop", "plays"), [(0, 0), (1, 1), (3, 3), (None, 0)])
def test_delay_and_loop_are_kept(loop: int | None, plays: int) -> None:
    frames = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (0, 90, 180)]
    out = decode(gif.save_animation(strip_of(frames, delay=75, loop=loop)), n=-1)
    assert out.get("n-pages") == 3
    assert list(out.get("delay")) == [80, 80, 80]  # the GIF's 10 ms, rounded as libvips does
    assert out.get("loop") == plays


def test_only_an_opaque_animation_small_enough_to_hold_takes_this_path() -> None:
    frames = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (0, 90)]
    assert gif.fits(strip_of(frames))
    assert not gif.fits(strip_of(frames).bandjoin(255))  # alpha: libvips' writer
    assert not gif.fits(pyvips.Image.new_from_array(frames[0]).copy(interpretation="srgb"))
    big = pyvips.Image.black(4096, 6000, bands=3).cast("uchar").copy()
    big.set_type(pyvips.GValue.gint_type, "page-height", 1000)
    assert not gif.fits(big)
