"""Effects: ``e_<name>[:<amount>]``, each declared once below by ``@effect``.

An effect works on one frame at a time (every frame of an animation alike); a stage's
effects run in the order written. Scales follow Cloudinary's:

- grayscale, sepia: no amount;
- blur:1..2000 (default 100): Gaussian sigma = amount / 20 (100 -> 5 px);
- sharpen:1..2000 (default 100): unsharp mask, sigma 1, m2 (jagged-area slope) = amount / 33
  (100 -> 3, libvips' default);
- brightness:-100..100: add 2.55 × amount to R, G and B;
- contrast:-100..100: scale around mid-grey 128 by 1 + amount/100 (-100 = flat grey);
- saturation:-100..100: multiply LCh chroma by 1 + amount/100 (-100 = grey);
- pixelate:1..200 (default 5): square blocks of that many px, each its average colour;
- vignette:1..100 (default 50): darken towards the corners, which lose amount % of their
  light (a quadratic fall-off from the centre, which keeps its own).
- trim:0..100 (default 10): cut away a uniform border, the colour of the top-left pixel,
  within that tolerance (libvips ``find_trim``'s threshold); an animation is cut the same
  for every frame, found on the first. Its size depends on pixels: see ``trim``.
- blur_faces:1..2000 (default 500), pixelate_faces:1..100 (default 10): every face found
  (origin.faces) blurred (sigma = strength / 5000 of the face's side, so 500 is a tenth of
  it) or cut into squares of size % of its side. They are sized by the face, not in px,
  and run first in their stage, on the stage's input, where the stored faces hold
  (``ON_FACES``): the look is the same at every output size.

``cost`` is the effect's weight per pixel in the work budget (docs/url-api.md#work-budget):
about its CPU time per pixel in units of a Gaussian blur's per sigma, measured on 2600×1950
on one thread (gaussblur ~0.5–0.9 ns per pixel and sigma, 85 ns at σ 100; sharpen ~56 ns
whatever its amount, its LabS round trip; pixelate 3–5 ns). Effects that look at one pixel
at a time cost nothing. ``held``: its output is kept in memory when more of the chain reads
it, since each output pixel reads a neighbourhood and a later step asking for overlapping
regions would compute them again (two chained ``e_blur:2000`` at 1024² took 14 times one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pyvips

from origin import faces
from origin.pixels import has_alpha, join_alpha, scale_to, split_alpha
from origin.transforms.arguments import bad, integer
from origin.transforms.declarations import (
    Building,
    Frames,
    Phase,
    Seen,
    StageContext,
    Token,
    Transform,
)
from origin.transforms.limits import Limits

OneFrame = Callable[[pyvips.Image, int], pyvips.Image]
AllFrames = Callable[[Frames, int], Frames]
OnFaces = Callable[[pyvips.Image, int, faces.Faces], pyvips.Image]


@dataclass(frozen=True)
class Amount:
    """An effect's amount: ``low..high``; ``default`` when left out, else ``required``."""

    low: int
    high: int
    default: int | None = None

    @property
    def required(self) -> bool:
        return self.default is None


EFFECTS: dict[str, Transform] = {}  # name -> its declaration, in declaration order
AMOUNTS: dict[str, Amount | None] = {}
ON_FACES: set[str] = set()  # effects that run first in their stage (see the docstring)


def _spell(name: str) -> Callable[[int | None], list[str]]:
    return lambda amount: [f"e_{name}" if amount is None else f"e_{name}:{amount}"]


def _each_frame(one: OneFrame) -> Callable[[Frames, int | None, StageContext], Frames]:
    return lambda frames, amount, ctx: tuple(one(f, amount or 0) for f in frames)


def _whole(every: AllFrames) -> Callable[[Frames, int | None, StageContext], Frames]:
    return lambda frames, amount, ctx: every(frames, amount or 0)


def _on_faces(each: OnFaces) -> Callable[[Frames, int | None, StageContext], Frames]:
    def apply(frames: Frames, amount: int | None, ctx: StageContext) -> Frames:
        found = faces.detect(frames[0]) if ctx.faces is None else ctx.faces
        if not found:
            return frames
        return tuple(each(f, amount or 0, found) for f in frames)

    return apply


