"""Process-wide libvips set-up: no operation cache, no untrusted operations, five loaders.

`configure_libvips()` is called once at process start by every app variant (all, origin,
admin; it is idempotent). After it:

- the operation cache is off (`cache_set_max(0)`): no decoded source outlives its request;
- operations libvips flags as untrusted (csv, matrix, vips, svg, ...) are blocked;
- every loader is blocked except the five formats the service accepts: JPEG, PNG, GIF
  (libnsgif), WebP and HEIF (AVIF), so even the sniffing `new_from_buffer` can reach no
  other parser (TIFF, SVG, PDF, UltraHDR, csv, matrix, raw, vips, ...).

- each libvips job uses one thread (`concurrency_set(1)`): parallelism comes from the
  process's own pool of `CONCURRENCY` jobs (origin/workers.py), not from inside a job
  (measured as fast for two concurrent 4000×3000 renders: docs/origin.md).
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
    """No cache, one thread per job, every loader blocked but the five formats' (idempotent)."""
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADERS:
        pyvips.operation_block_set(name, False)
