"""The palette of a derivative for ``.json``: its ``PALETTE_SIZE`` most common colours with
their shares (imgix's ``palette=json``).

On a thumbnail of the rendered image (``PALETTE_BOX`` px, alpha flattened onto white):
pixels are counted in 4-bit-per-channel buckets; buckets are taken most common first, each
as the mean colour of its pixels, skipping one closer than ``PALETTE_DISTANCE`` (RGB) to a
colour already taken, until ``PALETTE_SIZE`` are; then every pixel counts for the nearest
colour taken, so the shares add up to 1. Colours are listed most common first.
"""

from __future__ import annotations

import numpy as np
import pyvips

from origin import vips
from origin.pixels import has_alpha, to_srgb

PALETTE_SIZE = 6
PALETTE_BOX = 64
PALETTE_DISTANCE = 40.0


def palette_of(img: pyvips.Image) -> list[dict[str, object]]:
    """The palette of an upright 8-bit sRGB image (reduced to ``PALETTE_BOX`` first)."""
    if max(img.width, img.height) > PALETTE_BOX:
        img = img.thumbnail_image(PALETTE_BOX, height=PALETTE_BOX)
    if has_alpha(img):
        img = img.flatten(background=[255, 255, 255]).cast("uchar")
    shape = (img.width * img.height, img.bands)
    raw = np.ndarray(buffer=img.write_to_memory(), dtype=np.uint8, shape=shape)
    flat = raw[:, :3].astype(np.float64)
    ints = flat.astype(np.int64)
    buckets = (ints[:, 0] >> 4) << 8 | (ints[:, 1] >> 4) << 4 | ints[:, 2] >> 4
    counts = np.bincount(buckets)
    taken: list[np.ndarray] = []
    for bucket in np.argsort(-counts, kind="stable"):
        if counts[bucket] == 0 or len(taken) == PALETTE_SIZE:
            break
        colour = flat[buckets == bucket].mean(axis=0)
        if all(np.linalg.norm(colour - t) >= PALETTE_DISTANCE for t in taken):
            taken.append(colour)
    centres = np.array(taken)
    nearest = np.argmin(((flat[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
    shares = np.bincount(nearest, minlength=len(taken)) / len(flat)
    found = [
        {
            "color": "#" + "".join(f"{round(float(v)):02x}" for v in centre),
            "share": round(float(share), 4),
        }
        for centre, share in zip(centres, shares, strict=True)
    ]
    return sorted(found, key=lambda entry: -float(entry["share"]))  # type: ignore[arg-type]


def palette(body: bytes, fmt: str) -> list[dict[str, object]]:
    """The palette of an encoded image (a derivative the origin rendered)."""
    return vips.guarded(
        lambda: palette_of(to_srgb(vips.thumbnail(body, fmt, PALETTE_BOX, height=PALETTE_BOX)))
    )
