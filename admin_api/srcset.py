"""``GET /api/images/{id}/srcset``: the parts that need no I/O.

- the query (``widths``, ``formats``, ``transform``, ``sizes``, ``alt``, ``name``,
  ``expires_in``), validated: anything else is a 400;
- where the responsive width goes in the chain (``chain_with_width``);
- the default width ladder, capped at the width the transform gives;
- the ``srcset`` strings and the ``<picture>`` element, HTML-escaped.

The endpoint (admin_api.urls.image_srcset) signs the URLs, sizes them with a dry run of the
geometry (origin.transforms.budget.output_size), looks up stored derivatives and makes the placeholder.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from origin.digits import plain_int
from origin.errors import BadRequest, LimitExceeded, shown
from origin.transforms.formats import EXTENSIONS, FILE_EXTENSIONS, MEDIA_TYPES
from origin.transforms.limits import Limits

LADDER = (320, 640, 960, 1280, 1920)
DEFAULT_FORMATS = ("avif", "webp", "jpg")
DEFAULT_SIZES = "100vw"
MAX_WIDTHS = 16
MAX_TEXT = 500  # characters of `sizes` and `alt`
PARAMETERS = ("widths", "formats", "transform", "sizes", "alt", "name", "expires_in")
# The extension each format is served under (jpeg is written jpg, as image URLs are).
# Tokens after which a responsive w_ cannot simply join the last stage: it has a size or an
# overlay already, cuts without scaling, turns the width into a height, multiplies it, or
# is a preset (which may expand to several stages).
KEEP_APART = ("w", "h", "l", "x", "y", "r", "dpr", "t")


@dataclass(frozen=True)
class SrcsetQuery:
    widths: tuple[int, ...] | None  # None: the default ladder
    formats: tuple[str, ...]  # URL extensions, in order; the last one is the <img> fallback
    transform: str
    sizes: str
    alt: str
    name: str | None
    expires_in: int | None


@dataclass(frozen=True)
class Variant:
    ext: str
    width: int
    height: int
    url: str
    bytes: int | None  # the stored derivative's size, when it was already rendered

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[EXTENSIONS[self.ext]]

    def json(self) -> dict[str, object]:
        return {
            "format": self.ext,
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "url": self.url,
            "bytes": self.bytes,
        }


# ---- the query -----------------------------------------------------------------------------


def parse_query(params: dict[str, str], limits: Limits) -> SrcsetQuery:
    """The validated query (each of ``PARAMETERS`` at most once: admin_api.requests.query_of);
    400 ``bad_request`` (``limit_exceeded`` for too many or too wide widths) naming the
    parameter."""
    expires_in = params.get("expires_in")
    return SrcsetQuery(
        widths=None if "widths" not in params else parse_widths(params["widths"], limits),
        formats=parse_formats(params.get("formats", ",".join(DEFAULT_FORMATS))),
        transform=params.get("transform", "").strip("/"),
        sizes=_text(params, "sizes", DEFAULT_SIZES) or DEFAULT_SIZES,
        alt=_text(params, "alt", ""),
        name=params.get("name"),
        expires_in=None if expires_in is None else _integer("expires_in", expires_in),
    )


def parse_widths(text: str, limits: Limits) -> tuple[int, ...]:
    items = text.split(",")
    if len(items) > MAX_WIDTHS:
        raise LimitExceeded(f"'widths' lists more than {MAX_WIDTHS} widths")
    widths = set()
    for item in items:
        width = _integer("widths", item.strip())
        if not 1 <= width <= limits.max_output_dimension:
            raise LimitExceeded(
                f"'widths': {width} is outside 1..{limits.max_output_dimension} (the maximum "
                "output dimension)"
            )
        widths.add(width)
    return tuple(sorted(widths))


def parse_formats(text: str) -> tuple[str, ...]:
    formats: list[str] = []
    for item in text.split(","):
        fmt = EXTENSIONS.get(item.strip().lower())
        if fmt is None:
            raise BadRequest(
                f"'formats': unknown format '{shown(item)}' (avif, webp, jpg, png, gif)"
            )
        if FILE_EXTENSIONS[fmt] not in formats:
            formats.append(FILE_EXTENSIONS[fmt])
    return tuple(formats)


def _integer(name: str, text: str) -> int:
    if not plain_int(text) or len(text) > 10:
        raise BadRequest(f"'{name}' must be positive whole numbers: '{shown(text)}'")
    return int(text)


def _text(params: dict[str, str], name: str, default: str) -> str:
    value = params.get(name, default).strip()
    if len(value) > MAX_TEXT or any(not ch.isprintable() for ch in value):
        raise BadRequest(f"'{name}' must be at most {MAX_TEXT} printable characters")
    return value


# ---- widths in the chain ---------------------------------------------------------------------


def chain_with_width(transform: str, width: int) -> str:
    """The transform with the responsive width ``w_{width}``: joined to the last stage when
    that stage only crops or styles (``c_fill,ar_16:9`` → ``w_640,c_fill,ar_16:9``: one
    shrink-on-load decode, the crop at the target size), else a stage of its own after it."""
    if not transform:
        return f"w_{width}"
    *before, last = transform.split("/")
    keys = {token.split("_", 1)[0] for token in last.split(",")}
    if keys & set(KEEP_APART) or "c_crop" in last.split(","):
        return f"{transform}/w_{width}"
    return "/".join([*before, f"w_{width},{last}"])


def default_widths(natural: int) -> tuple[int, ...]:
    """The ladder below the width the transform gives, then that width (at most the top of
    the ladder): 512 → 320, 512; 3000 → 320 … 1920."""
    top = min(natural, LADDER[-1])
    return (*(w for w in LADDER if w < top), top)


# ---- srcset and <picture> --------------------------------------------------------------------


def srcset(variants: Sequence[Variant]) -> str:
    """``url 320w, url 640w`` (URLs may hold commas: only ", " separates candidates)."""
    return ", ".join(f"{v.url} {v.width}w" for v in variants)


def picture(
    by_format: dict[str, list[Variant]],
    sizes: str,
    alt: str,
    placeholder_uri: str,
    dominant_color: str,
) -> str:
    """A ``<picture>``: a ``<source>`` per format but the last, whose largest variant is the
    ``<img>`` (``src``, ``width``, ``height``) with the blurred placeholder behind it."""
    formats = list(by_format)
    fallback = by_format[formats[-1]]
    largest = fallback[-1]
    attr = html.escape
    lines = ["<picture>"]
    for ext in formats[:-1]:
        variants = by_format[ext]
        lines.append(
            f'  <source type="{attr(variants[0].media_type)}" '
            f'srcset="{attr(srcset(variants))}" sizes="{attr(sizes)}">'
        )
    style = (
        f"background-size:cover;background-image:url({placeholder_uri});"
        f"background-color:{dominant_color}"
    )
    lines.append(
        f'  <img src="{attr(largest.url)}" srcset="{attr(srcset(fallback))}" '
        f'sizes="{attr(sizes)}" width="{largest.width}" height="{largest.height}" '
        f'alt="{attr(alt)}" loading="lazy" decoding="async" style="{attr(style)}">'
    )
    lines.append("</picture>")
    return "\n".join(lines)
