"""The original design's ``/transform`` query API, mapped onto the same Plan as the URL
grammar. Its effect parameters come from the effect declarations: an effect without an
amount is ``<name>=true|false``, one with an amount ``<name>=<amount>``.

Query parameters are unordered, so the order is fixed here, as the stages
    1. ``crop``                               (a cut of the original, in original pixels)
    2. ``resize``, ``rotate``, ``flip``, effects (one stage: its in-stage order is exactly
                                               that; effects in their declaration order)
    3. ``watermark``                          (its own stage: in a stage with ``l_``, ``w_``
                                               sizes the overlay, so it cannot share the
                                               resize stage)

``format`` absent means "the source's format" (``Plan.format is None``). ``compress=true``
sets the quality to ``COMPRESSED_QUALITY`` and cannot be combined with ``quality``. Every
error names the offending query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import quote

from origin.errors import BadTransform, LimitExceeded, OriginError
from origin.errors import shown as _shown
from origin.transforms.arguments import IMAGE_ID
from origin.transforms.effects import AMOUNTS
from origin.transforms.formats import EXTENSIONS
from origin.transforms.limits import DEFAULT_LIMITS, Limits
from origin.transforms.parse import build_plan, parse_chain
from origin.transforms.plan import Plan

# What `compress=true` means (any output format).
COMPRESSED_QUALITY = 60

_DIM = r"[0-9]{1,5}"

Mapper = Callable[[str], list[str]]


def _bad(name: str, value: str, why: str) -> BadTransform:
    return BadTransform(f"{why}: {_shown(name)}='{_shown(value)}'")


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


def _crop(value: str) -> list[str]:
    # a literal "+" arrives as a space after query decoding: accept both
    m = re.fullmatch(rf"({_DIM})x({_DIM})(?:[+ ]({_DIM})[+ ]({_DIM}))?", value, re.ASCII)
    if not m:
        raise _bad("crop", value, "expected WxH or WxH+X+Y")
    tokens = [f"w_{m[1]}", f"h_{m[2]}", "c_crop"]
    if m[3] is not None:
        tokens += [f"x_{m[3]}", f"y_{m[4]}"]
    return tokens


def _rotate(value: str) -> list[str]:
    if not re.fullmatch(r"-?[0-9]{1,3}", value, re.ASCII):
        raise _bad("rotate", value, "expected degrees -360..360")
    return [f"r_{value}"]


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


def _amount(name: str) -> Mapper:
    def mapper(value: str) -> list[str]:
        if not re.fullmatch(r"-?[0-9]{1,4}", value, re.ASCII):
            raise _bad(name, value, "expected an integer")
        return [f"e_{name}:{value}"]

    return mapper


def _watermark(value: str) -> list[str]:
    kind, sep, rest = value.partition(":")
    if sep and kind == "text" and rest:
        return [f"l_text:{quote(rest, safe='')}"]
    if sep and kind == "image" and IMAGE_ID.fullmatch(rest):
        return [f"l_{rest}"]
    raise _bad("watermark", value, "expected text:... or image:{id}")


def effect_parameters() -> dict[str, Mapper]:
    """One parameter per declared effect, in declaration order."""
    return {
        name: _switch(name) if amount is None else _amount(name) for name, amount in AMOUNTS.items()
    }


def parameters() -> dict[str, Mapper]:
    """Every stage parameter of the query API: how its value becomes URL tokens."""
    return {
        "resize": _resize,
        "crop": _crop,
        "rotate": _rotate,
        "flip": _flip,
        **effect_parameters(),
        "watermark": _watermark,
    }


# Parameters that are plan-level rather than tokens; checked in parse_query.
PLAN_PARAMETERS = ("format", "quality", "compress")

# What each parameter of the query API's own (not an effect's) takes, for documents.
OWN_PARAMETERS = {
    "resize": "300x200 (fit), 300x200! (force), 300x, x200, 50%",
    "crop": "300x200 (centre) or 300x200+10+20",
    "rotate": "degrees",
    "flip": "horizontal | vertical",
    "watermark": "text:Hello | image:{id}",
    "format": "jpeg | png | webp | avif | gif",
    "quality": "1-100",
    "compress": "true",
}


def documented() -> dict[str, str]:
    """Every parameter with what it takes, the effects' from their declarations."""
    found = dict(OWN_PARAMETERS)
    for name, amount in AMOUNTS.items():
        if amount is None:
            found[name] = "true | false"
        else:
            default = "" if amount.default is None else f" (default {amount.default})"
            found[name] = f"{amount.low}..{amount.high}{default}"
    return found


def _tokens(name: str, value: str, mappers: Mapping[str, Mapper], limits: Limits) -> list[str]:
    """The tokens for one parameter, validated alone so the error names the parameter."""
    tokens = mappers[name](value)
    if tokens:
        try:
            parse_chain(",".join(tokens), limits=limits)
        except LimitExceeded as exc:
            raise LimitExceeded(f"{exc.message} (query parameter '{name}')") from None
        except OriginError:
            raise _bad(name, value, "out of range or malformed") from None
    return tokens


def _format(params: Mapping[str, str]) -> str | None:
    if "format" not in params:
        return None
    value = params["format"]
    if value not in EXTENSIONS:
        raise _bad("format", value, "expected jpeg, png, webp, avif or gif")
    return EXTENSIONS[value]


def _quality(params: Mapping[str, str]) -> int | None:
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
    return quality


def parse_query(
    image_id: str, params: Mapping[str, str], *, limits: Limits = DEFAULT_LIMITS
) -> Plan:
    """Already-decoded ``/transform`` query parameters (one value each) -> Plan."""
    if not IMAGE_ID.fullmatch(image_id):
        raise BadTransform("bad image id")
    mappers = parameters()
    for name in params:
        if name not in mappers and name not in PLAN_PARAMETERS:
            raise BadTransform(f"unknown parameter '{_shown(name)}'")
    found = {n: _tokens(n, v, mappers, limits) for n, v in params.items() if n in mappers}
    crop = found.get("crop", [])
    main = [*found.get("resize", []), *found.get("rotate", []), *found.get("flip", [])]
    main += [t for name in effect_parameters() for t in found.get(name, [])]
    watermark = found.get("watermark", [])
    chain = "/".join(",".join(s) for s in (crop, main, watermark) if s)
    stages = parse_chain(chain, limits=limits)
    fmt = _format(params)
    return build_plan(
        image_id,
        stages,
        name="image",
        ext=fmt or "",
        fmt=fmt,
        quality=_quality(params),
        auto_quality=False,
        negotiated=False,
    )
