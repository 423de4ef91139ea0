"""Animated GIF out: one palette per group of frames, remapped and written by Pillow.

libvips' GIF writer (cgif + libimagequant) quantises every frame and then remaps it with
libimagequant's nearest-colour search: ~15 ms per 240x135 frame whatever the effort, most of
it in that search (docs/performance.md, "Encoder settings"). Here instead:

- the frames are taken in groups of `GROUP`; each group's palette is quantised once, by
  libimagequant (through libvips), from a sample of about `SAMPLE_PIXELS` of its pixels
  that crosses every row and every column of the frame once per group, so that a one-pixel
  line in a colour of its own reaches the palette;
- Pillow maps every frame onto its group's palette, each pixel to the colour its colour
  cache finds nearest (C), and writes the GIF (LZW; after the first frame only the
  rectangle that changed, identical frames merged as libvips does);
- a frame whose 4x4 block means are more than `MAX_BLOCK_ERROR` from the unquantised frame
  (a colour the sample missed; pixel by pixel for a frame under 4 px) gets a palette of
  its own, quantised from all its pixels (a group of at most SAMPLE_PIXELS pixels is
  sampled whole);
- where the nearest colours make false contours (`banding`: a smooth tile of TILE x TILE
  pixels in which more than `BANDING_SHARE` of neighbouring pixels are a step apart where
  the frame is flat, as a smooth gradient or a clear sky on too few colours, and the smooth
  region around it), the smallest rectangle of tiles holding them is mapped again with
  Floyd-Steinberg dithering and those tiles take the dithered pixels. A photograph's
  textured parts are not dithered: there the nearest colours are closer to it than dither
  grain (a higher SSIM on every photographic animation measured, docs/performance.md
  "Encoder settings"), its LZW smaller and the map cheaper. gifsicle does not dither
  either.

Pillow only ever encodes arrays made here: it never decodes a client's bytes. Animations
with an alpha band (transparent pixels) and very large ones stay on libvips' writer, which
streams one frame at a time (`fits`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyvips
from PIL import Image

from origin import deadline

GROUP = 12  # consecutive frames that share one palette
SAMPLE_PIXELS = 8100  # pixels a group's palette is quantised from (every n-th of every n-th row)
EFFORT = 4  # libimagequant's effort for a group palette (5+ doubles its cost, 3 is worse)
MAX_BLOCK_ERROR = 24.0  # per channel, 0-255: above it a frame gets a palette of its own
BAND_STEP = 16  # R + 2G + B (0-1020): a step the remap makes between two neighbours ...
FLAT = 4  # ... where the frame's own two pixels are at most this far apart: a false contour
TILE = 16  # px: false contours are counted tile by tile
SMOOTH = 0.9  # a tile with at least this share of flat neighbour pairs is smooth ...
BANDING_SHARE = 0.03  # ... and bands with more than this share of false contours: dithered
MAX_BYTES = 64 * 1024 * 1024  # RGB bytes of all frames held at once; above, libvips' writer

Pixels = np.ndarray[Any, np.dtype[np.uint8]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]


def fits(img: pyvips.Image) -> bool:
    """An opaque 8-bit RGB animation (a strip with page-height) small enough to hold."""
    if img.bands != 3 or img.format != "uchar" or not img.get_typeof("page-height"):
        return False
    page, width, height = int(img.get("page-height")), int(img.width), int(img.height)
    return 0 < page < height and height % page == 0 and width * height * 3 <= MAX_BYTES


def save_animation(strip: pyvips.Image) -> bytes:
    """The GIF of an animation strip that `fits`, with its `delay` (ms) and `loop` (libvips'
    meaning: 0 forever, n plays n times). Under a render's deadline (origin.deadline) the
    work stops between frames once it has passed."""
    page = int(strip.get("page-height"))
    count = strip.height // page
    frames: list[Image.Image] = []
    for first in range(0, count, GROUP):
        deadline.check()
        n = min(GROUP, count - first)
        group = _pixels(strip.crop(0, first * page, strip.width, n * page)).reshape(
            n, page, strip.width, 3
        )
        palette = quantise(sample(group))
        onto = target(palette)
        for frame in group:
            deadline.check()
            frames.append(_remap_checked(frame, palette, onto))
    deadline.check()
    return _write(frames, _delays(strip, count), _loop(strip))


def sample(group: Pixels) -> Pixels:
    """About SAMPLE_PIXELS pixels of a (frames, height, width, 3) group, as one image: frame i
    gives its rows i, i+n, i+2n... and its columns i, i+n... (n frames), every `thin`-th pixel
    along each. Over a group every row and every column is looked at, so a line or a mark in
    a colour of its own reaches the palette (libimagequant counts colours: the layout of the
    sample does not matter)."""
    n, height, width, _ = group.shape
    if n * height * width <= SAMPLE_PIXELS:  # a small group: all of it
        return _square(group.reshape(-1, 3))
    thin = max(1, round(2 * height * width / SAMPLE_PIXELS))
    parts = []
    for i in range(n):
        start = i % thin
        parts.append(group[i, i::n, start::thin].reshape(-1, 3))
        parts.append(group[i, start::thin, i::n].reshape(-1, 3))
    return _square(np.concatenate(parts))


def _square(pixels: Pixels) -> Pixels:
    """(n, 3) pixels as a near-square image, the first ones repeated to fill it."""
    side = max(1, int(len(pixels) ** 0.5))
    rows = -(-len(pixels) // side)
    return np.resize(pixels, (rows * side, 3)).reshape(rows, side, 3)


def quantise(pixels: Pixels) -> Pixels:
    """A palette (256, 3) for an (h, w, 3) image: libimagequant's, read back from the PLTE of
    an uncompressed palette PNG of it (libvips' PNG writer: 4.8 ms for a W5 group's sample,
    against 6.6 ms through its GIF writer, which also remaps and LZW-codes the sample)."""
    height, width, _ = pixels.shape
    img = pyvips.Image.new_from_memory(pixels.data, width, height, 3, "uchar")
    png = img.pngsave_buffer(
        palette=True,
        effort=EFFORT,
        dither=0.0,
        compression=0,
        bitdepth=8,
        keep=int(pyvips.ForeignKeep.NONE),
    )
    entries = _plte(bytes(png))
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(entries)] = entries[:256]
    return palette


def _plte(png: bytes) -> Pixels:
    """The (n, 3) colours of a PNG's PLTE chunk (a PNG written by libvips just before)."""
    at = 8  # the signature
    while at + 8 <= len(png):
        length, kind = int.from_bytes(png[at : at + 4], "big"), png[at + 4 : at + 8]
        if kind == b"PLTE":
            return np.frombuffer(png, dtype=np.uint8, count=length, offset=at + 8).reshape(-1, 3)
        at += 12 + length  # length, type, data, CRC
    raise ValueError("libvips wrote a palette PNG without a PLTE chunk")


