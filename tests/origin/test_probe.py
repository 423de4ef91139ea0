"""The upload validator with real libvips: the five formats, EXIF, hostile inputs (bombs in a
subprocess with a time and peak-RSS bound), the loader lock-down and a fuzz property."""

from __future__ import annotations

import io
import json
import random
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PilImage

from origin import analysis, render, vips
from origin.decode import read_header
from origin.errors import InvalidImage, UnsupportedMediaType
from origin.probe import FORMAT_MEDIA_TYPES, Probe, probe_upload, sniff_format
from origin.scan import MAX_METADATA_BYTES, NOT_AN_IMAGE, MetadataBudget, scan_jpeg
from origin.transforms.limits import DEFAULT_LIMITS
from origin.transforms.parse import parse_path
from tests.origin.conftest import avif_with_a_binary_item_type

REPO = Path(__file__).resolve().parents[2]
MAX_SECONDS = 2.0
MAX_PEAK_RSS_MB = 300

# ---------------------------------------------------------------- generators


def photo(width: int = 96, height: int = 64) -> pyvips.Image:
    """A gradient, so that lossy encoders have something to encode."""
    xyz = pyvips.Image.xyz(width, height)
    red, green = xyz[0] * (255 / width), xyz[1] * (255 / height)
    blue = (xyz[0] + xyz[1]) % 256
    return red.bandjoin([green, blue]).cast("uchar").copy(interpretation="srgb")


def encode(img: pyvips.Image, fmt: str) -> bytes:
    if fmt == "avif":
        return bytes(img.heifsave_buffer(compression="av1", effort=0, Q=80))
    return bytes(getattr(img, f"{fmt}save_buffer")())


def strip_of(frames: int, width: int, height: int) -> pyvips.Image:
    pages = [photo(width, height).linear(1, [i * 40, 0, 0]) for i in range(frames)]
    strip = pyvips.Image.arrayjoin(pages, across=1).cast("uchar").copy(interpretation="srgb")
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    return strip


@cache
def sample(fmt: str) -> bytes:
    return encode(photo(), fmt)


@cache
def animation(fmt: str, frames: int = 4) -> bytes:
    return encode(strip_of(frames, 40, 30), fmt)


def with_exif(img: pyvips.Image, **fields: str | int) -> pyvips.Image:
    img = img.copy()
    for name, value in fields.items():
        gtype = pyvips.GValue.gint_type if isinstance(value, int) else pyvips.GValue.gstr_type
        img.set_type(gtype, name, value)
    return img


