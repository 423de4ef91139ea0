"""Resize: ``w_ h_ c_ g_ x_ y_ ar_ dpr_`` — scale, then cut or pad (one step per stage).

- ``c_fit`` (default) fits inside w×h; ``fill`` covers it then cuts; ``limit`` fits but never
  enlarges; ``pad`` fits then pads to w×h with ``b_``; ``scale`` forces w×h; ``crop`` cuts
  w×h at ``x_``/``y_`` (or placed by ``g_``) without scaling.
- ``w_``/``h_`` are pixels or a share of the input side; ``ar_`` gives the missing side;
  ``dpr_`` multiplies both (folded in: ``w_300,dpr_2`` is ``w_600``).
- ``w_auto[:fallback]`` and ``dpr_auto`` take their values from the request's snapped Client
  Hints (origin.hints), so a plan holds plain numbers.
- ``g_auto`` centres the cut on the stored attention point in the first stage, else libvips
  attention; ``g_entropy`` uses libvips entropy; ``g_face`` centres it on the box around
  every face (the stored faces in the first stage, else found now: origin.faces), and is
  ``g_auto`` when there is none.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from origin import faces
from origin.errors import LimitExceeded
from origin.errors import shown as show
from origin.hints import DPR, WIDTH, Hints
from origin.pixels import background_for, scale_frames
from origin.transforms.arguments import (
    AUTO_DPR,
    AutoWidth,
    Choice,
    Dpr,
    Int,
    Length,
    Ratio,
    Size,
    Width,
    spell_length,
)
from origin.transforms.declarations import (
    Building,
    Frames,
    Phase,
    Rule,
    Seen,
    StageContext,
    Token,
    Transform,
)
from origin.transforms.geometry import Resize, centre_on, plan_geometry, to_side
from origin.transforms.limits import Limits
from origin.transforms.padding import fill_frames

CROPS = ("fit", "fill", "limit", "pad", "scale", "crop")
COMPASS = (
    "center",
    "north",
    "south",
    "east",
    "west",
    "north_east",
    "north_west",
    "south_east",
    "south_west",
)
SMART_GRAVITIES = ("auto", "entropy", "face")  # placed by what is in the picture
GRAVITIES = (*COMPASS, *SMART_GRAVITIES)
CUTS = ("fill", "crop", "pad")  # the modes g_ places a cut or a box in


def _crop(s: Seen) -> str:
    return str(s.value("c", "fit"))


def _overlaid(s: Seen) -> bool:
    return "l" in s


IN_OVERLAY_STAGE = Rule(2, "cannot be used in a stage with l_", _overlaid)

WIDTH_TOKEN = Token(
    "w",
    "width",
    Width(),
    "Target width: pixels, or a share of the input width in (0,1]; `auto` / `auto:<px>` "
    "the width Client Hint. In a stage with `l_`: the overlay's width.",
    rules=(
        Rule(
            3,
            "w_auto cannot be used in a stage with l_",
            lambda s: _overlaid(s) and isinstance(s.value("w"), AutoWidth),
        ),
    ),
    hint=lambda value: WIDTH if isinstance(value, AutoWidth) else None,
)
HEIGHT = Token(
    "h",
    "height",
    Size(),
    "Target height: pixels, or a share of the input height in (0,1].",
    rules=(IN_OVERLAY_STAGE,),
)
ASPECT = Token(
    "ar",
    "aspect ratio",
    Ratio(),
    "Aspect ratio W:H; with one of w_/h_ it gives the other.",
    rules=(
        IN_OVERLAY_STAGE,
        Rule(11, "ar_ cannot be used with both w_ and h_", lambda s: "w" in s and "h" in s),
        Rule(
            12,
            "ar_ alone needs c_fill, c_crop or c_pad",
            lambda s: "w" not in s and "h" not in s and _crop(s) not in CUTS,
        ),
    ),
)
CROP = Token(
    "c",
    "crop mode",
    Choice(CROPS, default="fit", why="unknown crop mode"),
    "fit (default), fill, limit, pad, scale or crop.",
    rules=(
        IN_OVERLAY_STAGE,
        Rule(
            13,
            "needs w_, h_ or ar_",
            lambda s: (
                _crop(s) != "fit"
                and not ("w" in s or "h" in s or "ar" in s)
                and not (_crop(s) == "crop" and ("x" in s or "y" in s))
            ),
        ),
    ),
)
GRAVITY = Token(
    "g",
    "gravity",
    Choice(GRAVITIES, default="center", why="unknown gravity", in_overlay=COMPASS),
    "Which part c_fill / c_crop / c_pad keep or use; auto = libvips attention (the stored "
    "focal point in the first stage), entropy; face = centred on the faces found (else auto). "
    "In a stage with `l_`: where the overlay goes (a compass point, default south_east).",
    rules=(
        Rule(
            5,
            "overlays take a compass gravity",
            lambda s: _overlaid(s) and s.value("g") in SMART_GRAVITIES,
        ),
        Rule(
            14,
            "g_ applies with c_fill, c_crop, c_pad or l_",
            lambda s: not _overlaid(s) and _crop(s) not in CUTS,
        ),
        Rule(
            15,
            "c_pad takes a compass gravity",
            lambda s: not _overlaid(s) and _crop(s) == "pad" and s.value("g") in SMART_GRAVITIES,
        ),
    ),
)
X = Token(
    "x",
    "x offset",
    Int(0, 1_000_000),
    "With c_crop: the left edge of the cut in input pixels. With `l_`: the overlay's "
    "distance from the gravity's edge.",
    rules=(
        Rule(16, "x_ applies with c_crop or l_", lambda s: not _overlaid(s) and _crop(s) != "crop"),
    ),
)
Y = Token(
    "y",
    "y offset",
    Int(0, 1_000_000),
    "With c_crop: the top edge of the cut in input pixels. With `l_`: the overlay's "
    "distance from the gravity's edge.",
    rules=(
        Rule(17, "y_ applies with c_crop or l_", lambda s: not _overlaid(s) and _crop(s) != "crop"),
    ),
)
DPR_TOKEN = Token(
    "dpr",
    "device pixel ratio",
    Dpr(),
    "1 to 4 (two decimals): multiplies w_ and h_; `auto` the DPR Client Hint.",
    rules=(
        IN_OVERLAY_STAGE,
        Rule(10, "dpr_ needs w_ or h_", lambda s: "w" not in s and "h" not in s),
    ),
    hint=lambda value: DPR if value == AUTO_DPR else None,
)


def fold(
    size: Length | None, dpr: Decimal, tok: str, limits: Limits, clamp: bool = False
) -> Length | None:
    """`size` times `dpr`; above the maximum dimension a 400, or the maximum when `clamp`
    (`dpr_auto`: a header must not turn a good URL into an error)."""
    if size is None or dpr == 1:
        return size
    if isinstance(size, float):
        return float(Decimal(repr(size)) * dpr)
    px = int((size * dpr).to_integral_value(ROUND_HALF_UP))
    if clamp:
        return min(px, limits.max_output_dimension)
    if px > limits.max_output_dimension:
        raise LimitExceeded(
            f"'{show(tok)}' with dpr_{dpr} is above the maximum dimension "
            f"{limits.max_output_dimension}"
        )
    return px


def auto_width(
    auto: AutoWidth,
    hints: Hints,
    dpr: Decimal,
    crop: str,
    aspect: tuple[int, int] | None,
    tok: str,
    limits: Limits,
) -> tuple[Length, str]:
    """`w_auto`'s width (and the crop mode it implies): the width hint (physical px, so no
    DPR on top), else the fallback times the DPR, else the stage's input width — under
    `c_fit` at most the maximum dimension (`w_<max>,c_limit`), otherwise `w_1.0`."""
    if hints.width is not None:
        return hints.width, crop
    if auto.fallback is not None:
        return fold(auto.fallback, dpr, tok, limits, clamp=True) or auto.fallback, crop
    if crop == "fit" and aspect is None:
        return limits.max_output_dimension, "limit"
    return 1.0, crop


def build(s: Seen, b: Building) -> Resize | None:
    """The stage's resize (None in a stage with ``l_``, or when it has no resize tokens)."""
    if _overlaid(s):
        return None
    limits = b.limits
    crop = _crop(s)
    dpr_value = s.value("dpr", Decimal(1))
    auto_dpr = dpr_value == AUTO_DPR
    dpr = (b.hints.dpr or Decimal(1)) if auto_dpr else dpr_value
    aspect = s.value("ar")
    width = s.value("w")
    if isinstance(width, AutoWidth):
        width, crop = auto_width(width, b.hints, dpr, crop, aspect, s.raw("w"), limits)
    else:
        width = fold(width, dpr, s.raw("w"), limits, clamp=auto_dpr)
    height = fold(s.value("h"), dpr, s.raw("h"), limits, clamp=auto_dpr)
    if aspect is not None:
        if isinstance(width, int):
            height, aspect = to_side(width * aspect[1] / aspect[0]), None
        elif isinstance(height, int):
            width, aspect = to_side(height * aspect[0] / aspect[1]), None
        for side in (width, height):
            if isinstance(side, int) and side > limits.max_output_dimension:
                raise LimitExceeded(
                    f"'{show(s.raw('ar'))}' gives a side above the maximum dimension "
                    f"{limits.max_output_dimension}"
                )
    x, y = s.value("x"), s.value("y")
    gravity = str(s.value("g", "center"))
    if crop == "crop" and (x is not None or y is not None):
        gravity = "center"  # x/y win: gravity places the cut only when neither is given
    # a header must not turn a good URL into an error: with dpr_auto the other side too
    bounded = (
        auto_dpr and dpr != 1 and crop in ("fit", "limit") and (width is None) != (height is None)
    )
    found = Resize(width, height, crop, gravity, x, y, aspect, bounded)
    return None if found == Resize() else found


