"""Upload-time analysis: what `.json`, `g_auto` and the `<picture>` placeholder need, found
once when an image is stored instead of on every request.

One shrink-on-load thumbnail (``ANALYSIS_SIZE`` px box, upright, sRGB) gives:

- the BlurHash and the dominant colour (``origin.pipeline.summarise``, the code `.json`
  runs for rows stored before this existed);
- the libvips attention focal point: ``smartcrop(interesting="attention")`` reports where
  it found the most interest (``attention_x``/``attention_y``, in the thumbnail's pixels),
  stored as fractions (0..1) of the width and height so it holds at any scale.

libvips places attention on a 32 × 32 reduction of whatever it is given, blurred in
proportion to the crop window; the window used here is the square on the short side (one
full side, like most `c_fill` crops). A 256 px thumbnail finds the same point as the full
image to within a grid cell on scikit-image's photographs (a 32 px one does not).

Synchronous libvips: run it in the pool. It never refuses an upload the probe accepted: a
libvips failure is logged and gives None (the row then behaves like an older one).
"""

from __future__ import annotations

import logging

import pyvips

from origin import ops, pipeline, vips
from origin.errors import OriginError
from origin.path import DEFAULT_LIMITS, Limits
from origin.records import Analysis

log = logging.getLogger(__name__)

ANALYSIS_SIZE = 256  # px: the thumbnail box the analysis works in
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
    header = ops.probe(source, limits)
    thumb = vips.thumbnail(source, header.format, ANALYSIS_SIZE, height=ANALYSIS_SIZE)
    # thumbnail reads sequentially; smartcrop and the summary both need the pixels again
    thumb = ops.to_srgb(thumb).copy_memory()
    summary = pipeline.summarise(thumb)
    fx, fy = focal_point(thumb)
    return Analysis(str(summary["blurhash"]), str(summary["dominant_color"]), fx, fy)


def analyse(source: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Analysis | None:
    """The analysis of a source the upload probe accepted, or None when libvips fails."""
    try:
        return _analyse(source, limits)
    except (OriginError, pyvips.Error) as exc:
        log.warning("upload analysis failed, left to request time: %s", str(exc)[:200])
        return None
