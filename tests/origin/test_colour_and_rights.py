"""Colour policy and metadata flags on real libvips: CMYK and Adobe RGB sources render with
the colours a reference conversion (littleCMS through Pillow's ImageCms) gives, measured as
CIEDE2000 ΔE; ``fl_keep_icc`` embeds the source's profile; ``fl_keep_copyright`` keeps the
rights fields and never GPS; ``fl_smaller`` answers the original only when allowed."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import pyvips
from PIL import Image, ImageCms
from skimage.color import deltaE_ciede2000, rgb2lab

from origin.render import facts, render
from origin.transforms.parse import parse_path
from tests.origin.conftest import (
    IMAGE_ID,
    RED,
    YELLOW,
    avif_with_a_binary_item_type,
    close,
    colour_at,
    decode,
    photo,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run(chain: str, source: bytes, ext: str = "png") -> pyvips.Image:
    path = f"/i/{IMAGE_ID}/{chain}/x.{ext}" if chain else f"/i/{IMAGE_ID}/x.{ext}"
    return decode(render(source, parse_path(path)).body)


def rgb_array(img: pyvips.Image) -> np.ndarray:  # type: ignore[type-arg]
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )[:, :, :3]


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return deltaE_ciede2000(rgb2lab(a / 255.0), rgb2lab(b / 255.0))  # type: ignore[no-any-return]


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def adobe_rgb_profile() -> bytes:
    """An ICC v2 matrix/TRC profile of Adobe RGB (1998): gamma 563/256, its D50-adapted
    primaries (the published colorants), D50 white."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)

    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", 563) + b"\0\0"
    desc_text = b"Adobe RGB (1998) test\0"
    desc = (
        b"desc"
        + b"\0" * 4
        + struct.pack(">I", len(desc_text))
        + desc_text
        + b"\0" * 8
        + b"\0" * 3
        + b"\0" * 67
    )
    tags = [
        (b"desc", desc),
        (b"cprt", b"text" + b"\0" * 4 + b"no copyright, test data\0"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)),
        (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
        (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, data = b"", b""
    for sig, body in tags:
        while (offset + len(data)) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = 128 + table_size + len(data)
    header = (
        struct.pack(">I", size)
        + b"none"
        + bytes([2, 0x10, 0, 0])
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 4
        + b"\0" * 4
        + b"\0" * 8
        + b"\0" * 8
        + b"\0" * 4
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\0" * 4
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def reference_srgb(pixels: np.ndarray, profile: bytes, mode: str) -> np.ndarray:  # type: ignore[type-arg]
    """``pixels`` (RGB or CMYK values in ``profile``) converted to sRGB by littleCMS."""
    source = Image.fromarray(pixels, mode)
    converted = ImageCms.profileToProfile(
        source,
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
        outputMode="RGB",
    )
    return np.asarray(converted)


def small_photo() -> pyvips.Image:
    img = decode(photo("astronaut"))
    return img.thumbnail_image(160).extract_band(0, n=3)


def test_adobe_rgb_source_renders_with_the_reference_colours() -> None:
    profile = adobe_rgb_profile()
    img = small_photo().copy()
    img.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    source = bytes(img.pngsave_buffer(keep=pyvips.ForeignKeep.ICC))
    out = rgb_array(run("", source))
    want = reference_srgb(rgb_array(img), profile, "RGB")
    error = delta_e(out.astype(np.float64), want.astype(np.float64))
    naive = delta_e(rgb_array(img).astype(np.float64), want.astype(np.float64))
    assert float(np.percentile(naive, 99)) > 5  # ignoring the profile would be visibly wrong
    assert float(np.mean(error)) < 1.0 and float(np.percentile(error, 99)) < 3.0


@pytest.mark.parametrize("embedded", [True, False])
def test_cmyk_jpeg_renders_with_the_reference_colours(embedded: bool) -> None:
    rgb = small_photo()
    cmyk = rgb.icc_transform("cmyk", input_profile="srgb")
    profile = bytes(cmyk.get("icc-profile-data"))
    if not embedded:
        cmyk = cmyk.copy()
        cmyk.remove("icc-profile-data")
    keep = pyvips.ForeignKeep.ICC if embedded else pyvips.ForeignKeep.NONE
    source = bytes(cmyk.jpegsave_buffer(Q=100, keep=keep))
    raw = pyvips.Image.new_from_buffer(source, "")  # the CMYK values as stored
    assert raw.interpretation == "cmyk" and raw.bands == 4
    values = np.ndarray(
        buffer=raw.write_to_memory(), dtype=np.uint8, shape=(raw.height, raw.width, 4)
    )
    want = reference_srgb(values, profile, "CMYK")
    out = run("", source)
    assert (out.width, out.height, out.bands) == (raw.width, raw.height, 3)
    error = delta_e(rgb_array(out).astype(np.float64), want.astype(np.float64))
    assert float(np.mean(error)) < 0.5 and float(np.percentile(error, 99)) < 2.0


@pytest.mark.parametrize("embedded", [True, False])
def test_cmyk_jpeg_has_the_same_colours_when_its_first_stage_scales(embedded: bool) -> None:
    """A first stage that scales decodes through libvips' thumbnail, which converts CMYK
    itself: with the perceptual intent, as an unscaled decode is converted (it used the
    relative one, a shift of ~16 levels of blue on a photograph)."""
    cmyk = small_photo().icc_transform("cmyk", input_profile="srgb", intent="perceptual")
    if not embedded:
        cmyk = cmyk.copy()
        cmyk.remove("icc-profile-data")
    keep = pyvips.ForeignKeep.ICC if embedded else pyvips.ForeignKeep.NONE
    source = bytes(cmyk.jpegsave_buffer(Q=100, keep=keep))
    scaled_at_load = rgb_array(run("w_80", source)).astype(np.float64)
    scaled_later = rgb_array(run(f"w_{cmyk.width}/w_80", source)).astype(np.float64)
    assert scaled_at_load.shape == scaled_later.shape == (80, 80, 3)
    error = delta_e(scaled_at_load, scaled_later)
    assert float(np.mean(error)) < 1.0, float(np.mean(error))


def test_keep_icc_embeds_the_source_profile_and_keeps_its_values() -> None:
    profile = adobe_rgb_profile()
    img = small_photo().copy()
    img.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    source = bytes(img.pngsave_buffer(keep=pyvips.ForeignKeep.ICC))
    for ext in ("png", "jpg", "webp"):
        kept = run("w_80,fl_keep_icc", source, ext)
        assert bytes(kept.get("icc-profile-data")) == profile
        converted = run("w_80", source, ext)
        assert bytes(converted.get("icc-profile-data")) != profile  # sRGB's
    values = rgb_array(run("fl_keep_icc", source)).astype(int)
    assert np.abs(values - rgb_array(img).astype(int)).max() == 0  # lossless PNG: as stored
    # GIF carries no profile: its pixels are converted to sRGB, the flag or not (they were
    # written as the profile's values, shown as sRGB: off by ~9 levels for Adobe RGB)
    gif = rgb_array(run("w_80,fl_keep_icc", source, "gif")).astype(int)
    assert np.abs(gif - rgb_array(run("w_80", source, "gif")).astype(int)).max() == 0
    # A CMYK source is converted even with the flag: no output format here carries CMYK.
    cmyk = bytes(small_photo().icc_transform("cmyk", input_profile="srgb").jpegsave_buffer())
    assert run("fl_keep_icc", cmyk).bands == 3


def tagged_jpeg() -> bytes:
    """A JPEG with EXIF (artist, copyright, camera, GPS), IPTC and XMP rights and non-rights."""
    exif = Image.Exif()
    exif[0x013B] = "Jane Artist"
    exif[0x8298] = "(c) 2026 Jane Artist"
    exif[0x010F] = "CamMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    img = Image.new("RGB", (320, 240), (40, 120, 200))
    body = io.BytesIO()
    img.save(body, "JPEG", exif=exif.tobytes())
    vimg = pyvips.Image.new_from_buffer(body.getvalue(), "").copy()

    def dataset(record: int, number: int, value: bytes) -> bytes:
        return bytes((0x1C, record, number)) + struct.pack(">H", len(value)) + value

    iptc = (
        dataset(2, 80, b"Jane Artist")
        + dataset(2, 116, b"(c) 2026 Jane Artist")
        + dataset(2, 90, b"Paris")
        + dataset(2, 120, b"private caption")
    )
    irb = b"Photoshop 3.0\0" + b"8BIM" + struct.pack(">HHI", 0x0404, 0, len(iptc)) + iptc
    vimg.set_type(pyvips.GValue.blob_type, "iptc-data", irb)
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmpRights:Marked="True" '
        'exif:GPSLatitude="48,51.5N">'
        '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) Jane</rdf:li></rdf:Alt></dc:rights>'
        "<dc:description><rdf:Alt><rdf:li>secret place</rdf:li></rdf:Alt></dc:description>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    vimg.set_type(pyvips.GValue.blob_type, "xmp-data", xmp.encode())
    return bytes(vimg.jpegsave_buffer(Q=90))


def read_exif(body: bytes) -> dict[int, object]:
    exif = Image.open(io.BytesIO(body)).getexif()
    found = dict(exif)
    found.update({("gps", k): v for k, v in exif.get_ifd(0x8825).items()})  # type: ignore[misc]
    return found


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "avif"])
def test_keep_copyright_keeps_rights_and_never_gps(ext: str) -> None:
    source = tagged_jpeg()
    assert 0x8825 in read_exif(source)  # the source has GPS
    plain = render(source, parse_path(f"/i/{IMAGE_ID}/w_100/x.{ext}")).body
    kept = render(source, parse_path(f"/i/{IMAGE_ID}/w_100,fl_keep_copyright/x.{ext}")).body
    assert b"Jane" not in plain
    img = decode(kept)
    exif = read_exif(kept) if ext != "avif" else {}
    if ext != "avif":  # Pillow reads EXIF from JPEG, PNG and WebP
        assert exif[0x013B] == "Jane Artist" and exif[0x8298] == "(c) 2026 Jane Artist"
        assert 0x010F not in exif and not any(isinstance(k, tuple) for k in exif)
    assert img.get("exif-ifd0-Copyright").startswith("(c) 2026 Jane Artist")
    assert not any(f.startswith("exif-ifd3") for f in img.get_fields())  # no GPS IFD
    assert not any(f.startswith("exif-ifd0-Make") for f in img.get_fields())
    xmp = bytes(img.get("xmp-data")).decode()
    assert "(c) Jane" in xmp and "Marked" in xmp
    assert "secret place" not in xmp and "GPS" not in xmp
    for leak in (b"secret place", b"CamMaker", b"private caption", b"Paris", b"48,51"):
        assert leak not in kept
    if ext == "jpg":
        iptc = bytes(img.get("iptc-data"))
        assert b"(c) 2026 Jane Artist" in iptc and b"Jane Artist" in iptc


@pytest.mark.parametrize("chain", ["w_100", "w_100,fl_keep_copyright", "w_100,fl_keep_icc"])
def test_a_metadata_name_that_is_not_text_renders(chain: str) -> None:
    img = run(chain, avif_with_a_binary_item_type(), "jpg")
    assert (img.width, img.height) == (100, 75)
    if "copyright" in chain:
        assert img.get("exif-ifd0-Copyright").startswith("(c) Jane")
    assert close(colour_at(img, 10, 10), RED) and close(colour_at(img, 90, 65), YELLOW)


def test_smaller_answers_the_original_only_when_nothing_visible_changed() -> None:
    tiny = bytes(pyvips.Image.black(300, 200).pngsave_buffer(compression=9, keep=0))
    same = render(tiny, parse_path(f"/i/{IMAGE_ID}/w_300,fl_smaller/x.png"))
    assert same.body == tiny and (same.width, same.height) == (300, 200)
    assert len(render(tiny, parse_path(f"/i/{IMAGE_ID}/w_300/x.png")).body) > len(tiny)
    # a visible change, another size, another format, or metadata: the derivative
    for chain, ext in (
        ("w_300,fl_smaller/e_grayscale", "png"),
        ("w_200,fl_smaller", "png"),
        ("fl_smaller", "webp"),
    ):
        assert render(tiny, parse_path(f"/i/{IMAGE_ID}/{chain}/x.{ext}")).body != tiny
    tagged = bytes(pyvips.Image.black(300, 200).pngsave_buffer(compression=9))  # eXIf chunk
    assert render(tagged, parse_path(f"/i/{IMAGE_ID}/w_300,fl_smaller/x.png")).body != tagged


def test_palette_in_json_has_the_colours_and_their_shares() -> None:
    img = pyvips.Image.black(120, 120).new_from_image([220, 20, 30]).copy(interpretation="srgb")
    img = img.cast("uchar").draw_rect([20, 40, 200], 0, 0, 120, 40, fill=True)
    source = bytes(img.pngsave_buffer())
    plan = parse_path(f"/i/{IMAGE_ID}/x.json")
    found = facts(render(source, plan), source)["palette"]
    assert [entry["color"] for entry in found][:2] == ["#dc141e", "#1428c8"]  # type: ignore[index]
    shares = [entry["share"] for entry in found]  # type: ignore[index]
    assert abs(shares[0] - 2 / 3) < 0.03 and abs(shares[1] - 1 / 3) < 0.03
    assert abs(sum(shares) - 1) < 1e-3
    # a real photograph: six colours, most common first
    photo_found = facts(render(photo("astronaut"), plan), photo("astronaut"))["palette"]
    assert len(photo_found) == 6 and photo_found == sorted(photo_found, key=lambda e: -e["share"])  # type: ignore[index, arg-type, return-value]
