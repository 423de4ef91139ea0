"""Render a Plan: load (with shrink-on-load), run the steps of every stage, encode.

Synchronous libvips only; the caller runs it in a worker thread. Whatever the input bytes and
plan, only OriginError subclasses escape: libvips errors become InvalidImage with a short
public message (the libvips text is logged, never sent).

Choices:
- Colour: an embedded ICC profile is converted to sRGB and the derivative keeps only that
  sRGB profile (sources without a profile get none: sRGB is assumed). EXIF, XMP, IPTC and GPS
  are always stripped.
- Output formats without alpha (JPEG) are flattened onto the chain's last `b_`, else white.
- Animated GIF/WebP stay animated when the output is GIF or WebP (every frame transformed);
  any other output takes the first frame.
- The work budget (`check_budget`: MAX_FRAMES, MAX_OUTPUT_PIXELS, the effect budget) is
  checked on the header before any pixel is decoded; a render run under a deadline
  (origin.deadline) checks it between steps, and libvips stops inside a step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvips

from origin import deadline, gif, ops, quality, vips
from origin.errors import InvalidImage, LimitExceeded, OriginError
from origin.path import DEFAULT_LIMITS, FORMATS, MEDIA_TYPES, Limits, Plan, Stage

log = logging.getLogger(__name__)

# The in-stage order of the contract, as one literal list.
STEPS: tuple[ops.Step, ...] = (ops.resize, ops.rotate, ops.flip, ops.effects, ops.overlay)

ANIMATED_FORMATS = ("gif", "webp")


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    width: int
    height: int
    format: str
    choice: quality.Choice | None = None  # how `q_auto` was resolved, when it was


# ---------------------------------------------------------------- encoders


@dataclass(frozen=True)
class Encoder:
    default_quality: int | None  # also `q_auto`'s for PNG, GIF and animations
    alpha: bool  # can carry an alpha channel
    save: Callable[[pyvips.Image, int | None, int], bytes]  # (image, quality, keep) -> bytes


# The quality a lossy format is encoded at without `q_` (q_auto's search tops out at the same:
# origin.quality.RANGES, a test holds them equal).
JPEG_Q, WEBP_Q, AVIF_Q = 80, 80, 60


def _jpeg(img: pyvips.Image, q: int | None, keep: int) -> bytes:
    quality = q or JPEG_Q
    return bytes(
        img.jpegsave_buffer(
            Q=quality,
            interlace=True,
            optimize_coding=True,
            keep=keep,
            subsample_mode="off" if quality >= 90 else "auto",
        )
    )


def _png(img: pyvips.Image, q: int | None, keep: int) -> bytes:
    if q is None:  # lossless: adaptive row filters (as libpng and Pillow choose), zlib level 3
        # — on photographs 40 % smaller than unfiltered at level 6, in about the same time
        # (docs/performance.md)
        return bytes(img.pngsave_buffer(compression=3, filter="all", keep=keep))
    return bytes(
        img.pngsave_buffer(compression=6, palette=True, Q=q, effort=4, dither=1.0, keep=keep)
    )


def _webp(img: pyvips.Image, q: int | None, keep: int) -> bytes:
    return bytes(img.webpsave_buffer(Q=q or WEBP_Q, effort=4, keep=keep))


def _avif(img: pyvips.Image, q: int | None, keep: int) -> bytes:
    return bytes(
        img.heifsave_buffer(Q=q or AVIF_Q, compression="av1", effort=2, bitdepth=8, keep=keep)
    )


def _gif(img: pyvips.Image, q: int | None, keep: int) -> bytes:
    if gif.fits(img):  # an opaque animation: shared palettes, Pillow remaps (origin.gif)
        return gif.save_animation(img)
    return bytes(img.gifsave_buffer(effort=3, dither=1.0, keep=keep))


ENCODERS: Mapping[str, Encoder] = {
    "jpeg": Encoder(JPEG_Q, alpha=False, save=_jpeg),
    "png": Encoder(None, alpha=True, save=_png),  # q_ on PNG = 8-bit palette at that quality
    "webp": Encoder(WEBP_Q, alpha=True, save=_webp),
    "avif": Encoder(AVIF_Q, alpha=True, save=_avif),
    "gif": Encoder(None, alpha=True, save=_gif),  # q_ is ignored: GIF is always a palette
}
assert set(ENCODERS) == set(FORMATS)


def _encode(
    frames: ops.Frames,
    meta: Mapping[str, object],
    fmt: str,
    plan: Plan,
    icc: bool,
    auto: quality.AutoQuality,
) -> tuple[bytes, quality.Choice | None]:
    encoder = ENCODERS[fmt]
    background = (plan.flatten or (255, 255, 255, 255))[:3]
    if not encoder.alpha:
        frames = tuple(
            f.flatten(background=list(background)).cast("uchar") if ops.has_alpha(f) else f
            for f in frames
        )
    keep = int(pyvips.ForeignKeep.ICC if icc else pyvips.ForeignKeep.NONE)
    if len(frames) == 1:
        img = frames[0]
    else:
        page_height = frames[0].height
        img = pyvips.Image.arrayjoin(list(frames), across=1).copy()
        img.set_type(pyvips.GValue.gint_type, "page-height", page_height)
        delay = meta.get("delay")
        if isinstance(delay, list):
            delays = (delay + [delay[-1] if delay else 100] * len(frames))[: len(frames)]
            img.set_type(pyvips.GValue.array_int_type, "delay", [int(d) for d in delays])
        loop = meta.get("loop")
        if isinstance(loop, int):
            img.set_type(pyvips.GValue.gint_type, "loop", loop)
    if plan.auto_quality and fmt in quality.RANGES and len(frames) == 1:
        return _encode_auto(img, fmt, keep, auto, background)
    return encoder.save(img, None if plan.auto_quality else plan.quality, keep), None


def _encode_auto(
    img: pyvips.Image,
    fmt: str,
    keep: int,
    auto: quality.AutoQuality,
    background: tuple[int, int, int],
) -> tuple[bytes, quality.Choice]:
    """`q_auto` on a still, lossy output: the quality chosen before, else a search."""
    save = ENCODERS[fmt].save
    if auto.chosen is not None:
        return save(img, auto.chosen, keep), quality.Choice(auto.chosen, None, False, 1)
    return quality.choose(
        img, lambda image, q: save(image, q, keep), quality.RANGES[fmt], auto.target, background
    )


# ---------------------------------------------------------------- render


@dataclass(frozen=True)
class StandIn:
    """The source bytes are a working copy (origin.pyramid) of an original of this upright
    size and format: the first stage is planned on the original, then scaled from the copy."""

    width: int
    height: int
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def first_resize(plan: Plan) -> Stage | None:
    """The first stage when it scales the source (shrink-on-load applies), else None."""
    if plan.stages and plan.stages[0].resizes and plan.stages[0].crop != "crop":
        return plan.stages[0]
    return None


def output_frames(header: ops.Header, fmt: str) -> int:
    """Frames of the output: an animated GIF/WebP's when the output is GIF or WebP, else 1."""
    animated = header.format in ANIMATED_FORMATS and fmt in ANIMATED_FORMATS
    return header.pages if animated else 1