def spell(r: Resize) -> list[str]:
    tokens: list[str] = []
    if r.width is not None:
        tokens.append(f"w_{spell_length(r.width)}")
    if r.height is not None:
        tokens.append(f"h_{spell_length(r.height)}")
    if r.aspect is not None:
        tokens.append(f"ar_{r.aspect[0]}:{r.aspect[1]}")
    if r.crop != "fit":
        tokens.append(f"c_{r.crop}")
    if r.gravity != "center":
        tokens.append(f"g_{r.gravity}")
    if r.x is not None:
        tokens.append(f"x_{r.x}")
    if r.y is not None:
        tokens.append(f"y_{r.y}")
    return tokens


def size(size: tuple[int, int], r: Resize, limits: Limits) -> tuple[int, int]:
    return plan_geometry(*size, r, limits, ",".join(spell(r))).output


def apply(frames: Frames, r: Resize, ctx: StageContext) -> Frames:
    """Scale, then cut or pad. The first stage plans on the size the source was scaled from
    while loading (``ctx.planned_from``) and centres ``g_auto`` on the stored focal point;
    a fixed cut the loading already made (``ctx.cut_at_load``) is not made twice."""
    if ctx.cut_at_load:
        return frames
    iw, ih = ctx.planned_from or (frames[0].width, frames[0].height)
    g = plan_geometry(iw, ih, r, ctx.limits, ",".join(spell(r)))
    frames = scale_frames(frames, g.scaled)
    if g.cut is not None:
        frames = _cut(frames, g.cut, g.smart, g.scaled, ctx)
    if g.canvas is not None:
        left, top, w, h = g.canvas
        if ctx.fill is not None:
            return fill_frames(frames, ctx.fill, g.canvas)
        padded = []
        for f in frames:
            f, bg = background_for(f, ctx.background)
            padded.append(f.embed(left, top, w, h, extend="background", background=bg))
        frames = tuple(padded)
    return frames


