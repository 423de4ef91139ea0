"""Reading stored images: the header alone, one upright frame, or every frame.

The format is told by the magic bytes and decoded by its own loader (origin.vips); a source
above ``MAX_SOURCE_PIXELS`` is refused from its header, before any pixel is decoded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pyvips

from origin import vips
from origin.errors import InvalidImage
from origin.pixels import Frames, Strip, has_alpha, to_srgb


@dataclass(frozen=True)
class Header:
    format: str
    width: int  # upright (EXIF orientation applied)
    height: int  # of one page
    pages: int
    orientation: int
    copied: bool = False  # the bytes are a frames copy of this GIF (origin.frames_copy)


def read_header(data: bytes, max_source_pixels: int) -> Header:
    """Read the header only (the format by magic bytes, then its own loader: origin.vips);
    refuse unknown formats and sources above the pixel limit."""
    fmt = vips.sniff_format(data)
    if fmt is None:
        raise InvalidImage("the source is not a JPEG, PNG, WebP, AVIF or GIF image")
    try:
        head = vips.load(data, fmt, access="sequential")
        pages = int(head.get("n-pages")) if head.get_typeof("n-pages") else 1
        orientation = int(head.get("orientation")) if head.get_typeof("orientation") else 1
    except pyvips.Error:
        raise InvalidImage("the source is not a decodable image") from None
    w, h = int(head.width), int(head.height)
    if w * h * max(1, pages) > max_source_pixels:
        raise InvalidImage(f"the source has more than {max_source_pixels} pixels")
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return Header(fmt, w, h, max(1, pages), orientation)


def load_still(data: bytes, max_source_pixels: int) -> pyvips.Image:
    """The first frame, upright, 8-bit sRGB (no shrink-on-load)."""
    header = read_header(data, max_source_pixels)
    return to_srgb(vips.load(data, header.format).autorot())


def load_frames(data: bytes, header: Header) -> tuple[Frames, dict[str, object]]:
    """Every frame of an animated GIF/WebP, upright 8-bit sRGB, plus delay/loop metadata.
    An animation up to ``HELD_BYTES`` (decoded, RGBA) is decoded top to bottom into memory
    — for GIF about half the work of a random-access load (W5: 26 against 49 ms CPU) — and
    its frames are that strip's pages (origin.pixels.Strip), without its alpha band when
    every pixel is opaque; a larger one stays lazy."""
    held = header.width * header.height * header.pages * 4 <= HELD_BYTES
    strip = vips.load(data, header.format, n=-1, access="sequential" if held else "random")
    page_height = (
        int(strip.get("page-height")) if strip.get_typeof("page-height") else header.height
    )
    meta: dict[str, object] = {}
    for name in ("delay", "loop"):
        if strip.get_typeof(name):
            meta[name] = strip.get(name)
    strip = to_srgb(strip)
    if held:
        strip = strip.copy_memory()
        return Strip(strip, page_height, _bands_kept(strip)), meta
    count = strip.height // page_height
    frames = tuple(
        strip.extract_area(0, i * page_height, strip.width, page_height) for i in range(count)
    )
    return frames, meta


HELD_BYTES = 64 * 1024 * 1024


def _bands_kept(strip: pyvips.Image) -> int:
    """The frames' bands: the strip's (in memory) less its alpha band when every pixel is
    opaque (GIF and WebP animations carry one even when no frame has a transparent pixel):
    every later step then works on 8-bit RGB instead of premultiplying in float — about 4x
    less work to resize the frames. RGBA is read in place as one 32-bit band, the alpha the
    top byte of each little-endian word (W5: 1.5 ms against 2.4 ms for the alpha band's
    minimum; a copy into numpy costs more, as its 12 MB are faulted in every time)."""
    if not has_alpha(strip):
        return int(strip.bands)
    if strip.bands == 4 and sys.byteorder == "little":
        opaque = strip.copy(bands=1, format="uint").min() >= 0xFF000000
    else:
        opaque = strip.extract_band(strip.bands - 1).min() == 255
    return int(strip.bands) - 1 if opaque else int(strip.bands)