def check_budget(
    header: ops.Header, fmt: str, plan: Plan, limits: Limits, stand_in: StandIn | None
) -> None:
    """The work budget from the header alone, before any pixel is decoded: MAX_FRAMES for an
    animated output, then the chain's pixels and effects (origin.ops.plan_work) on the
    original's upright size, counting every frame of the output."""
    frames = output_frames(header, fmt)
    if frames > limits.max_frames:
        raise LimitExceeded(
            f"the source has {frames} frames, above MAX_FRAMES {limits.max_frames} for an "
            "animated output"
        )
    size = (header.width, header.height) if stand_in is None else stand_in.size
    ops.output_size(*size, plan.stages, limits, frames)


def _load(
    source: bytes,
    plan: Plan,
    fmt: str,
    limits: Limits,
    ctx: ops.Context,
    stand_in: StandIn | None = None,
) -> tuple[ops.Frames, dict[str, object], ops.Header]:
    header = ops.probe(source, limits)
    if output_frames(header, fmt) > 1:
        frames, meta = ops.load_frames(source, header)
        return frames, meta, header
    first = first_resize(plan)
    if stand_in is not None and first is None:
        raise ValueError("a working copy stands in only for a chain whose first stage scales")
    if first is not None:
        # Shrink-on-load: plan the first stage's geometry on the original's size, then let
        # thumbnail_buffer decode at reduced scale straight to the scaled size.
        size = (header.width, header.height) if stand_in is None else stand_in.size
        geometry = ops.plan_geometry(*size, first, limits)
        if stand_in is not None or geometry.scaled != size:
            width, height = geometry.scaled
            img = _scaled_load(source, header, width, height, stand_in is not None)
            # thumbnail reads sequentially; later steps (smartcrop, rotate, flip) need random
            # access, and the scaled image is small: keep it in memory.
            img = ops.to_srgb(img).copy_memory()
            if (img.width, img.height) != geometry.scaled:  # rounding inside libvips
                img = ops.scale_to(img, geometry.scaled)
            ctx.planned_from = size
            return (img,), {}, header
    img = vips.load(source, header.format).autorot()
    return (ops.to_srgb(img),), {}, header