def effect(
    name: str,
    doc: str,
    *,
    amount: Amount | None = None,
    cost: Callable[[int], float] | None = None,
    held: bool = False,
    examples: Mapping[str, str] = MappingProxyType({}),
    whole: bool = False,
    on_faces: bool = False,
) -> Callable[[Any], Any]:
    """Declare ``e_<name>``: its amount (None: it takes none), doc, budget weight, whether
    it is held, the pictures of docs/url-api.md, and (decorated) what it does to a frame —
    or, with ``whole``, to all the frames at once (one decision for every frame), or, with
    ``on_faces``, to a frame and the faces found in it (it then runs first in its stage)."""

    def declare(one: Any) -> Any:
        apply = _whole(one) if whole else _on_faces(one) if on_faces else _each_frame(one)
        EFFECTS[name] = Transform(
            name=name,
            phase=Phase.EFFECT,
            doc=doc,
            tokens=(EFFECT_TOKEN,),
            build=_never,
            spell=_spell(name),
            apply=apply,
            cost=None if cost is None else (lambda value: cost(value or 0)),
            held=held,
            examples=examples,
        )
        AMOUNTS[name] = amount
        if on_faces:
            ON_FACES.add(name)
        return one

    return declare


def _never(s: Seen, b: Building) -> Any:
    raise AssertionError("effects are built from their e_ tokens (origin.transforms.parse)")


@dataclass(frozen=True)
class EffectArgument:
    """``<name>[:<amount>]`` of a declared effect → (its Transform, the amount or None)."""

    def parse(self, token: str, text: str, limits: Limits) -> tuple[Transform, int | None]:
        name, sep, value = text.partition(":")
        declared = EFFECTS.get(name)
        if declared is None:
            raise bad(token, "unknown effect")
        amount = AMOUNTS[name]
        if amount is None:
            if sep:
                raise bad(token, "this effect takes no value")
            return declared, None
        if not sep:
            if amount.required:
                raise bad(token, f"this effect needs a value {amount.low}..{amount.high}")
            return declared, amount.default
        return declared, integer(token, value, amount.low, amount.high)

    def describe(self) -> dict[str, Any]:
        return {"type": "effect", "effects": sorted(EFFECTS)}


EFFECT_TOKEN = Token(
    "e",
    "effect",
    EffectArgument(),
    "An effect, e_<name>[:<amount>]; a stage's effects run in the order written, each at "
    "most once per stage.",
)


# ---------------------------------------------------------------- the effects

SEPIA_MATRIX = [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]]
SHARPEN_COST = 50.0
PIXELATE_COST = 5.0


def blur_sigma(amount: int) -> float:
    return amount / 20


