"""What ``c_pad`` fills its box with besides a colour: ``b_auto`` and ``b_blurred[:strength]``.

- ``b_auto``: the border's dominant colour — the most common colour (in 32-level bins per
  channel) among the image's outermost pixels, averaged within its bin (Cloudinary's
  ``b_auto``, thumbor's ``fill(auto)``); transparent when most of them are;
- ``b_blurred[:strength]`` (1..2000, default 400): the image itself, enlarged to cover the
  box and blurred with a Gaussian of sigma strength / 20 px of the output (400: 20 px), the
  fitted image on top (imgix ``fill=blur``, thumbor ``fill(blur)``, weserv's most asked).
  The blur runs on a copy a quarter of the box's size (sigma / 4), then is enlarged: at
  these sigmas the two look the same and it costs a sixteenth.

Both need ``c_pad`` in the same stage. They are backgrounds for the pad only: a turn and
the flattening of alpha for JPEG use white, as with no ``b_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyvips

from origin.pixels import Frames, has_alpha, split_alpha
from origin.transforms.arguments import Colour, ColourArg, bad, integer, spell_colour
from origin.transforms.limits import Limits

BLUR_DEFAULT = 400
BLUR_REDUCE = 4  # the blurred background is made this many times smaller, then enlarged
BIN_SHIFT = 3  # 32 levels per channel
BORDER = 2  # px of each edge that b_auto looks at
TRANSPARENT = -1  # b_auto's bin of the border's transparent pixels


@dataclass(frozen=True)
class Fill:
    """``auto`` (strength 0) or ``blurred`` with its strength."""

    kind: str
    strength: int = 0

    def spell(self) -> str:
        return "auto" if self.kind == "auto" else f"blurred:{self.strength}"


@dataclass(frozen=True)
class BackgroundArg:
    """A colour (origin.transforms.arguments.ColourArg), ``auto`` or ``blurred[:1..2000]``."""

    def parse(self, token: str, text: str, limits: Limits) -> Colour | Fill:
        if text == "auto":
            return Fill("auto")
        name, sep, value = text.partition(":")
        if name == "blurred":
            return Fill("blurred", integer(token, value, 1, 2000) if sep else BLUR_DEFAULT)
        try:
            return ColourArg().parse(token, text, limits)
        except Exception:
            raise bad(token, "expected rrggbb, rrggbbaa, a colour name, auto or blurred") from None

    def describe(self) -> dict[str, Any]:
        return {**ColourArg().describe(), "fills": ["auto", "blurred[:1..2000]"]}


def colour_of(value: Colour | Fill | None) -> Colour | None:
    """A stage's ``b_`` as a colour (a fill is not one: None)."""
    return None if isinstance(value, Fill) else value


def fill_of(value: Colour | Fill | None) -> Fill | None:
    return value if isinstance(value, Fill) else None


def spell_background(value: Colour | Fill) -> str:
    return value.spell() if isinstance(value, Fill) else spell_colour(value)


def border_colour(img: pyvips.Image) -> Colour:
    """The dominant colour of the outermost ``BORDER`` px of ``img``. With alpha, a pixel
    less than half opaque counts as transparent, and when those are the most common the
    colour is transparent (alpha 0): the pad continues a transparent border."""
    rgb, alpha = split_alpha(img)
    seen = rgb if alpha is None else rgb.bandjoin(alpha)
    w, h = seen.width, seen.height
    b = min(BORDER, w, h)
    edges = [seen.crop(0, 0, w, b), seen.crop(0, h - b, w, b)]
    if h > 2 * b:
        edges += [seen.crop(0, b, b, h - 2 * b), seen.crop(w - b, b, b, h - 2 * b)]
    pixels = b"".join(bytes(edge.cast("uchar").write_to_memory()) for edge in edges)
    step = seen.bands
    counts: dict[int, list[int]] = {}
    for i in range(0, len(pixels), step):
        r, g, bl = pixels[i], pixels[i + 1], pixels[i + 2]
        if alpha is not None and pixels[i + 3] < 128:
            key = TRANSPARENT
        else:
            key = (r >> BIN_SHIFT) << 10 | (g >> BIN_SHIFT) << 5 | (bl >> BIN_SHIFT)
        found = counts.get(key)
        if found is None:
            counts[key] = [1, r, g, bl]
        else:
            found[0] += 1
            found[1] += r
            found[2] += g
            found[3] += bl
    key, (n, r, g, bl) = max(counts.items(), key=lambda item: item[1][0])
    if key == TRANSPARENT:
        return (0, 0, 0, 0)
    return (round(r / n), round(g / n), round(bl / n), 255)


def fill_frames(frames: Frames, fill: Fill, box: tuple[int, int, int, int]) -> Frames:
    """Each frame placed at (left, top) on a width×height box filled as ``fill`` says:
    ``b_auto``'s colour found on the first frame, one for every frame (as trim, faces and
    ``g_auto`` are); ``b_blurred`` each frame's own blurred copy."""
    if fill.kind != "auto":
        return tuple(_blurred_box(f, fill, box) for f in frames)
    colour = border_colour(frames[0])
    values = [float(v) for v in colour[: 4 if has_alpha(frames[0]) else 3]]
    return tuple(f.embed(*box, extend="background", background=values) for f in frames)


def _blurred_box(img: pyvips.Image, fill: Fill, box: tuple[int, int, int, int]) -> pyvips.Image:
    """``img`` placed at (left, top) on a width×height box filled with its blurred copy."""
    left, top, width, height = box
    small_w, small_h = max(1, width // BLUR_REDUCE), max(1, height // BLUR_REDUCE)
    scale = max(small_w / img.width, small_h / img.height)
    cover = img.resize(scale) if scale < 1 else img.resize(scale, kernel="linear")
    cover = cover.crop(
        (cover.width - small_w) // 2, (cover.height - small_h) // 2, small_w, small_h
    )
    sigma = fill.strength / 20 / BLUR_REDUCE
    if sigma >= 0.2:
        cover = cover.gaussblur(sigma, precision="integer")
    back = cover.resize(width / small_w, vscale=height / small_h, kernel="linear")
    back = back.cast("uchar").copy(interpretation="srgb")
    if not has_alpha(img):
        return back.insert(img, left, top).cast("uchar").copy(interpretation="srgb")
    # The blurred copy is opaque, and the image is drawn over it: its transparent parts show
    # the fill (an insert would copy their alpha through).
    back = back.flatten(background=[255, 255, 255])
    placed = img.embed(left, top, width, height)  # transparent around the image
    over = placed.extract_band(placed.bands - 1).ifthenelse(
        placed.extract_band(0, n=placed.bands - 1), back, blend=True
    )
    return over.bandjoin(255).cast("uchar").copy(interpretation="srgb")
