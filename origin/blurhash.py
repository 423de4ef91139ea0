"""BlurHash (https://github.com/woltapp/blurhash): the encoder the upload-time analysis
runs, the decoder, and the tiny PNG placeholder a ``<picture>`` shows while loading.

Both directions are the reference algorithm with numpy: the DC component is an sRGB colour,
each AC component three 19-level quantised values scaled by the hash's maximum; a pixel is
the sum of the components' cosine bases, in linear light.

``placeholder_png`` is synchronous libvips (the PNG encoder): run it in the pool.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pyvips

BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(BASE83[(value // 83 ** (length - i - 1)) % 83] for i in range(length))


def _srgb(v: float) -> int:
    v = min(1.0, max(0.0, v))
    s = v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
    return round(s * 255)


def blurhash(pixels: np.ndarray[Any, Any], x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of an (h, w, 3) uint8 array (the reference algorithm, with numpy)."""
    h, w = pixels.shape[:2]
    lin = _to_linear(pixels.astype(np.float64))
    xs, ys = np.arange(w), np.arange(h)
    factors = []
    for j in range(y_components):
        for i in range(x_components):
            basis = np.outer(np.cos(np.pi * j * ys / h), np.cos(np.pi * i * xs / w))
            norm = 1.0 if (i, j) == (0, 0) else 2.0
            factors.append(norm * (basis[:, :, None] * lin).sum(axis=(0, 1)) / (w * h))
    dc, ac = factors[0], factors[1:]
    out = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        actual_max = float(max(np.abs(a).max() for a in ac))
        quantised = max(0, min(82, int(np.floor(actual_max * 166 - 0.5))))
        max_value = (quantised + 1) / 166
        out += _base83(quantised, 1)
    else:
        max_value = 1.0
        out += _base83(0, 1)
    out += _base83((_srgb(dc[0]) << 16) + (_srgb(dc[1]) << 8) + _srgb(dc[2]), 4)
    for a in ac:
        q = [
            int(max(0, min(18, np.floor(np.sign(c) * (abs(c / max_value) ** 0.5) * 9 + 9.5))))
            for c in a
        ]
        out += _base83(q[0] * 19 * 19 + q[1] * 19 + q[2], 2)
    return out


PLACEHOLDER_SIZE = 16  # px, the long side: the browser stretches it (background-size: cover)
_DIGITS = {c: i for i, c in enumerate(BASE83)}


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
