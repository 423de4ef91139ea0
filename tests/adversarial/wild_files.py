"""Files as they come from the wild, generated in code, each with the answer an upload must get.

Real uploads are made by cameras, phones, Photoshop, GIF tools and libavif, not by libvips:
Photoshop JPEGs whose header carries junk between segments (`FF 00` pairs, bytes after a
segment shorter than its data, an Adobe APP14 shorter than 12 bytes or with a length below
2), GIFs with odd extension blocks or bytes after their last frame, CMYK and 16-bit images,
EXIF orientations, animations (GIF, WebP, and AVIF sequences written by libavif), and truly
broken files. Each entry says what the upload answers (201, 415 or 422) and, when it is
accepted, the displayed size, the frame count and what its first frame looks like (mostly
the quadrant picture: red, green / blue, yellow), which a derivative's pixels must show.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pyvips
from PIL import Image as PilImage

from tests.origin import test_probe as probe_files
from tests.origin.conftest import FRAME_COLOURS, encode, quadrant_image, solid
from tests.origin.test_probe import avif_sequence

WIDTH, HEIGHT = 96, 64


@dataclass(frozen=True)
class Wild:
    make: Callable[[], bytes]
    status: int  # 201, 415 or 422
    size: tuple[int, int] = (WIDTH, HEIGHT)  # displayed (after EXIF orientation)
    frames: int = 1
    # What the displayed first frame looks like, in sRGB (None: not checked by pixels).
    looks: Callable[[], pyvips.Image] | None = lambda: picture()

    @property
    def code(self) -> str:
        return {415: "unsupported_media_type", 422: "invalid_image"}.get(self.status, "")


# ---------------------------------------------------------------- JPEG


def picture() -> pyvips.Image:
    return quadrant_image(WIDTH, HEIGHT)


def first_frame() -> pyvips.Image:
    """How the animations of this corpus look first: a solid frame of the first colour."""
    return solid(WIDTH, HEIGHT, FRAME_COLOURS[0])


def jpeg(**save: object) -> bytes:
    return encode(picture(), "jpeg", **save)


def segment(marker: int, body: bytes, length: int | None = None) -> bytes:
    """A marker segment; `length` overrides the length field (which counts itself)."""
    return (
        bytes([0xFF, marker])
        + struct.pack(">H", len(body) + 2 if length is None else length)
        + body
    )


def after_soi(*parts: bytes, data: bytes | None = None) -> bytes:
    """`data` (the quadrant JPEG) with `parts` right after its SOI."""
    data = data or jpeg()
    return data[:2] + b"".join(parts) + data[2:]


def photoshop_irb(claimed: int | None = None) -> bytes:
    """A Photoshop APP13 body: an IPTC record (8BIM 0x0404) whose size field says `claimed`
    (default: its true size), then a resolution record (8BIM 0x03ED)."""
    iptc = b"\x1c\x02\x00\x00\x02\x00\x04" + b"\x1c\x02\x78\x00\x0bhand-made 1"
    resolution = b"\x00\x48\x00\x00\x00\x01\x00\x01\x00\x48\x00\x00\x00\x01\x00\x01"

    def resource(kind: int, body: bytes, size: int) -> bytes:
        pad = b"\0" * (len(body) & 1)
        return b"8BIM" + struct.pack(">HHI", kind, 0, size) + body + pad

    return (
        b"Photoshop 3.0\0"
        + resource(0x0404, iptc, len(iptc) if claimed is None else claimed)
        + resource(0x03ED, resolution, len(resolution))
    )


ADOBE = b"Adobe\x00\x64\x00\x00\x00\x00\x01"  # APP14: version 100, flags, transform 1 (YCbCr)


def oriented_jpeg(orientation: int) -> bytes:
    """Pixels stored turned so that, with EXIF `orientation` applied, the quadrants show."""
    turned = {3: picture().rot180(), 6: picture().rot270(), 8: picture().rot90()}[orientation]
    img = turned.copy()
    img.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(img.jpegsave_buffer(Q=95, keep=pyvips.ForeignKeep.EXIF))


def cmyk() -> pyvips.Image:
    return picture().icc_transform("cmyk")


def cmyk_jpeg() -> bytes:
    return bytes(cmyk().jpegsave_buffer(Q=95))


def p3_jpeg() -> bytes:
    return bytes(picture().icc_transform("p3").jpegsave_buffer(Q=95))


def grey_jpeg() -> bytes:
    return encode(picture().colourspace("b-w"), "jpeg")


def jpeg_cut_in_scan() -> bytes:
    data = encode(quadrant_image(640, 480), "jpeg")
    return data[: len(data) * 3 // 4]


def jpeg_cut_in_header() -> bytes:
    data = jpeg()
    return data[: data.index(b"\xff\xc4") + 10]  # inside the first Huffman table


def sos_at(data: bytes) -> int:
    return data.index(b"\xff\xda")


JPEGS: dict[str, Wild] = {
    "jpeg baseline": Wild(jpeg, 201),
    "jpeg progressive": Wild(lambda: jpeg(interlace=True), 201),
    "jpeg with restart markers": Wild(lambda: jpeg(restart_interval=1), 201),
    "jpeg 4:4:4": Wild(lambda: jpeg(subsample_mode="off"), 201),
    "jpeg greyscale": Wild(grey_jpeg, 201, looks=lambda: picture().colourspace("b-w")),
    "jpeg CMYK with its profile": Wild(  # shown as the profile maps it back (green goes olive)
        cmyk_jpeg, 201, looks=lambda: cmyk().icc_transform("srgb", embedded=True)
    ),
    "jpeg Display P3 profile": Wild(p3_jpeg, 201),
    "jpeg EXIF orientation 3": Wild(lambda: oriented_jpeg(3), 201),
    "jpeg EXIF orientation 6": Wild(lambda: oriented_jpeg(6), 201),
    "jpeg EXIF orientation 8": Wild(lambda: oriented_jpeg(8), 201),
    "jpeg Photoshop segments": Wild(
        lambda: after_soi(segment(0xED, photoshop_irb()), segment(0xEE, ADOBE)), 201
    ),
    # the five shapes libjpeg decodes and the old scanner refused
    "jpeg FF 00 pair in its header": Wild(
        lambda: after_soi(segment(0xED, photoshop_irb()), b"\xff\x00", segment(0xEE, ADOBE)), 201
    ),
    "jpeg junk after a COM segment": Wild(
        lambda: after_soi(segment(0xFE, b"Created with GIMP"), b"\x00\x00 junk\r\n"), 201
    ),
    "jpeg APP13 length shorter than its data": Wild(
        lambda: after_soi(segment(0xED, photoshop_irb(), length=len(photoshop_irb()) - 14)), 201
    ),
    "jpeg APP14 shorter than its data": Wild(
        lambda: after_soi(segment(0xEE, ADOBE, length=7)), 201
    ),
    "jpeg APP14 length below 2": Wild(lambda: after_soi(segment(0xEE, b"", length=0)), 201),
    # shapes that were accepted already
    "jpeg APP13 with overrunning 8BIM lengths": Wild(
        lambda: after_soi(segment(0xED, photoshop_irb(claimed=0x4000))),
        201,
    ),
    "jpeg short APP14": Wild(lambda: after_soi(segment(0xEE, b"Adobe")), 201),
    "jpeg fill bytes and RST0 before a segment": Wild(
        lambda: after_soi(b"\xff\xff\xff\xd0", segment(0xFE, b"x")), 201
    ),
    "jpeg data after EOI": Wild(lambda: jpeg() + b"\0" * 64 + b"trailer", 201),
    # truly broken: refused
    "jpeg cut in its header": Wild(jpeg_cut_in_header, 422),
    "jpeg cut in its scan": Wild(jpeg_cut_in_scan, 422),
    "jpeg EOI before its scan": Wild(lambda: after_soi(b"\xff\xd9"), 422),
    "jpeg second SOI": Wild(lambda: after_soi(b"\xff\xd8"), 422),
    "jpeg with 5 MB of junk in its header": Wild(
        lambda: after_soi(segment(0xFE, b"x"), b"\x00" * (5 << 20)), 422
    ),
    "jpeg without a frame header": Wild(
        lambda: (lambda d: d[: d.index(b"\xff\xc0")] + d[d.index(b"\xff\xc4") :])(jpeg()), 422
    ),
}


# ---------------------------------------------------------------- PNG


def png(img: pyvips.Image | None = None, **save: object) -> bytes:
    return encode(picture() if img is None else img, "png", **save)


def with_alpha(img: pyvips.Image) -> pyvips.Image:
    """The picture with an alpha band, transparent in a 4 px frame round the edge only."""
    alpha = solid(img.width - 8, img.height - 8, (255,)).embed(4, 4, img.width, img.height)
    return img.bandjoin(alpha)


def png_sixteen_bit() -> bytes:
    data = png(picture().colourspace("rgb16"))
    assert data[24] == 16  # IHDR bit depth
    return data


def png_text() -> bytes:
    chunk = probe_files.png_chunk(b"tEXt", b"Software\0hand-made")
    data = png()
    return data[:33] + chunk + data[33:]


def png_bad_crc() -> bytes:
    return png().replace(b"IEND", b"IENX")


PNGS: dict[str, Wild] = {
    "png 8-bit RGB": Wild(png, 201),
    "png 16-bit RGB": Wild(png_sixteen_bit, 201),
    "png palette with tRNS": Wild(lambda: png(with_alpha(picture()), palette=True), 201),
    "png interlaced": Wild(lambda: png(interlace=True), 201),
    "png grey and alpha": Wild(
        lambda: png(with_alpha(picture().colourspace("b-w"))),
        201,
        looks=lambda: picture().colourspace("b-w"),
    ),
    "png 1-bit grey": Wild(lambda: png(picture().colourspace("b-w"), bitdepth=1), 201, looks=None),
    "png with text": Wild(png_text, 201),
    "png without IEND": Wild(lambda: png()[:-12], 422),
    "png with a bad CRC": Wild(png_bad_crc, 422),
    "png cut in half": Wild(lambda: png()[: len(png()) // 2], 422),
}


# ---------------------------------------------------------------- GIF


def gif(img: pyvips.Image | None = None, **save: object) -> bytes:
    return encode(picture() if img is None else img, "gif", **save)


def pil_frames() -> list[PilImage.Image]:
    return [PilImage.new("RGB", (WIDTH, HEIGHT), colour) for colour in FRAME_COLOURS[:4]]


def pil_gif(disposal: list[int] | int = 0) -> bytes:
    """Four solid frames by Pillow: each frame's palette is its own local colour table."""
    frames = pil_frames()
    out = io.BytesIO()
    frames[0].save(
        out, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0, disposal=disposal
    )
    return out.getvalue()


