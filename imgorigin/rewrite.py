"""``imgorigin rewrite-urls``: imgproxy (or thumbor) URLs → signed ``/r/`` URLs of a source.

A team moving here has ``<img>`` tags full of imgproxy or thumbor URLs whose images live on
a website or bucket now configured as a source. Each URL is read, its options translated to
our tokens, its image URL made an object path of the source (it must start with the
source's ``--base-url``), and the result signed with the first operator key: their
signatures cannot verify here, so every URL is signed again.

What is translated (anything else is reported, never guessed):

- imgproxy: ``/<signature>/<options>/plain/<url>[@<ext>]`` and
  ``/<signature>/<options>/<base64url of url, maybe split by />[.<ext>]``; options
  ``rs``/``resize`` (``fit`` → ``c_limit``, with its enlarge argument ``c_fit``; ``fill`` and
  ``fill-down`` → ``c_fill``, ``force`` → ``c_scale``), ``w``/``width``, ``h``/``height``
  (alone: ``c_limit``, imgproxy's default), ``g``/``gravity`` (``sm`` → ``g_auto``, ``ce``
  ``no`` ``so`` ``ea`` ``we`` ``noea`` ``nowe`` ``soea`` ``sowe``; with a fill only),
  ``q``/``quality`` (not for PNG or GIF output), ``f``/``format``/``ext`` (→ ``@<format>``),
  ``dpr``, ``bl``/``blur``, ``sh``/``sharpen``;
- thumbor: ``/<hmac|unsafe>/[fit-in/]<W>x<H>/[smart/][filters:quality(n):format(f)/]<image>``
  (``fit-in`` → ``c_limit``, else ``c_fill``).

docs/sources.md lists what is reported instead (``rs:auto``, extend, gravity offsets, an
image URL with a query…) and the one difference that stays (small sources under a fill).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import unquote

from origin.errors import OriginError
from origin.signing import sign_url
from origin.sources.config import Source
from origin.sources.paths import checked_source_path
from origin.transforms.formats import EXTENSIONS, FILE_EXTENSIONS
from origin.transforms.limits import DEFAULT_LIMITS, Limits

# imgproxy's fit (and thumbor's fit-in) never enlarge unless told to: c_limit; with its
# enlarge argument, c_fit. (auto is fill or fit by the source's orientation: not translated.)
IMGPROXY_RESIZE = {"fit": "limit", "fill": "fill", "fill-down": "fill", "force": "scale"}
ENLARGING = {"limit": "fit"}
TRUE = ("1", "t", "true")
LOSSLESS = ("png", "gif")  # imgproxy and thumbor ignore a quality there (our q_ is a palette)
IMGPROXY_GRAVITY = {
    "sm": "auto",
    "ce": "center",
    "no": "north",
    "so": "south",
    "ea": "east",
    "we": "west",
    "noea": "north_east",
    "nowe": "north_west",
    "soea": "south_east",
    "sowe": "south_west",
}
# an old URL's format name → the @<format> written (jpeg → jpg, as minted URLs write it)
FORMATS = {name: FILE_EXTENSIONS[fmt] for name, fmt in EXTENSIONS.items()}
# imgproxy options taken as they are (a 0 means "not set"), and those naming the output
IMGPROXY_NUMBERS = {
    "w": "w",
    "width": "w",
    "h": "h",
    "height": "h",
    "q": "q",
    "quality": "q",
    "dpr": "dpr",
}
OUTPUT_OPTIONS = ("f", "format", "ext")
THUMBOR_SIZE = re.compile(r"(-?\d*)x(-?\d*)")
THUMBOR_FILTER = re.compile(r"(\w+)\(([^)]*)\)")


class Untranslatable(ValueError):
    """A URL (or one of its options) this command does not translate; the reason."""


def rewrite(
    lines: Iterable[str],
    *,
    source: str,
    base_url: str,
    key: bytes,
    dialect: str = "imgproxy",
    config: Source | None = None,
    presets: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[tuple[str, str | None, str | None]]:
    """For each non-empty line: ``(line, signed /r/ path, None)`` or ``(line, None, reason)``.
    ``config`` (the source, when configured), ``presets`` and ``limits`` check each URL as the
    origin will: one it would refuse is reported, never minted."""
    read = imgproxy if dialect == "imgproxy" else thumbor
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            tokens, image_url, ext = read(_path_of(line))
            object_key = object_key_of(image_url, base_url)
            path = checked_source_path(
                source,
                ",".join(tokens),
                object_key,
                ext,
                config=config,
                presets=presets or {},
                limits=limits,
            )
        except ValueError as exc:  # Untranslatable, or a number that is not one
            yield line, None, str(exc)
        except OriginError as exc:  # what the origin would answer 400 or 404
            yield line, None, exc.message
        else:
            yield line, sign_url(path, key), None


def object_key_of(image_url: str, base_url: str) -> str:
    """The object path (decoded text) of ``image_url`` in a source whose objects start at
    ``base_url``: one with a query, or an encoded ``/`` in its path, names no object of a
    source (two such URLs were one object, or another one)."""
    if not image_url.startswith(base_url):
        raise Untranslatable(f"the image is not under {base_url}")
    rest = image_url[len(base_url) :].split("#", 1)[0]
    if "?" in rest:
        raise Untranslatable("the image URL has a query string: a source object has none")
    if re.search("%2f", rest, re.IGNORECASE):
        raise Untranslatable("an encoded '/' in the image's path")
    return unquote(rest)


def _path_of(line: str) -> str:
    """The path of a full URL (``https://img.example/…``) or of a path."""
    match = re.match(r"[a-z][a-z0-9+.-]*://[^/]+(/.*)", line, re.IGNORECASE)
    return match.group(1) if match else line


def imgproxy(path: str) -> tuple[list[str], str, str | None]:
    parts = path.lstrip("/").split("/")
    if len(parts) < 2:
        raise Untranslatable("not an imgproxy URL")
    rest = parts[1:]  # parts[0] is the signature (or "insecure")
    if "plain" in rest:
        at = rest.index("plain")
        options, raw, ext = rest[:at], "/".join(rest[at + 1 :]), ""
        if "@" in raw.rsplit("/", 1)[-1]:  # the last raw @ names the format (an image URL's is %40)
            raw, _, ext = raw.rpartition("@")
        target = unquote(raw)
    else:  # options are name:args; the base64 URL may be split by / (imgproxy's docs)
        n = next((i for i, part in enumerate(rest) if ":" not in part), len(rest))
        options, encoded = rest[:n], "".join(rest[n:])
        encoded, _, ext = encoded.partition(".")
        try:
            target = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Untranslatable("the source URL is neither plain nor base64") from None
    tokens: list[str] = []
    for option in options:
        name, _, value = option.partition(":")
        if name in OUTPUT_OPTIONS:  # the output format: as @<format> (the URL's @ first)
            ext = ext or value
        else:
            tokens += imgproxy_option(option)
    if ext and ext.lower() not in FORMATS:
        raise Untranslatable(f"unknown format '{ext}'")
    fmt = FORMATS.get(ext.lower()) if ext else None
    sized = any(t[:2] in ("w_", "h_") for t in tokens)
    crops = [t for t in tokens if t.startswith("c_")]
    if sized and not crops:
        tokens.insert(0, "c_limit")  # imgproxy's default: fit, never enlarge
    elif crops and not sized:
        tokens = [t for t in tokens if not t.startswith("c_")]  # a type with no size: nothing
    if "c_fill" not in tokens:  # gravity only places a crop: imgproxy ignores it otherwise
        tokens = [t for t in tokens if not t.startswith("g_")]
    return lossy_only(tokens, fmt, target), target, fmt


def lossy_only(tokens: list[str], fmt: str | None, target: str) -> list[str]:
    """``tokens`` without ``q_`` when the output (``fmt``, else the image's own extension)
    is PNG or GIF: imgproxy and thumbor ignore a quality there, where ours is a palette."""
    name = target.split("?", 1)[0].rsplit("/", 1)[-1]
    own = FORMATS.get(name.rsplit(".", 1)[-1].lower()) if "." in name else None
    if (fmt or own) in LOSSLESS:
        return [t for t in tokens if not t.startswith("q_")]
    return tokens


def imgproxy_option(option: str) -> list[str]:
    name, *args = option.split(":")
    if name in ("rs", "resize", "rt", "resizing_type"):
        return _resizing(option, name in ("rs", "resize"), args)
    if name in IMGPROXY_NUMBERS and len(args) == 1:
        return [] if args[0] == "0" else [f"{IMGPROXY_NUMBERS[name]}_{args[0]}"]
    if name in ("g", "gravity") and args and args[0] in IMGPROXY_GRAVITY:
        if any(_number(option, a) for a in args[1:3]):
            raise Untranslatable(f"a gravity offset in '{option}'")
        return [f"g_{IMGPROXY_GRAVITY[args[0]]}"]
    if name in ("bl", "blur") and len(args) == 1:
        sigma = _number(option, args[0])
        return [f"e_blur:{max(1, min(2000, round(sigma * 20)))}"] if sigma > 0 else []
    if name in ("sh", "sharpen") and len(args) == 1:
        sigma = _number(option, args[0])
        return [f"e_sharpen:{max(1, min(2000, round(sigma * 100)))}"] if sigma > 0 else []
    raise Untranslatable(f"option '{option}'")


def _resizing(option: str, sized: bool, args: list[str]) -> list[str]:
    """``rs:type:w:h:enlarge:extend`` (``sized``) or ``rt:type``."""
    if not args or args[0] not in IMGPROXY_RESIZE:
        raise Untranslatable(f"resizing type in '{option}'")
    crop = IMGPROXY_RESIZE[args[0]]
    if sized and len(args) > 4 and args[4] in TRUE:
        raise Untranslatable(f"extend in '{option}'")
    if sized and len(args) > 3 and args[3] in TRUE:
        crop = ENLARGING.get(crop, crop)
    sides = list(zip(("w", "h"), args[1:3], strict=False)) if sized else []
    if crop == "scale" and any(v in ("", "0") for _, v in sides):
        raise Untranslatable(f"'force' keeps the source's side for a 0 in '{option}'")
    return [f"c_{crop}", *(f"{k}_{v}" for k, v in sides if v not in ("", "0"))]


def _number(option: str, text: str) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        raise Untranslatable(f"a number in '{option}'") from None
    if not math.isfinite(value):
        raise Untranslatable(f"a number in '{option}'")
    return value


def thumbor(path: str) -> tuple[list[str], str, str | None]:
    parts = path.lstrip("/").split("/")[1:]  # parts[0]: the HMAC or "unsafe"
    tokens, ext, crop = [], None, "c_fill"
    while parts:
        part = parts[0]
        if part == "fit-in":
            crop = "c_limit"
        elif part == "smart":
            tokens.append("g_auto")
        elif size := THUMBOR_SIZE.fullmatch(part):
            if "-" in part:
                raise Untranslatable("flipping by a negative size")
            sides = zip(("w", "h"), size.groups(), strict=True)
            tokens[:0] = [f"{k}_{v}" for k, v in sides if v not in ("", "0")]
        elif part.startswith("filters:"):
            ext = _thumbor_filters(part[len("filters:") :], tokens)
        else:
            break
        parts = parts[1:]
    if not parts:
        raise Untranslatable("no image in the thumbor URL")
    image = unquote("/".join(parts))
    target = image if "://" in image else "https://" + image
    if crop != "c_fill":  # smart only places a crop: thumbor ignores it with fit-in
        tokens = [t for t in tokens if not t.startswith("g_")]
    tokens = [crop, *tokens] if any(t[:2] in ("w_", "h_") for t in tokens) else tokens
    return lossy_only(tokens, ext, target), target, ext


def _thumbor_filters(text: str, tokens: list[str]) -> str | None:
    ext = None
    for name, value in THUMBOR_FILTER.findall(text):
        if name == "quality":
            tokens.append(f"q_{value}")
        elif name == "format" and value in FORMATS:
            ext = FORMATS[value]
        else:
            raise Untranslatable(f"filter '{name}'")
    return ext