# A JPEG working copy is decoded by libjpeg at 1/2, 1/4 or 1/8 scale while at least this
# much reduction is left for lanczos3 (libvips' thumbnail leaves 2, imgproxy and sharp's
# fastShrinkOnLoad 1): W1's 1000×750 level to 267×200 decodes 500×375 pixels, not 1000×750.
LEVEL_REDUCE_MARGIN = 1.5


def _scaled_load(
    source: bytes, header: ops.Header, width: int, height: int, level: bool
) -> pyvips.Image:
    """``source`` decoded at reduced scale where its format allows, resized to exactly
    ``width``×``height``. A working copy (``level``) is upright, sRGB, opaque when JPEG, and
    already chosen at least twice the size asked (origin.pyramid), so libjpeg's scaled
    decode (an IDCT of the low frequencies at 1/2 and 1/4; at 1/8 the block average that
    libvips' thumbnail also uses past 16×) may take more of the reduction than thumbnail
    would: docs/performance.md has the figures."""
    if not level or header.format != "jpeg":
        return vips.thumbnail(source, header.format, width, height=height, size="force")
    factor = min(header.width / width, header.height / height)
    shrink = 1
    while shrink < 8 and shrink * 2 * LEVEL_REDUCE_MARGIN <= factor:
        shrink *= 2
    img = vips.load(source, "jpeg", shrink=shrink, access="sequential")
    return img.resize(width / img.width, vscale=height / img.height, kernel="lanczos3")


def _render(
    source: bytes,
    plan: Plan,
    overlays: Mapping[str, bytes] | None,
    limits: Limits,
    stand_in: StandIn | None = None,
    focal: tuple[float, float] | None = None,
    auto: quality.AutoQuality = quality.SEARCH,
) -> tuple[Rendered, ops.Header]:
    ctx = ops.Context(limits=limits, overlays=overlays or {}, focal=focal)
    header = ops.probe(source, limits)
    fmt = plan.format or (header.format if stand_in is None else stand_in.format)
    check_budget(header, fmt, plan, limits, stand_in)
    frames, meta, header = _load(source, plan, fmt, limits, ctx, stand_in)
    deadline.watch(frames)
    icc = bool(frames[0].get_typeof("icc-profile-data"))
    for index, stage in enumerate(plan.stages):
        ctx.last_stage = index == len(plan.stages) - 1
        for step in STEPS:
            deadline.check()
            frames = step(frames, stage, ctx)
            deadline.watch(frames)
    ops.check_size(frames[0], limits)
    deadline.check()
    body, choice = _encode(frames, meta, fmt, plan, icc, auto)
    made = Rendered(body, MEDIA_TYPES[fmt], frames[0].width, frames[0].height, fmt, choice)
    return made, header


