"""Overlay: ``l_<image id>`` or ``l_text:<percent-encoded UTF-8>``, composited over every
frame, last in its stage.

In a stage with ``l_``, ``w_`` (px or share of the base width), ``g_`` (a compass point,
default south_east), ``x_``/``y_`` (distance from the gravity's edge) belong to the
overlay, with ``o_`` (opacity 0–100), ``co_`` (text colour, default black) and ``fs_``
(text size px, default base width / 20). An image overlay must be the same owner's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyvips

from origin.decode import load_still
from origin.errors import BadTransform, LimitExceeded
from origin.errors import shown as show
from origin.pixels import has_alpha, scale_to
from origin.transforms.arguments import (
    IMAGE_ID,
    NAMED_COLOURS,
    Colour,
    ColourArg,
    Int,
    Length,
    bad,
    spell_colour,
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
from origin.transforms.geometry import place, resolve, to_side
from origin.transforms.limits import Limits
from origin.transforms.resize import COMPASS, GRAVITY, WIDTH_TOKEN, X, Y

FONT = "DejaVu Sans"


@dataclass(frozen=True)
class Overlay:
    """An ``l_`` watermark: an uploaded image (``image_id``) or a line of text."""

    image_id: str | None = None
    text: str | None = None
    width: Length | None = None  # px, or share of the base width
    gravity: str = "south_east"
    x: int = 0
    y: int = 0
    opacity: int = 100
    colour: Colour | None = None  # text colour, default black
    font_size: int | None = None  # text size in px, default width / 20


@dataclass(frozen=True)
class LayerArgument:
    """``<image id>`` or ``text:<text>`` (printable, at most ``MAX_TEXT_LENGTH``)."""

    def parse(self, token: str, text: str, limits: Limits) -> Overlay:
        if text.startswith("text:"):
            words = text[5:]
            if not words.strip():  # nothing to draw: libvips has no ink for it
                raise bad(token, "empty text")
            if len(words) > limits.max_text_length:
                raise LimitExceeded(
                    f"text overlay longer than {limits.max_text_length} characters: '{show(token)}'"
                )
            if any(not ch.isprintable() for ch in words):
                raise bad(token, "text must be printable")
            return Overlay(text=words)
        if not IMAGE_ID.fullmatch(text):
            raise bad(token, "expected an image id or text:")
        return Overlay(image_id=text)

    def describe(self) -> dict[str, Any]:
        return {"type": "layer", "forms": ["<image id>", "text:<percent-encoded UTF-8>"]}


def _without_layer(s: Seen) -> bool:
    return "l" not in s


def _image_layer(s: Seen) -> bool:
    layer = s.value("l")
    return isinstance(layer, Overlay) and layer.text is None


ONLY_WITH_LAYER = Rule(1, "only applies to an l_ overlay", _without_layer)
ONLY_WITH_TEXT = Rule(4, "only applies to a text overlay", _image_layer)

LAYER = Token("l", "overlay", LayerArgument(), "An image (its id) or text:<text> on top.")
OPACITY = Token("o", "opacity", Int(0, 100), "Overlay opacity 0–100.", rules=(ONLY_WITH_LAYER,))
COLOUR = Token(
    "co",
    "text colour",
    ColourArg(),
    "Text overlay colour (default black).",
    rules=(ONLY_WITH_LAYER, ONLY_WITH_TEXT),
)
FONT_SIZE = Token(
    "fs",
    "font size",
    Int(4, 400),
    "Text overlay size in px (default base width / 20).",
    rules=(ONLY_WITH_LAYER, ONLY_WITH_TEXT),
)


def build(s: Seen, b: Building) -> Overlay | None:
    layer = s.value("l")
    if not isinstance(layer, Overlay):
        return None
    colour = s.value("co")
    opacity = s.value("o")
    return Overlay(
        image_id=layer.image_id,
        text=layer.text,
        width=s.value("w"),
        gravity=str(s.value("g", "south_east")),
        x=s.value("x") or 0,
        y=s.value("y") or 0,
        opacity=100 if opacity is None else opacity,
        colour=None if colour == NAMED_COLOURS["black"] else colour,
        font_size=s.value("fs"),
    )


def spell(o: Overlay) -> list[str]:
    ref = o.image_id if o.image_id is not None else "text:" + quote(o.text or "", safe="")
    tokens = [f"l_{ref}"]
    if o.width is not None:
        tokens.append(f"w_{spell_length(o.width)}")
    if o.gravity != "south_east":
        tokens.append(f"g_{o.gravity}")
    if o.x:
        tokens.append(f"x_{o.x}")
    if o.y:
        tokens.append(f"y_{o.y}")
    if o.opacity != 100:
        tokens.append(f"o_{o.opacity}")
    if o.colour is not None:
        tokens.append(f"co_{spell_colour(o.colour)}")
    if o.font_size is not None:
        tokens.append(f"fs_{o.font_size}")
    return tokens


def _markup(text: str, colour: Colour) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<span foreground="#{colour[0]:02x}{colour[1]:02x}{colour[2]:02x}">{escaped}</span>'


def text_layer(o: Overlay, base_width: int) -> pyvips.Image:
    """A text overlay as RGBA: size fs_ px (default base width / 20), wrapped to w_."""
    size = o.font_size or max(8, base_width // 20)
    wrap = resolve(o.width, base_width) or base_width
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
    layer = load_still(data, limits.max_source_pixels)
    width = resolve(o.width, base_width) or min(layer.width, base_width)
    if width > limits.max_output_dimension:
        raise LimitExceeded(f"overlay width {width} is above the maximum dimension")
    height = to_side(layer.height * width / layer.width)
    if height > limits.max_output_dimension:
        raise LimitExceeded(f"overlay height {height} is above the maximum dimension")
    if not has_alpha(layer):
        layer = layer.bandjoin(255)
    return scale_to(layer, (width, height))


def apply(frames: Frames, o: Overlay, ctx: StageContext) -> Frames:
    """Composite the layer over every frame, placed by g_ with x_/y_, at o_ opacity."""
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


OVERLAY = Transform(
    name="overlay",
    phase=Phase.OVERLAY,
    doc="Composite an image or a line of text over every frame.",
    tokens=(LAYER, WIDTH_TOKEN, GRAVITY, X, Y, OPACITY, COLOUR, FONT_SIZE),
    build=build,
    spell=spell,
    apply=apply,
    examples={
        "l_text": "w_200/l_text:%C2%A9%20imgorigin,co_ffffff,fs_16,x_6,y_4",
        "l_text_north": "w_200/l_text:Hello%2C%20cat,g_north,co_ffff00,fs_20,y_6,o_80",
        "l_image": "w_200/l_{overlay},w_0.3,o_60,x_8,y_8",
    },
)
