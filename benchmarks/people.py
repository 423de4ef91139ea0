"""Labelled group photographs, for W7 and the face tests: real faces from scikit-image's data
(the astronaut, public domain, and faces of its ``lfw_subset``, Labeled Faces in the Wild)
pasted at known places on a plain background, so every face's box is known.

The evaluation behind origin/faces.py's figures used the same scenes (docs/faces.md)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyvips
from skimage import data

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

ASTRONAUT_FACE: Box = (178, 78, 90, 98)  # the astronaut's face in astronaut.png (eyes to chin)
ASTRONAUT_HEAD: Box = (140, 40, 170, 170)  # her head with a margin, what a scene pastes


@dataclass(frozen=True)
class Scene:
    png: bytes
    width: int
    height: int
    faces: tuple[Box, ...]


def _rgb(grey_or_rgb: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    if grey_or_rgb.ndim == 2:
        return np.stack([grey_or_rgb] * 3, -1)
    return grey_or_rgb[:, :, :3]


def _crops() -> dict[str, tuple[np.ndarray, Box]]:  # type: ignore[type-arg]
    """Name -> (an RGB crop holding one face, the face's box inside it)."""
    astronaut = data.astronaut()
    x0, y0, w, h = ASTRONAUT_HEAD
    fx, fy, fw, fh = ASTRONAUT_FACE
    head = astronaut[y0 : y0 + h, x0 : x0 + w].copy()
    found = {
        "astronaut": (head, (fx - x0, fy - y0, fw, fh)),
        "astronaut_flip": (head[:, ::-1].copy(), (w - (fx - x0) - fw, fy - y0, fw, fh)),
    }
    lfw = (data.lfw_subset() * 255).round().astype(np.uint8)  # 25 x 25 tight face crops
    for i in (0, 9, 18, 23, 37, 41):
        found[f"lfw{i:03d}"] = (_rgb(lfw[i]), (0, 0, 25, 25))
    return found


def _paste(canvas: np.ndarray, crop: np.ndarray, inner: Box, x: int, y: int, size: int) -> Box:  # type: ignore[type-arg]
    """Paste ``crop`` scaled so its longer side is ``size`` at (x, y), its edges feathered
    into the background; the face's box in the canvas."""
    ch, cw = crop.shape[:2]
    scale = size / max(ch, cw)
    img = pyvips.Image.new_from_array(crop).copy(interpretation="srgb")
    img = img.resize(scale, kernel="cubic")
    nw, nh = img.width, img.height
    pasted = np.ndarray(buffer=img.write_to_memory(), dtype=np.uint8, shape=(nh, nw, 3))
    r = max(3, int(0.06 * min(nh, nw)))
    ry = np.minimum(np.arange(nh), np.arange(nh)[::-1]) / r
    rx = np.minimum(np.arange(nw), np.arange(nw)[::-1]) / r
    mask = np.clip(np.minimum(ry[:, None], rx[None, :]), 0, 1)[:, :, None]
    under = canvas[y : y + nh, x : x + nw].astype(np.float32)
    canvas[y : y + nh, x : x + nw] = (under * (1 - mask) + pasted * mask).round().astype(np.uint8)
    ix, iy, iw, ih = inner
    return (round(x + ix * scale), round(y + iy * scale), round(iw * scale), round(ih * scale))


def _plain(width: int, height: int) -> np.ndarray:  # type: ignore[type-arg]
    yy = np.linspace(0, 1, height)[:, None, None]
    xx = np.linspace(0, 1, width)[None, :, None]
    base = np.array([205, 200, 190], np.float32)[None, None, :]
    return np.clip(base * (0.85 + 0.15 * yy) - 20 * xx, 0, 255).astype(np.uint8)


def _png(canvas: np.ndarray) -> bytes:  # type: ignore[type-arg]
    img = pyvips.Image.new_from_array(canvas).copy(interpretation="srgb")
    return bytes(img.pngsave_buffer(compression=1))


def scene(layout: tuple[tuple[str, int, int, int], ...], width: int, height: int) -> Scene:
    canvas = _plain(width, height)
    crops = _crops()
    boxes = tuple(_paste(canvas, *crops[name], x, y, size) for name, x, y, size in layout)
    return Scene(_png(canvas), width, height, boxes)


@cache
def group() -> Scene:
    """Eight faces, 1200 x 800, from 90 to 200 px (the evaluation's group1)."""
    layout = (
        ("astronaut", 80, 90, 200),
        ("lfw000", 380, 120, 160),
        ("lfw009", 640, 90, 120),
        ("lfw018", 900, 140, 140),
        ("astronaut_flip", 150, 500, 120),
        ("lfw023", 420, 500, 100),
        ("lfw037", 650, 450, 180),
        ("lfw041", 950, 520, 90),
    )
    return scene(layout, 1200, 800)


@cache
def one_face_at_the_right() -> Scene:
    """The astronaut's head near the right edge of a wide plain canvas."""
    return scene((("astronaut", 1000, 100, 180),), 1200, 400)


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)