def gif_parts(data: bytes) -> tuple[bytes, bytes]:
    """(everything before the first image descriptor and its graphic control, the rest
    without the trailer) of a one-frame libvips GIF."""
    start = data.index(b"\x21\xf9")
    assert data[-1:] == b"\x3b"
    return data[:start], data[start:-1]


def gif_with_control(control: bytes) -> bytes:
    """The still quadrant GIF with its graphic control extension replaced by `control`."""
    head, rest = gif_parts(gif())
    size = rest[2]
    return head + control + rest[3 + size + 1 :] + b"\x3b"


def gif_quirk_disposal() -> bytes:
    """Pillow's animation with its first frame's disposal set to 4, the old 'restore
    previous' some encoders write."""
    data = bytearray(pil_gif())
    control = data.index(b"\x21\xf9\x04")
    data[control + 3] = (data[control + 3] & ~0x1C) | (4 << 2)
    return bytes(data)


def gif_frame_beyond_screen() -> bytes:
    head, rest = gif_parts(gif())
    descriptor = rest.index(b"\x2c")
    moved = rest[: descriptor + 1] + struct.pack("<HH", 15, 15) + rest[descriptor + 5 :]
    return head + moved + b"\x3b"


def gif_cut_in_second_frame() -> bytes:
    data = pil_gif()
    descriptor = b"\x2c\0\0\0\0" + struct.pack("<HH", WIDTH, HEIGHT)
    second = data.index(descriptor, data.index(descriptor) + 1)
    return data[: second + 30]  # past its local colour table, inside its image data


