"""A BlurHash decoder (numpy) and the tiny PNG placeholder a `<picture>` shows while loading.

The decoder is the reference algorithm (https://github.com/woltapp/blurhash, "decode"): the
DC component is an sRGB colour, each AC component three 19-level quantised values scaled by
the hash's maximum; a pixel is the sum of the components' cosine bases, in linear light,
converted back to sRGB. ``origin.pipeline.blurhash`` is the matching encoder.

``placeholder_png`` is synchronous libvips (the PNG encoder): run it in the pool.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pyvips

from origin.pipeline import _BASE83

PLACEHOLDER_SIZE = 16  # px, the long side: the browser stretches it (background-size: cover)
_DIGITS = {c: i for i, c in enumerate(_BASE83)}


class InvalidBlurhash(ValueError):
    """Not a BlurHash: bad characters, or a length that does not match its size flag."""


def _decode83(text: str) -> int:
    value = 0
    for char in text:
        digit = _DIGITS.get(char)
        if digit is None:
            raise InvalidBlurhash(f"not a base83 character: {char!r}")
        value = value * 83 + digit
    return value


def _to_linear(value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v = value / 255.0
    out: np.ndarray[Any, Any] = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out


def _to_srgb(value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v = np.clip(value, 0.0, 1.0)
    s = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
    out: np.ndarray[Any, Any] = np.round(s * 255).astype(np.uint8)
    return out


def components(blurhash: str, punch: float = 1.0) -> np.ndarray[Any, Any]:
    """The (y_components, x_components, 3) colour factors of a hash, in linear light."""
    if len(blurhash) < 6:
        raise InvalidBlurhash("a BlurHash has at least 6 characters")
    size_flag = _decode83(blurhash[0])
    nx, ny = size_flag % 9 + 1, size_flag // 9 + 1
    if len(blurhash) != 4 + 2 * nx * ny:
        raise InvalidBlurhash(f"a {nx}x{ny} BlurHash has {4 + 2 * nx * ny} characters")
    maximum = (_decode83(blurhash[1]) + 1) / 166 * punch
    dc = _decode83(blurhash[2:6])
    factors = np.empty((nx * ny, 3))
    factors[0] = _to_linear(np.array([dc >> 16, (dc >> 8) & 255, dc & 255], dtype=np.float64))
    for k in range(1, nx * ny):
        value = _decode83(blurhash[4 + 2 * k : 6 + 2 * k])
        quantised = np.array([value // (19 * 19), (value // 19) % 19, value % 19], float)
        centred = (quantised - 9) / 9
        factors[k] = np.sign(centred) * centred**2 * maximum
    return factors.reshape(ny, nx, 3)


def decode(blurhash: str, width: int, height: int, punch: float = 1.0) -> np.ndarray[Any, Any]:
    """The (height, width, 3) uint8 sRGB pixels a BlurHash stands for."""
    factors = components(blurhash, punch)
    ny, nx = factors.shape[:2]
    basis_x = np.cos(np.pi * np.outer(np.arange(width), np.arange(nx)) / width)
    basis_y = np.cos(np.pi * np.outer(np.arange(height), np.arange(ny)) / height)
    linear = np.einsum("yj,xi,jic->yxc", basis_y, basis_x, factors)
    return _to_srgb(linear)


def placeholder_size(width: int, height: int) -> tuple[int, int]:
    """The placeholder's size: the image's aspect ratio, ``PLACEHOLDER_SIZE`` on the long side."""
    if width >= height:
        return PLACEHOLDER_SIZE, max(1, round(PLACEHOLDER_SIZE * height / width))
    return max(1, round(PLACEHOLDER_SIZE * width / height)), PLACEHOLDER_SIZE


def placeholder_png(blurhash: str, width: int, height: int) -> bytes:
    """The BlurHash decoded at the image's aspect ratio, as a small PNG (libvips: use the pool)."""
    w, h = placeholder_size(width, height)
    img = pyvips.Image.new_from_array(decode(blurhash, w, h), interpretation="srgb")
    return bytes(img.pngsave_buffer(compression=9, keep=int(pyvips.ForeignKeep.NONE)))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
