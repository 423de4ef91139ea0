"""The transform registry: one small function per step and per effect (libvips).

A step takes the frames of the working image (one frame, or every frame of an animation,
all the same size, 8-bit sRGB with 3 or 4 bands), the Stage and a Context, and returns new
frames. `origin.pipeline.STEPS` lists them in the fixed in-stage order.

Effect scales (Cloudinary-like), one `@effect` function each:
- blur:1..2000 (default 100): Gaussian sigma = strength / 20 (100 -> 5 px).
- sharpen:1..2000 (default 100): unsharp mask, sigma 1, m2 (jagged-area slope) = strength / 33
  (100 -> 3, the libvips default).
- brightness:-100..100: add 2.55 x value to R, G and B.
- contrast:-100..100: scale around mid-grey 128 by 1 + value/100 (-100 = flat grey).
- saturation:-100..100: multiply LCh chroma by 1 + value/100 (-100 = grey).
- pixelate:1..200 (default 5): square blocks of that many px, each its average colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pyvips

from origin import deadline, vips
from origin.errors import BadTransform, InvalidImage, LimitExceeded
from origin.path import COMPASS, EFFECT_BUDGET_SIGMA, Colour, Length, Limits, Overlay, Stage

Frames = tuple[pyvips.Image, ...]


@dataclass
class Context:
    """What steps need besides the stage: limits, overlay sources, and the pre-scale note."""

    limits: Limits
    overlays: Mapping[str, bytes] = field(default_factory=dict)
    # When the first stage's scaling was done while loading (shrink-on-load), the size the
    # geometry must be planned against (the source's upright size); consumed by `resize`.
    planned_from: tuple[int, int] | None = None
    # The upload-time attention focal point (fractions of the upright source), when stored;
    # consumed by the first stage's `resize`, the only one that sees the source's geometry.
    focal: tuple[float, float] | None = None
    # Whether the stage being run is the chain's last (`effects` keeps a blur in memory when
    # more work reads it).
    last_stage: bool = True


Step = Callable[[Frames, Stage, Context], Frames]


# ---------------------------------------------------------------- colour helpers


def has_alpha(img: pyvips.Image) -> bool:
    return bool(img.bands in (2, 4))


def to_srgb(img: pyvips.Image) -> pyvips.Image:
    """Embedded ICC profile -> sRGB; any interpretation or depth -> 8-bit sRGB, 3 or 4 bands.
    Every source passes here first: a render's deadline watches it (origin.deadline)."""
    deadline.watch((img,), replace=False)
    if img.get_typeof("icc-profile-data"):
        try:
            img = img.icc_transform("srgb", embedded=True, intent="perceptual")
        except pyvips.Error:
            img = img.copy()
            img.remove("icc-profile-data")  # a broken profile: fall back to plain conversion
    if img.interpretation != "srgb" or img.format != "uchar":
        if img.interpretation in ("multiband", "fourier", "histogram", "matrix"):
            img = img.copy(interpretation="b-w" if img.bands < 3 else "srgb")
        img = img.colourspace("srgb")
    if img.format != "uchar":
        img = img.cast("uchar")
    if img.bands > 4:
        img = img.extract_band(0, n=4)
    return img


def background_for(img: pyvips.Image, colour: Colour | None) -> tuple[pyvips.Image, list[float]]:
    """The background to fill with: `colour`, else white (transparent if the image has alpha).
    Adds an alpha band when the colour is not opaque."""
    if colour is None:
        colour = (0, 0, 0, 0) if has_alpha(img) else (255, 255, 255, 255)
    if colour[3] != 255 and not has_alpha(img):
        img = img.bandjoin(255)
    values = [float(v) for v in colour]
    return img, values if has_alpha(img) else values[:3]