@effect("grayscale", "Shades of grey (alpha kept).", examples={"e_grayscale": "w_200/e_grayscale"})
def grayscale(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    return join_alpha(rgb.colourspace("b-w").colourspace("srgb"), alpha)


@effect("sepia", "A warm brown tone.", examples={"e_sepia": "w_200/e_sepia"})
def sepia(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    return join_alpha(rgb.recomb(SEPIA_MATRIX), alpha)


@effect(
    "blur",
    "Gaussian blur: sigma = amount / 20 px.",
    amount=Amount(1, 2000, 100),
    cost=blur_sigma,
    held=True,
    examples={"e_blur": "w_200/e_blur", "e_blur_300": "w_200/e_blur:300"},
)
def blur(img: pyvips.Image, amount: int) -> pyvips.Image:
    alpha = has_alpha(img)
    work = img.premultiply() if alpha else img
    work = work.gaussblur(blur_sigma(amount), precision="integer" if not alpha else "float")
    if alpha:
        work = work.unpremultiply()
    return work.cast("uchar").copy(interpretation="srgb")


@effect(
    "sharpen",
    "Unsharp mask: sigma 1, jagged-area slope amount / 33.",
    amount=Amount(1, 2000, 100),
    cost=lambda amount: SHARPEN_COST,
    held=True,
    examples={"e_sharpen": "w_200/e_sharpen:400"},
)
def sharpen(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    return join_alpha(rgb.sharpen(sigma=1.0, m2=amount / 33).colourspace("srgb"), alpha)


@effect(
    "brightness",
    "Add 2.55 × amount to R, G and B.",
    amount=Amount(-100, 100),
    examples={
        "e_brightness": "w_200/e_brightness:40",
        "e_brightness_neg": "w_200/e_brightness:-40",
    },
)
def brightness(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    return join_alpha(rgb.linear(1.0, 2.55 * amount, uchar=True), alpha)


@effect(
    "contrast",
    "Scale around mid-grey by 1 + amount/100 (-100: flat grey).",
    amount=Amount(-100, 100),
    examples={"e_contrast": "w_200/e_contrast:60", "e_contrast_neg": "w_200/e_contrast:-60"},
)
def contrast(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    factor = 1 + amount / 100
    return join_alpha(rgb.linear(factor, 128 * (1 - factor), uchar=True), alpha)


@effect(
    "saturation",
    "Multiply chroma by 1 + amount/100 (-100: grey).",
    amount=Amount(-100, 100),
    examples={
        "e_saturation": "w_200/e_saturation:80",
        "e_saturation_neg": "w_200/e_saturation:-80",
    },
)
def saturation(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    lch = rgb.colourspace("lch") * [1.0, 1 + amount / 100, 1.0]
    return join_alpha(lch.colourspace("srgb"), alpha)


@effect(
    "pixelate",
    "Square blocks of amount px, each its average colour.",
    amount=Amount(1, 200, 5),
    cost=lambda amount: PIXELATE_COST,
    examples={"e_pixelate": "w_200/e_pixelate", "e_pixelate_12": "w_200/e_pixelate:12"},
)
def pixelate(img: pyvips.Image, amount: int) -> pyvips.Image:
    block = max(1, min(amount, img.width, img.height))
    if block == 1:
        return img
    w, h = img.width, img.height
    pw, ph = -(-w // block) * block, -(-h // block) * block
    padded = img.embed(0, 0, pw, ph, extend="copy")
    alpha = has_alpha(img)  # averaged premultiplied: a hidden colour never shows in a block
    means = (padded.premultiply() if alpha else padded).shrink(block, block)
    blocks = (means.unpremultiply() if alpha else means).cast("uchar").zoom(block, block)
    return blocks.extract_area(0, 0, w, h).copy(interpretation="srgb")


@effect(
    "vignette",
    "Darken towards the corners, which lose amount % of their light.",
    amount=Amount(1, 100, 50),
    examples={"e_vignette": "w_200/e_vignette", "e_vignette_90": "w_200/e_vignette:90"},
)
def vignette(img: pyvips.Image, amount: int) -> pyvips.Image:
    rgb, alpha = split_alpha(img)
    half_w, half_h = img.width / 2, img.height / 2
    xy = pyvips.Image.xyz(img.width, img.height) - [half_w - 0.5, half_h - 0.5]
    reach = (xy[0] * xy[0] + xy[1] * xy[1]) / (half_w * half_w + half_h * half_h)
    return join_alpha(rgb * (1 - amount / 100 * reach), alpha)


TRIM_SMALLEST = 3  # px: an image narrower or shorter than this is left as it is


@effect(
    "trim",
    "Cut away a uniform border (the top-left pixel's colour, within the tolerance).",
    amount=Amount(0, 100, 10),
    whole=True,
    examples={"e_trim": "w_200,h_200,c_pad,b_ffffff/e_trim"},
)
def trim(frames: Frames, tolerance: int) -> Frames:
    """The box ``find_trim`` finds on the first frame (flattened, its corner the background),
    cut from every frame; an image that is all border, or under ``TRIM_SMALLEST`` pixels on
    a side, is left as it is.

    The size without pixels (the work budget, srcset, ``/url``) is the untrimmed size, an
    upper bound; ``.json`` renders, so it tells the trimmed size."""
    first = frames[0]
    if min(first.width, first.height) < TRIM_SMALLEST:  # find_trim's median needs 3×3
        return frames
    rgb, _ = split_alpha(first.flatten(background=[255, 255, 255]) if has_alpha(first) else first)
    corner = rgb.getpoint(0, 0)
    left, top, width, height = rgb.find_trim(threshold=tolerance, background=corner)
    if width <= 0 or height <= 0 or (width, height) == (first.width, first.height):
        return frames
    return tuple(f.extract_area(left, top, width, height) for f in frames)


FACE_MARGIN = 0.3  # a face's box grows by this much of its size on every side
FEATHER = 0.2  # the blur fades out over the last fifth of the ellipse in that box


@effect(
    "blur_faces",
    "Blur every face found: sigma = strength / 5000 of the face's side.",
    amount=Amount(1, 2000, 500),
    cost=lambda amount: PIXELATE_COST,
    on_faces=True,
    examples={"e_blur_faces": "w_200,e_blur_faces"},
)
def blur_faces(img: pyvips.Image, strength: int, found: faces.Faces) -> pyvips.Image:
    """Each face's grown box blurred inside an ellipse that fades out at its rim."""

    def blur(region: pyvips.Image) -> pyvips.Image:
        sigma = max(region.width, region.height) * strength / 5000
        return _oval_blend(region, _soften(region, sigma))

    return _each_face(img, found, FACE_MARGIN, blur)


def _each_face(
    img: pyvips.Image,
    found: faces.Faces,
    grow: float,
    redraw: Callable[[pyvips.Image], pyvips.Image],
) -> pyvips.Image:
    """``img`` with each face's box (grown by ``grow`` of its size a side) redrawn."""
    for left, top, w, h in faces.in_pixels(found, img.width, img.height, grow=grow):
        img = img.insert(redraw(img.extract_area(left, top, w, h)), left, top)
    return img


def _soften(region: pyvips.Image, sigma: float) -> pyvips.Image:
    """A Gaussian blur of ``sigma`` px, run on a copy reduced so that its sigma is at most 4
    (a blur that wide has nothing a reduction loses), then scaled back."""
    factor = max(1.0, sigma / 4)
    small = region if factor == 1 else scale_to(region, _reduced(region, factor))
    work = small.premultiply() if has_alpha(small) else small
    work = work.gaussblur(max(0.5, sigma / factor))
    if has_alpha(small):
        work = work.unpremultiply()
    work = work.cast("uchar").copy(interpretation="srgb")
    return scale_to(work, (region.width, region.height))


def _reduced(region: pyvips.Image, factor: float) -> tuple[int, int]:
    return max(1, round(region.width / factor)), max(1, round(region.height / factor))


def _oval_blend(under: pyvips.Image, over: pyvips.Image) -> pyvips.Image:
    """``over`` inside the ellipse of the box, ``under`` outside, faded across ``FEATHER``:
    one shared mask stretched to the box, so a face costs two operations, not twenty."""
    return (
        scale_to(_oval_mask(), (under.width, under.height))
        .ifthenelse(over, under, blend=True)
        .copy(interpretation=under.interpretation)
    )


OVAL_SIZE = 256


@functools.cache
def _oval_mask() -> pyvips.Image:
    """255 inside the ellipse of an ``OVAL_SIZE`` square, 0 outside, faded across
    ``FEATHER`` (made once a process; libvips images are immutable and shared by threads)."""
    half = OVAL_SIZE / 2
    xy = pyvips.Image.xyz(OVAL_SIZE, OVAL_SIZE) - [half - 0.5, half - 0.5]
    reach = ((xy[0] / half) ** 2 + (xy[1] / half) ** 2) ** 0.5
    weight = ((1 - reach) / FEATHER * 255).cast("uchar")  # cast clips: 0 out, 255 in
    return weight.copy_memory()


@effect(
    "pixelate_faces",
    "Pixelate every face found: squares of size % of the face's side.",
    amount=Amount(1, 100, 10),
    cost=lambda amount: PIXELATE_COST,
    on_faces=True,
    examples={"e_pixelate_faces": "w_200,e_pixelate_faces"},
)
def pixelate_faces(img: pyvips.Image, size: int, found: faces.Faces) -> pyvips.Image:
    def squares(region: pyvips.Image) -> pyvips.Image:
        return pixelate(region, max(1, round(max(region.width, region.height) * size / 100)))

    return _each_face(img, found, FACE_MARGIN / 3, squares)