def _guard(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except OriginError:
        raise
    except pyvips.Error as exc:
        deadline.check()  # a render its deadline stopped fails in libvips: say so
        log.info("libvips failed: %s", str(exc).strip()[:500])
        raise InvalidImage("the image could not be processed") from None
    except MemoryError:
        raise InvalidImage("the image is too large to process") from None
    except Exception:
        deadline.check()
        log.exception("render failed")
        raise OriginError("the image could not be rendered") from None


def render(
    source: bytes,
    plan: Plan,
    *,
    overlays: Mapping[str, bytes] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    stand_in: StandIn | None = None,
    focal: tuple[float, float] | None = None,
    auto: quality.AutoQuality = quality.SEARCH,
) -> Rendered:
    """The derivative `plan` describes, encoded. Raises only OriginError subclasses.
    With `stand_in`, `source` is a working copy of that original (origin.pyramid.choose).
    With `focal` (the source's stored attention point, as fractions), a first-stage `g_auto`
    cut is centred on it instead of running libvips attention.
    `auto` resolves `q_auto` (origin.quality): a quality chosen before, else a search."""
    rendered: Rendered = _guard(
        lambda: _render(source, plan, overlays, limits, stand_in, focal=focal, auto=auto)[0]
    )
    return rendered


def facts(
    rendered: Rendered,
    source: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    summary: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The `.json` answer for a derivative rendered from `source`: its size, format and byte
    count (in the plan's format, else the source's), plus the source's blurhash and dominant
    colour (`summary` when stored at upload, else computed now)."""
    return {
        "width": rendered.width,
        "height": rendered.height,
        "format": rendered.format,
        "bytes": len(rendered.body),
        **(summary if summary is not None else source_summary(source, limits=limits)),
    }


# ---------------------------------------------------------------- summary

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))


def _linear(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v = v / 255.0
    out: np.ndarray[Any, Any] = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out


def _srgb(v: float) -> int:
    v = min(1.0, max(0.0, v))
    s = v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
    return round(s * 255)


def blurhash(pixels: np.ndarray[Any, Any], x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of an (h, w, 3) uint8 array (the reference algorithm, with numpy)."""
    h, w = pixels.shape[:2]
    lin = _linear(pixels.astype(np.float64))
    xs, ys = np.arange(w), np.arange(h)
    factors = []
    for j in range(y_components):
        for i in range(x_components):
            basis = np.outer(np.cos(np.pi * j * ys / h), np.cos(np.pi * i * xs / w))
            norm = 1.0 if (i, j) == (0, 0) else 2.0
            factors.append(norm * (basis[:, :, None] * lin).sum(axis=(0, 1)) / (w * h))
    dc, ac = factors[0], factors[1:]
    out = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        actual_max = float(max(np.abs(a).max() for a in ac))
        quantised = max(0, min(82, int(np.floor(actual_max * 166 - 0.5))))
        max_value = (quantised + 1) / 166
        out += _base83(quantised, 1)
    else:
        max_value = 1.0
        out += _base83(0, 1)
    out += _base83((_srgb(dc[0]) << 16) + (_srgb(dc[1]) << 8) + _srgb(dc[2]), 4)
    for a in ac:
        q = [
            int(max(0, min(18, np.floor(np.sign(c) * (abs(c / max_value) ** 0.5) * 9 + 9.5))))
            for c in a
        ]
        out += _base83(q[0] * 19 * 19 + q[1] * 19 + q[2], 2)
    return out


SUMMARY_SIZE = 32  # px: the box the blurhash and the dominant colour are computed in


def _summary(source: bytes, limits: Limits) -> dict[str, object]:
    header = ops.probe(source, limits)
    img = vips.thumbnail(source, header.format, SUMMARY_SIZE, height=SUMMARY_SIZE)
    return summarise(ops.to_srgb(img))


def summarise(img: pyvips.Image) -> dict[str, object]:
    """`{"blurhash", "dominant_color"}` of an upright 8-bit sRGB image, reduced first to fit
    a 32 px box (a no-op for the 32 px thumbnail `source_summary` decodes)."""
    if max(img.width, img.height) > SUMMARY_SIZE:
        img = img.thumbnail_image(SUMMARY_SIZE, height=SUMMARY_SIZE)
    if ops.has_alpha(img):
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


def source_summary(source: bytes, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, object]:
    """`{"blurhash", "dominant_color"}` of a source image, from a ~32 px thumbnail."""
    summary: dict[str, object] = _guard(lambda: _summary(source, limits))
    return summary
