"""The five formats by their magic bytes: the first step of every decode (origin.vips) and
of reading a source's fallback image from ``SOURCES_FILE`` (origin.sources.config). Pure: the
standard library only, so the settings can use it without loading libvips."""

from __future__ import annotations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AVIF_BRANDS = frozenset({b"avif", b"avis"})


def ftyp_brands(data: bytes) -> frozenset[bytes]:
    """The major and compatible brands of a leading ISO-BMFF `ftyp` box (empty if none)."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return frozenset()
    size = int.from_bytes(data[:4], "big")
    if not 16 <= size <= min(len(data), 4096):
        return frozenset()
    compatible = (data[i : i + 4] for i in range(16, size - 3, 4))
    return frozenset({data[8:12], *compatible})


def sniff_format(data: bytes) -> str | None:
    """The format named by the magic bytes; None when it is not one of the five."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if ftyp_brands(data) & AVIF_BRANDS:
        return "avif"
    return None