def gif_data_without_terminator() -> bytes:
    data = gif()
    assert data[-2:] == b"\x00\x3b"
    return data[:-2] + b"\x3b"


GIFS: dict[str, Wild] = {
    "gif still": Wild(gif, 201),
    "gif interlaced": Wild(lambda: gif(interlace=True), 201),
    "gif animation with local colour tables": Wild(pil_gif, 201, frames=4, looks=first_frame),
    "gif animation with every disposal": Wild(
        lambda: pil_gif([1, 2, 3, 0]), 201, frames=4, looks=first_frame
    ),
    "gif animation with disposal 4": Wild(gif_quirk_disposal, 201, frames=4, looks=first_frame),
    # the odd transparency block that libnsgif reads and the old scanner refused
    "gif graphic control block of size 0": Wild(lambda: gif_with_control(b"\x21\xf9\x00\x00"), 201),
    "gif graphic control block of size 5": Wild(
        lambda: gif_with_control(b"\x21\xf9\x05\x01\x00\x00\x00\x00\x00"), 201
    ),
    "gif transparent index past its palette": Wild(
        lambda: gif_with_control(b"\x21\xf9\x04\x01\x00\x00\xfe\x00"), 201
    ),
    "gif frame past its screen": Wild(
        gif_frame_beyond_screen, 201, size=(WIDTH + 15, HEIGHT + 15), looks=None
    ),
    "gif without a trailer": Wild(lambda: gif()[:-1], 201),
    "gif with bytes after its last frame": Wild(lambda: gif()[:-1] + b"\x00\x00junk", 201),
    # truly broken: refused
    "gif cut in its second frame": Wild(gif_cut_in_second_frame, 422),
    "gif image data without its terminator": Wild(gif_data_without_terminator, 422),
    "gif without an image": Wild(lambda: gif_parts(gif())[0] + b"\x3b", 422),
    "gif cut in its colour table": Wild(lambda: gif()[:20], 422),
}


