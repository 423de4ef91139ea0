"""The structural scan of an upload: one small scanner per format, before libvips.

Each walks its container (PNG chunks, JPEG segments, GIF blocks, RIFF chunks, ISO-BMFF
boxes), refuses truncated or malformed streams, and sizes the metadata before libvips ever
sees it (``MetadataBudget``): compressed PNG chunks are inflated with a bounded
``decompressobj``, never fully. It also learns the canvas size and frame count when that is
cheap, so a GIF with thousands of frames or a huge PNG header is refused without any libvips
call. Where the format's decoder is tolerant, the scanner is too, and no more: JPEG headers
are read as libjpeg reads them (junk between segments skipped, and paid for from the
metadata budget), GIF blocks as libnsgif reads them; what either decoder would refuse, or
only draw in part, stays refused.

Only ``UnsupportedMediaType`` (415) and ``InvalidImage`` (422) leave this module.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from origin.errors import InvalidImage, UnsupportedMediaType
from origin.vips import PNG_SIGNATURE

MAX_METADATA_BYTES = 4 * 1024 * 1024
NOT_AN_IMAGE = "the file is not a decodable image"


@dataclass(frozen=True)
class Layout:
    """What a structural scan learnt cheaply; None where the container does not say."""

    width: int | None = None
    height: int | None = None
    frames: int | None = None


# ---------------------------------------------------------------- metadata budget


class MetadataBudget:
    """Bytes of (inflated) metadata a file may still carry; spending past it is a 422."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit

    def spend(self, size: int) -> None:
        if size > self.remaining:
            raise InvalidImage(f"the image metadata is larger than the {self.limit}-byte limit")
        self.remaining -= size

    def inflate(self, compressed: bytes | memoryview) -> None:
        """Spend the inflated size of a zlib stream, inflating at most the budget + 1 byte."""
        try:
            inflated = zlib.decompressobj().decompress(compressed, self.remaining + 1)
        except zlib.error:
            raise InvalidImage("a compressed metadata chunk is corrupt") from None
        self.spend(len(inflated))


def truncated(what: str) -> InvalidImage:
    return InvalidImage(f"the {what} is truncated or corrupt")


# ---------------------------------------------------------------- PNG

MAX_PNG_CHUNK = 2**31 - 1
MAX_PNG_SIDE = 2**31 - 1
# An interlaced (Adam7) PNG cannot be decoded row by row: libpng holds all of it at once. Its
# decoded bytes are bounded like one render's output (MAX_OUTPUT_PIXELS × 4 B by default):
# a 779 KB interlaced 9999×9999 16-bit RGBA PNG held ~880 MB to upload.
MAX_INTERLACED_BYTES = 100_000_000
PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}  # by colour type (a palette expands to RGBA)
PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf"})


def split_nul(body: memoryview, what: str) -> tuple[memoryview, memoryview]:
    """(before, after) the first NUL byte; a chunk without one is corrupt."""
    end = bytes(body[:80]).find(b"\0")  # keywords are 1-79 bytes
    if end < 0:
        raise truncated(f"PNG {what} chunk")
    return body[:end], body[end + 1 :]


def spend_png_text(ctype: bytes, body: memoryview, budget: MetadataBudget) -> None:
    """Count a PNG metadata chunk toward the budget, inflating compressed text boundedly."""
    if ctype in (b"tEXt", b"eXIf"):
        budget.spend(len(body))
    elif ctype in (b"zTXt", b"iCCP"):
        keyword, rest = split_nul(body, ctype.decode())
        budget.spend(len(keyword))
        budget.inflate(rest[1:])  # rest[0] is the compression method
    elif ctype == b"iTXt":
        keyword, rest = split_nul(body, "iTXt")
        if len(rest) < 2:
            raise truncated("PNG iTXt chunk")
        compressed, rest = rest[0], rest[2:]
        _language, rest = split_nul(rest, "iTXt")
        _translated, text = split_nul(rest, "iTXt")
        budget.spend(len(body) - len(text))
        if compressed:
            budget.inflate(text)
        else:
            budget.spend(len(text))


def png_header(body: memoryview) -> tuple[int, int]:
    if len(body) != 13:
        raise truncated("PNG header")
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", body)
    if not (0 < width <= MAX_PNG_SIDE and 0 < height <= MAX_PNG_SIDE):
        raise InvalidImage("the PNG header has an invalid size")
    decoded = width * height * PNG_CHANNELS.get(colour, 4) * (2 if depth == 16 else 1)
    if interlace and decoded > MAX_INTERLACED_BYTES:
        raise InvalidImage(
            f"an interlaced PNG is decoded whole: {decoded // 1_000_000} MB decoded, above "
            f"{MAX_INTERLACED_BYTES // 1_000_000} MB (save it without interlacing)"
        )
    return width, height


