"""EXIF an upload keeps in its image object: IFD0 and Exif-IFD fields as plain values,
without GPS, maker notes, comments, thumbnails or blobs, bounded in count and size."""

from __future__ import annotations

import json
import re

import pyvips

from origin import vips

MAX_EXIF_ENTRIES = 64
MAX_EXIF_JSON_BYTES = 4096
MAX_EXIF_VALUE_CHARS = 256


EXIF_FIELD = re.compile(r"exif-ifd[02]-(?P<tag>[A-Za-z0-9]+)")  # IFD0 and the Exif IFD
# libvips: "<raw value> (<readable value>, <type>, <n> components, <m> bytes)"
EXIF_VALUE = re.compile(
    r"(?P<body>.*), (?P<type>[A-Za-z]+), (?P<count>\d+) components?, \d+ bytes\)", re.DOTALL
)
EXIF_DROPPED_TAGS = frozenset({"MakerNote", "UserComment"})
EXIF_INTEGER_TYPES = frozenset({"Byte", "SByte", "Short", "SShort", "Long", "SLong"})
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def ascii_value(body: str) -> str:
    """For ASCII, libvips repeats the value: "V (V"; split where both halves agree."""
    half = (len(body) - 2) // 2
    if body == f"{body[:half]} ({body[:half]}":
        return body[:half]
    return body.split(" (", 1)[0]


def exif_value(image: pyvips.Image, name: str) -> str | int | None:
    """A libvips EXIF field as a plain value; None for blobs and anything unreadable."""
    try:
        raw = image.get(name)
    except (pyvips.Error, UnicodeError):
        return None
    match = EXIF_VALUE.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        return None
    kind, count, body = match["type"], int(match["count"]), match["body"]
    if kind == "Undefined" or (kind in ("Byte", "SByte") and count != 1):
        return None
    value = ascii_value(body) if kind == "ASCII" else body.split(" (", 1)[0]
    value = CONTROL_CHARACTERS.sub("", value).strip()[:MAX_EXIF_VALUE_CHARS]
    if kind in EXIF_INTEGER_TYPES and count == 1 and re.fullmatch(r"-?\d{1,10}", value):
        return int(value)
    return value or None


def exif_metadata(image: pyvips.Image) -> dict[str, object]:
    """IFD0 and Exif-IFD fields, without GPS, maker notes, comments, thumbnails or blobs."""
    entries: dict[str, object] = {}
    size = 2  # "{}"
    for name in vips.field_names(image):
        match = EXIF_FIELD.fullmatch(name)
        if match is None or "gps" in name.lower() or match["tag"] in EXIF_DROPPED_TAGS:
            continue
        tag, value = match["tag"], exif_value(image, name)
        if value is None or tag in entries:
            continue
        cost = len(json.dumps({tag: value})) - 1  # ', ' between entries, braces counted once
        if len(entries) >= MAX_EXIF_ENTRIES or size + cost > MAX_EXIF_JSON_BYTES:
            break
        entries[tag] = value
        size += cost
    return entries
