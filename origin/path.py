"""The origin URL grammar: a raw request path becomes an immutable `Plan`.

Pure: no I/O, no libvips, no web framework. Every key of the token table maps to one small
parser; an unknown key is an error, never skipped. Parsing works on the raw path: stages are
split on `/`, tokens on `,`, keys on the first `_`, and only then is a value percent-decoded, so
`%2C` and `%2F` inside a value are a literal comma and slash.

Normalisation done here (so `Plan.canonical()` is equal for equal meaning):
- `dpr_` is folded into pixel `w_`/`h_` (and into shares, which may then exceed 1);
- `ar_` with one pixel side gives the other side; ratios are reduced (`32:18` == `16:9`);
- `r_` is taken modulo 360 (`r_-90` == `r_270`, `r_360` == nothing);
- defaults are dropped (`c_fit`, `g_center`, `o_100`...); `jpg` == `jpeg`; hex colours lower-case;
- `t_` presets are expanded in place;
- `w_auto` and `dpr_auto` are resolved from the request's (snapped) Client Hints, so the plan
  holds plain numbers and `Plan.client_hints` says which hints it used.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from urllib.parse import quote, unquote_to_bytes

from origin.errors import BadTransform, LimitExceeded
from origin.hints import DPR, NO_HINTS, WIDTH, Hints

# The effect budget is a blur of this sigma (`e_blur:500`) over MAX_OUTPUT_PIXELS, or the
# strongest blur (σ 100) over a quarter of it.
EFFECT_BUDGET_SIGMA = 25


@dataclass(frozen=True)
class Limits:
    max_output_dimension: int = 8192
    max_source_pixels: int = 100_000_000
    max_stages: int = 8
    max_tokens_per_stage: int = 16
    max_text_length: int = 200
    # The work budget (origin.ops.plan_work, docs/url-api.md#work-budget): the largest image
    # a chain makes times its frames, and the frames of an animated output.
    max_output_pixels: int = 25_000_000
    max_frames: int = 1000

    @property
    def max_effect_cost(self) -> int:
        """What blur, sharpen and pixelate may cost over a chain (weight × pixels)."""
        return EFFECT_BUDGET_SIGMA * self.max_output_pixels


DEFAULT_LIMITS = Limits()

FORMATS = ("jpeg", "png", "webp", "avif", "gif")
MEDIA_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "jpeg": "image/jpeg",
        "png": "image/png",
        "webp": "image/webp",
        "avif": "image/avif",
        "gif": "image/gif",
        "json": "application/json",
    }
)
EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif"}
)
# The extension a format is written with: stored originals and derivatives, minted URLs.
FILE_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif"}
)

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
GRAVITIES = (*COMPASS, "auto", "entropy")
FLIPS = ("h", "v", "hv")


@dataclass(frozen=True)
class EffectSpec:
    """An effect's argument: None = takes no argument; else default and inclusive range."""

    default: int | None
    low: int = 0
    high: int = 0
    required: bool = False


# name -> argument spec. The implementation of each is `@effect("name")` in origin/ops.py.
EFFECTS: Mapping[str, EffectSpec] = MappingProxyType(
    {
        "grayscale": EffectSpec(None),
        "sepia": EffectSpec(None),
        "blur": EffectSpec(100, 1, 2000),
        "sharpen": EffectSpec(100, 1, 2000),
        "brightness": EffectSpec(0, -100, 100, required=True),
        "contrast": EffectSpec(0, -100, 100, required=True),
        "saturation": EffectSpec(0, -100, 100, required=True),
        "pixelate": EffectSpec(5, 1, 200),
    }
)

NAMED_COLOURS: Mapping[str, tuple[int, int, int, int]] = MappingProxyType(
    {
        "white": (255, 255, 255, 255),
        "black": (0, 0, 0, 255),
        "transparent": (0, 0, 0, 0),
    }
)

Colour = tuple[int, int, int, int]
# An integer is pixels; a float is a share of the input side (after `dpr_`, possibly above 1).
Length = int | float


@dataclass(frozen=True)
class Effect:
    name: str
    amount: int | None = None

    def token(self) -> str:
        return f"e_{self.name}" if self.amount is None else f"e_{self.name}:{self.amount}"