def target(palette: Pixels) -> Image.Image:
    """A Pillow "P" image carrying `palette`: reuse it for every frame mapped onto that
    palette (Pillow keeps its colour cache on it)."""
    img = Image.new("P", (1, 1))
    img.putpalette(palette.tobytes())
    return img


def remap(frame: Pixels, onto: Image.Image, dither: bool = False) -> Image.Image:
    """An (h, w, 3) frame as a Pillow "P" image on `onto`'s palette: each pixel the colour
    Pillow finds nearest, or Floyd-Steinberg dithered."""
    how = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    return Image.fromarray(frame).quantize(palette=onto, dither=how)


def drift(frame: Pixels, got: Pixels) -> float:
    """The largest difference, per channel, between the mean colours of a 4x4 block of
    `frame` and of `got`, its colours after the remap (the nearest colour is off by less
    than a palette step, dithering averages out; a missing colour does neither). Blocks are
    laid from the top left and again from the far edges, so every pixel is in one; a frame
    under 4 px is compared pixel by pixel."""
    diff = frame.astype(np.int16)
    diff -= got
    height, width = diff.shape[:2]
    if height < 4 or width < 4:
        return float(np.abs(diff).max())
    down, across = height // 4 * 4, width // 4 * 4
    worst = _block_drift(diff[:down, :across])
    if down < height:
        worst = max(worst, _block_drift(diff[height - 4 :, :across]))
    if across < width:
        worst = max(worst, _block_drift(diff[:down, width - 4 :]))
    if down < height and across < width:
        worst = max(worst, _block_drift(diff[height - 4 :, width - 4 :]))
    return worst


