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
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

from origin.signing import sign_url
from origin.sources.paths import encode_key, parse_source_path

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
FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif"}
THUMBOR_SIZE = re.compile(r"(-?\d*)x(-?\d*)")
THUMBOR_FILTER = re.compile(r"(\w+)\(([^)]*)\)")


class Untranslatable(ValueError):
    """A URL (or one of its options) this command does not translate; the reason."""


def rewrite(
    lines: Iterable[str], *, source: str, base_url: str, key: bytes, dialect: str = "imgproxy"
) -> Iterator[tuple[str, str | None, str | None]]:
    """For each non-empty line: ``(line, signed /r/ path, None)`` or ``(line, None, reason)``."""
    read = imgproxy if dialect == "imgproxy" else thumbor
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            tokens, image_url, ext = read(_path_of(line))
            yield line, source_url(source, base_url, tokens, image_url, ext, key), None
        except Untranslatable as exc:
            yield line, None, str(exc)


def source_url(
    source: str, base_url: str, tokens: list[str], image_url: str, ext: str | None, key: bytes
) -> str:
    """The signed ``/r/`` path of ``image_url`` (under ``base_url``) with ``tokens``."""
    if not image_url.startswith(base_url):
        raise Untranslatable(f"the image is not under {base_url}")
    object_key = unquote(image_url[len(base_url) :].split("?", 1)[0].split("#", 1)[0])
    stages = f"/{','.join(tokens)}" if tokens else ""
    path = f"/r/{source}{stages}/-/{encode_key(object_key)}" + (f"@{ext}" if ext else "")
    try:
        parse_source_path(path)
    except Exception as exc:  # the origin's own check: a path it would refuse is not minted
        raise Untranslatable(str(exc)) from None
    return sign_url(path, key)


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
        if name in ("f", "format", "ext") and not ext:  # the output format: as @<format>
            ext = value
        elif name not in ("f", "format", "ext"):
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
    simple = {
        "w": "w",
        "width": "w",
        "h": "h",
        "height": "h",
        "q": "q",
        "quality": "q",
        "dpr": "dpr",
    }
    if name in simple and len(args) == 1:
        return [] if args[0] == "0" else [f"{simple[name]}_{args[0]}"]
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
        elif THUMBOR_SIZE.fullmatch(part):
            width, height = THUMBOR_SIZE.fullmatch(part).groups()  # type: ignore[union-attr]
            if width.startswith("-") or height.startswith("-"):
                raise Untranslatable("flipping by a negative size")
            tokens[:0] = [f"w_{width}"] * bool(width and width != "0") + [f"h_{height}"] * bool(
                height and height != "0"
            )
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