@cache
def camera_jpeg() -> bytes:
    """96x64 stored, orientation 6 (displayed 64x96), Make/Model/date and a GPS position."""
    img = with_exif(
        photo(),
        orientation=6,
        **{
            "exif-ifd0-Make": "Canon",
            "exif-ifd0-Model": "Canon EOS 5D",
            "exif-ifd2-DateTimeOriginal": "2024:01:02 03:04:05",
            "exif-ifd3-GPSLatitudeRef": "N",
            "exif-ifd3-GPSLatitude": "51/1 30/1 0/1",
            "exif-ifd3-GPSLongitudeRef": "W",
            "exif-ifd3-GPSLongitude": "0/1 7/1 0/1",
        },
    )
    img.set_type(pyvips.GValue.blob_type, "xmp-data", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    return bytes(img.jpegsave_buffer())


@cache
def avif_sequence(width: int = 96, height: int = 64, frames: int = 3) -> bytes:
    """An animated AVIF as libavif writes one (through Pillow): ftyp `avis`, a `meta` whose
    still image is the first frame, and a `moov` with the sequence track."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    pictures = [PilImage.new("RGB", (width, height), colours[i % 4]) for i in range(frames)]
    out = io.BytesIO()
    pictures[0].save(
        out, "AVIF", save_all=True, append_images=pictures[1:], duration=100, quality=80, speed=10
    )
    data = out.getvalue()
    assert data[8:12] == b"avis" and b"moov" in data
    return data


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body)
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_of(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(t, b) for t, b in chunks)


def png_with(*extra: tuple[bytes, bytes]) -> bytes:
    """The sample PNG with chunks inserted right after IHDR."""
    chunks = png_chunks(sample("png"))
    return png_of([chunks[0], *extra, *chunks[1:]])


def ihdr(width: int, height: int, depth: int = 8, colour: int = 0) -> tuple[bytes, bytes]:
    return b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)


def png_header_only(width: int, height: int) -> bytes:
    """A valid IHDR declaring a huge image, a token IDAT and IEND."""
    return png_of([ihdr(width, height), (b"IDAT", zlib.compress(b"\0" * 64)), (b"IEND", b"")])


def png_deflate_bomb(side: int = 20000) -> bytes:
    """A valid side x side 1-bit grey PNG of zeros: 50 MB of rows in a few tens of KB."""
    row = bytes(1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000))
    idat += compressor.flush()
    return png_of([ihdr(side, side, depth=1), (b"IDAT", idat), (b"IEND", b"")])


@cache
def zlib_bomb(gigabytes: int = 1) -> bytes:
    """A valid zlib stream of `gigabytes` GB of zeros, about 1 MB long, built in under a second.

    After a full flush the compressor's history is empty, so compressing the same 16 MB again
    gives the same bytes: repeat that segment and write the right Adler-32 at the end.
    """
    zeros, segments = bytes(1 << 24), 64 * gigabytes
    compressor = zlib.compressobj(9)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert head[2:] == body
    final = compressor.flush()[:-4]  # the empty last block; its Adler-32 is for 32 MB
    adler = 1
    for _ in range(segments):
        adler = zlib.adler32(zeros, adler)
    return head + body * (segments - 1) + final + struct.pack(">I", adler)


def ztxt_bomb() -> bytes:
    return png_with((b"zTXt", b"Comment\0\0" + zlib_bomb()))


def itxt_bomb() -> bytes:
    return png_with((b"iTXt", b"Comment\0\1\0en\0Comment\0" + zlib_bomb()))


def iccp_bomb() -> bytes:
    return png_with((b"iCCP", b"icc\0\0" + zlib_bomb()))


@cache
def gif_frame_parts(width: int = 200, height: int = 200) -> tuple[bytes, bytes]:
    """(everything before the first image descriptor, the descriptor and its data) of a
    one-frame GIF encoded by libvips."""
    data = encode(pyvips.Image.black(width, height, bands=3).copy(interpretation="srgb"), "gif")
    start = data.index(b"\x2c\x00\x00\x00\x00" + struct.pack("<HH", width, height))
    assert data[-1:] == b"\x3b"
    return data[:start], data[start:-1]


def gif_with_frames(frames: int) -> bytes:
    head, frame = gif_frame_parts()
    return head + frame * frames + b"\x3b"


def gif_screen(width: int, height: int) -> bytes:
    """A one-frame GIF whose logical screen is width x height."""
    head, frame = gif_frame_parts(1, 1)
    return head[:6] + struct.pack("<HH", width, height) + head[10:] + frame + b"\x3b"


def jpeg_with_segments(marker: int, size: int, count: int) -> bytes:
    data = sample("jpeg")
    segment = bytes([0xFF, marker]) + struct.pack(">H", size + 2) + b"x" * size
    return data[:2] + segment * count + data[2:]


def jpeg_sized(width: int, height: int) -> bytes:
    """The sample JPEG with its frame header's size rewritten."""
    data = sample("jpeg")
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def riff_with(data: bytes, fourcc: bytes, body: bytes) -> bytes:
    """A WebP with one more chunk at the end (RIFF size fixed)."""
    chunk = fourcc + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)
    out = data + chunk
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def gif_with_comment(size: int) -> bytes:
    head, frame = gif_frame_parts(1, 1)
    blocks = b"".join(b"\xff" + b"c" * 255 for _ in range(size // 255))
    return head + b"\x21\xfe" + blocks + b"\0" + frame + b"\x3b"


def tiff() -> bytes:
    return bytes(photo().tiffsave_buffer())


def bmp() -> bytes:
    pixels = b"\0\0\xff" * 4 + b"\0" * 0
    header = b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def heic_ftyp() -> bytes:
    return struct.pack(">I", 24) + b"ftypheic\0\0\0\0mif1heic" + bytes(64)


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<image href="file:///etc/passwd"/></svg>'
)
MVG = (
    b"push graphic-context\nviewbox 0 0 640 480\n"
    b"fill 'url(https://example.com/image.jpg\"|ls \"-la)'\npop graphic-context\n"
)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


def refused(data: bytes, error: type[Exception], **limits: int) -> Exception:
    """The error `probe_upload` raises, asserting its class and that it came quickly."""
    start = time.perf_counter()
    with pytest.raises(error) as caught:
        probe_upload(data, **limits)
    assert time.perf_counter() - start < MAX_SECONDS
    return caught.value


# ---------------------------------------------------------------- the five formats


@pytest.mark.parametrize("fmt", list(FORMAT_MEDIA_TYPES))
def test_each_format_probes_with_its_size(fmt: str) -> None:
    probe = probe_upload(sample(fmt))
    assert probe == Probe(fmt, FORMAT_MEDIA_TYPES[fmt], 96, 64, 1, probe.metadata)
    json.dumps(probe.metadata)


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animations_count_their_frames(fmt: str) -> None:
    probe = probe_upload(animation(fmt, 4))
    assert (probe.format, probe.width, probe.height, probe.frames) == (fmt, 40, 30, 4)


def test_sniffing_reads_magic_bytes_only() -> None:
    assert {fmt: sniff_format(sample(fmt)) for fmt in FORMAT_MEDIA_TYPES} == {
        fmt: fmt for fmt in FORMAT_MEDIA_TYPES
    }
    compatible_avif = struct.pack(">I", 24) + b"ftypmif1\0\0\0\0miafavif"
    assert sniff_format(compatible_avif) == "avif"
    for other in (heic_ftyp(), tiff(), bmp(), SVG, MVG, PDF, HTML, b"", b"\x89PN", b"RIFF"):
        assert sniff_format(other) is None


def test_exif_orientation_swaps_the_displayed_size() -> None:
    probe = probe_upload(camera_jpeg())
    assert (probe.width, probe.height) == (64, 96)
    assert probe.metadata["Orientation"] == 6


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_other_formats_are_measured_upright_too(fmt: str) -> None:
    # libheif rotates AVIF itself (and drops the tag); PNG and WebP keep it for us to apply.
    probe = probe_upload(encode(with_exif(photo(), orientation=6), fmt))
    assert (probe.width, probe.height) == (64, 96)


def test_the_size_rewriting_helper_keeps_a_valid_jpeg() -> None:
    probe = probe_upload(jpeg_sized(96, 64))
    assert (probe.width, probe.height) == (96, 64)


def test_exif_keeps_camera_fields_and_drops_gps_and_xmp() -> None:
    header = pyvips.Image.jpegload_buffer(camera_jpeg())
    assert any(name.startswith("exif-ifd3-GPS") for name in header.get_fields())  # written
    assert header.get_typeof("xmp-data")

    metadata = probe_upload(camera_jpeg()).metadata
    assert metadata["Make"] == "Canon"
    assert metadata["Model"] == "Canon EOS 5D"
    assert metadata["DateTimeOriginal"] == "2024:01:02 03:04:05"
    assert not [key for key in metadata if "gps" in key.lower() or "xmp" in key.lower()]
    assert "ExifVersion" not in metadata  # an Undefined (binary) field
    assert "51/1" not in json.dumps(metadata)


def test_a_metadata_name_that_is_not_text_is_left_out() -> None:
    """Found by the mutation fuzz below: an AVIF item type made of any bytes names a libvips
    field, which pyvips' own ``get_fields`` fails to decode (UnicodeDecodeError, a 500)."""
    data = avif_with_a_binary_item_type()
    with pytest.raises(UnicodeDecodeError):
        pyvips.Image.heifload_buffer(data).get_fields()
    probe = probe_upload(data)
    assert (probe.format, probe.width, probe.height) == ("avif", 400, 300)
    assert probe.metadata["Copyright"] == "(c) Jane"


def test_exif_is_capped_and_json_safe() -> None:
    long_text = "x\0y" * 2000
    fields = {f"exif-ifd0-{tag}": long_text for tag in ("ImageDescription", "Artist")}
    fields |= {"exif-ifd0-Copyright": long_text, "exif-ifd0-Software": long_text}
    metadata = probe_upload(bytes(with_exif(photo(), **fields).jpegsave_buffer())).metadata
    text = json.dumps(metadata)
    assert len(text) <= 4096
    assert len(metadata) <= 64
    assert "\\u0000" not in text
    assert all(isinstance(value, str | int) for value in metadata.values())


def test_metadata_below_the_budget_passes() -> None:
    text = (b"Comment\0" + b"hello " * 2000, zlib.compress(b"a" * 100_000))
    data = png_with((b"tEXt", text[0]), (b"zTXt", b"Raw\0\0" + text[1]))
    assert probe_upload(data).format == "png"


# ---------------------------------------------------------------- hostile inputs: 422


@pytest.mark.parametrize(
    "make",
    [
        lambda: png_with(*[(b"zTXt", b"k\0\0" + zlib.compress(bytes(1_500_000)))] * 3),
        lambda: png_with((b"tEXt", b"k\0" + bytes(MAX_METADATA_BYTES))),
        lambda: png_with((b"eXIf", bytes(MAX_METADATA_BYTES + 1))),
        lambda: png_with((b"iTXt", b"k\0\1\0\0\0" + zlib.compress(bytes(5_000_000)))),
    ],
    ids=["ztxt-total", "text", "exif", "itxt"],
)
def test_png_metadata_over_the_budget_is_refused(make: Callable[[], bytes]) -> None:
    error = refused(make(), InvalidImage)
    assert "metadata" in str(error)


@pytest.mark.parametrize(
    "data",
    [
        jpeg_with_segments(0xFE, 60_000, 3),  # COM
        jpeg_with_segments(0xE1, 60_000, 3),  # APP1
        gif_with_comment(200_000),
        riff_with(sample("webp"), b"EXIF", bytes(200_000)),
    ],
    ids=["jpeg-com", "jpeg-app1", "gif-comment", "webp-exif"],
)
def test_other_formats_count_metadata_too(data: bytes) -> None:
    refused(data, InvalidImage, max_metadata_bytes=150_000)
    probe_upload(data, max_metadata_bytes=MAX_METADATA_BYTES)  # within the default


@pytest.mark.parametrize(
    ("make", "pixels"),
    [
        (lambda: png_header_only(100_000, 100_000), 100_000_000),
        (lambda: gif_screen(65535, 65535), 100_000_000),
        (lambda: gif_with_frames(5000), 100_000_000),
        (lambda: encode(photo(200, 100), "jpeg"), 10_000),
        (lambda: encode(photo(200, 100), "webp"), 10_000),
        (lambda: encode(photo(200, 100), "avif"), 10_000),
        (lambda: animation("webp", 4), 3 * 40 * 30),
    ],
    ids=["png-header", "gif-screen", "gif-5000-frames", "jpeg", "webp", "avif", "webp-frames"],
)
def test_sources_over_the_pixel_limit_are_refused(make: Callable[[], bytes], pixels: int) -> None:
    error = refused(make(), InvalidImage, max_source_pixels=pixels)
    assert str(error) == f"image is larger than the {pixels}-pixel limit"


def test_the_frame_generator_makes_valid_gifs() -> None:
    assert probe_upload(gif_with_frames(12)).frames == 12


def test_a_png_chunk_stream_must_be_sound() -> None:
    chunks = png_chunks(sample("png"))
    good = png_of(chunks)
    refused(good.replace(b"IEND", b"IENX"), InvalidImage)  # bad CRC
    refused(png_of(chunks[:-1]), InvalidImage)  # no IEND
    refused(png_of(chunks[1:]), InvalidImage)  # no IHDR
    absurd = good[:8] + struct.pack(">I", 0xFFFFFFF0) + good[12:]
    refused(absurd, InvalidImage)
    refused(png_of([ihdr(0, 10), *chunks[1:]]), InvalidImage)


def test_a_corrupt_png_with_good_crcs_is_refused_by_libvips() -> None:
    chunks = png_chunks(encode(photo(320, 240), "png"))
    idat = next(i for i, (ctype, _) in enumerate(chunks) if ctype == b"IDAT")
    body = bytearray(chunks[idat][1])
    body[len(body) // 2 : len(body) // 2 + 64] = bytes(range(64))
    chunks[idat] = (b"IDAT", bytes(body))
    error = refused(png_of(chunks), InvalidImage)
    assert str(error) == NOT_AN_IMAGE
    assert isinstance(error.__cause__, pyvips.Error)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = encode(photo(320, 240), fmt)
    for cut in (len(data) // 2, len(data) * 9 // 10):
        refused(data[:cut], InvalidImage)


def test_a_jpeg_cut_inside_its_scan_is_refused_by_libvips() -> None:
    data = encode(photo(640, 480), "jpeg")
    error = refused(data[: len(data) * 3 // 4], InvalidImage)
    assert str(error) == NOT_AN_IMAGE
    assert isinstance(error.__cause__, pyvips.Error)
    assert "Vips" not in str(error) and "jpeg" not in str(error).lower()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff" + random.Random(7).randbytes(5000),
        b"\xff\xd8\xff\xe0<?php system($_GET['c']); ?>",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00<?php ?>",
        b"GIF89a=1;alert(document.domain);//" + b"\x3b",
        b"GIF89a/*\x00\x00*/=1;alert(1);",
        b"\x89PNG\r\n\x1a\n<script>alert(1)</script>",
        b"RIFF\x10\x00\x00\x00WEBPVP8 \x04\x00\x00\x00abcd",
        struct.pack(">I", 20) + b"ftypavif\0\0\0\0avif" + b"<svg/onload=alert(1)>",
        jpeg_sized(0, 64),
        jpeg_sized(96, 0),  # a height defined later by DNL: unsupported
        jpeg_with_segments(0xFE, 0, 5000),  # thousands of empty comments
    ],
    ids=[
        "jpeg-random",
        "jpeg-php",
        "jfif-php",
        "gif-js",
        "gif-js-comment",
        "png-html",
        "webp",
        "avif",
        "jpeg-zero-width",
        "jpeg-zero-height",
        "jpeg-5000-segments",
    ],
)
def test_malformed_files_behind_good_magic_bytes_are_refused(data: bytes) -> None:
    refused(data, InvalidImage)


def test_avif_is_told_by_compatible_brands_and_its_av1_item() -> None:
    data = sample("avif")
    assert data[8:12] == b"avif"
    mif1 = data[:8] + b"mif1" + data[12:]  # the compatible brands still say avif
    assert probe_upload(mif1).format == "avif"
    hevc = data.replace(b"av01", b"hvc1").replace(b"av1C", b"hvcC")  # HEIC behind avif
    assert sniff_format(hevc) == "avif"
    refused(hevc, UnsupportedMediaType)


def test_an_avif_sequence_is_probed_as_its_still_image() -> None:
    """libvips 8.18 (libheif) reads the still image of an `avis` file, not its track: the
    upload is one frame, and every render reads it with the same loader (origin.vips)."""
    probe = probe_upload(avif_sequence())
    assert (probe.format, probe.width, probe.height, probe.frames) == ("avif", 96, 64, 1)
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(avif_sequence(), "")  # libvips' own sniffing fails
    header = read_header(avif_sequence(), DEFAULT_LIMITS.max_source_pixels)
    assert (header.format, header.width, header.height, header.pages) == ("avif", 96, 64, 1)
    thumb = vips.thumbnail(avif_sequence(), "avif", 48, height=48)
    assert (thumb.width, thumb.height) == (48, 32)
    assert [round(v) for v in thumb(24, 16)] == pytest.approx([255, 0, 0], abs=24)


def test_an_avif_sequence_without_a_still_image_is_refused() -> None:
    data, pos, kept = avif_sequence(), 0, b""
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kept += b"" if data[pos + 4 : pos + 8] == b"meta" else data[pos : pos + size]
        pos += size
    refused(kept, InvalidImage)


# ---------------------------------------------------------------- libjpeg's and libnsgif's reading

PHOTOSHOP_APP13 = b"\xff\xed\x00\x10Photoshop 3.0\x00"


def after_soi(data: bytes, *parts: bytes) -> bytes:
    return data[:2] + b"".join(parts) + data[2:]


def test_a_marker_right_after_a_segment_ending_in_ff_is_found() -> None:
    data = after_soi(sample("jpeg"), b"\xff\xfe\x00\x05ab\xff", b"\xff\xfe\x00\x03c")
    assert probe_upload(data).width == 96


def metadata_spent(data: bytes) -> int:
    budget = MetadataBudget(MAX_METADATA_BYTES)
    scan_jpeg(data, budget)
    return budget.limit - budget.remaining


def test_junk_between_jpeg_segments_counts_toward_the_metadata_budget() -> None:
    """libjpeg skips whatever is not a marker between segments; so does the scanner, paying
    for every byte it skips (fill included), and never looking past the budget."""
    data = after_soi(sample("jpeg"), PHOTOSHOP_APP13, b"\xff\x00" + b"j" * 998 + b"\xff\xff")
    spent = metadata_spent(data)
    assert spent == metadata_spent(sample("jpeg")) + 14 + 1000 + 2
    assert probe_upload(data, max_metadata_bytes=spent).width == 96
    error = refused(data, InvalidImage, max_metadata_bytes=spent - 1)
    assert str(error) == f"the image metadata is larger than the {spent - 1}-byte limit"


@pytest.mark.parametrize(
    "junk",
    [b"\xff\xd8", b"\xff\xd9", b"\xff\x02\x00\x04ab"],
    ids=["second-soi", "eoi", "unknown-marker"],
)
def test_markers_libjpeg_refuses_before_the_scan_are_refused(junk: bytes) -> None:
    data = after_soi(sample("jpeg"), junk)
    with pytest.raises(pyvips.Error):
        pyvips.Image.jpegload_buffer(data, fail_on="error").avg()
    refused(data, InvalidImage)


def gif_parts_with_control(control: bytes) -> bytes:
    head, frame = gif_frame_parts(8, 8)
    control_at = head.index(b"\x21\xf9")
    return head[:control_at] + control + head[control_at + 8 :] + frame + b"\x3b"


def test_a_gif_extension_block_of_size_0_is_not_its_terminator() -> None:
    """libnsgif skips an extension's own block, whatever its size, then sub-blocks up to the
    terminator: `21 F9 00 00` is a graphic control block of size 0 and its terminator."""
    data = gif_parts_with_control(b"\x21\xf9\x00\x00")
    pyvips.Image.gifload_buffer(data, fail_on="error").avg()
    assert probe_upload(data).frames == 1


def test_a_gif_ends_where_libnsgif_stops_reading_it() -> None:
    """Bytes that start neither a block nor the trailer end the stream for libnsgif: frames
    after them are never decoded, so they are not counted either."""
    head, frame = gif_frame_parts(8, 8)
    data = head + frame + b"\x00junk" + frame * 3 + b"\x3b"
    decoded = pyvips.Image.gifload_buffer(data, n=-1, fail_on="error")
    assert decoded.get("n-pages") == probe_upload(data).frames == 1
    refused(head + frame + frame[: len(frame) // 2], InvalidImage)  # cut in a frame: truncated


# ---------------------------------------------------------------- hostile inputs: 415


@pytest.mark.parametrize(
    "make",
    [
        lambda: SVG,
        lambda: MVG,
        lambda: PDF,
        lambda: HTML,
        tiff,
        bmp,
        heic_ftyp,
        lambda: b"",
        lambda: b"\x89PN",
        lambda: b"\0\0\0\0ftyp",
    ],
    ids=["svg", "mvg", "pdf", "html", "tiff", "bmp", "heic", "empty", "3-bytes", "short-ftyp"],
)
def test_other_types_are_unsupported(make: Callable[[], bytes]) -> None:
    error = refused(make(), UnsupportedMediaType)
    assert str(error) == "the file is not a JPEG, PNG, GIF, WebP, AVIF or SVG image"


# ---------------------------------------------------------------- bombs: time and memory

BOMB_SCRIPT = """
import json, sys, time
from origin.errors import OriginError
from origin.probe import probe_upload
data = open(sys.argv[1], "rb").read()
start = time.perf_counter()
try:
    probe_upload(data)
    outcome = "accepted"
except OriginError as exc:
    outcome = type(exc).__name__
seconds = time.perf_counter() - start
status = open("/proc/self/status").read()
hwm = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_rss_mb": hwm / 1024}))
"""

BOMBS: dict[str, Callable[[], bytes]] = {
    "png-100000x100000-header": lambda: png_header_only(100_000, 100_000),
    "png-deflate-20000x20000": png_deflate_bomb,
    "png-ztxt-1gb": ztxt_bomb,
    "png-itxt-1gb": itxt_bomb,
    "png-iccp-1gb": iccp_bomb,
    "gif-65535x65535-screen": lambda: gif_screen(65535, 65535),
    "gif-5000-frames": lambda: gif_with_frames(5000),
    "jpeg-9mb-of-ff00-in-its-header": lambda: b"\xff\xd8" + b"\xff\x00" * (9 << 19),
    "jpeg-9mb-of-fill": lambda: b"\xff\xd8" + b"\xff" * (9 << 20),
}


def run_script(script: str, argument: str) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (its own libvips, its own peak RSS); its JSON."""
    run = subprocess.run(
        [sys.executable, "-c", script, argument],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(run.stdout)
    return result


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_quickly_in_little_memory(name: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb"
    path.write_bytes(BOMBS[name]())
    assert path.stat().st_size < 10 * 1024 * 1024
    result = run_script(BOMB_SCRIPT, str(path))
    assert result["outcome"] == "InvalidImage", result
    assert result["seconds"] < MAX_SECONDS, result
    assert result["peak_rss_mb"] < MAX_PEAK_RSS_MB, result


# ---------------------------------------------------------------- libvips lock-down

LOCKDOWN_SCRIPT = """
import json, os, sys
import pyvips
from origin.probe import probe_upload
from origin.vips import configure_libvips

folder = sys.argv[1]
img = (pyvips.Image.black(16, 16, bands=3) + [1, 2, 3]).cast("uchar").copy(interpretation="srgb")
tiff = bytes(img.tiffsave_buffer())
img.vipssave(os.path.join(folder, "a.v"))
img[0].csvsave(os.path.join(folder, "a.csv"))
img[0].matrixsave(os.path.join(folder, "a.mat"))
svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'
pdf = b"%PDF-1.4\\n1 0 obj<</Type/Catalog>>endobj\\ntrailer<</Root 1 0 R>>\\n%%EOF\\n"
good = {
    "jpeg": bytes(img.jpegsave_buffer()),
    "png": bytes(img.pngsave_buffer()),
    "gif": bytes(img.gifsave_buffer()),
    "webp": bytes(img.webpsave_buffer()),
    "heif": bytes(img.heifsave_buffer(compression="av1", effort=0)),
}
before = pyvips.Image.new_from_buffer(svg, "").width  # svg loads before the lock-down

configure_libvips()
configure_libvips()  # idempotent

def outcome(load):
    try:
        load().avg()
        return "loads"
    except pyvips.Error:
        return "refused"

result = {
    "svg-before": before,
    "tiff": outcome(lambda: pyvips.Image.new_from_buffer(tiff, "")),
    "tiffload_buffer": outcome(lambda: pyvips.Image.tiffload_buffer(tiff)),
    "svg": outcome(lambda: pyvips.Image.new_from_buffer(svg, "")),
    "svgload_buffer": outcome(lambda: pyvips.Image.svgload_buffer(svg)),
    "pdf": outcome(lambda: pyvips.Image.new_from_buffer(pdf, "")),
    "vips": outcome(lambda: pyvips.Image.new_from_file(os.path.join(folder, "a.v"))),
    "vipsload": outcome(lambda: pyvips.Image.vipsload(os.path.join(folder, "a.v"))),
    "csv": outcome(lambda: pyvips.Image.csvload(os.path.join(folder, "a.csv"))),
    "matrix": outcome(lambda: pyvips.Image.matrixload(os.path.join(folder, "a.mat"))),
    "cache": pyvips.cache_get_max(),
}
for fmt, data in good.items():
    result[fmt] = outcome(lambda: pyvips.Image.new_from_buffer(data, ""))
    result[fmt + "load_buffer"] = outcome(lambda: getattr(pyvips.Image, fmt + "load_buffer")(data))
    result[fmt + "-probe"] = probe_upload(data).format
print(json.dumps(result))
"""


def test_configure_libvips_blocks_every_other_loader(tmp_path: Path) -> None:
    result = run_script(LOCKDOWN_SCRIPT, str(tmp_path))
    assert result.pop("svg-before") == 8
    assert result.pop("cache") == 0
    probes = {key: result.pop(key) for key in list(result) if key.endswith("-probe")}
    assert probes == {
        "jpeg-probe": "jpeg",
        "png-probe": "png",
        "gif-probe": "gif",
        "webp-probe": "webp",
        "heif-probe": "avif",
    }
    refused_names = {"tiff", "tiffload_buffer", "svg", "svgload_buffer", "pdf", "vips"}
    refused_names |= {"vipsload", "csv", "matrix"}
    assert {key for key, value in result.items() if value == "refused"} == refused_names
    assert {key for key, value in result.items() if value == "loads"} == set(result) - (
        refused_names
    )


# ---------------------------------------------------------------- fuzz property

SEEDS = {
    "jpeg": encode(photo(24, 16), "jpeg"),
    "png": encode(photo(24, 16), "png"),
    "gif": encode(strip_of(2, 12, 8), "gif"),
    "webp": encode(strip_of(2, 12, 8), "webp"),
    "webp-still": encode(photo(24, 16), "webp"),
    "avif": encode(photo(24, 16), "avif"),
    "avif-sequence": avif_sequence(24, 16, 2),
}
# Major brands libvips' own sniffing does (mif1, msf1) and does not (avis, miaf) recognise.
BRANDS = (b"avif", b"avis", b"mif1", b"msf1", b"miaf")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every CRC a PNG's chunk walk reaches, so mutations get past the CRC check."""
    out, pos = bytearray(data), 8
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, pos)
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])))
        pos = end + 4
    return bytes(out)


