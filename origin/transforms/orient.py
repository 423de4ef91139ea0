"""Orient: ``r_`` (rotate clockwise) and ``fl_`` (mirror), after the stage's resize.

Right angles are exact; any other angle turns the image inside its bounding box and fills
the corners with the stage's ``b_`` (default white, transparent when there is alpha).
"""

from __future__ import annotations

from origin.pixels import background_for
from origin.transforms.arguments import Int
from origin.transforms.declarations import (
    Building,
    Frames,
    Phase,
    Seen,
    StageContext,
    Token,
    Transform,
)
from origin.transforms.flags import FlipOrFlags
from origin.transforms.geometry import turned_size
from origin.transforms.limits import Limits

ROTATE_TOKEN = Token(
    "r",
    "rotate",
    Int(-360, 360, modulo=360),
    "Degrees clockwise, -360 to 360; multiples of 90 are exact, other angles fill the "
    "corners with b_.",
)
FLIP_TOKEN = Token(
    "fl",
    "flip",
    FlipOrFlags(),
    "Mirror: h (left-right), v (top-bottom) or hv (both); or output flags "
    "(keep_icc, keep_copyright, smaller, joined with '.'), for the whole plan.",
)

RIGHT_ANGLES = {90: "rot90", 180: "rot180", 270: "rot270"}


def build_rotate(s: Seen, b: Building) -> int | None:
    angle = s.value("r")
    return angle or None  # r_0, r_360: nothing to do


def rotated_size(size: tuple[int, int], angle: int, limits: Limits) -> tuple[int, int]:
    if angle % 180 == 90:
        return size[1], size[0]
    if angle % 90:
        return turned_size(*size, angle, limits)
    return size


def rotate(frames: Frames, angle: int, ctx: StageContext) -> Frames:
    if angle in RIGHT_ANGLES:
        return tuple(getattr(f, RIGHT_ANGLES[angle])() for f in frames)
    turned_size(frames[0].width, frames[0].height, angle, ctx.limits)
    out = []
    for f in frames:
        f, bg = background_for(f, ctx.background)
        out.append(f.rotate(angle, background=bg).cast("uchar").copy(interpretation="srgb"))
    return tuple(out)


def flip(frames: Frames, axes: str, ctx: StageContext) -> Frames:
    if "h" in axes:
        frames = tuple(f.fliphor() for f in frames)
    if "v" in axes:
        frames = tuple(f.flipver() for f in frames)
    return frames


ROTATE = Transform(
    name="rotate",
    phase=Phase.ORIENT,
    doc="Rotate clockwise.",
    tokens=(ROTATE_TOKEN,),
    build=build_rotate,
    spell=lambda angle: [f"r_{angle}"],
    apply=rotate,
    size=rotated_size,
    examples={"r_90": "w_200/r_90", "r_30": "w_200/r_30,b_ffcc00"},
)
FLIP = Transform(
    name="flip",
    phase=Phase.ORIENT,
    doc="Mirror horizontally, vertically or both.",
    tokens=(FLIP_TOKEN,),
    build=lambda s, b: s.value("fl"),
    spell=lambda axes: [f"fl_{axes}"],
    apply=flip,
    examples={"fl_h": "w_200/fl_h", "fl_v": "w_200/fl_v", "fl_hv": "w_200/fl_hv"},
)
