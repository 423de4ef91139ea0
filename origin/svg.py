"""SVG in, safely: an SVG upload (or remote object) is rasterised once to a PNG, which is then
what is stored and served; SVG itself is never stored, passed through or answered.

``rasterise`` (synchronous: run it in the pool) takes the bytes ``is_svg`` recognised and:

1. **refuses entities**: a DOCTYPE with an internal subset (where entities are declared:
   XXE, billion laughs), or ``<!ENTITY`` anywhere, is refused; a plain
   ``<!DOCTYPE svg PUBLIC …>`` (what editors write) is dropped; any entity reference left is
   an XML error, so refused too;
2. **parses** with the standard library's expat (no DTD, no network, no file);
3. **keeps only SVG**: elements outside the SVG namespace (XInclude, RDF, editors' own) and
   ``script``, ``foreignObject`` and the media elements are removed; so is every attribute
   that could reach outside the document: ``href``/``xlink:href`` not starting with ``#``
   (an ``<image>`` of a URL, a file or a ``data:`` URI, a ``<use>`` of another file), any
   ``url(…)`` not of a ``#`` fragment, ``xml:base`` and ``on*`` handlers, and any value with
   a CSS escape (a backslash); a ``<style>`` with ``@import``, an outside ``url(…)`` or a
   CSS escape is removed whole;
4. **bounds the work**: at most ``MAX_ELEMENTS`` elements (counted while parsing), nested
   at most ``MAX_DEPTH`` deep, and what ``<use>`` instancing would expand them to (counted
   through every reference, a cycle refused, a chain at most ``MAX_DEPTH`` long) at most
   ``MAX_EXPANDED``;
5. **rasterises** with libvips' ``svgload`` (librsvg), allowed only inside
   ``origin.vips.draw_svg`` (every other decode keeps its five loaders), at ``RASTER_SIZE``
   px on the longer side whatever the canvas says, so a giant ``viewBox`` or ``width`` costs
   no more than a small one (a size that cannot be drawn, such as ``1e-320``, is refused),
   and writes a PNG (alpha kept).

All of it runs in a process of its own (``rasterise``), killed after ``DRAW_SECONDS`` and
held to ``DRAW_MEMORY``: librsvg's time and memory grow with filters, patterns and text in
ways the counts above do not bound. librsvg itself is a second fence: given a buffer and no
base URL it loads no external resource at all. What is refused leaves as ``InvalidImage``
(422) with a one-line reason.
"""

from __future__ import annotations

import logging
import math
import os
import re
import resource
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from origin.errors import InvalidImage
from origin.vips import draw_svg

log = logging.getLogger(__name__)

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

RASTER_SIZE = 2048  # px: the longer side of the PNG an SVG becomes
MAX_SVG_BYTES = 10 * 1024 * 1024
MAX_ELEMENTS = 20_000
MAX_EXPANDED = 100_000  # elements once every <use> is expanded
MAX_DEPTH = 256  # elements inside one another, and <use> references through one another
SNIFF_BYTES = 4096
# The drawing process: librsvg's time grows with filters, patterns and text in ways no count
# of elements bounds (a 214-byte feMorphology took two minutes), so the process is killed
# after DRAW_SECONDS, and may map at most DRAW_MEMORY (a 2048 px canvas needs ~100 MB).
DRAW_SECONDS = 10
DRAW_MEMORY = 1536 << 20
REFUSED, OUT_OF_MEMORY = 3, 4  # its exit codes (stderr's last line is a refusal's reason)
_CHILD_ENV = os.environ | {
    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent), *sys.path]),
    "VIPS_CONCURRENCY": "1",
    "MALLOC_ARENA_MAX": "2",
}
DEFAULT_SIZE = (300.0, 150.0)  # a browser's size for an SVG that states none

DROPPED = frozenset(
    {"script", "foreignObject", "iframe", "object", "embed", "audio", "video", "canvas"}
)
_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*(\[)?", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_URL = re.compile(r"url\(\s*['\"]?\s*([^)'\"\s]*)", re.IGNORECASE)
_XML_START = re.compile(
    rb"^(\xef\xbb\xbf)?\s*(<\?xml|<!DOCTYPE\s+svg|<!--|<svg[\s>])", re.IGNORECASE
)
_SVG_ELEMENT = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_LENGTH = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in)?\s*$", re.IGNORECASE
)
PX_PER = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}

ET.register_namespace("", SVG_NS)  # written back without prefixes, as librsvg expects
ET.register_namespace("xlink", XLINK_NS)


def is_svg(data: bytes) -> bool:
    """Whether ``data`` starts as an SVG document does (an XML prolog, comments or a DOCTYPE,
    then ``<svg``), within its first 4 KiB."""
    head = data[:SNIFF_BYTES]
    return _XML_START.match(head) is not None and _SVG_ELEMENT.search(head) is not None