def survives(data: bytes) -> Probe | None:
    try:
        return probe_upload(data, max_source_pixels=1_000_000)
    except (UnsupportedMediaType, InvalidImage):
        return None


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "header-flip", "brand"]))
    if kind == "brand":
        if name.startswith("avif"):
            data[8:12] = draw(st.sampled_from(BRANDS))
    elif kind in ("flip", "header-flip"):
        span = min(len(data), 64) if kind == "header-flip" else len(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, span - 1))] = draw(st.integers(0, 255))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    else:
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    if name == "png" and draw(st.booleans()):
        return fix_png_crcs(bytes(data))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_fuzz_seeds_are_valid(name: str) -> None:
    assert survives(SEEDS[name]) is not None


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_refused_with_our_errors(data: bytes) -> None:
    survives(data)


@FUZZ
@given(st.sampled_from(sorted({SEEDS[n][:16] for n in SEEDS})), st.binary(max_size=2048))
def test_random_bytes_behind_magic_bytes_are_refused_with_our_errors(
    head: bytes, tail: bytes
) -> None:
    survives(head + tail)


@FUZZ
@given(mutations())
def test_mutated_images_raise_only_our_errors(data: bytes) -> None:
    survives(data)


@FUZZ
@given(mutations())
def test_whatever_the_probe_accepts_every_render_reads(data: bytes) -> None:
    """Never accept what cannot be served: a derivative, the `.json` summary and the upload
    analysis of an accepted file all decode it (with the loader the probe used)."""
    probe = survives(data)
    if probe is None:
        return
    # c_scale: any aspect ratio gives 8 × 8 (a c_fill of a 8204 × 8 GIF would need a
    # 8204 px wide intermediate, which is a 400 limit_exceeded, not a failure to decode)
    made = render.render(data, parse_path(f"/i/{'0' * 32}/w_8,h_8,c_scale/x.png"))
    assert (made.width, made.height) == (8, 8)
    assert set(analysis.source_summary(data)) == {"blurhash", "dominant_color"}
    assert analysis.analyse(data) is not None


