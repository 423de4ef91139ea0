"""``fl_keep_copyright``: the rights fields of a source, rebuilt alone for its derivative.

A derivative never carries the source's metadata (GPS, camera, dates, comments); with the
flag it carries these fields, each rebuilt from what the source holds, nothing copied
wholesale:

- EXIF: ``Artist`` (0x013B) and ``Copyright`` (0x8298) of IFD0;
- IPTC (JPEG output only: the other formats have no place for it): record 2's By-line (80),
  Credit (110), Source (115) and Copyright Notice (116), with record 1's coded character set
  (90), in a Photoshop resource block as JPEG writes it;
- XMP: ``dc:rights``, ``dc:creator``, every ``xmpRights:`` property, ``photoshop:Credit``
  and ``photoshop:Source``, in a new packet. A packet with a DTD or entities is ignored.

Parsing is defensive: a field that cannot be read is left out, never an error.
"""

from __future__ import annotations

import io
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pyvips
from PIL import Image

from origin import vips

EXIF_TAGS = (0x013B, 0x8298)  # Artist, Copyright
IPTC_KEEP = {(1, 90), (2, 80), (2, 110), (2, 115), (2, 116)}
PHOTOSHOP = b"Photoshop 3.0\x00"
IPTC_RESOURCE = 0x0404

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
}
XMP_KEEP = (
    f"{{{NS['dc']}}}rights",
    f"{{{NS['dc']}}}creator",
    f"{{{NS['photoshop']}}}Credit",
    f"{{{NS['photoshop']}}}Source",
)
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class Rights:
    exif: bytes | None = None
    iptc: bytes | None = None
    xmp: bytes | None = None

    def __bool__(self) -> bool:
        return bool(self.exif or self.iptc or self.xmp)


def _blob(img: pyvips.Image, name: str) -> bytes | None:
    return bytes(img.get(name)) if img.get_typeof(name) else None


def rights_of(img: pyvips.Image) -> Rights:
    """The rights fields of a loaded source (see the module's docstring)."""
    exif, iptc, xmp = _blob(img, "exif-data"), _blob(img, "iptc-data"), _blob(img, "xmp-data")
    return Rights(
        exif=_exif(exif) if exif else None,
        iptc=_iptc(iptc) if iptc else None,
        xmp=_xmp(xmp) if xmp else None,
    )


def _exif(blob: bytes) -> bytes | None:
    try:
        source = Image.Exif()
        source.load(blob)
        kept = Image.Exif()
        for tag in EXIF_TAGS:
            value = source.get(tag)
            if isinstance(value, str) and value.strip("\x00 "):
                kept[tag] = value
        return kept.tobytes() if len(kept) else None
    except Exception:
        return None


def _iptc_records(data: bytes) -> bytes:
    """The IPTC datasets (0x1C records) of ``data`` worth keeping, re-serialised."""
    out = io.BytesIO()
    at = 0
    while at + 5 <= len(data) and data[at] == 0x1C:
        record, dataset, length = (
            data[at + 1],
            data[at + 2],
            struct.unpack(">H", data[at + 3 : at + 5])[0],
        )
        if length & 0x8000:  # an extended length: never a rights field
            break
        value = data[at + 5 : at + 5 + length]
        if (record, dataset) in IPTC_KEEP:
            out.write(bytes((0x1C, record, dataset)) + struct.pack(">H", len(value)) + value)
        at += 5 + length
    return out.getvalue()


def _iptc_in(blob: bytes) -> bytes:
    """The IPTC stream in a Photoshop resource block (or the stream itself)."""
    if not blob.startswith(PHOTOSHOP):
        return blob
    at = len(PHOTOSHOP)
    while at + 12 <= len(blob) and blob[at : at + 4] == b"8BIM":
        resource = struct.unpack(">H", blob[at + 4 : at + 6])[0]
        name_length = blob[at + 6]
        at += 7 + name_length + ((name_length + 1) % 2)  # the Pascal name, padded to even
        size = struct.unpack(">I", blob[at : at + 4])[0]
        data = blob[at + 4 : at + 4 + size]
        if resource == IPTC_RESOURCE:
            return data
        at += 4 + size + (size % 2)
    return b""


def _iptc(blob: bytes) -> bytes | None:
    records = _iptc_records(_iptc_in(blob))
    if not any(r[1:3] != bytes((1, 90)) for r in _split(records)):
        return None
    pad = b"\x00" if len(records) % 2 else b""
    return PHOTOSHOP + b"8BIM" + struct.pack(">HHI", IPTC_RESOURCE, 0, len(records)) + records + pad


def _split(records: bytes) -> list[bytes]:
    out, at = [], 0
    while at + 5 <= len(records):
        length = struct.unpack(">H", records[at + 3 : at + 5])[0]
        out.append(records[at : at + 5 + length])
        at += 5 + length
    return out


def _xmp(blob: bytes) -> bytes | None:
    text = blob.decode("utf-8", "replace")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None
    start, end = text.find("<x:xmpmeta"), text.find("</x:xmpmeta>")
    if start < 0 or end < 0:
        start, end = text.find("<rdf:RDF"), text.find("</rdf:RDF>")
        if start < 0 or end < 0:
            return None
        body = text[start : end + len("</rdf:RDF>")]
    else:
        body = text[start : end + len("</x:xmpmeta>")]
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    kept: list[ET.Element] = []
    for description in root.iter(f"{{{NS['rdf']}}}Description"):
        for name, value in description.attrib.items():  # properties written as attributes
            if name in XMP_KEEP or name.startswith(f"{{{NS['xmpRights']}}}"):
                element = ET.Element(name)
                element.text = value
                kept.append(element)
        for child in description:
            if child.tag in XMP_KEEP or child.tag.startswith(f"{{{NS['xmpRights']}}}"):
                kept.append(child)
    if not kept:
        return None
    meta = ET.Element(f"{{{NS['x']}}}xmpmeta")
    rdf = ET.SubElement(meta, f"{{{NS['rdf']}}}RDF")
    description = ET.SubElement(rdf, f"{{{NS['rdf']}}}Description", {f"{{{NS['rdf']}}}about": ""})
    description.extend(kept)
    packet = ET.tostring(meta, encoding="unicode")
    return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{packet}<?xpacket end="w"?>'.encode()


def with_rights(img: pyvips.Image, rights: Rights) -> tuple[pyvips.Image, int]:
    """``img`` without any metadata of the source but its ICC profile, carrying ``rights``;
    and the ``keep`` flags the savers need to write them."""
    img = img.copy()
    for field in vips.field_names(img):
        if field.startswith("exif-") or field in ("xmp-data", "iptc-data"):
            img.remove(field)
    keep = 0
    for name, blob, flag in (
        ("exif-data", rights.exif, pyvips.ForeignKeep.EXIF),
        ("iptc-data", rights.iptc, pyvips.ForeignKeep.IPTC),
        ("xmp-data", rights.xmp, pyvips.ForeignKeep.XMP),
    ):
        if blob:
            img.set_type(pyvips.GValue.blob_type, name, blob)
            keep |= int(flag)
    return img, keep