# ---------------------------------------------------------------- WebP


def webp_animation() -> bytes:
    strip = pyvips.Image.arrayjoin(
        [solid(WIDTH, HEIGHT, colour) for colour in FRAME_COLOURS[:3]], across=1
    ).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", HEIGHT)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100, 100, 100])
    return bytes(strip.webpsave_buffer(Q=90))


WEBPS: dict[str, Wild] = {
    "webp lossy": Wild(lambda: encode(picture(), "webp"), 201),
    "webp lossless": Wild(lambda: encode(picture(), "webp", lossless=True), 201),
    "webp with alpha": Wild(lambda: encode(with_alpha(picture()), "webp"), 201),
    "webp animation": Wild(webp_animation, 201, frames=3, looks=first_frame),
    "webp cut in half": Wild(
        lambda: (lambda d: d[: len(d) // 2])(encode(quadrant_image(400, 300), "webp")), 422
    ),
}


# ---------------------------------------------------------------- AVIF


def boxes(data: bytes) -> list[bytes]:
    """The top-level ISO-BMFF boxes (32-bit sizes only)."""
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos : pos + size])
        pos += size
    return out


def avif_sequence_without_still() -> bytes:
    """The sequence alone (as ffmpeg writes one): no `meta`, so no still image to decode."""
    return b"".join(box for box in boxes(avif_sequence()) if box[4:8] != b"meta")


AVIFS: dict[str, Wild] = {
    "avif still": Wild(lambda: encode(picture(), "avif"), 201),
    "avif with alpha": Wild(lambda: encode(with_alpha(picture()), "avif"), 201),
    "avif 10-bit": Wild(lambda: encode(picture(), "avif", bitdepth=10), 201),
    # a sequence as libavif writes one (ftyp `avis`, a still image, a track): accepted and
    # served as its still image, the first frame
    "avif sequence (avis)": Wild(avif_sequence, 201, looks=first_frame),
    "avif sequence without a still image": Wild(avif_sequence_without_still, 422),
    "avif cut in half": Wild(lambda: (lambda d: d[: len(d) // 2])(encode(picture(), "avif")), 422),
}


OTHERS: dict[str, Wild] = {
    "tiff": Wild(probe_files.tiff, 415),
    "bmp": Wild(probe_files.bmp, 415),
    "heic": Wild(probe_files.heic_ftyp, 415),
}

CORPUS: dict[str, Wild] = {**JPEGS, **PNGS, **GIFS, **WEBPS, **AVIFS, **OTHERS}
