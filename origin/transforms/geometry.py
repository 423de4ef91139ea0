"""Pure geometry of a resize and a rotation: sizes and boxes, without pixels.

The renderer and the size-without-pixels answers (``.json``, srcset, the work budget) plan
with the same functions, so a planned size is the size rendered (tests hold them equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from origin.errors import BadTransform, LimitExceeded
from origin.transforms.arguments import Length
from origin.transforms.limits import Limits


def nearest(x: float) -> int:
    """``x`` to the nearest whole pixel, a half up (``round`` takes a half to the even one:
    50.5 to 50 but 51.5 to 52)."""
    return math.floor(x + 0.5)


def to_side(x: float) -> int:
    """A side of ``x`` pixels: the nearest whole one (``nearest``), at least 1."""
    return max(1, nearest(x))


SMART = {
    "auto": "attention",
    "entropy": "entropy",
    "face": "face",
}  # g_ → libvips' smartcrop interest


@dataclass(frozen=True)
class Resize:
    """``w_ h_ c_ g_ x_ y_ ar_`` of one stage, normalised (``dpr_`` folded into the sizes,
    ``ar_`` into the missing side where it can be)."""

    width: Length | None = None
    height: Length | None = None
    crop: str = "fit"
    gravity: str = "center"
    x: int | None = None
    y: int | None = None
    aspect: tuple[int, int] | None = None  # only kept when it could not be folded into w/h
    # dpr_auto multiplied the one side given: the side the input's shape gives is held to
    # the maximum dimension too. Never spelled: it changes only what would otherwise be a 400.
    bounded: bool = False

    @property
    def scales(self) -> bool:
        """It scales the whole input (``c_crop`` only cuts): shrink-on-load applies."""
        return self.crop != "crop"


@dataclass(frozen=True)
class Geometry:
    """How one stage's crop/resize maps an iw x ih input to its output."""

    scaled: tuple[int, int]  # size after scaling
    cut: tuple[int, int, int, int] | None = None  # left, top, width, height on the scaled image
    # "attention" / "entropy": the cut is placed by libvips smartcrop; "face": on the faces
    smart: str | None = None
    canvas: tuple[int, int, int, int] | None = None  # pad: left, top, width, height of the box

    @property
    def output(self) -> tuple[int, int]:
        if self.canvas is not None:
            return self.canvas[2], self.canvas[3]
        if self.cut is not None:
            return self.cut[2], self.cut[3]
        return self.scaled


def resolve(length: Length | None, side: int) -> int | None:
    if length is None:
        return None
    if isinstance(length, float):
        return to_side(length * side)
    return length


def place(
    gravity: str, outer: tuple[int, int], inner: tuple[int, int], offset: tuple[int, int] = (0, 0)
) -> tuple[int, int]:
    """Left/top of an `inner` box in an `outer` one by compass gravity; offsets are the
    distance from the gravity's edge (or shift from the centre)."""
    (ow, oh), (iw, ih), (dx, dy) = outer, inner, offset
    if "west" in gravity:
        left = dx
    elif "east" in gravity:
        left = ow - iw - dx
    else:
        left = (ow - iw) // 2 + dx
    if "north" in gravity:
        top = dy
    elif "south" in gravity:
        top = oh - ih - dy
    else:
        top = (oh - ih) // 2 + dy
    return left, top


def centre_on(
    point: tuple[float, float], outer: tuple[int, int], inner: tuple[int, int]
) -> tuple[int, int]:
    """Left/top of an `inner` box centred on `point` (fractions of the `outer` box), moved
    as little as needed to stay inside it."""
    (fx, fy), (ow, oh), (iw, ih) = point, outer, inner
    left = min(max(0, nearest(fx * ow - iw / 2)), ow - iw)
    top = min(max(0, nearest(fy * oh - ih / 2)), oh - ih)
    return left, top


def fit(iw: int, ih: int, w: int | None, h: int | None) -> tuple[int, int]:
    if w is not None and (h is None or w / iw <= h / ih):
        return w, to_side(ih * w / iw)
    assert h is not None
    return to_side(iw * h / ih), h