@dataclass(frozen=True)
class Overlay:
    """An `l_` watermark: an uploaded image (`image_id`) or a line of text."""

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
class Stage:
    """One `/`-separated stage. Inside a stage the order is fixed:
    crop/resize, rotate, flip, effects (in the order written), overlay."""

    width: Length | None = None
    height: Length | None = None
    crop: str = "fit"
    gravity: str = "center"
    x: int | None = None
    y: int | None = None
    aspect: tuple[int, int] | None = None  # only kept when it could not be folded into w/h
    rotate: int = 0  # clockwise, 0..359
    flip: str | None = None
    effects: tuple[Effect, ...] = ()
    background: Colour | None = None
    overlay: Overlay | None = None

    @property
    def resizes(self) -> bool:
        return (
            self.width is not None
            or self.height is not None
            or self.aspect is not None
            or (self.crop == "crop" and (self.x is not None or self.y is not None))
        )

    def canonical(self) -> str:
        tokens: list[str] = []
        if self.width is not None:
            tokens.append(f"w_{_length(self.width)}")
        if self.height is not None:
            tokens.append(f"h_{_length(self.height)}")
        if self.aspect is not None:
            tokens.append(f"ar_{self.aspect[0]}:{self.aspect[1]}")
        if self.crop != "fit":
            tokens.append(f"c_{self.crop}")
        if self.gravity != "center":
            tokens.append(f"g_{self.gravity}")
        if self.x is not None:
            tokens.append(f"x_{self.x}")
        if self.y is not None:
            tokens.append(f"y_{self.y}")
        if self.rotate:
            tokens.append(f"r_{self.rotate}")
        if self.flip:
            tokens.append(f"fl_{self.flip}")
        tokens.extend(e.token() for e in self.effects)
        if self.background is not None:
            tokens.append(f"b_{_hex(self.background)}")
        if (o := self.overlay) is not None:
            ref = o.image_id if o.image_id is not None else "text:" + quote(o.text or "", safe="")
            tokens.append(f"l_{ref}")
            # In a stage with l_, w_/g_/x_/y_ belong to the overlay (no resize there).
            if o.width is not None:
                tokens.append(f"w_{_length(o.width)}")
            if o.gravity != "south_east":
                tokens.append(f"g_{o.gravity}")
            if o.x:
                tokens.append(f"x_{o.x}")
            if o.y:
                tokens.append(f"y_{o.y}")
            if o.opacity != 100:
                tokens.append(f"o_{o.opacity}")
            if o.colour is not None:
                tokens.append(f"co_{_hex(o.colour)}")
            if o.font_size is not None:
                tokens.append(f"fs_{o.font_size}")
        return ",".join(tokens)


@dataclass(frozen=True)
class Plan:
    """What to do with one image.

    `format` is the output format (one of FORMATS), or None for "the source's format": that
    happens for `.json` without `f_` (the source format is unknown at parse time) and for a
    legacy query without `format`. The renderer resolves None against the source.
    """

    image_id: str
    stages: tuple[Stage, ...]
    format: str | None
    name: str
    ext: str
    metadata_only: bool
    negotiated: bool
    quality: int | None
    auto_quality: bool
    overlay_ids: tuple[str, ...]
    flatten: Colour | None = field(default=None)  # last `b_` of the chain, for alpha-less output
    client_hints: tuple[str, ...] = ()  # "width" for w_auto, "dpr" for dpr_auto (hints.py)

    def canonical(self) -> str:
        """Equal for equal meaning; the SEO `name` is not part of it."""
        parts = [self.image_id, *(s.canonical() for s in self.stages)]
        out = [f"f_{self.format or 'source'}"]
        if self.auto_quality:
            out.append("q_auto")
        elif self.quality is not None:
            out.append(f"q_{self.quality}")
        if self.metadata_only:
            out.append("json")
        parts.append(",".join(out))
        return "/".join(parts)


# ---------------------------------------------------------------- small helpers


def _length(value: Length) -> str:
    """Pixels as an integer; a share always with a point (`1.0`, never `1`: that is 1 px)."""
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)).normalize(), "f")
    return text if "." in text else text + ".0"


def _hex(c: Colour) -> str:
    return "".join(f"{v:02x}" for v in (c if c[3] != 255 else c[:3]))


