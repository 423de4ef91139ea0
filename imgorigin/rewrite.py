"""``imgorigin rewrite-urls``: imgproxy (or thumbor) URLs → signed ``/r/`` URLs of a source.

A team moving here has ``<img>`` tags full of imgproxy or thumbor URLs whose images live on
a website or bucket now configured as a source. Each URL is read, its options translated to
our tokens, its image URL made an object path of the source (it must start with the
source's ``--base-url``), and the result signed with the first operator key: their
signatures cannot verify here, so every URL is signed again.

What is translated (anything else is reported, never guessed):

- imgproxy: ``/<signature>/<options>/plain/<url>[@<ext>]`` and
  ``/<signature>/<options>/<base64url of url>[.<ext>]``; options ``rs``/``resize``
  (``fit`` and ``auto`` → ``c_limit``, ``fill`` and ``fill-down`` → ``c_fill``, ``force`` →
  ``c_scale``), ``w``/``width``, ``h``/``height``,
  ``g``/``gravity`` (``sm`` → ``g_auto``, ``ce`` ``no`` ``so`` ``ea`` ``we`` ``noea`` ``nowe``
  ``soea`` ``sowe``), ``q``/``quality``, ``f``/``format``/``ext`` (→ ``@<format>``), ``dpr``,
  ``bl``/``blur``, ``sh``/``sharpen``;
- thumbor: ``/<hmac|unsafe>/[fit-in/]<W>x<H>/[smart/][filters:quality(n):format(f)/]<image>``
  (``fit-in`` → ``c_limit``, else ``c_fill``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import unquote

from origin.errors import OriginError
from origin.signing import sign_url
from origin.sources.config import Source
from origin.sources.paths import checked_source_path
from origin.transforms.formats import EXTENSIONS, FILE_EXTENSIONS
from origin.transforms.limits import DEFAULT_LIMITS, Limits

# imgproxy's fit and auto (and thumbor's fit-in) never enlarge unless told to: c_limit
IMGPROXY_RESIZE = {
    "fit": "limit",
    "auto": "limit",
    "fill": "fill",
    "fill-down": "fill",
    "force": "scale",
}
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
    ``base_url``."""
    if not image_url.startswith(base_url):
        raise Untranslatable(f"the image is not under {base_url}")
    return unquote(image_url[len(base_url) :].split("?", 1)[0].split("#", 1)[0])


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
        options, target = rest[:at], unquote("/".join(rest[at + 1 :]))
        target, _, ext = (
            target.partition("@") if "@" in target.rsplit("/", 1)[-1] else (target, "", "")
        )
    else:
        options, encoded = rest[:-1], rest[-1]
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
    return tokens, target, FORMATS.get(ext.lower()) if ext else None


def imgproxy_option(option: str) -> list[str]:
    name, *args = option.split(":")
    if name in ("rs", "resize", "rt", "resizing_type"):
        if not args or args[0] not in IMGPROXY_RESIZE:
            raise Untranslatable(f"resizing type in '{option}'")
        crop = [f"c_{IMGPROXY_RESIZE[args[0]]}"]
        sizes = [
            f"{k}_{v}" for k, v in zip(("w", "h"), args[1:3], strict=False) if v not in ("", "0")
        ]
        return crop + sizes if name in ("rs", "resize") else crop
    if name in IMGPROXY_NUMBERS and len(args) == 1:
        return [] if args[0] == "0" else [f"{IMGPROXY_NUMBERS[name]}_{args[0]}"]
    if name in ("g", "gravity") and args and args[0] in IMGPROXY_GRAVITY:
        return [f"g_{IMGPROXY_GRAVITY[args[0]]}"]
    if name in ("bl", "blur") and len(args) == 1:
        return [f"e_blur:{max(1, min(2000, round(float(args[0]) * 20)))}"]
    if name in ("sh", "sharpen") and len(args) == 1:
        return [f"e_sharpen:{max(1, min(2000, round(float(args[0]) * 100)))}"]
    raise Untranslatable(f"option '{option}'")


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
    return [crop, *tokens] if any(t[:2] in ("w_", "h_") for t in tokens) else tokens, target, ext


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
