"""The upload validator: is this one of the five formats, within the limits, fully decodable?

`probe_upload` runs on the bytes of every upload before anything is stored, in three steps:

1. **Type by magic bytes** (`sniff_format`): JPEG, PNG, GIF, WebP or AVIF, else 415.
2. **Structural scan** (origin.scan, pure Python, one small scanner per format): walks the container
   (PNG chunks, JPEG segments, GIF blocks, RIFF chunks, ISO-BMFF boxes), refuses truncated or
   malformed streams, and sizes the metadata before libvips ever sees it: compressed PNG
   chunks are inflated with a bounded `decompressobj`, never fully. It also learns the canvas
   size and frame count when that is cheap, so a GIF with thousands of frames (over the pixel
   limit or `MAX_FRAMES`) or a huge PNG header is refused without any libvips call. Where
   the format's decoder is tolerant, the scanner is too, and no more: JPEG headers are read
   as libjpeg reads them (junk between segments skipped, and paid for from the metadata
   budget), GIF blocks as libnsgif reads them; what either decoder would refuse, or only
   draw in part, stays refused.
3. **libvips**: the format's own loader (`origin.vips.load`, the one every render uses;
   never the sniffing `new_from_buffer`) reads the header, which is checked against the pixel
   limit and `MAX_FRAMES`, then every pixel is decoded with `fail_on="error"`.

Only `UnsupportedMediaType` (415) and `InvalidImage` (422) leave this module; libvips text
stays in the exception's `__cause__` for logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyvips

from origin import deadline, vips
from origin.errors import InvalidImage, UnsupportedMediaType
from origin.exif import exif_metadata
from origin.scan import MAX_METADATA_BYTES, NOT_AN_IMAGE, SCANNERS, Layout, MetadataBudget
from origin.vips import sniff_format as sniff_format  # step 1, shared with every render

FORMAT_MEDIA_TYPES: Mapping[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
}
UNSUPPORTED = "the file is not a JPEG, PNG, GIF, WebP, AVIF or SVG image"


@dataclass(frozen=True)
class Probe:
    format: str  # "jpeg" | "png" | "gif" | "webp" | "avif"
    mime_type: str
    width: int  # as displayed (after EXIF orientation)
    height: int
    frames: int  # 1 for stills
    metadata: Mapping[str, object]  # EXIF without GPS, JSON-serialisable


# ---------------------------------------------------------------- libvips

# The upload check opens each format with the loader every render uses (origin.vips.load),
# reading sequentially, every frame, and failing on any error or truncation.
LOAD_OPTIONS: Mapping[str, Mapping[str, object]] = {
    "jpeg": {},
    "png": {},
    "gif": {"n": -1},
    "webp": {"n": -1},
    "avif": {"n": -1},
}


def check_pixels(pixels: int, limit: int) -> None:
    if pixels > limit:
        raise InvalidImage(f"image is larger than the {limit}-pixel limit")


def check_frames(frames: int, limit: int) -> None:
    """MAX_FRAMES: an animation's frames (counted by the scan where it can, before libvips)."""
    if frames > limit:
        raise InvalidImage(f"the image has {frames} frames, more than the MAX_FRAMES {limit}")


def int_field(image: pyvips.Image, name: str, default: int) -> int:
    value = image.get(name) if image.get_typeof(name) else default
    return value if isinstance(value, int) and value > 0 else default


def decode(
    fmt: str, data: bytes, layout: Layout, max_source_pixels: int, max_frames: int = 1000
) -> Probe:
    """Header read by the format's own loader, pixel and frame checks, then a full decode."""
    image = vips.load(data, fmt, access="sequential", fail_on="error", **LOAD_OPTIONS[fmt])
    deadline.watch((image,), replace=False)  # an upload's inspection has a deadline too
    page_height = min(int_field(image, "page-height", image.height), image.height)
    frames = image.height // page_height
    if fmt == "gif" and layout.frames is not None:
        frames = max(frames, layout.frames)  # our block walk, not the decoder, counts
    check_pixels(image.width * page_height * frames, max_source_pixels)
    check_frames(frames, max_frames)
    image.avg()  # decodes every pixel of every frame; fail_on="error" makes damage raise
    width, height = image.width, page_height
    if int_field(image, "orientation", 1) in (5, 6, 7, 8):
        width, height = height, width
    return Probe(fmt, FORMAT_MEDIA_TYPES[fmt], width, height, frames, exif_metadata(image))


# ---------------------------------------------------------------- the validator


def probe_upload(
    data: bytes,
    *,
    max_source_pixels: int = 100_000_000,
    max_metadata_bytes: int = MAX_METADATA_BYTES,
    max_frames: int = 1000,
) -> Probe:
    """Validate an upload; raises only `UnsupportedMediaType` or `InvalidImage`."""
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedMediaType(UNSUPPORTED)
    layout = SCANNERS[fmt](data, MetadataBudget(max_metadata_bytes))
    if layout.width is not None and layout.height is not None:
        check_pixels(layout.width * layout.height * (layout.frames or 1), max_source_pixels)
    if layout.frames is not None:
        check_frames(layout.frames, max_frames)
    try:
        return decode(fmt, data, layout, max_source_pixels, max_frames)
    except pyvips.Error as exc:
        deadline.check()  # stopped by the inspection's deadline: say so
        raise InvalidImage(NOT_AN_IMAGE) from exc
