"""Working copies (a pyramid): reduced, visually lossless versions of a large still original,
made once at upload so that a small derivative never decodes every pixel of the original.

Which levels: the reductions of the upright original by 2, 4, 8, … whose long side is at
least ``MIN_LEVEL_SIDE`` px; the ``MAX_LEVELS`` smallest of them (a 4000×3000 original gets
2000×1500, 1000×750 and 500×375; a 1920×1080 one gets 960×540 and 480×270; one under
800 px gets none).
Animated images and GIFs get none; on local storage an animated GIF gets its frames copy
instead (origin.frames_copy: its frames decoded, full size), which every animated output
of it reads in place of the GIF.

How they are stored: upright (EXIF orientation applied, none recorded), converted to sRGB
(the sRGB profile is kept when the original had a profile, as derivatives keep it), no other
metadata. Opaque levels are baseline JPEG at q95 without chroma subsampling: fast to decode,
and libjpeg's shrink-on-load still applies to them; levels with alpha are PNG (lossless).
They live under the image's prefix, ``{user_id}/{image_id}/work/{w}x{h}.{ext}``, are recorded
on the image row and do not count toward the owner's quota.

Which level a render uses (``choose``): only when the chain's first stage scales (a resize
that is not ``c_crop``); its geometry is planned on the original's size, and the smallest
level at least ``LEVEL_MARGIN`` (1.5) times the scaled size on both axes is decoded instead
of the original
(``origin.render.StandIn``). Everything else — ``c_crop`` (its ``x_``/``y_`` are original
pixels and it keeps them 1:1), a first stage that does not scale, enlarging, scaling to more
than two thirds of the largest level — uses the original. docs/performance.md has the measurements (SSIM of
derivatives from a level against those from the original, and render times).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import pyvips

from origin import frames_copy, vips
from origin.errors import OriginError
from origin.pixels import has_alpha, scale_to, to_srgb
from origin.probe import Probe
from origin.records import WorkingCopy
from origin.render import first_resize
from origin.transforms.formats import ANIMATED_FORMATS
from origin.transforms.geometry import plan_geometry
from origin.transforms.limits import Limits
from origin.transforms.plan import Plan

log = logging.getLogger(__name__)

MIN_LEVEL_SIDE = 400
MAX_LEVELS = 3
LEVEL_MARGIN = 1.5  # a level serves scaled sizes up to 1/1.5 of its own
JPEG_QUALITY = 95
FORMATS = ("jpeg", "png", "webp", "avif")  # originals that get levels (stills only)


@dataclass(frozen=True)
class Level:
    """A level built from an original, ready to store."""

    width: int
    height: int
    ext: str
    media_type: str
    body: bytes = b""


def level_sizes(fmt: str, frames: int, width: int, height: int) -> list[tuple[int, int]]:
    """The sizes of the levels an upright ``width``×``height`` original gets, largest first."""
    if fmt not in FORMATS or frames != 1:
        return []
    sizes = []
    factor = 2
    while max(width, height) / factor >= MIN_LEVEL_SIDE:
        sizes.append((max(1, round(width / factor)), max(1, round(height / factor))))
        factor *= 2
    return sizes[-MAX_LEVELS:]


def build(data: bytes, sizes: Sequence[tuple[int, int]]) -> list[Level]:
    """Encode the levels of ``sizes`` (largest first); none when libvips fails (a level is an
    optimisation: the upload goes on without it). Synchronous libvips: run it in the pool."""
    fmt = vips.sniff_format(data)
    if not sizes or fmt is None:
        return []
    try:
        return _build(data, fmt, sizes)
    except pyvips.Error as exc:
        log.warning("no working copies: %s", str(exc).strip()[:300])
        return []


def _build(data: bytes, fmt: str, sizes: Sequence[tuple[int, int]]) -> list[Level]:
    width, height = sizes[0]
    # The largest level straight from the original, with shrink-on-load (as renders do);
    # each smaller one from the level above it, in memory.
    img = vips.thumbnail(data, fmt, width, height=height, size="force")
    img = to_srgb(img).copy_memory()
    levels = []
    for size in sizes:
        if (img.width, img.height) != size:  # thumbnail may round by a pixel
            img = scale_to(img, size).copy_memory()
        levels.append(_encode(img))
    return levels


def _encode(img: pyvips.Image) -> Level:
    icc = bool(img.get_typeof("icc-profile-data"))
    keep = int(pyvips.ForeignKeep.ICC if icc else pyvips.ForeignKeep.NONE)
    if has_alpha(img):
        # PNG, not lossless WebP: libvips shrinks WebP on load with libwebp's coarse scaler
        body = img.pngsave_buffer(compression=3, keep=keep)
        return Level(img.width, img.height, "png", "image/png", bytes(body))
    body = img.jpegsave_buffer(
        Q=JPEG_QUALITY, subsample_mode="off", optimize_coding=True, interlace=False, keep=keep
    )
    return Level(img.width, img.height, "jpg", "image/jpeg", bytes(body))


def build_for(data: bytes, probe: Probe, frames: bool = False) -> list[Level]:
    """The levels of a validated upload (none for small, animated or GIF originals); with
    ``frames`` (local storage), an animated GIF's frames copy (origin.frames_copy) when it
    pays."""
    if frames and probe.format == "gif" and probe.frames > 1:
        return _frames_level(data, probe)
    return build(data, level_sizes(probe.format, probe.frames, probe.width, probe.height))


def _frames_level(data: bytes, probe: Probe) -> list[Level]:
    try:
        body = frames_copy.build(data, max_source_pixels=sys.maxsize)
    except (pyvips.Error, OriginError) as exc:
        log.warning("no frames copy: %s", str(exc).strip()[:300])
        return []
    if body is None:
        return []
    return [Level(probe.width, probe.height, frames_copy.EXT, frames_copy.MEDIA_TYPE, body)]


def working_copy(user_id: str, image_id: str, level: Level, revision: str = "") -> WorkingCopy:
    """The record of ``level`` stored under the image's prefix (a replace's under
    ``work/{revision}/``, so the old copies stay whole until the row moves on)."""
    folder = f"work/{revision}" if revision else "work"
    key = f"{user_id}/{image_id}/{folder}/{level.width}x{level.height}.{level.ext}"
    return WorkingCopy(level.width, level.height, key)


def choose(
    plan: Plan, width: int, height: int, levels: Sequence[WorkingCopy], limits: Limits
) -> WorkingCopy | None:
    """The smallest level at least ``LEVEL_MARGIN`` times the size the plan's first stage
    scales a ``width``×``height`` original to, on both axes; None: use the original.
    A plan that keeps the source's profile or rights fields (``fl_keep_icc``,
    ``fl_keep_copyright``) or may answer the original (``fl_smaller``) reads the original:
    working copies are sRGB and carry no metadata."""
    if plan.flags:
        return None
    for level in levels:
        if level.storage_key.endswith(f".{frames_copy.EXT}"):
            animated = not plan.metadata_only and plan.format in (None, *ANIMATED_FORMATS)
            return level if animated else None
    stage = first_resize(plan)
    if stage is None or not levels:
        return None
    try:
        scaled_w, scaled_h = plan_geometry(width, height, stage, limits).scaled
    except OriginError:
        return None  # the render refuses it with the right error
    for level in sorted(levels, key=lambda c: c.width * c.height):
        if level.width >= LEVEL_MARGIN * scaled_w and level.height >= LEVEL_MARGIN * scaled_h:
            return level
    return None