def _show(token: str) -> str:
    """A token as it may appear in a public message: printable, short."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in token)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _bad(token: str, why: str) -> BadTransform:
    return BadTransform(f"{why}: '{_show(token)}'")


_INT = re.compile(r"-?[0-9]{1,7}", re.ASCII)
_SHARE = re.compile(r"(?:0?\.[0-9]{1,6}|1\.0{1,6})", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?", re.ASCII)
_IMAGE_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)
_KEY = re.compile(r"[a-z]{1,4}", re.ASCII)


def _int(token: str, value: str, low: int, high: int) -> int:
    if not _INT.fullmatch(value):
        raise _bad(token, "expected an integer")
    number = int(value)
    if not low <= number <= high:
        raise _bad(token, f"out of range {low}..{high}")
    return number


# ---------------------------------------------------------------- token parsers

TokenParser = Callable[[str, str, Limits], object]
TOKENS: dict[str, TokenParser] = {}
PLAN_KEYS = ("f", "q")  # tokens that set the whole plan rather than a stage


def token(key: str) -> Callable[[TokenParser], TokenParser]:
    """Register the parser of `key_value` tokens: (raw token, decoded value, limits) -> value."""

    def register(parse: TokenParser) -> TokenParser:
        TOKENS[key] = parse
        return parse

    return register


def _size(tok: str, value: str, limits: Limits) -> Length:
    if _SHARE.fullmatch(value):
        share = float(value)
        if share <= 0:
            raise _bad(tok, "a share must be in (0,1]")
        return share
    if not re.fullmatch(r"[0-9]{1,7}", value, re.ASCII):
        raise _bad(tok, "expected pixels or a share in (0,1]")
    px = int(value)
    if px < 1:
        raise _bad(tok, "expected at least 1 px")
    if px > limits.max_output_dimension:
        raise LimitExceeded(
            f"'{_show(tok)}' is above the maximum dimension {limits.max_output_dimension}"
        )
    return px


@dataclass(frozen=True)
class AutoWidth:
    """`w_auto[:fallback]`: the width hint, else `fallback` CSS px (times the DPR)."""

    fallback: int | None = None


AUTO_DPR = "auto"  # `dpr_auto`: the DPR hint, else 1


@token("w")
def _width(tok: str, value: str, limits: Limits) -> Length | AutoWidth:
    if value == "auto":
        return AutoWidth()
    if value.startswith("auto:"):
        fallback = _size(tok, value[5:], limits)
        if not isinstance(fallback, int):
            raise _bad(tok, "w_auto's fallback must be pixels")
        return AutoWidth(fallback)
    return _size(tok, value, limits)


token("h")(_size)


@token("c")
def _crop(tok: str, value: str, limits: Limits) -> str:
    if value not in CROPS:
        raise _bad(tok, "unknown crop mode")
    return value


@token("g")
def _gravity(tok: str, value: str, limits: Limits) -> str:
    if value not in GRAVITIES:
        raise _bad(tok, "unknown gravity")
    return value


def _offset(tok: str, value: str, limits: Limits) -> int:
    return _int(tok, value, 0, 1_000_000)


token("x")(_offset)
token("y")(_offset)


@token("ar")
def _aspect(tok: str, value: str, limits: Limits) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9]{1,5}):([0-9]{1,5})", value, re.ASCII)
    if not m or int(m[1]) == 0 or int(m[2]) == 0:
        raise _bad(tok, "expected W:H")
    w, h = int(m[1]), int(m[2])
    if max(w / h, h / w) > 100:
        raise _bad(tok, "aspect ratio out of range")
    d = math.gcd(w, h)
    return (w // d, h // d)


@token("dpr")
def _dpr(tok: str, value: str, limits: Limits) -> Decimal | str:
    if value == AUTO_DPR:
        return AUTO_DPR
    if not re.fullmatch(r"[0-9](?:\.[0-9]{1,2})?", value, re.ASCII):
        raise _bad(tok, "expected 1 to 4 with up to two decimals")
    dpr = Decimal(value)
    if not Decimal(1) <= dpr <= Decimal(4):
        raise _bad(tok, "out of range 1..4")
    return dpr


@token("r")
def _rotate(tok: str, value: str, limits: Limits) -> int:
    return _int(tok, value, -360, 360) % 360


@token("fl")
def _flip(tok: str, value: str, limits: Limits) -> str:
    if value not in FLIPS:
        raise _bad(tok, "expected h, v or hv")
    return value


@token("e")
def _effect(tok: str, value: str, limits: Limits) -> Effect:
    name, sep, arg = value.partition(":")
    spec = EFFECTS.get(name)
    if spec is None:
        raise _bad(tok, "unknown effect")
    if spec.default is None:
        if sep:
            raise _bad(tok, "this effect takes no value")
        return Effect(name)
    if not sep:
        if spec.required:
            raise _bad(tok, f"this effect needs a value {spec.low}..{spec.high}")
        return Effect(name, spec.default)
    return Effect(name, _int(tok, arg, spec.low, spec.high))


def _colour(tok: str, value: str, limits: Limits) -> Colour:
    if value in NAMED_COLOURS:
        return NAMED_COLOURS[value]
    if not _HEX.fullmatch(value):
        raise _bad(tok, "expected rrggbb, rrggbbaa or a colour name")
    v = value.lower()
    alpha = int(v[6:8], 16) if len(v) == 8 else 255
    return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16), alpha)


token("b")(_colour)
token("co")(_colour)


@token("q")
def _quality(tok: str, value: str, limits: Limits) -> int | None:
    if value == "auto":
        return None
    return _int(tok, value, 1, 100)


@token("f")
def _format(tok: str, value: str, limits: Limits) -> str:
    if value == "auto":
        return value
    if value not in EXTENSIONS:
        raise _bad(tok, "unknown format")
    return EXTENSIONS[value]


@token("t")
def _preset(tok: str, value: str, limits: Limits) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value, re.ASCII):
        raise _bad(tok, "malformed preset name")
    return value


@token("l")
def _layer(tok: str, value: str, limits: Limits) -> Overlay:
    if value.startswith("text:"):
        text = value[5:]
        if not text:
            raise _bad(tok, "empty text")
        if len(text) > limits.max_text_length:
            raise LimitExceeded(
                f"text overlay longer than {limits.max_text_length} characters: '{_show(tok)}'"
            )
        if any(not ch.isprintable() for ch in text):
            raise _bad(tok, "text must be printable")
        return Overlay(text=text)
    if not _IMAGE_ID.fullmatch(value):
        raise _bad(tok, "expected an image id or text:")
    return Overlay(image_id=value)


@token("o")
def _opacity(tok: str, value: str, limits: Limits) -> int:
    return _int(tok, value, 0, 100)


@token("fs")
def _font_size(tok: str, value: str, limits: Limits) -> int:
    return _int(tok, value, 4, 400)


# ---------------------------------------------------------------- stages


@dataclass(frozen=True)
class _Token:
    key: str
    raw: str  # as written, for messages
    value: object


def _split_tokens(stage: str, limits: Limits) -> list[_Token]:
    if stage == "":
        raise BadTransform("empty stage")
    out: list[_Token] = []
    for raw in stage.split(","):
        key, sep, encoded = raw.partition("_")
        if not sep or not _KEY.fullmatch(key):
            raise _bad(raw, "malformed token")
        parse = TOKENS.get(key)
        if parse is None:
            raise _bad(raw, "unknown token")
        try:
            value = unquote_to_bytes(encoded).decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(raw, "value is not UTF-8") from None
        out.append(_Token(key, raw, parse(raw, value, limits)))
    return out


def _expand(
    tokens: list[_Token],
    presets: Mapping[str, str] | None,
    limits: Limits,
) -> list[list[_Token]]:
    """Expand `t_` in place: a one-stage preset merges into its stage, a longer one must be
    alone in its stage. Presets cannot name presets."""
    if not any(t.key == "t" for t in tokens):
        return [tokens]
    stages: list[list[_Token]] = [[]]
    for t in tokens:
        if t.key != "t":
            stages[-1].append(t)
            continue
        chain = (presets or {}).get(str(t.value))
        if chain is None:
            raise _bad(t.raw, "unknown preset")
        expanded = [_split_tokens(s, limits) for s in chain.strip("/").split("/")]
        if any(x.key == "t" for s in expanded for x in s):
            raise _bad(t.raw, "a preset cannot use t_")
        if len(expanded) == 1:
            stages[-1].extend(expanded[0])
        elif len(tokens) == 1:
            return expanded
        else:
            raise _bad(t.raw, "a multi-stage preset must be alone in its stage")
    return stages


def _fold(
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
            f"'{_show(tok)}' with dpr_{dpr} is above the maximum dimension "
            f"{limits.max_output_dimension}"
        )
    return px


class _Seen:
    """The tokens of one stage by key, with typed accessors."""

    def __init__(self, tokens: dict[str, _Token]) -> None:
        self.tokens = tokens

    def __contains__(self, key: str) -> bool:
        return key in self.tokens

    def raw(self, key: str) -> str:
        return self.tokens[key].raw if key in self.tokens else ""

    def number(self, key: str) -> int | None:
        v = self.tokens[key].value if key in self.tokens else None
        return v if isinstance(v, int) else None

    def word(self, key: str) -> str | None:
        v = self.tokens[key].value if key in self.tokens else None
        return v if isinstance(v, str) else None

    def length(self, key: str) -> Length | None:
        v = self.tokens[key].value if key in self.tokens else None
        return v if isinstance(v, int | float) else None

    def colour(self, key: str) -> Colour | None:
        v = self.tokens[key].value if key in self.tokens else None
        return v if isinstance(v, tuple) and len(v) == 4 else None


def _auto_width(
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
        return _fold(auto.fallback, dpr, tok, limits, clamp=True) or auto.fallback, crop
    if crop == "fit" and aspect is None:
        return limits.max_output_dimension, "limit"
    return 1.0, crop


def _hint_kinds(tokens: list[_Token]) -> set[str]:
    """Which Client Hints these tokens use (`w_auto`: width, `dpr_auto`: dpr)."""
    kinds = set()
    for t in tokens:
        if t.key == "w" and isinstance(t.value, AutoWidth):
            kinds.add(WIDTH)
        elif t.key == "dpr" and t.value == AUTO_DPR:
            kinds.add(DPR)
    return kinds


def _build_stage(
    tokens: list[_Token], limits: Limits, hints: Hints = NO_HINTS
) -> tuple[Stage, dict[str, _Token]]:
    """Tokens of one stage -> a Stage, plus the plan-level tokens (f_, q_) it held."""
    if len(tokens) > limits.max_tokens_per_stage:
        raise LimitExceeded(
            f"more than {limits.max_tokens_per_stage} tokens in a stage: "
            f"'{_show(tokens[0].raw)}...'"
        )
    by_key: dict[str, _Token] = {}
    effects: list[Effect] = []
    for t in tokens:
        if t.key == "e":
            assert isinstance(t.value, Effect)
            if any(e.name == t.value.name for e in effects):
                raise _bad(t.raw, "repeated token")
            effects.append(t.value)
            continue
        if t.key in by_key:
            raise _bad(t.raw, "repeated token")
        by_key[t.key] = t
    plan_tokens = {k: by_key.pop(k) for k in PLAN_KEYS if k in by_key}
    seen = _Seen(by_key)

    layer = by_key["l"].value if "l" in by_key else None
    if layer is None:
        for key in ("o", "co", "fs"):
            if key in seen:
                raise _bad(seen.raw(key), "only applies to an l_ overlay")
    rotate = seen.number("r") or 0
    flip = seen.word("fl")
    background = seen.colour("b")

    if isinstance(layer, Overlay):
        for key in ("h", "c", "ar", "dpr"):
            if key in seen:
                raise _bad(seen.raw(key), "cannot be used in a stage with l_")
        if isinstance(by_key["w"].value if "w" in by_key else None, AutoWidth):
            raise _bad(seen.raw("w"), "w_auto cannot be used in a stage with l_")
        if layer.text is None:
            for key in ("co", "fs"):
                if key in seen:
                    raise _bad(seen.raw(key), "only applies to a text overlay")
        gravity = seen.word("g") or "south_east"
        if gravity in ("auto", "entropy"):
            raise _bad(seen.raw("g"), "overlays take a compass gravity")
        colour = seen.colour("co")
        opacity = seen.number("o")
        layer = replace(
            layer,
            width=seen.length("w"),
            gravity=gravity,
            x=seen.number("x") or 0,
            y=seen.number("y") or 0,
            opacity=100 if opacity is None else opacity,
            colour=None if colour == NAMED_COLOURS["black"] else colour,
            font_size=seen.number("fs"),
        )
        stage = Stage(
            rotate=rotate, flip=flip, effects=tuple(effects), background=background, overlay=layer
        )
        return stage, plan_tokens

    crop = seen.word("c") or "fit"
    gravity = seen.word("g") or "center"
    dpr_value = by_key["dpr"].value if "dpr" in by_key else Decimal(1)
    auto_dpr = dpr_value == AUTO_DPR
    dpr = (hints.dpr or Decimal(1)) if auto_dpr else dpr_value
    assert isinstance(dpr, Decimal)
    auto_width = by_key["w"].value if "w" in by_key else None
    width, height = seen.length("w"), seen.length("h")
    aspect_value = by_key["ar"].value if "ar" in by_key else None
    aspect = aspect_value if isinstance(aspect_value, tuple) else None
    x, y = seen.number("x"), seen.number("y")

    if "dpr" in seen and "w" not in seen and "h" not in seen:
        raise _bad(seen.raw("dpr"), "dpr_ needs w_ or h_")
    if isinstance(auto_width, AutoWidth):
        width, crop = _auto_width(auto_width, hints, dpr, crop, aspect, seen.raw("w"), limits)
    else:
        width = _fold(width, dpr, seen.raw("w"), limits, clamp=auto_dpr)
    height = _fold(height, dpr, seen.raw("h"), limits, clamp=auto_dpr)
    if aspect is not None:
        if width is not None and height is not None:
            raise _bad(seen.raw("ar"), "ar_ cannot be used with both w_ and h_")
        if width is None and height is None and crop not in ("fill", "crop", "pad"):
            raise _bad(seen.raw("ar"), "ar_ alone needs c_fill, c_crop or c_pad")
        if isinstance(width, int):
            height = max(1, round(width * aspect[1] / aspect[0]))
            aspect = None
        elif isinstance(height, int):
            width = max(1, round(height * aspect[0] / aspect[1]))
            aspect = None
        for side in (width, height):
            if isinstance(side, int) and side > limits.max_output_dimension:
                raise LimitExceeded(
                    f"'{_show(seen.raw('ar'))}' gives a side above the maximum dimension "
                    f"{limits.max_output_dimension}"
                )
    no_size = width is None and height is None and aspect is None
    if crop != "fit" and no_size and not (crop == "crop" and (x, y) != (None, None)):
        raise _bad(seen.raw("c"), "needs w_, h_ or ar_")
    if "g" in seen:
        if crop not in ("fill", "crop", "pad"):
            raise _bad(seen.raw("g"), "g_ applies with c_fill, c_crop, c_pad or l_")
        if crop == "pad" and gravity in ("auto", "entropy"):
            raise _bad(seen.raw("g"), "c_pad takes a compass gravity")
    for key in ("x", "y"):
        if key in seen and crop != "crop":
            raise _bad(seen.raw(key), f"{key}_ applies with c_crop or l_")
    if crop == "crop" and (x is not None or y is not None):
        gravity = "center"  # x/y win: gravity places the cut only when neither is given
    stage = Stage(
        width=width,
        height=height,
        crop=crop,
        gravity=gravity,
        x=x,
        y=y,
        aspect=aspect,
        rotate=rotate,
        flip=flip,
        effects=tuple(effects),
        background=background,
    )
    return stage, plan_tokens


def _parse_stages(
    chain: list[str],
    presets: Mapping[str, str] | None,
    limits: Limits,
    hints: Hints = NO_HINTS,
) -> tuple[tuple[Stage, ...], dict[str, _Token], tuple[str, ...]]:
    """Stages, plan-level tokens, and the Client Hints used (a tuple in (width, dpr) order)."""
    if len(chain) > limits.max_stages:
        raise LimitExceeded(f"more than {limits.max_stages} stages")
    stages: list[Stage] = []
    plan_tokens: dict[str, _Token] = {}
    kinds: set[str] = set()
    for text in chain:
        for tokens in _expand(_split_tokens(text, limits), presets, limits):
            kinds |= _hint_kinds(tokens)
            stage, found = _build_stage(tokens, limits, hints)
            for key, t in found.items():
                if key in plan_tokens:
                    raise _bad(t.raw, "repeated token")
                plan_tokens[key] = t
            stages.append(stage)
    if len(stages) > limits.max_stages:
        raise LimitExceeded(f"more than {limits.max_stages} stages after expanding presets")
    # A stage that does nothing (e.g. only `f_webp`, or `r_360`) is dropped from the chain.
    uses = tuple(kind for kind in (WIDTH, DPR) if kind in kinds)
    return tuple(s for s in stages if s != Stage()), plan_tokens, uses


def parse_chain(
    chain: str, *, presets: Mapping[str, str] | None = None, limits: Limits = Limits()
) -> tuple[Stage, ...]:
    """`"w_300,h_200/e_grayscale"` -> stages. `f_`/`q_` are accepted (validated) but are
    plan-level and so not part of the returned stages."""
    if not isinstance(chain, str):
        raise BadTransform("chain must be text")
    chain = chain.strip("/")
    if chain == "":
        return ()
    stages, _, _ = _parse_stages(chain.split("/"), presets, limits)
    return stages


def negotiate_format(accept: str | None, fallback: str) -> str:
    """AVIF, then WebP, when `Accept` lists them with q > 0 (explicitly; `*/*` and `image/*`
    don't count, as browsers send them for everything); else `fallback`."""
    accepted: dict[str, float] = {}
    for item in (accept or "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
                if not math.isfinite(q):
                    q = 0.0
        media = media.lower()
        accepted[media] = max(q, accepted.get(media, 0.0)) if media in accepted else q
    for fmt in ("avif", "webp"):
        if accepted.get(f"image/{fmt}", 0.0) > 0:
            return fmt
    return fallback


@functools.lru_cache(maxsize=1024)  # browsers send a handful of distinct Accept strings
def negotiated_format(accept: str | None, fallback: str | None) -> str | None:
    """The format ``f_auto`` answers with: ``negotiate_format``, else ``fallback`` (None for
    ``.json`` without ``f_``: the source's)."""
    return negotiate_format(accept, fallback or "") or fallback


def _flatten(stages: tuple[Stage, ...]) -> Colour | None:
    for s in reversed(stages):
        if s.background is not None:
            return s.background
    return None


def build_plan(
    image_id: str,
    stages: tuple[Stage, ...],
    *,
    name: str,
    ext: str,
    fmt: str | None,
    quality: int | None,
    auto_quality: bool,
    negotiated: bool,
    client_hints: tuple[str, ...] = (),
) -> Plan:
    """Assemble a Plan (shared with origin.legacy)."""
    overlay_ids = tuple(
        dict.fromkeys(
            s.overlay.image_id for s in stages if s.overlay is not None and s.overlay.image_id
        )
    )
    return Plan(
        image_id=image_id,
        stages=stages,
        format=fmt,
        name=name,
        ext=ext,
        metadata_only=ext == "json",
        negotiated=negotiated,
        quality=quality,
        auto_quality=auto_quality,
        overlay_ids=overlay_ids,
        flatten=_flatten(stages),
        client_hints=client_hints,
    )


def parse_path(
    path: str,
    *,
    accept: str | None = None,
    presets: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
    hints: Hints = NO_HINTS,
) -> Plan:
    """The raw request path (percent-encoding kept, no query) -> Plan; `w_auto`/`dpr_auto`
    take their values from `hints` (already snapped: origin.hints)."""
    if not isinstance(path, str) or not path.startswith("/i/"):
        raise BadTransform("expected /i/{image_id}/.../{name}.{ext}")
    parts = path[3:].split("/")
    if len(parts) < 2:
        raise BadTransform("expected /i/{image_id}/.../{name}.{ext}")
    image_id, chain, last = parts[0], parts[1:-1], parts[-1]
    if not _IMAGE_ID.fullmatch(image_id):
        raise BadTransform("bad image id")
    name, dot, ext = last.rpartition(".")
    if not dot or not name:
        raise BadTransform("expected {name}.{ext} at the end of the path")
    ext = ext.lower()
    if ext != "json" and ext not in EXTENSIONS:
        raise BadTransform(f"unknown extension '{_show(ext)}'")
    stages, plan_tokens, uses = _parse_stages(chain, presets, limits, hints)

    fmt: str | None = EXTENSIONS.get(ext)
    negotiated = False
    if "f" in plan_tokens:
        requested = str(plan_tokens["f"].value)
        if requested == "auto":
            negotiated = True
            fmt = negotiated_format(accept, fmt)
        else:
            fmt = requested
    quality: int | None = None
    auto_quality = False
    if "q" in plan_tokens:
        q = plan_tokens["q"].value
        quality = q if isinstance(q, int) else None
        auto_quality = q is None
    return build_plan(
        image_id,
        stages,
        name=name,
        ext=ext,
        fmt=fmt,
        quality=quality,
        auto_quality=auto_quality,
        negotiated=negotiated,
        client_hints=uses,
    )
