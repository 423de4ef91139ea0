"""Upload-time analysis: what `.json`, `g_auto` and the `<picture>` placeholder need, found
once when an image is stored instead of on every request.

One shrink-on-load thumbnail (``ANALYSIS_SIZE`` px box, upright, sRGB) gives:

- the BlurHash and the dominant colour (``summarise``; `.json` runs ``source_summary``, the
  same on a 32 px thumbnail, for rows stored before this existed);
- the libvips attention focal point: ``smartcrop(interesting="attention")`` reports where
  it found the most interest (``attention_x``/``attention_y``, in the thumbnail's pixels),
  stored as fractions (0..1) of the width and height so it holds at any scale;
- the faces (origin.faces), found on a thumbnail of its own (``FACE_SIZE`` px: a 256 px one
  misses the smaller faces of a group), as fractions too.

libvips places attention on a 32 × 32 reduction of whatever it is given, blurred in
proportion to the crop window; the window used here is the square on the short side (one
full side, like most `c_fill` crops). A 256 px thumbnail finds the same point as the full
image to within a grid cell on scikit-image's photographs (a 32 px one does not).

Synchronous libvips: run it in the pool. It never refuses an upload the probe accepted: a
libvips failure is logged and gives None (the row then behaves like an older one).
"""

from __future__ import annotations

import logging

import numpy as np
import pyvips

from origin import faces, vips
from origin.blurhash import blurhash
from origin.decode import read_header
from origin.errors import OriginError
from origin.faces import FACE_SIZE
from origin.pixels import has_alpha, to_srgb
from origin.records import Analysis
from origin.transforms.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)

ANALYSIS_SIZE = 256  # px: the thumbnail box the analysis works in
SUMMARY_SIZE = 32  # px: the box the blurhash and the dominant colour are computed in
ATTENTION_GRID = 32  # libvips finds attention on a 32 x 32 reduction of its input


def focal_point(img: pyvips.Image) -> tuple[float, float]:
    """The attention focal point of an upright sRGB image, as fractions of its sides.

    libvips reports the top-left corner of the winning cell of its 32 × 32 grid; the centre
    of that cell is kept (half a cell, 1.6 % of a side, nearer the feature)."""
    side = min(img.width, img.height)
    _, found = img.smartcrop(
        side, side, interesting="attention", attention_x=True, attention_y=True
    )
    return (
        _cell_centre(int(found["attention_x"]), img.width),
        _cell_centre(int(found["attention_y"]), img.height),
    )


def _cell_centre(corner: int, side: int) -> float:
    cell = min(ATTENTION_GRID - 1, max(0, round(corner * ATTENTION_GRID / side)))
    return round((cell + 0.5) / ATTENTION_GRID, 4)


def _analyse(source: bytes, limits: Limits) -> Analysis:
    header = read_header(source, limits.max_source_pixels)
    thumb = vips.thumbnail(source, header.format, ANALYSIS_SIZE, height=ANALYSIS_SIZE)
    # thumbnail reads sequentially; smartcrop and the summary both need the pixels again
    thumb = to_srgb(thumb).copy_memory()
    summary = summarise(thumb)
    fx, fy = focal_point(thumb)
    found = faces.detect(
        to_srgb(vips.thumbnail(source, header.format, FACE_SIZE, height=FACE_SIZE))
    )
    return Analysis(str(summary["blurhash"]), str(summary["dominant_color"]), fx, fy, found)


def analyse(source: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Analysis | None:
    """The analysis of a source the upload probe accepted, or None when libvips fails."""
    try:
        return _analyse(source, limits)
    except (OriginError, pyvips.Error) as exc:
        log.warning("upload analysis failed, left to request time: %s", str(exc)[:200])
        return None


def summarise(img: pyvips.Image) -> dict[str, object]:
    """``{"blurhash", "dominant_color"}`` of an upright 8-bit sRGB image, reduced first to fit
    a 32 px box (a no-op for the 32 px thumbnail ``source_summary`` decodes)."""
    if max(img.width, img.height) > SUMMARY_SIZE:
        img = img.thumbnail_image(SUMMARY_SIZE, height=SUMMARY_SIZE)
    if has_alpha(img):
        img = img.flatten(background=[255, 255, 255]).cast("uchar")
    pixels = np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )[:, :, :3]
    # dominant colour: the most common 4-bit-per-channel bucket, averaged
    flat = pixels.reshape(-1, 3).astype(np.int64)
    buckets = (flat[:, 0] >> 4) << 8 | (flat[:, 1] >> 4) << 4 | flat[:, 2] >> 4
    top = np.bincount(buckets).argmax()
    r, g, b = (round(float(v)) for v in flat[buckets == top].mean(axis=0))
    return {"blurhash": blurhash(pixels), "dominant_color": f"#{r:02x}{g:02x}{b:02x}"}


def _summary(source: bytes, limits: Limits) -> dict[str, object]:
    header = read_header(source, limits.max_source_pixels)
    img = vips.thumbnail(source, header.format, SUMMARY_SIZE, height=SUMMARY_SIZE)
    return summarise(to_srgb(img))


def source_summary(source: bytes, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, object]:
    """``{"blurhash", "dominant_color"}`` of a source image, from a ~32 px thumbnail (for
    images stored before the upload-time analysis existed)."""
    return vips.guarded(lambda: _summary(source, limits))
