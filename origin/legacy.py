"""The original design's `/transform` query API, mapped onto the same Plan as the URL grammar.

Query parameters are unordered, so the order is fixed here, as the stages
    1. `crop`                               (a cut of the original, in original pixels)
    2. `resize`, `rotate`, `flip`, effects  (one stage: its in-stage order is exactly that)
    3. `watermark`                          (its own stage: in a stage with `l_`, `w_` sizes
                                             the overlay, so it cannot share the resize stage)
Effects run in the order grayscale, sepia, blur, sharpen, brightness, contrast.

`format` absent means "the source's format" (`Plan.format is None`). `compress=true` sets the
quality to the per-format "compressed" value below and cannot be combined with `quality`.
Every error names the offending query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import quote

from origin.errors import BadTransform, LimitExceeded, OriginError
from origin.path import DEFAULT_LIMITS, EXTENSIONS, Limits, Plan, build_plan, parse_chain

# What `compress=true` means, per output format (None: the source's format -> 60 too).
COMPRESSED_QUALITY = 60

_DIM = r"[0-9]{1,5}"
_EFFECT_ORDER = ("grayscale", "sepia", "blur", "sharpen", "brightness", "contrast")

Mapper = Callable[[str], list[str]]
PARAMS: dict[str, Mapper] = {}


def param(name: str) -> Callable[[Mapper], Mapper]:
    """Register how query parameter `name` becomes URL tokens."""

    def register(mapper: Mapper) -> Mapper:
        PARAMS[name] = mapper
        return mapper

    return register


def _shown(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:40]


def _bad(name: str, value: str, why: str) -> BadTransform:
    return BadTransform(f"{why}: {_shown(name)}='{_shown(value)}'")


@param("resize")
def _resize(value: str) -> list[str]:
    if m := re.fullmatch(r"([0-9]{1,3})%", value, re.ASCII):
        percent = int(m[1])
        if not 1 <= percent <= 100:
            raise _bad("resize", value, "a percentage must be 1..100")
        share = "1.0" if percent == 100 else f"{percent / 100:g}"
        return [f"w_{share}", f"h_{share}"]
    m = re.fullmatch(rf"({_DIM})?x({_DIM})?(!?)", value, re.ASCII)
    if not m or not (m[1] or m[2]):
        raise _bad("resize", value, "expected WxH, WxH!, Wx, xH or N%")
    tokens = [f"w_{m[1]}"] if m[1] else []
    tokens += [f"h_{m[2]}"] if m[2] else []
    if m[3]:
        tokens.append("c_scale")
    return tokens


@param("crop")
def _crop(value: str) -> list[str]:
    # a literal "+" arrives as a space after query decoding: accept both
    m = re.fullmatch(rf"({_DIM})x({_DIM})(?:[+ ]({_DIM})[+ ]({_DIM}))?", value, re.ASCII)
    if not m:
        raise _bad("crop", value, "expected WxH or WxH+X+Y")
    tokens = [f"w_{m[1]}", f"h_{m[2]}", "c_crop"]
    if m[3] is not None:
        tokens += [f"x_{m[3]}", f"y_{m[4]}"]
    return tokens


@param("rotate")
def _rotate(value: str) -> list[str]:
    if not re.fullmatch(r"-?[0-9]{1,3}", value, re.ASCII):
        raise _bad("rotate", value, "expected degrees -360..360")
    return [f"r_{value}"]


@param("flip")
def _flip(value: str) -> list[str]:
    flips = {"horizontal": "h", "vertical": "v"}
    if value not in flips:
        raise _bad("flip", value, "expected horizontal or vertical")
    return [f"fl_{flips[value]}"]


def _switch(name: str) -> Mapper:
    def mapper(value: str) -> list[str]:
        if value not in ("true", "false"):
            raise _bad(name, value, "expected true or false")
        return [f"e_{name}"] if value == "true" else []

    return mapper


def _strength(name: str) -> Mapper:
    def mapper(value: str) -> list[str]:
        if not re.fullmatch(r"-?[0-9]{1,4}", value, re.ASCII):
            raise _bad(name, value, "expected an integer")
        return [f"e_{name}:{value}"]

    return mapper


for _name in ("grayscale", "sepia"):
    param(_name)(_switch(_name))
for _name in ("blur", "sharpen", "brightness", "contrast"):
    param(_name)(_strength(_name))


@param("watermark")
def _watermark(value: str) -> list[str]:
    kind, sep, rest = value.partition(":")
    if sep and kind == "text" and rest:
        return [f"l_text:{quote(rest, safe='')}"]
    if sep and kind == "image" and re.fullmatch(r"[0-9a-f]{32}", rest, re.ASCII):
        return [f"l_{rest}"]
    raise _bad("watermark", value, "expected text:... or image:{id}")


# Parameters that are plan-level rather than tokens; checked in parse_query.
_PLAN_PARAMS = ("format", "quality", "compress")


def _tokens(name: str, value: str, limits: Limits) -> list[str]:
    """The tokens for one parameter, validated alone so the error names the parameter."""
    tokens = PARAMS[name](value)
    if tokens:
        try:
            parse_chain(",".join(tokens), limits=limits)
        except LimitExceeded as exc:
            raise LimitExceeded(f"{exc.message} (query parameter '{name}')") from None
        except OriginError:
            raise _bad(name, value, "out of range or malformed") from None
    return tokens


def parse_query(
    image_id: str, params: Mapping[str, str], *, limits: Limits = DEFAULT_LIMITS
) -> Plan:
    """Already-decoded `/transform` query parameters (one value each) -> Plan."""
    if not re.fullmatch(r"[0-9a-f]{32}", image_id, re.ASCII):
        raise BadTransform("bad image id")
    for name in params:
        if name not in PARAMS and name not in _PLAN_PARAMS:
            raise BadTransform(f"unknown parameter '{_shown(name)}'")
    found = {name: _tokens(name, value, limits) for name, value in params.items() if name in PARAMS}

    crop = found.get("crop", [])
    main = [*found.get("resize", []), *found.get("rotate", []), *found.get("flip", [])]
    main += [t for e in _EFFECT_ORDER for t in found.get(e, [])]
    watermark = found.get("watermark", [])
    chain = "/".join(",".join(s) for s in (crop, main, watermark) if s)
    stages = parse_chain(chain, limits=limits)

    fmt: str | None = None
    if "format" in params:
        value = params["format"]
        if value not in EXTENSIONS:
            raise _bad("format", value, "expected jpeg, png, webp, avif or gif")
        fmt = EXTENSIONS[value]
    quality: int | None = None
    if "quality" in params:
        value = params["quality"]
        if not re.fullmatch(r"[0-9]{1,3}", value, re.ASCII) or not 1 <= int(value) <= 100:
            raise _bad("quality", value, "expected 1..100")
        quality = int(value)
    if "compress" in params:
        value = params["compress"]
        if value not in ("true", "false"):
            raise _bad("compress", value, "expected true or false")
        if value == "true":
            if quality is not None:
                raise _bad("compress", value, "cannot be combined with quality")
            quality = COMPRESSED_QUALITY
    return build_plan(
        image_id,
        stages,
        name="image",
        ext=fmt or "",
        fmt=fmt,
        quality=quality,
        auto_quality=False,
        negotiated=False,
    )
