"""A frames copy: an animated GIF's frames decoded once at upload and stored as raw pixels,
so that an animated derivative reads them instead of decoding the GIF again.

Decoding is most of what an animated GIF costs before its resize: libvips' GIF loader
expands the LZW codes and composites every frame into RGBA (W5: 24 frames of 480×270),
and the frames then carry an alpha band that has to be tested and dropped. A frames copy
holds what `origin.decode.load_frames` makes of the GIF — upright 8-bit sRGB frames stacked
as one strip, without the alpha band when every pixel is opaque — so a render maps it into
an image without decoding (`load`), and its output is byte for byte the one from the GIF.
W5's render: 149 → 104 ms of CPU (docs/performance.md).

Format: ``MAGIC``, one line of JSON (``width``, ``page_height``, ``pages``, ``bands``,
``delay``, ``loop``), then ``width × page_height × pages × bands`` bytes, row by row. It is
read only as a working copy (``origin.working_copies``: a render given a stand-in), never as
an upload or a source. Kept only where it pays (``build``): local storage, where a render
reads it from the page cache, and at most ``MAX_RATIO`` times the GIF's bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pyvips

from origin.decode import Header, load_frames, read_header
from origin.errors import InvalidImage
from origin.pixels import Strip

MAGIC = b"imgorigin-frames 1\n"
EXT = "frames"
MEDIA_TYPE = "application/octet-stream"
MAX_RATIO = 8  # a copy is kept when it is at most this many times the GIF's bytes
KEYS = ("width", "page_height", "pages", "bands")


def build(data: bytes, max_source_pixels: int) -> bytes | None:
    """The frames copy of an animated GIF; None when it is not one, its frames are not held
    in memory when rendered (``origin.decode.HELD_BYTES``: they stay lazy), or the copy
    would be over ``MAX_RATIO`` times ``data``."""
    header = read_header(data, max_source_pixels)
    if header.format != "gif" or header.pages < 2:
        return None
    frames, meta = load_frames(data, header)
    if not isinstance(frames, Strip):
        return None
    strip = frames.stacked()
    page_height = frames[0].height
    size = strip.width * page_height * len(frames) * strip.bands
    if size > MAX_RATIO * len(data):
        return None
    head = {
        "width": strip.width,
        "page_height": page_height,
        "pages": len(frames),
        "bands": strip.bands,
        "delay": list(meta.get("delay", [])),  # type: ignore[call-overload]
        "loop": meta.get("loop"),
    }
    pixels: bytes = strip.write_to_memory()  # a Strip's image holds whole pages only
    return MAGIC + json.dumps(head, separators=(",", ":")).encode() + b"\n" + pixels


def is_copy(data: bytes) -> bool:
    return data.startswith(MAGIC)


def header(data: bytes, max_source_pixels: int) -> Header:
    """The header of the GIF a copy was made from, refused above the pixel limit as the GIF
    would be (as `origin.decode.read_header`)."""
    head, _ = _parse(data)
    width, page_height, pages, _bands = (head[k] for k in KEYS)
    if width * page_height * pages > max_source_pixels:
        raise InvalidImage(f"the source has more than {max_source_pixels} pixels")
    return Header("gif", width, page_height, pages, 1, copied=True)


def load(data: bytes) -> tuple[Strip, dict[str, object]]:
    """The frames and their delay/loop metadata, as `origin.decode.load_frames` gives them
    for the GIF; the image is a view of ``data`` (no copy)."""
    head, start = _parse(data)
    width, page_height, pages, bands = (head[k] for k in KEYS)
    pixels = memoryview(data)[start:]
    strip = pyvips.Image.new_from_memory(pixels, width, page_height * pages, bands, "uchar")
    strip = strip.copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", page_height)
    meta: dict[str, object] = {}
    if head["delay"]:
        meta["delay"] = head["delay"]
    if head["loop"] is not None:
        meta["loop"] = head["loop"]
    return Strip(strip, page_height, bands), meta


def _parse(data: bytes) -> tuple[dict[str, Any], int]:
    """The copy's header and where its pixels start; InvalidImage when it is damaged."""
    end = data.find(b"\n", len(MAGIC))
    try:
        if not is_copy(data) or end < 0:
            raise ValueError("no header")
        head = json.loads(data[len(MAGIC) : end])
        width, page_height, pages, bands = (head[k] for k in KEYS)
        if not all(isinstance(v, int) and v > 0 for v in (width, page_height, pages, bands)):
            raise ValueError("bad size")
        if bands not in (3, 4) or len(data) - end - 1 != width * page_height * pages * bands:
            raise ValueError("bad length")
        delay, loop = head.get("delay"), head.get("loop")
        if not isinstance(delay, list) or not all(isinstance(d, int) for d in delay):
            raise ValueError("bad delay")
        if loop is not None and not isinstance(loop, int):
            raise ValueError("bad loop")
    except (ValueError, KeyError, TypeError):
        raise InvalidImage("a stored frames copy is damaged") from None
    return head, end + 1