def _split_alpha(img: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    if has_alpha(img):
        return img.extract_band(0, n=img.bands - 1), img.extract_band(img.bands - 1)
    return img, None


def _join_alpha(rgb: pyvips.Image, alpha: pyvips.Image | None) -> pyvips.Image:
    rgb = rgb.cast("uchar").copy(interpretation="srgb")
    return rgb if alpha is None else rgb.bandjoin(alpha)


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class Header:
    format: str
    width: int  # upright (EXIF orientation applied)
    height: int  # of one page
    pages: int
    orientation: int


def probe(data: bytes, limits: Limits) -> Header:
    """Read the header only (the format by magic bytes, then its own loader: origin.vips);
    refuse unknown formats and sources above the pixel limit."""
    fmt = vips.sniff_format(data)
    if fmt is None:
        raise InvalidImage("the source is not a JPEG, PNG, WebP, AVIF or GIF image")
    try:
        head = vips.load(data, fmt, access="sequential")
        pages = int(head.get("n-pages")) if head.get_typeof("n-pages") else 1
        orientation = int(head.get("orientation")) if head.get_typeof("orientation") else 1
    except pyvips.Error:
        raise InvalidImage("the source is not a decodable image") from None
    w, h = int(head.width), int(head.height)
    if w * h * max(1, pages) > limits.max_source_pixels:
        raise InvalidImage(f"the source has more than {limits.max_source_pixels} pixels")
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return Header(fmt, w, h, max(1, pages), orientation)


def load_still(data: bytes, limits: Limits) -> pyvips.Image:
    """The first frame, upright, 8-bit sRGB (no shrink-on-load)."""
    header = probe(data, limits)
    return to_srgb(vips.load(data, header.format).autorot())


def load_frames(data: bytes, header: Header) -> tuple[Frames, dict[str, object]]:
    """Every frame of an animated GIF/WebP, upright 8-bit sRGB, plus delay/loop metadata."""
    strip = vips.load(data, header.format, n=-1)
    page_height = (
        int(strip.get("page-height")) if strip.get_typeof("page-height") else header.height
    )
    meta: dict[str, object] = {}
    for name in ("delay", "loop"):
        if strip.get_typeof(name):
            meta[name] = strip.get(name)
    strip = _without_opaque_alpha(to_srgb(strip))
    count = strip.height // page_height
    frames = tuple(
        strip.extract_area(0, i * page_height, strip.width, page_height) for i in range(count)
    )
    return frames, meta


# An animation up to this many bytes (decoded, RGBA) is held in memory once, so that its
# alpha can be checked without decoding it twice.
OPAQUE_CHECK_BYTES = 64 * 1024 * 1024


def _without_opaque_alpha(strip: pyvips.Image) -> pyvips.Image:
    """The strip without its alpha band when every pixel is opaque (GIF and WebP animations
    carry one even when no frame has a transparent pixel): every later step then works on
    8-bit RGB instead of premultiplying in float — about 4x less work to resize the frames.
    Larger animations keep their alpha (and their lazy decoding)."""
    if not has_alpha(strip) or strip.width * strip.height * strip.bands > OPAQUE_CHECK_BYTES:
        return strip
    strip = strip.copy_memory()
    if strip.extract_band(strip.bands - 1).min() < 255:
        return strip
    return strip.extract_band(0, n=strip.bands - 1)


# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """How one stage's crop/resize maps an iw x ih input to its output."""

    scaled: tuple[int, int]  # size after scaling
    cut: tuple[int, int, int, int] | None = None  # left, top, width, height on the scaled image
    smart: str | None = None  # "attention" / "entropy": the cut is placed by libvips smartcrop
    canvas: tuple[int, int, int, int] | None = None  # pad: left, top, width, height of the box

    @property
    def output(self) -> tuple[int, int]:
        if self.canvas is not None:
            return self.canvas[2], self.canvas[3]
        if self.cut is not None:
            return self.cut[2], self.cut[3]
        return self.scaled


def _resolve(length: Length | None, side: int) -> int | None:
    if length is None:
        return None
    if isinstance(length, float):
        return max(1, round(length * side))
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
    left = min(max(0, round(fx * ow - iw / 2)), ow - iw)
    top = min(max(0, round(fy * oh - ih / 2)), oh - ih)
    return left, top


def _fit(iw: int, ih: int, w: int | None, h: int | None) -> tuple[int, int]:
    if w is not None and (h is None or w / iw <= h / ih):
        return w, max(1, round(ih * w / iw))
    assert h is not None
    return max(1, round(iw * h / ih)), h


def plan_geometry(iw: int, ih: int, stage: Stage, limits: Limits) -> Geometry:
    """The crop/resize of `stage` on an iw x ih input, checked against the limits."""
    w, h = _resolve(stage.width, iw), _resolve(stage.height, ih)
    mode = stage.crop
    if stage.aspect is not None:
        aw, ah = stage.aspect
        if w is None and h is None:
            wider = iw * ah > ih * aw
            if mode == "pad":  # the smallest W:H box holding the input
                w, h = (
                    (iw, max(1, round(iw * ah / aw)))
                    if wider
                    else (max(1, round(ih * aw / ah)), ih)
                )
            else:  # fill / crop: the largest W:H box inside the input
                w, h = (
                    (max(1, round(ih * aw / ah)), ih)
                    if wider
                    else (iw, max(1, round(iw * ah / aw)))
                )
        elif w is not None:
            h = max(1, round(w * ah / aw))
        elif h is not None:
            w = max(1, round(h * aw / ah))

    geometry: Geometry
    if mode == "crop":
        cw, ch = min(w or iw, iw), min(h or ih, ih)
        if stage.x is not None or stage.y is not None:
            left, top = stage.x or 0, stage.y or 0
            if left >= iw or top >= ih:
                raise BadTransform(f"c_crop at x_{left},y_{top} falls outside the {iw}x{ih} image")
            cw, ch = min(cw, iw - left), min(ch, ih - top)
            geometry = Geometry((iw, ih), cut=(left, top, cw, ch))
        elif stage.gravity in ("auto", "entropy"):
            geometry = Geometry((iw, ih), cut=(0, 0, cw, ch), smart=_SMART[stage.gravity])
        else:
            left, top = place(stage.gravity, (iw, ih), (cw, ch))
            geometry = Geometry((iw, ih), cut=(left, top, cw, ch))
    elif w is None and h is None:
        geometry = Geometry((iw, ih))
    elif mode == "scale" and w is not None and h is not None:
        geometry = Geometry((w, h))
    elif mode == "fill" and w is not None and h is not None:
        scale = max(w / iw, h / ih)
        sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
        if stage.gravity in ("auto", "entropy"):
            geometry = Geometry((sw, sh), cut=(0, 0, w, h), smart=_SMART[stage.gravity])
        else:
            left, top = place(stage.gravity, (sw, sh), (w, h))
            geometry = Geometry((sw, sh), cut=(left, top, w, h))
    elif mode == "pad" and w is not None and h is not None:
        sw, sh = _fit(iw, ih, w, h)
        left, top = place(stage.gravity, (w, h), (sw, sh))
        geometry = Geometry((sw, sh), canvas=(left, top, w, h))
    else:  # fit, limit, and the one-side forms of scale, fill and pad
        sw, sh = _fit(iw, ih, w, h)
        if mode == "limit" and sw > iw:
            sw, sh = iw, ih
        geometry = Geometry((sw, sh))

    for side in (*geometry.scaled, *geometry.output):
        if side > limits.max_output_dimension:
            raise LimitExceeded(
                f"stage '{stage.canonical()}' gives a side of {side} px, above the maximum "
                f"{limits.max_output_dimension}"
            )
    return geometry


_SMART = {"auto": "attention", "entropy": "entropy"}


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


def stage_sizes(
    width: int, height: int, stages: Sequence[Stage], limits: Limits
) -> list[tuple[int, int]]:
    """The size of the image each stage makes from an upright `width` x `height` source,
    without pixels (a dry run of the geometry): the stage's crop/resize as `plan_geometry`
    plans it, then its rotation (a right angle swaps the sides; any other angle gives the
    turned image's bounding box, rounded as libvips does); flips, effects and overlays keep
    the size. No stage: the source's size. Raises LimitExceeded where rendering would."""
    sizes = []
    for stage in stages:
        if stage.resizes:
            width, height = plan_geometry(width, height, stage, limits).output
        if stage.rotate % 180 == 90:
            width, height = height, width
        elif stage.rotate % 90:
            width, height = turned_size(width, height, stage.rotate, limits)
        sizes.append((width, height))
    if max(width, height) > limits.max_output_dimension:
        raise LimitExceeded(
            f"the output would be {width}x{height}, above the maximum dimension "
            f"{limits.max_output_dimension}"
        )
    return sizes or [(width, height)]


@dataclass(frozen=True)
class Work:
    """What a chain costs, from its geometry alone (docs/url-api.md#work-budget)."""

    size: tuple[int, int]  # the output's
    frames: int  # of the output (an animation's; else 1)
    largest: tuple[int, int]  # the largest image a stage makes
    effects: float  # blur, sharpen and pixelate: Σ weight × pixels, over every frame

    @property
    def pixels(self) -> int:
        return self.largest[0] * self.largest[1] * self.frames


def plan_work(
    width: int, height: int, stages: Sequence[Stage], limits: Limits, frames: int = 1
) -> Work:
    """The work of `stages` on an upright `width` x `height` source whose output has
    `frames` frames: the sizes of `stage_sizes`, and each stage's effects weighed at the size
    they run at (a stage's effects come after its crop/resize and rotation)."""
    sizes = stage_sizes(width, height, stages, limits)
    effects = 0.0
    for stage, (w, h) in zip(stages, sizes, strict=False):
        weight = sum(EFFECT_COSTS.get(e.name, _free)(e.amount or 0) for e in stage.effects)
        effects += weight * w * h * frames
    largest = max(sizes, key=lambda size: size[0] * size[1])
    return Work(sizes[-1], frames, largest, effects)


def check_work(work: Work, limits: Limits) -> None:
    """LimitExceeded naming the limit when `work` is over the budget."""
    if work.pixels > limits.max_output_pixels:
        w, h = work.largest
        shown = f"{work.frames} frames of {w}x{h}" if work.frames > 1 else f"{w}x{h}"
        raise LimitExceeded(
            f"the chain makes {work.pixels} pixels ({shown}), above MAX_OUTPUT_PIXELS "
            f"{limits.max_output_pixels}"
        )
    if work.effects > limits.max_effect_cost:
        raise LimitExceeded(
            f"the chain's blur, sharpen and pixelate cost {work.effects:.0f} (weight × pixels, "
            f"every frame), above the effect budget {limits.max_effect_cost} "
            f"({EFFECT_BUDGET_SIGMA} × MAX_OUTPUT_PIXELS)"
        )


def output_size(
    width: int, height: int, stages: Sequence[Stage], limits: Limits, frames: int = 1
) -> tuple[int, int]:
    """The size a chain gives an upright `width` x `height` source, without pixels, checked
    against the work budget for an output of `frames` frames (1: a lower bound for any
    source). Raises LimitExceeded where rendering would."""
    work = plan_work(width, height, stages, limits, frames)
    check_work(work, limits)
    return work.size


def scale_to(img: pyvips.Image, size: tuple[int, int]) -> pyvips.Image:
    """Resize to exactly `size` (premultiplied when there is alpha)."""
    if (img.width, img.height) == size:
        return img
    alpha = has_alpha(img)
    work = img.premultiply() if alpha else img
    work = work.resize(size[0] / img.width, vscale=size[1] / img.height)
    # resize can be one pixel off through rounding; pin the exact size
    if (work.width, work.height) != size:
        work = work.embed(0, 0, size[0], size[1], extend="copy")
    if alpha:
        work = work.unpremultiply()
    return work.cast("uchar").copy(interpretation="srgb")


# ---------------------------------------------------------------- steps


def resize(frames: Frames, stage: Stage, ctx: Context) -> Frames:
    """c_/w_/h_/ar_/g_/x_/y_: scale, then cut or pad.

    `g_auto` in the first stage centres the cut on the stored focal point when the image has
    one (the input is then the upright source, scaled alike on both axes); anywhere else,
    libvips attention looks at the pixels the stage is given."""
    planned_from, ctx.planned_from = ctx.planned_from, None
    focal, ctx.focal = ctx.focal, None
    if not stage.resizes:
        return frames
    iw, ih = planned_from or (frames[0].width, frames[0].height)
    g = plan_geometry(iw, ih, stage, ctx.limits)
    frames = tuple(scale_to(f, g.scaled) for f in frames)
    if g.cut is not None:
        _, _, cw, ch = g.cut
        if g.smart == "attention" and focal is not None:
            left, top = centre_on(focal, g.scaled, (cw, ch))
            frames = tuple(f.extract_area(left, top, cw, ch) for f in frames)
        elif g.smart is not None and len(frames) == 1:
            frames = (frames[0].smartcrop(cw, ch, interesting=g.smart),)
        else:
            left, top = g.cut[0], g.cut[1]
            if g.smart is not None:  # animations: one cut for every frame, from frame 0
                _, found = frames[0].smartcrop(
                    cw, ch, interesting="attention", attention_x=True, attention_y=True
                )
                left = min(max(0, int(found["attention_x"]) - cw // 2), frames[0].width - cw)
                top = min(max(0, int(found["attention_y"]) - ch // 2), frames[0].height - ch)
            frames = tuple(f.extract_area(left, top, cw, ch) for f in frames)
    if g.canvas is not None:
        left, top, w, h = g.canvas
        padded = []
        for f in frames:
            f, bg = background_for(f, stage.background)
            padded.append(f.embed(left, top, w, h, extend="background", background=bg))
        frames = tuple(padded)
    return frames


def rotate(frames: Frames, stage: Stage, ctx: Context) -> Frames:
    """r_: clockwise; multiples of 90 are exact, other angles fill the corners with b_."""
    angle = stage.rotate
    if angle == 0:
        return frames
    if angle % 90 == 0:
        name = {90: "rot90", 180: "rot180", 270: "rot270"}[angle]
        return tuple(getattr(f, name)() for f in frames)
    turned_size(frames[0].width, frames[0].height, angle, ctx.limits)
    out = []
    for f in frames:
        f, bg = background_for(f, stage.background)
        out.append(f.rotate(angle, background=bg).cast("uchar").copy(interpretation="srgb"))
    return tuple(out)


def flip(frames: Frames, stage: Stage, ctx: Context) -> Frames:
    """fl_h / fl_v / fl_hv: mirror."""
    if stage.flip is None:
        return frames
    if "h" in stage.flip:
        frames = tuple(f.fliphor() for f in frames)
    if "v" in stage.flip:
        frames = tuple(f.flipver() for f in frames)
    return frames


# ---------------------------------------------------------------- effects

EffectOp = Callable[[pyvips.Image, int], pyvips.Image]
EFFECT_OPS: dict[str, EffectOp] = {}
# The work budget's weight of an effect per pixel, for its amount: about its CPU time per
# pixel in units of a Gaussian blur's per sigma (docs/url-api.md#work-budget). Effects that
# look at one pixel at a time are not counted.
EffectCost = Callable[[int], float]
EFFECT_COSTS: dict[str, EffectCost] = {}
# Effects whose output is kept in memory when more of the chain reads it: each output pixel
# reads a neighbourhood, so a later stage asking for overlapping regions would compute them
# again and again (two chained `e_blur:2000` at 1024² took 14 times one).
HELD_EFFECTS = frozenset({"blur", "sharpen"})


def _free(amount: int) -> float:
    return 0.0


def effect(name: str, cost: EffectCost | None = None) -> Callable[[EffectOp], EffectOp]:
    """Register the implementation of `e_<name>` and its weight in the work budget; its
    argument spec is origin.path.EFFECTS."""

    def register(op: EffectOp) -> EffectOp:
        EFFECT_OPS[name] = op
        if cost is not None:
            EFFECT_COSTS[name] = cost
        return op

    return register


@effect("grayscale")
def grayscale(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = _split_alpha(img)
    grey = rgb.colourspace("b-w").colourspace("srgb")
    return _join_alpha(grey, alpha)


_SEPIA = [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]]


@effect("sepia")
def sepia(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = _split_alpha(img)
    return _join_alpha(rgb.recomb(_SEPIA), alpha)


def blur_sigma(amount: int) -> float:
    return amount / 20


# Measured on 2600x1950 (one thread): gaussblur costs ~0.5-0.9 ns per pixel and sigma (85 ns
# at σ 100); sharpen ~56 ns whatever its amount (its LabS round trip); pixelate 3-5 ns.
SHARPEN_COST = 50.0
PIXELATE_COST = 5.0


@effect("blur", cost=blur_sigma)
def blur(img: pyvips.Image, amount: int) -> pyvips.Image:
    alpha = has_alpha(img)
    work = img.premultiply() if alpha else img
    work = work.gaussblur(blur_sigma(amount), precision="integer" if not alpha else "float")
    if alpha:
        work = work.unpremultiply()
    return work.cast("uchar").copy(interpretation="srgb")


@effect("sharpen", cost=lambda amount: SHARPEN_COST)
def sharpen(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = _split_alpha(img)
    sharp = rgb.sharpen(sigma=1.0, m2=amount / 33).colourspace("srgb")
    return _join_alpha(sharp, alpha)


@effect("brightness")
def brightness(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = _split_alpha(img)
    return _join_alpha(rgb.linear(1.0, 2.55 * amount, uchar=True), alpha)


@effect("contrast")
def contrast(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = _split_alpha(img)
    factor = 1 + amount / 100
    return _join_alpha(rgb.linear(factor, 128 * (1 - factor), uchar=True), alpha)


@effect("saturation")
def saturation(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = _split_alpha(img)
    lch = rgb.colourspace("lch") * [1.0, 1 + amount / 100, 1.0]
    return _join_alpha(lch.colourspace("srgb"), alpha)


@effect("pixelate", cost=lambda amount: PIXELATE_COST)
def pixelate(img: pyvips.Image, amount: int) -> pyvips.Image:
    block = max(1, min(amount, img.width, img.height))
    if block == 1:
        return img
    w, h = img.width, img.height
    pw, ph = -(-w // block) * block, -(-h // block) * block
    padded = img.embed(0, 0, pw, ph, extend="copy")
    blocks = padded.shrink(block, block).cast("uchar").zoom(block, block)
    return blocks.extract_area(0, 0, w, h).copy(interpretation="srgb")


def effects(frames: Frames, stage: Stage, ctx: Context) -> Frames:
    """e_: each effect in the order written; a blur or sharpen that more of the chain reads
    is computed once, into memory (HELD_EFFECTS)."""
    for i, e in enumerate(stage.effects):
        op = EFFECT_OPS[e.name]
        frames = tuple(op(f, e.amount or 0) for f in frames)
        if e.name in HELD_EFFECTS and (i + 1 < len(stage.effects) or not ctx.last_stage):
            frames = tuple(f.copy_memory() for f in frames)
            deadline.watch(frames)
    return frames


# ---------------------------------------------------------------- overlay

FONT = "DejaVu Sans"


def _markup(text: str, colour: Colour) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<span foreground="#{colour[0]:02x}{colour[1]:02x}{colour[2]:02x}">{escaped}</span>'


def text_layer(o: Overlay, base_width: int) -> pyvips.Image:
    """A text overlay as RGBA: size fs_ px (default base width / 20), wrapped to w_."""
    size = o.font_size or max(8, base_width // 20)
    wrap = _resolve(o.width, base_width) or base_width
    colour = o.colour or (0, 0, 0, 255)
    layer = pyvips.Image.text(
        _markup(o.text or "", colour), font=f"{FONT} {size}", rgba=True, dpi=72, width=max(1, wrap)
    )
    layer = layer.cast("uchar").copy(interpretation="srgb")
    if colour[3] != 255:
        layer = layer.extract_band(0, n=3).bandjoin(
            (layer.extract_band(3) * (colour[3] / 255)).cast("uchar")
        )
    return layer


def image_layer(o: Overlay, data: bytes, base_width: int, limits: Limits) -> pyvips.Image:
    """An image overlay as RGBA: w_ px or share of the base width; by default its natural size,
    shrunk to fit the base width."""
    layer = load_still(data, limits)
    width = _resolve(o.width, base_width) or min(layer.width, base_width)
    if width > limits.max_output_dimension:
        raise LimitExceeded(f"overlay width {width} is above the maximum dimension")
    height = max(1, round(layer.height * width / layer.width))
    if height > limits.max_output_dimension:
        raise LimitExceeded(f"overlay height {height} is above the maximum dimension")
    if not has_alpha(layer):
        layer = layer.bandjoin(255)
    return scale_to(layer, (width, height))


def overlay(frames: Frames, stage: Stage, ctx: Context) -> Frames:
    """l_: composite an image or text over every frame, placed by g_ with x_/y_ and o_."""
    o = stage.overlay
    if o is None:
        return frames
    base_w, base_h = frames[0].width, frames[0].height
    if o.image_id is not None:
        data = ctx.overlays.get(o.image_id)
        if data is None:
            raise BadTransform(f"overlay image not available: 'l_{o.image_id}'")
        layer = image_layer(o, data, base_w, ctx.limits)
    else:
        layer = text_layer(o, base_w)
    if o.opacity != 100:
        layer = layer.extract_band(0, n=3).bandjoin(
            (layer.extract_band(3) * (o.opacity / 100)).cast("uchar")
        )
    gravity = o.gravity if o.gravity in COMPASS else "south_east"
    left, top = place(gravity, (base_w, base_h), (layer.width, layer.height), (o.x, o.y))
    out = []
    for f in frames:
        opaque = not has_alpha(f)
        done = f.composite2(layer, "over", x=left, y=top).cast("uchar")
        if opaque:
            done = done.extract_band(0, n=3)
        out.append(done.copy(interpretation="srgb"))
    return tuple(out)


def check_size(img: pyvips.Image, limits: Limits) -> None:
    if max(img.width, img.height) > limits.max_output_dimension:
        raise LimitExceeded(
            f"the output would be {img.width}x{img.height}, above the maximum dimension "
            f"{limits.max_output_dimension}"
        )