def scan_png(data: bytes, budget: MetadataBudget) -> Layout:
    """Walk the chunk stream: lengths, types and CRCs; IHDR first, IEND last."""
    view = memoryview(data)
    pos, size = len(PNG_SIGNATURE), (0, 0)
    while pos + 12 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if length > MAX_PNG_CHUNK or not ctype.isalpha() or end + 4 > len(data):
            raise truncated("PNG chunk stream")
        if zlib.crc32(view[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            raise InvalidImage("a PNG chunk has a bad CRC")
        if (pos == len(PNG_SIGNATURE)) != (ctype == b"IHDR"):
            raise InvalidImage("the PNG stream does not start with its header")
        body = view[pos + 8 : end]
        if ctype == b"IHDR":
            size = png_header(body)
        elif ctype == b"IEND":
            return Layout(width=size[0], height=size[1], frames=1)
        if ctype in PNG_METADATA_CHUNKS:
            spend_png_text(ctype, body, budget)
        pos = end + 4
    raise truncated("PNG chunk stream")


# ---------------------------------------------------------------- JPEG

JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
# Markers followed by a length: all but RSTn, SOI and EOI (standalone) and 0xFF (fill).
JPEG_SEGMENT_MARKERS = frozenset(range(0xC0, 0xFF)) - frozenset(range(0xD0, 0xDA))
JPEG_METADATA_MARKERS = frozenset(range(0xE0, 0xF0)) | {0xFE}  # APPn, COM
JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: libjpeg skips them
JPEG_SOS = 0xDA
MAX_JPEG_SEGMENTS = 4096  # before the first scan; real files have tens (255 for a split ICC)
# A marker: 0xFF (after any number of 0xFF fill bytes) and a byte that is neither 0x00 (an
# `FF 00` pair is data) nor 0xFF. Searching, the look-behind starts only at the first 0xFF of
# a run, which keeps the search linear however long the run.
JPEG_MARKER_HERE = re.compile(rb"\xff++([^\x00\xff])")
JPEG_MARKER = re.compile(rb"(?<!\xff)\xff++([^\x00\xff])")


def jpeg_frame_size(data: bytes, pos: int, length: int) -> tuple[int, int]:
    """(width, height) of an SOFn segment whose length field is at `pos`."""
    if length < 8:
        raise truncated("JPEG frame header")
    height, width = struct.unpack_from(">HH", data, pos + 3)
    if width == 0 or height == 0:
        raise InvalidImage("the JPEG frame header has a zero size")
    return width, height


def next_jpeg_marker(data: bytes, pos: int, budget: MetadataBudget) -> tuple[int, int]:
    """(marker, position of its length field) of the first marker at or after `pos`, found as
    libjpeg finds it: whatever is not a marker (junk after a segment shorter than its data,
    `FF 00` pairs, fill) is skipped, and spent from the metadata budget; the search never
    looks further than the budget allows."""
    window = min(len(data), pos + budget.remaining + 2)
    found = JPEG_MARKER_HERE.match(data, pos, window) or JPEG_MARKER.search(data, pos + 1, window)
    if found is None:
        if window < len(data):
            budget.spend(budget.remaining + 1)  # raises: more junk than the budget
        raise truncated("JPEG marker stream")
    budget.spend(found.start(1) - 1 - pos)
    return found[1][0], found.end()


def scan_jpeg(data: bytes, budget: MetadataBudget) -> Layout:
    """Walk the marker segments up to the first scan (APPn/COM sizes, the SOFn size) with
    libjpeg's tolerance: junk between segments is skipped, an APPn or COM length below 2
    (libjpeg reads it as empty) is passed over. A segment that runs past the end, a second
    SOI, an EOI or an unknown marker before the scan, or too many segments are refused."""
    pos, size = 2, (0, 0)
    for _ in range(MAX_JPEG_SEGMENTS):
        marker, pos = next_jpeg_marker(data, pos, budget)
        if marker in JPEG_STANDALONE_MARKERS:
            continue
        if marker == JPEG_SOS:
            if size == (0, 0):
                raise InvalidImage("the JPEG has no frame header before its scan")
            return Layout(width=size[0], height=size[1], frames=1)
        if marker not in JPEG_SEGMENT_MARKERS or pos + 2 > len(data):
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if marker in JPEG_METADATA_MARKERS:
            length = max(length, 2)
        if length < 2 or pos + length > len(data):
            break
        if marker in JPEG_METADATA_MARKERS:
            budget.spend(length - 2)
        elif marker in JPEG_SOF_MARKERS:
            size = jpeg_frame_size(data, pos, length)
        pos += length
    raise truncated("JPEG marker stream")


# ---------------------------------------------------------------- GIF

GIF_IMAGE, GIF_EXTENSION, GIF_TRAILER = 0x2C, 0x21, 0x3B
GIF_COMMENT = 0xFE
GIF_TEXT_LABELS = frozenset({0x01, GIF_COMMENT, 0xFF})  # plain text, comment, application


def gif_colour_table(packed: int) -> int:
    """Bytes of the colour table a descriptor's packed field announces."""
    return 3 << ((packed & 0x07) + 1) if packed & 0x80 else 0


def skip_sub_blocks(data: bytes, pos: int) -> tuple[int, int]:
    """(position after the terminator, payload bytes) of a data sub-block chain."""
    payload = 0
    while True:
        if pos >= len(data):
            raise truncated("GIF block stream")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos, payload
        payload += size


def skip_extension(data: bytes, pos: int, budget: MetadataBudget) -> int:
    """The position after the extension at `pos`, skipped as libnsgif does: but for a comment,
    the block after the label is the extension's own (a graphic control block of size 0 is
    not its terminator), then sub-blocks up to the terminator. Text counts toward the budget."""
    if pos + 2 >= len(data):
        raise truncated("GIF extension")
    label, first = data[pos + 1], 0
    if label != GIF_COMMENT:
        first = data[pos + 2]
        pos += 1 + first
    pos, payload = skip_sub_blocks(data, pos + 2)
    if label in GIF_TEXT_LABELS:
        budget.spend(first + payload)
    return pos


def scan_gif(data: bytes, budget: MetadataBudget) -> Layout:
    """Walk the blocks without decoding: count frames, widen the canvas to every frame.

    As libnsgif, the stream ends at its trailer, at its end, or at the first byte that starts
    neither an extension nor an image (what follows is never decoded); a block cut short by
    the end of the file is refused as truncated."""
    if len(data) < 13:
        raise truncated("GIF header")
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    pos, frames = 13 + gif_colour_table(packed), 0
    while pos < len(data) and data[pos] != GIF_TRAILER:
        if data[pos] == GIF_EXTENSION:
            pos = skip_extension(data, pos, budget)
            continue
        if data[pos] != GIF_IMAGE:
            break
        if pos + 11 > len(data):
            raise truncated("GIF image descriptor")
        left, top, w, h, packed = struct.unpack_from("<HHHHB", data, pos + 1)
        width, height = max(width, left + w), max(height, top + h)
        pos, _ = skip_sub_blocks(data, pos + 11 + gif_colour_table(packed))
        frames += 1
    if frames == 0:
        raise InvalidImage("the GIF has no image")
    return Layout(width=width, height=height, frames=frames)


# ---------------------------------------------------------------- WebP

WEBP_METADATA_CHUNKS = frozenset({b"EXIF", b"XMP ", b"ICCP"})


def scan_webp(data: bytes, budget: MetadataBudget) -> Layout:
    """Walk the RIFF chunks: metadata sizes, the VP8X canvas, ANMF frames."""
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data) or end < 12:
        raise truncated("WebP RIFF container")
    pos, frames = 12, 0
    size: tuple[int | None, int | None] = (None, None)
    while pos + 8 <= end:
        fourcc, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if body + length > end:
            raise truncated("WebP chunk stream")
        if fourcc in WEBP_METADATA_CHUNKS:
            budget.spend(length)
        elif fourcc == b"VP8X" and length >= 10:
            size = (
                1 + int.from_bytes(data[body + 4 : body + 7], "little"),
                1 + int.from_bytes(data[body + 7 : body + 10], "little"),
            )
        elif fourcc == b"ANMF":
            frames += 1
        pos = body + length + (length & 1)
    if pos < end:
        raise truncated("WebP chunk stream")
    return Layout(width=size[0], height=size[1], frames=max(frames, 1))


# ---------------------------------------------------------------- AVIF


def scan_avif(data: bytes, budget: MetadataBudget) -> Layout:
    """Walk the top-level ISO-BMFF boxes: each must fit; `meta` counts toward the budget
    and must declare an AV1 item (`av01`), or this is a HEIC behind an `avif` brand."""
    pos, meta = 0, b""
    while pos < len(data):
        if pos + 8 > len(data):
            raise truncated("AVIF box stream")
        size, btype = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                raise truncated("AVIF box stream")
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise truncated("AVIF box stream")
        if btype == b"meta":
            budget.spend(size)
            meta += data[pos : pos + size]
        pos += size
    if not meta:
        raise InvalidImage("the AVIF has no metadata box")
    if b"av01" not in meta:
        raise UnsupportedMediaType("the file is a HEIF image but not an AVIF image")
    return Layout()


SCANNERS: Mapping[str, Callable[[bytes, MetadataBudget], Layout]] = {
    "jpeg": scan_jpeg,
    "png": scan_png,
    "gif": scan_gif,
    "webp": scan_webp,
    "avif": scan_avif,
}
