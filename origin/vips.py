"""Process-wide libvips set-up, and the one rule every decode of a stored image follows.

`configure_libvips()` is called once at process start by every app variant (all, origin,
admin; it is idempotent). After it:

- the operation cache is off (`cache_set_max(0)`): no decoded source outlives its request;
- operations libvips flags as untrusted (csv, matrix, vips, svg, ...) are blocked;
- every loader is blocked except the five formats the service accepts: JPEG, PNG, GIF
  (libnsgif), WebP and HEIF (AVIF), so even the sniffing `new_from_buffer` can reach no
  other parser (TIFF, SVG, PDF, UltraHDR, csv, matrix, raw, vips, ...).

- each libvips job uses one thread (`concurrency_set(1)`): parallelism comes from the
  process's own pool of `CONCURRENCY` jobs (origin/render_pool.py), not from inside a job
  (measured as fast for two concurrent 4000×3000 renders: docs/origin.md).

The loading rule: the format is told by our magic bytes (`sniff_format`), then the bytes are
decoded by that format's own loader (`load`, `thumbnail`) — the upload probe and every render
(origin, `.json`, `/srcset`, working copies, analysis, overlays) alike, so whatever the probe
decoded, a render decodes the same way. libvips' own sniffing (`new_from_buffer`,
`thumbnail_buffer`) is not the rule: libvips 8.18 does not recognise an AVIF whose major brand
is `avis` (an image sequence with a still image, as libavif writes animations), which its
`heifload` reads. `thumbnail` still uses `thumbnail_buffer` (shrink-on-load) whenever libvips'
sniffing picks the same loader, which is every JPEG, PNG, GIF and WebP.

The one exception is `draw_svg`: an SVG document origin/svg.py has already cleaned is drawn
by librsvg's loader, unblocked only for that call and under a lock, so one document at a time
and never by sniffing (our magic bytes never answer "svg": a stored image is never an SVG).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pyvips

from origin import deadline
from origin.errors import InvalidImage, OriginError
from origin.magic import PNG_SIGNATURE, sniff_format

__all__ = ["PNG_SIGNATURE", "sniff_format"]  # re-exported: the loading rule's first step

log = logging.getLogger("origin.render")
T = TypeVar("T")

# The loader base classes of this libvips (8.18): each covers its file, buffer and source
# variants. The GIF loader is libnsgif's; the PNG loader class is the same for libpng and spng.
ALLOWED_LOADERS: tuple[str, ...] = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadWebp",
    "VipsForeignLoadHeif",
)


def configure_libvips() -> None:
    """No cache, one thread per job, every loader blocked but the five formats' (idempotent)."""
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADERS:
        pyvips.operation_block_set(name, False)


# ---------------------------------------------------------------- loading

LOADERS: Mapping[str, str] = {
    "jpeg": "jpegload_buffer",
    "png": "pngload_buffer",
    "gif": "gifload_buffer",
    "webp": "webpload_buffer",
    "avif": "heifload_buffer",
}


def load(data: bytes, fmt: str, **options: Any) -> pyvips.Image:
    """``data`` opened by the loader of ``fmt`` (a `sniff_format` answer) with ``options``."""
    image: pyvips.Image = pyvips.Operation.call(LOADERS[fmt], data, **options)
    return image


def sniffed_loader(data: bytes) -> str | None:
    """The loader libvips' own sniffing (`new_from_buffer`, `thumbnail_buffer`) picks for
    ``data``, by nickname; None when it recognises none of the allowed ones."""
    found = pyvips.vips_lib.vips_foreign_find_load_buffer(data, len(data))
    if found == pyvips.ffi.NULL:
        pyvips.vips_lib.vips_error_clear()  # "not in a known format": not an error of ours
        return None
    name = pyvips.ffi.string(found).decode()
    return str(pyvips.nickname_find(pyvips.type_from_name(name)))


def field_names(image: pyvips.Image) -> list[str]:
    """The names of ``image``'s metadata fields that are text: pyvips' `get_fields` fails on
    a name that is not UTF-8, which a file can make (libvips names an AVIF's metadata items
    ``heif-<item type>-<n>``, the type being any four bytes of the file). The names we read
    or remove (``exif-*``, ``xmp-data``, ``iptc-data``, ``icc-profile-data``) are ASCII."""
    names: list[str] = []
    array, i = pyvips.vips_lib.vips_image_get_fields(image.pointer), 0
    while array[i] != pyvips.ffi.NULL:
        name = pyvips.ffi.string(array[i])  # a copy: the C string is freed next
        pyvips.glib_lib.g_free(array[i])
        i += 1
        try:
            names.append(name.decode())
        except UnicodeDecodeError:
            continue
    pyvips.glib_lib.g_free(array)
    return names


def thumbnail(data: bytes, fmt: str, width: int, **options: Any) -> pyvips.Image:
    """`thumbnail_buffer(data, width, **options)` as decoded by the loader of ``fmt``: with
    libvips' shrink-on-load when its sniffing agrees on the loader, else that loader's full
    image through `thumbnail_image` (the same resize, autorotation and colour handling).
    A CMYK JPEG is converted to sRGB here with the perceptual intent, as
    origin.pixels.to_srgb converts it: left to itself thumbnail converts with the relative
    intent (its ``intent`` counts only with an export profile) and, without an embedded
    profile, without libvips' CMYK one; a CMYK render's colours moved whenever its first
    stage scaled."""
    if fmt == "jpeg" and load(data, fmt).interpretation == "cmyk":
        options = {
            "import_profile": "cmyk",
            "export_profile": "srgb",
            "intent": "perceptual",
            **options,
        }
    if sniffed_loader(data) == LOADERS[fmt]:
        return pyvips.Image.thumbnail_buffer(data, width, **options)
    return load(data, fmt).thumbnail_image(width, **options)


_svgload = threading.Lock()  # svgload is unblocked only while one `draw_svg` runs


def draw_svg(document: bytes) -> bytes:
    """The PNG librsvg draws of ``document`` (cleaned by origin/svg.py first), with libvips'
    limits on (``unlimited=False``); ``InvalidImage`` when it cannot be drawn."""
    with _svgload:
        pyvips.operation_block_set("VipsForeignLoadSvg", False)
        try:
            img = pyvips.Image.svgload_buffer(document, unlimited=False)
            return bytes(img.pngsave_buffer(compression=6, keep="none"))
        except pyvips.Error as exc:
            raise InvalidImage("an SVG librsvg cannot draw") from exc
        finally:
            pyvips.operation_block_set("VipsForeignLoadSvg", True)


# ---------------------------------------------------------------- failures


def guarded(work: Callable[[], T]) -> T:
    """``work()``, with any failure but an OriginError turned into one: libvips text and
    tracebacks are logged, never sent (a render its deadline stopped says so)."""
    try:
        return work()
    except OriginError:
        raise
    except pyvips.Error as exc:
        deadline.check()  # a render its deadline stopped fails in libvips: say so
        log.info("libvips failed: %s", str(exc).strip()[:500])
        raise InvalidImage("the image could not be processed") from None
    except MemoryError:
        raise InvalidImage("the image is too large to process") from None
    except Exception:
        deadline.check()
        log.exception("render failed")
        raise OriginError("the image could not be rendered") from None