def _block_drift(diff: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    """The largest 4x4 block mean of `diff` (height and width multiples of 4), per channel:
    each block's four rows added first, as whole rows (contiguous), then its four columns on
    the quarter-height result (int16 holds 16 x 255; numpy's sum would widen to int64)."""
    height, width, bands = diff.shape
    quad = diff.reshape(height // 4, 4, width * bands)
    rows = quad[:, 0] + quad[:, 1]
    rows += quad[:, 2]
    rows += quad[:, 3]
    cols = rows.reshape(height // 4, width // 4, 4, bands)
    blocks = cols[:, :, 0] + cols[:, :, 1]
    blocks += cols[:, :, 2]
    blocks += cols[:, :, 3]
    return float(np.abs(blocks).max()) / 16


def banding(frame: Pixels, got: Pixels) -> Mask:
    """The TILE x TILE tiles (a boolean grid, the last row and column partial) where the
    remap makes false contours: smooth tiles (at least SMOOTH of their neighbour pairs, left-
    right and top-bottom, at most FLAT apart in the frame) in which more than BANDING_SHARE
    of the pairs are parted by a step of at least BAND_STEP, and the smooth region around
    them. Brightness as R + 2G + B. A contour in a textured tile is masked by the texture;
    in a smooth one it shows."""
    source, mapped = _brightness(frame), _brightness(got)
    height, width = source.shape
    down, across = -(-height // TILE) * TILE, -(-width // TILE) * TILE
    flat, contours = (np.zeros((down, across), dtype=np.uint8) for _ in range(2))
    level = np.abs(np.diff(source, axis=0)) <= FLAT  # top-bottom pairs, at the upper pixel
    flat[: height - 1, :width] = level
    contours[: height - 1, :width] = level & (np.abs(np.diff(mapped, axis=0)) >= BAND_STEP)
    level = np.abs(np.diff(source, axis=1)) <= FLAT  # left-right pairs, at the left pixel
    flat[:height, : width - 1] += level
    contours[:height, : width - 1] += level & (np.abs(np.diff(mapped, axis=1)) >= BAND_STEP)
    pairs = _pairs(height, width)
    smooth: Mask = (pairs > 0) & (_tile_sums(flat) >= SMOOTH * pairs)
    bands: Mask = smooth & (_tile_sums(contours) > BANDING_SHARE * pairs)
    return _spread(bands, smooth)


def _tile_sums(counts: Pixels) -> np.ndarray[Any, np.dtype[np.int32]]:
    """Per TILE x TILE tile, the sum of `counts` (height and width multiples of TILE; each
    count at most 2): a tile's rows added first (contiguous), then its columns."""
    down, across = counts.shape
    rows = counts.reshape(down // TILE, TILE, across).sum(axis=1, dtype=np.uint16)
    sums: np.ndarray[Any, np.dtype[np.int32]] = rows.reshape(
        down // TILE, across // TILE, TILE
    ).sum(axis=2, dtype=np.int32)
    return sums


@functools.lru_cache(maxsize=64)
def _pairs(height: int, width: int) -> np.ndarray[Any, np.dtype[np.int32]]:
    """Neighbour pairs per tile of a height x width frame (as `banding` counts them)."""
    counts = np.zeros((-(-height // TILE) * TILE, -(-width // TILE) * TILE), dtype=np.uint8)
    counts[: height - 1, :width] += 1
    counts[:height, : width - 1] += 1
    pairs = _tile_sums(counts)
    pairs.setflags(write=False)  # shared by every call for this size
    return pairs


def _spread(seeds: Mask, within: Mask) -> Mask:
    """The tiles of `within` connected (8 ways) to a tile of `seeds` through `within`: the
    whole smooth region a contour lies in (between two contours it is off by a flat band)."""
    region = seeds & within
    if not region.any():  # most frames of a photograph: nothing to grow
        return region
    while True:
        grown = _grown(region) & within
        if (grown == region).all():
            return region
        region = grown


def _grown(tiles: Mask) -> Mask:
    """`tiles` and their eight neighbours."""
    padded = np.pad(tiles, 1)
    rows, cols = tiles.shape
    out = np.zeros_like(tiles)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + rows, dx : dx + cols]
    return out


def _brightness(pixels: Pixels) -> np.ndarray[Any, np.dtype[np.int16]]:
    """R + 2G + B, in place on one int16 copy (a third of the passes of the plain sum)."""
    bright = pixels[..., 1].astype(np.int16)
    bright <<= 1
    bright += pixels[..., 0]
    bright += pixels[..., 2]
    return bright


def _remap_checked(frame: Pixels, palette: Pixels, onto: Image.Image) -> Image.Image:
    """The frame on its group's palette, each pixel its nearest colour; on a palette of its
    own if the group's lacks a colour (`drift`); dithered in the tiles where the nearest
    colours band (`banding`)."""
    mapped = remap(frame, onto)
    got = _colours(palette, mapped)
    if drift(frame, got) > MAX_BLOCK_ERROR:
        palette = quantise(np.ascontiguousarray(frame))
        onto = target(palette)
        mapped = remap(frame, onto)
        got = _colours(palette, mapped)
    tiles = banding(frame, got)
    if not tiles.any():
        return mapped
    if tiles.all():
        return remap(frame, onto, dither=True)
    return _dithered_in(tiles, frame, mapped, palette, onto)


def _dithered_in(
    tiles: Mask, frame: Pixels, mapped: Image.Image, palette: Pixels, onto: Image.Image
) -> Image.Image:
    """`mapped` with the pixels of `tiles` taken from a Floyd-Steinberg map of the smallest
    rectangle of tiles that holds them (its error diffusion starts at the rectangle's edge,
    as it does at the frame's; W5's banding regions are a few tiles of a frame)."""
    down, across = np.nonzero(tiles.any(axis=1))[0], np.nonzero(tiles.any(axis=0))[0]
    first_row, last_row, first_col, last_col = down[0], down[-1] + 1, across[0], across[-1] + 1
    top, left = first_row * TILE, first_col * TILE
    bottom, right = min(frame.shape[0], last_row * TILE), min(frame.shape[1], last_col * TILE)
    dithered = remap(np.ascontiguousarray(frame[top:bottom, left:right]), onto, dither=True)
    inside = np.repeat(np.repeat(tiles[first_row:last_row, first_col:last_col], TILE, 0), TILE, 1)
    inside = inside[: bottom - top, : right - left]
    indices = np.array(mapped)  # uint8 "L", made "P" by its palette below
    region = indices[top:bottom, left:right]
    region[inside] = np.asarray(dithered)[inside]
    out = Image.fromarray(indices)
    out.putpalette(palette.tobytes())
    return out


def _colours(palette: Pixels, mapped: Image.Image) -> Pixels:
    """The (h, w, 3) colours of a "P" image on `palette` (np.take: ~4x faster than indexing)."""
    return np.take(palette, np.asarray(mapped), axis=0)


def _pixels(img: pyvips.Image) -> Pixels:
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, 3)
    )


def _delays(strip: pyvips.Image, count: int) -> list[int]:
    """Per-frame delays in ms, rounded to the GIF's 10 ms as libvips does (none: 0)."""
    delay: Sequence[int] = strip.get("delay") if strip.get_typeof("delay") else []
    return [round(d / 10) * 10 for d in (list(delay) + [0] * count)[:count]]


def _loop(strip: pyvips.Image) -> int | None:
    """Pillow's `loop` (the NETSCAPE repeat count) for libvips' `loop` (plays; 0 forever)."""
    plays = int(strip.get("loop")) if strip.get_typeof("loop") else 0
    return 0 if plays == 0 else (None if plays == 1 else plays - 1)


def _write(frames: list[Image.Image], delays: list[int], loop: int | None) -> bytes:
    out = io.BytesIO()
    extra: dict[str, Any] = {} if loop is None else {"loop": loop}
    frames[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=delays,
        disposal=1,
        optimize=False,
        **extra,
    )
    return global_tables_shared(out.getvalue())


def global_tables_shared(body: bytes) -> bytes:
    """``body`` with every frame's local colour table that repeats the global one left out
    (the frame then uses the global table: the same pixels). Pillow writes a local table on
    every frame after the first unless one palette is given for all; here the first group's
    frames share the global one, 768 bytes a frame."""
    out, pos = bytearray(body[:13]), 13
    global_size = _table_size(body[10])
    table = body[pos : pos + global_size]
    out += table
    pos += global_size
    while pos < len(body) and body[pos] != 0x3B:  # the trailer
        if body[pos] == 0x21:  # an extension: introducer, label, then sub-blocks
            end = _after_sub_blocks(body, pos + 2)
            out += body[pos:end]
            pos = end
            continue
        flags, size = body[pos + 9], _table_size(body[pos + 9])  # an image descriptor
        local = body[pos + 10 : pos + 10 + size]
        if size and size == global_size and local == table:
            out += body[pos : pos + 9] + bytes([flags & 0x40])  # keep interlace, no table
        else:
            out += body[pos : pos + 10 + size]
        start = pos + 10 + size  # the LZW code size, then the data's sub-blocks
        pos = _after_sub_blocks(body, start + 1)
        out += body[start:pos]
    return bytes(out + body[pos:])


def _table_size(flags: int) -> int:
    """The bytes of the colour table a descriptor's packed ``flags`` announce."""
    return 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0


def _after_sub_blocks(body: bytes, at: int) -> int:
    while body[at]:
        at += body[at] + 1
    return at + 1