def rasterise(data: bytes, max_pixels: int) -> bytes:
    """The PNG an SVG document becomes (see the module's docstring), read and drawn in a
    process of its own (``DRAW_SECONDS``, ``DRAW_MEMORY``); ``InvalidImage`` when it is
    refused, takes too long or needs too much memory."""
    if len(data) > MAX_SVG_BYTES:
        raise InvalidImage(f"the SVG is larger than {MAX_SVG_BYTES // (1024 * 1024)} MB")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "origin.svg", str(max_pixels), str(DRAW_MEMORY)],
            input=data,
            capture_output=True,
            timeout=DRAW_SECONDS,
            env=_CHILD_ENV,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise InvalidImage(f"the SVG takes longer than {DRAW_SECONDS} s to draw") from None
    if done.returncode == 0:
        return done.stdout
    if done.returncode == REFUSED:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InvalidImage(reason[-1] if reason else "an SVG librsvg cannot draw")
    if done.returncode == OUT_OF_MEMORY:
        raise InvalidImage(f"the SVG needs more than {DRAW_MEMORY >> 20} MB to draw")
    log.info("the SVG drawing process ended with %s: %s", done.returncode, done.stderr[-300:])
    raise InvalidImage("an SVG librsvg cannot draw")


def draw_here(data: bytes, max_pixels: int) -> bytes:
    """``rasterise``'s work, in this process: what the drawing process runs (and the
    sanitiser's property tests, which need no bounds)."""
    root = _parse(_without_doctype(data))
    _check_depth(root)
    _clean(root)
    _check_size(root)
    _fit_canvas(root, max_pixels)
    return draw_svg(ET.tostring(root, encoding="utf-8"))


def _without_doctype(data: bytes) -> bytes:
    if _ENTITY.search(data) is not None:  # wherever it is: a comment may hide a DOCTYPE
        raise InvalidImage("an SVG declaring entities (a DOCTYPE with an internal subset)")
    found = _DOCTYPE.search(data)
    if found is None:
        return data
    if found.group(1) is not None:
        raise InvalidImage("an SVG declaring entities (a DOCTYPE with an internal subset)")
    end = data.find(b">", found.end() - 1)
    if end < 0:
        raise InvalidImage("not a well-formed SVG: a DOCTYPE that does not end")
    return data[: found.start()] + data[end + 1 :]


