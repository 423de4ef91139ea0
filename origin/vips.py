"""Process-wide libvips set-up: no operation cache, no untrusted operations, five loaders.

`configure_libvips()` is called once at process start (it is idempotent). After it:

- the operation cache is off (`cache_set_max(0)`): no decoded source outlives its request;
- operations libvips flags as untrusted (csv, matrix, vips, svg, ...) are blocked;
- every loader is blocked except the five formats the service accepts: JPEG, PNG, GIF
  (libnsgif), WebP and HEIF (AVIF), so even the sniffing `new_from_buffer` can reach no
  other parser (TIFF, SVG, PDF, UltraHDR, csv, matrix, raw, vips, ...).

Concurrency (`pyvips.concurrency_set`) is the transform engine's business, not set here.
"""

from __future__ import annotations

import pyvips

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
    """Turn off the cache and block every loader but the five accepted formats' (idempotent)."""
    pyvips.cache_set_max(0)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADERS:
        pyvips.operation_block_set(name, False)
