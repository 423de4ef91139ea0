"""The encoders: one per output format, with its default quality, and ``q_auto``.

- JPEG is progressive with optimised Huffman tables (4:4:4 from q 90); PNG is lossless with
  the Paeth row filter, or an 8-bit palette at ``q_``; WebP effort 4; AVIF effort 2, 8 bit;
  GIF: opaque animations through origin.gif (shared palettes), anything else libvips'.
- Output formats without alpha (JPEG) are flattened onto the chain's last ``b_`` (laid on
  white when it has alpha: ``on_white``), else white.
- Animated frames are joined into one strip with their delays and loop count.
- Only the ICC profile of an sRGB-converted source is kept (its own with ``fl_keep_icc``);
  EXIF, XMP, IPTC, GPS never — but the rights fields with ``fl_keep_copyright``
  (origin.rights).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyvips

from origin import gif, quality
from origin.pixels import Strip, has_alpha
from origin.rights import Rights, with_rights
from origin.transforms.arguments import Colour
from origin.transforms.declarations import Frames
from origin.transforms.formats import FORMATS
from origin.transforms.plan import Plan


@dataclass(frozen=True)
class Encoder:
    default_quality: int | None  # also `q_auto`'s for PNG, GIF and animations
    alpha: bool  # can carry an alpha channel
    save: Callable[[pyvips.Image, int | None, int], bytes]  # (image, quality, keep) -> bytes
    icc: bool = True  # can carry an ICC profile (fl_keep_icc keeps one only where it can)


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
    if q is None:  # lossless: the Paeth row filter, zlib level 3 — on photographs 40 %
        # smaller than unfiltered at level 6, and within 2 % of libpng's adaptive choice
        # among all five filters at 15-50 % less CPU (docs/performance.md, "PNG")
        return bytes(img.pngsave_buffer(compression=3, filter="paeth", keep=keep))
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
    # q_ is ignored: GIF is always a palette; it carries no ICC profile
    "gif": Encoder(None, alpha=True, save=_gif, icc=False),
}
assert set(ENCODERS) == set(FORMATS)


def on_white(colour: Colour) -> tuple[int, int, int]:
    """What a colour with alpha looks like on white: the opaque colour an output without
    alpha is flattened onto (``b_transparent``: white; ``b_ff000080``: half red on white)."""
    share = colour[3] / 255
    red, green, blue = (round(c * share + 255 * (1 - share)) for c in colour[:3])
    return red, green, blue


def shown_in(fmt: str, colour: Colour | None) -> Colour | None:
    """A ``b_`` colour as an output in ``fmt`` shows it: as it is where ``fmt`` has alpha, else
    opaque, on white (``on_white``), so a pad or a turn's corners painted with it look the
    same as the transparent parts flattened onto it."""
    if colour is None or ENCODERS[fmt].alpha:
        return colour
    return (*on_white(colour), 255)


def encode(
    frames: Frames,
    meta: Mapping[str, object],
    fmt: str,
    plan: Plan,
    icc: bool,
    auto: quality.AutoQuality,
    rights: Rights | None = None,
) -> tuple[bytes, quality.Choice | None]:
    encoder = ENCODERS[fmt]
    background = on_white(plan.flatten or (255, 255, 255, 255))
    if not encoder.alpha:
        frames = tuple(
            f.flatten(background=list(background)).cast("uchar") if has_alpha(f) else f
            for f in frames
        )
    keep = int(pyvips.ForeignKeep.ICC if icc else pyvips.ForeignKeep.NONE)
    if len(frames) == 1:
        img = frames[0]
    else:
        page_height = frames[0].height
        img = stacked(frames).copy()
        img.set_type(pyvips.GValue.gint_type, "page-height", page_height)
        delay = meta.get("delay")
        if isinstance(delay, list):
            delays = (delay + [delay[-1] if delay else 100] * len(frames))[: len(frames)]
            img.set_type(pyvips.GValue.array_int_type, "delay", [int(d) for d in delays])
        loop = meta.get("loop")
        if isinstance(loop, int):
            img.set_type(pyvips.GValue.gint_type, "loop", loop)
    if rights:
        img, kept = with_rights(img, rights)
        keep |= kept
    if plan.auto_quality and fmt in quality.RANGES and len(frames) == 1:
        return _encode_auto(img, fmt, keep, auto, background)
    return encoder.save(img, None if plan.auto_quality else plan.quality, keep), None


def stacked(frames: Frames) -> pyvips.Image:
    """The frames one above the other: a Strip's own image (less the opaque alpha band the
    frames leave out), else their join."""
    if not isinstance(frames, Strip):
        return pyvips.Image.arrayjoin(list(frames), across=1)
    return frames.stacked()


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