class _Counted(ET.TreeBuilder):
    """A tree builder that stops at the element past ``MAX_ELEMENTS`` (a 10 MB document of
    empty elements would build millions before they are counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise InvalidImage(f"the SVG has more than {MAX_ELEMENTS} elements")
        return super().start(tag, attrs)


def _parse(data: bytes) -> ET.Element:
    parser = ET.XMLParser(target=_Counted())
    try:
        parser.feed(data)
        root = parser.close()
    except (ET.ParseError, LookupError, ValueError) as exc:  # ValueError, LookupError: the
        # XML declaration names a multi-byte, unknown or non-text encoding (expat reads none)
        raise InvalidImage(f"not a well-formed SVG: {str(exc)[:100]}") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise InvalidImage(
            "not an SVG document (its root is not an svg element in the SVG namespace)"
        )
    return root


def _local(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag or attribute name."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _check_depth(root: ET.Element) -> None:
    """Refuse elements nested deeper than ``MAX_DEPTH`` (walked without recursion; the
    cleaning and drawing after it recurse)."""
    level: list[ET.Element] = [root]
    for _ in range(MAX_DEPTH):
        level = [child for element in level for child in element]
        if not level:
            return
    raise InvalidImage(f"the SVG nests elements deeper than {MAX_DEPTH}")


def _clean(element: ET.Element) -> None:
    for child in list(element):
        if not isinstance(child.tag, str):  # a comment or processing instruction
            element.remove(child)
            continue
        ns, name = _local(child.tag)
        if ns != SVG_NS or name in DROPPED or (name == "style" and _outside_css(child.text)):
            element.remove(child)
            continue
        _clean(child)
    for attribute in list(element.attrib):
        if not _safe_attribute(attribute, element.attrib[attribute]):
            del element.attrib[attribute]


def _safe_attribute(name: str, value: str) -> bool:
    ns, local = _local(name)
    if ns == XML_NS and local == "base":
        return False
    if local.lower().startswith("on"):
        return False
    if local == "href" and not value.strip().startswith("#"):
        return False
    return "\\" not in value and all(target.startswith("#") for target in _URL.findall(value))


def _outside_css(text: str | None) -> bool:
    """Whether a ``<style>`` may reach outside the document. A CSS escape (``\\75 rl(``,
    ``@\\69mport``) spells ``url(`` or ``@import`` past any pattern: CSS with one is
    refused as a whole (an attribute's value likewise: ``_safe_attribute``)."""
    css = text or ""
    return (
        "\\" in css
        or "@import" in css.lower()
        or not all(t.startswith("#") for t in _URL.findall(css))
    )


def _check_size(root: ET.Element) -> None:
    """What ``<use>`` instancing expands the elements to (their count is ``_Counted``'s,
    while parsing)."""
    by_id = {e.get("id"): e for e in root.iter() if e.get("id")}
    sizes: dict[int, tuple[int, int]] = {}
    if _expanded(root, by_id, sizes, set())[0] > MAX_EXPANDED:
        raise InvalidImage(
            f"the SVG's <use> references expand to more than {MAX_EXPANDED} elements"
        )


def _expanded(
    element: ET.Element,
    by_id: dict[str | None, ET.Element],
    sizes: dict[int, tuple[int, int]],
    path: set[int],
) -> tuple[int, int]:
    """Elements ``element`` draws once each ``<use>`` is replaced by what it references, and
    how many levels deep they go (``element`` the first). Both are kept per element: one met
    again on a longer path is refused when its levels would pass ``MAX_DEPTH`` there, as a
    walk through it would be, whichever path met it first."""
    key = id(element)
    if key in sizes:
        total, levels = sizes[key]
        if len(path) + levels > MAX_DEPTH:
            raise InvalidImage(f"the SVG's <use> references nest deeper than {MAX_DEPTH}")
        return total, levels
    if key in path:
        raise InvalidImage("the SVG's <use> references form a cycle")
    if len(path) >= MAX_DEPTH:
        raise InvalidImage(f"the SVG's <use> references nest deeper than {MAX_DEPTH}")
    path.add(key)
    total, below = 1, 0
    for child in _children_and_references(element, by_id):
        size, levels = _expanded(child, by_id, sizes, path)
        total, below = total + size, max(below, levels)
        if total > MAX_EXPANDED:
            break
    path.discard(key)
    sizes[key] = (total, below + 1)
    return total, below + 1


def _children_and_references(
    element: ET.Element, by_id: dict[str | None, ET.Element]
) -> Iterator[ET.Element]:
    yield from element
    href = element.get("href") or element.get(f"{{{XLINK_NS}}}href")
    if href and href.startswith("#") and href[1:] in by_id:
        yield by_id[href[1:]]


def _fit_canvas(root: ET.Element, max_pixels: int) -> None:
    """Give the root the size it is drawn at: ``RASTER_SIZE`` px on its longer side (fewer
    when ``max_pixels`` says so), the aspect ratio of its ``width``/``height`` or else its
    ``viewBox``, whose coordinates then scale into it. A canvas of any stated size costs the
    same; one with no size at all is 300 × 150, as a browser draws it."""
    box = _view_box(root.get("viewBox"))
    width, height = _length(root.get("width")), _length(root.get("height"))
    if width is None or height is None:
        if box is None:
            box = (0.0, 0.0, width or DEFAULT_SIZE[0], height or DEFAULT_SIZE[1])
        width = width or box[2] * (height / box[3] if height else 1)
        height = height or box[3] * (width / box[2])
    scale = RASTER_SIZE / max(width, height)
    area = (width * scale) * (height * scale)
    if area > max_pixels:
        scale *= (max_pixels / area) ** 0.5
    drawn = (width * scale, height * scale)
    if not all(math.isfinite(v) for v in (width, height, *drawn)):
        raise InvalidImage("the SVG's size is out of range")
    columns, rows = (max(1, round(v)) for v in drawn)
    if columns * rows > max_pixels:  # rounded up past the limit
        columns, rows = (max(1, math.floor(v)) for v in drawn)
    if box is None:
        root.set("viewBox", f"0 0 {width!r} {height!r}")
    root.set("width", str(columns))
    root.set("height", str(rows))


def _length(value: str | None) -> float | None:
    found = _LENGTH.match(value or "")
    if found is None:
        return None  # absent, a percentage or a font-relative unit: not a size
    px = float(found.group(1)) * PX_PER[(found.group(2) or "px").lower()]
    return px if 0 < px < float("inf") else None


def _view_box(value: str | None) -> tuple[float, float, float, float] | None:
    try:
        x, y, w, h = (float(v) for v in (value or "").replace(",", " ").split())
    except ValueError:
        return None
    return (x, y, w, h) if 0 < w < float("inf") and 0 < h < float("inf") else None


def _child(argv: list[str]) -> int:
    """The drawing process: the SVG on stdin, its PNG on stdout (``rasterise``)."""
    max_pixels, memory = int(argv[0]), int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        png = draw_here(sys.stdin.buffer.read(), max_pixels)
    except InvalidImage as exc:
        print(str(exc), file=sys.stderr)
        return REFUSED
    except MemoryError:
        return OUT_OF_MEMORY
    sys.stdout.buffer.write(png)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