def _cut(
    frames: Frames,
    cut: tuple[int, int, int, int],
    smart: str | None,
    scaled: tuple[int, int],
    ctx: StageContext,
) -> Frames:
    left, top, cw, ch = cut
    if smart == "face":
        found = faces.detect(frames[0]) if ctx.faces is None else ctx.faces
        if found:
            left, top = centre_on(faces.centre(found), scaled, (cw, ch))
            return tuple(f.extract_area(left, top, cw, ch) for f in frames)
        smart = "attention"  # no face: g_auto
    if smart == "attention" and ctx.focal is not None:
        left, top = centre_on(ctx.focal, scaled, (cw, ch))
        return tuple(f.extract_area(left, top, cw, ch) for f in frames)
    if smart is not None and len(frames) == 1:
        return (frames[0].smartcrop(cw, ch, interesting=smart),)
    if smart is not None:  # animations: one cut for every frame, from frame 0
        _, found = frames[0].smartcrop(
            cw, ch, interesting="attention", attention_x=True, attention_y=True
        )
        left = min(max(0, int(found["attention_x"]) - cw // 2), frames[0].width - cw)
        top = min(max(0, int(found["attention_y"]) - ch // 2), frames[0].height - ch)
    return tuple(f.extract_area(left, top, cw, ch) for f in frames)


RESIZE = Transform(
    name="resize",
    phase=Phase.GEOMETRY,
    doc="Scale, then cut or pad (c_ says how).",
    tokens=(WIDTH_TOKEN, HEIGHT, CROP, ASPECT, GRAVITY, X, Y, DPR_TOKEN),
    build=build,
    spell=spell,
    apply=apply,
    size=size,
    examples={
        "w": "w_120",
        "h": "h_80",
        "w_share": "w_0.25",
        "c_fit": "w_150,h_150",
        "c_fill": "w_150,h_150,c_fill",
        "c_limit": "w_900,c_limit",
        "c_pad": "w_150,h_150,c_pad,b_203040",
        "c_scale": "w_150,h_150,c_scale",
        "c_crop": "w_150,h_150,c_crop,x_40,y_20",
        "g_north": "w_200,h_80,c_fill,g_north",
        "g_south": "w_200,h_80,c_fill,g_south",
        "g_auto": "w_100,h_150,c_fill,g_auto",
        "g_entropy": "w_100,h_150,c_fill,g_entropy",
        "g_face": "w_200,h_120,c_fill,g_face",
        "ar": "w_200,ar_1:1,c_fill",
        "dpr": "w_100,dpr_2",
    },
)