def test_every_decode_of_a_stored_image_goes_through_origin_vips() -> None:
    """One loading rule: no module but origin/vips.py opens bytes with libvips' own sniffing
    or names a loader, except where the bytes are our own encoder's output."""
    own_output = {"quality.py", "gif.py"}  # decode what they just encoded, to measure it
    sniffing = re.compile(r"new_from_buffer\(|thumbnail_buffer\(|load_buffer\(|new_from_file\(")
    users = {
        path.name for path in (REPO / "origin").rglob("*.py") if sniffing.search(path.read_text())
    }
    assert users - own_output == {"vips.py"}


def test_an_interlaced_png_decoded_whole_is_bounded() -> None:
    """libpng holds an interlaced PNG whole: one of 9999² 16-bit RGBA (800 MB decoded) in a
    779 KB file held ~880 MB to upload. Past MAX_INTERLACED_BYTES decoded it is refused
    from its header; the same size without interlacing is not."""

    def header(interlace: int) -> tuple[bytes, bytes]:
        return b"IHDR", struct.pack(">IIBBBBB", 9999, 9999, 16, 6, 0, 0, interlace)

    idat = (b"IDAT", zlib.compress(b"\0" * 64))
    error = refused(png_of([header(1), idat, (b"IEND", b"")]), InvalidImage)
    assert "interlaced" in str(error)
    plain = refused(png_of([header(0), idat, (b"IEND", b"")]), InvalidImage)
    assert "interlaced" not in str(plain)  # refused for its pixels, not its interlacing
    small = pyvips.Image.black(64, 48, bands=3).cast("uchar")
    assert probe_upload(bytes(small.pngsave_buffer(interlace=True))).width == 64