def _box(iw: int, ih: int, r: Resize) -> tuple[int | None, int | None]:
    """The target box: ``w_``/``h_`` resolved on the input, ``ar_`` giving what is missing."""
    w, h = resolve(r.width, iw), resolve(r.height, ih)
    if r.aspect is None:
        return w, h
    aw, ah = r.aspect
    if w is None and h is None:
        wider = iw * ah > ih * aw
        if r.crop == "pad":  # the smallest W:H box holding the input
            return (iw, to_side(iw * ah / aw)) if wider else (to_side(ih * aw / ah), ih)
        # fill / crop: the largest W:H box inside the input
        return (to_side(ih * aw / ah), ih) if wider else (iw, to_side(iw * ah / aw))
    if w is not None:
        return w, to_side(w * ah / aw)
    assert h is not None
    return to_side(h * aw / ah), h


def _crop(iw: int, ih: int, r: Resize, w: int | None, h: int | None) -> Geometry:
    cw, ch = min(w or iw, iw), min(h or ih, ih)
    if r.x is not None or r.y is not None:
        left, top = r.x or 0, r.y or 0
        if left >= iw or top >= ih:
            raise BadTransform(f"c_crop at x_{left},y_{top} falls outside the {iw}x{ih} image")
        return Geometry((iw, ih), cut=(left, top, min(cw, iw - left), min(ch, ih - top)))
    if r.gravity in SMART:
        return Geometry((iw, ih), cut=(0, 0, cw, ch), smart=SMART[r.gravity])
    left, top = place(r.gravity, (iw, ih), (cw, ch))
    return Geometry((iw, ih), cut=(left, top, cw, ch))


def _scaled(iw: int, ih: int, r: Resize, w: int | None, h: int | None) -> Geometry:
    mode = r.crop
    if w is None and h is None:
        return Geometry((iw, ih))
    if mode == "scale" and w is not None and h is not None:
        return Geometry((w, h))
    if mode == "fill" and w is not None and h is not None:
        scale = max(w / iw, h / ih)
        sw, sh = max(w, nearest(iw * scale)), max(h, nearest(ih * scale))
        if r.gravity in SMART:
            return Geometry((sw, sh), cut=(0, 0, w, h), smart=SMART[r.gravity])
        left, top = place(r.gravity, (sw, sh), (w, h))
        return Geometry((sw, sh), cut=(left, top, w, h))
    if mode == "pad" and w is not None and h is not None:
        sw, sh = fit(iw, ih, w, h)
        left, top = place(r.gravity, (w, h), (sw, sh))
        return Geometry((sw, sh), canvas=(left, top, w, h))
    # fit, limit, and the one-side forms of scale, fill and pad
    sw, sh = fit(iw, ih, w, h)
    if mode == "limit" and sw > iw:
        sw, sh = iw, ih
    return Geometry((sw, sh))


def plan_geometry(iw: int, ih: int, r: Resize, limits: Limits, shown: str = "") -> Geometry:
    """The crop/resize ``r`` on an iw x ih input, checked against the limits (``shown``:
    the stage as written in messages)."""
    w, h = _box(iw, ih, r)
    if r.bounded and (w is None) != (h is None):
        w, h = w or limits.max_output_dimension, h or limits.max_output_dimension
    geometry = _crop(iw, ih, r, w, h) if r.crop == "crop" else _scaled(iw, ih, r, w, h)
    for side in (*geometry.scaled, *geometry.output):
        if side > limits.max_output_dimension:
            raise LimitExceeded(
                f"stage '{shown}' gives a side of {side} px, above the maximum "
                f"{limits.max_output_dimension}"
            )
    return geometry


def turned_size(width: int, height: int, angle: int, limits: Limits) -> tuple[int, int]:
    """The bounding box of a `width` x `height` image turned by `angle` (not a right angle),
    rounded as libvips' rotate does; LimitExceeded when a side would be too long."""
    rad = math.radians(angle)
    sides = (
        width * abs(math.cos(rad)) + height * abs(math.sin(rad)),
        width * abs(math.sin(rad)) + height * abs(math.cos(rad)),
    )
    for side in sides:
        if math.ceil(side) > limits.max_output_dimension:
            raise LimitExceeded(
                f"'r_{angle}' gives a side of {math.ceil(side)} px, above the maximum "
                f"{limits.max_output_dimension}"
            )
    return round(sides[0]), round(sides[1])
