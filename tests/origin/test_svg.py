"""SVG in, safely (origin.svg): a document is rasterised to a PNG with the right pixels; a
corpus of hostile documents is each refused or drawn inert, while an HTTP server on
127.0.0.1 — the address every external reference names — proves nothing was fetched."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origin import svg
from origin.errors import InvalidImage
from origin.vips import configure_libvips, sniff_format
from tests.sources import SourceServer, source_server

XMLNS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
MAX_PIXELS = 100_000_000

# a red left half and a blue circle on the right; transparent elsewhere
FLAG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" viewBox="0 0 200 100">'
    b'<rect width="100" height="100" fill="#ff0000"/>'
    b'<circle cx="150" cy="50" r="40" fill="#0000ff"/></svg>'
)


def document(body: str, size: str = 'width="100" height="100"', head: str = "") -> bytes:
    return f"{head}<svg {XMLNS} {size}>{body}</svg>".encode()


def drawn(png: bytes) -> pyvips.Image:
    assert sniff_format(png) == "png"
    return pyvips.Image.new_from_buffer(png, "")


@pytest.fixture(autouse=True)
def libvips() -> None:
    configure_libvips()  # as every process does: svgload blocked but for origin.svg's call


@pytest.fixture
async def trap() -> AsyncIterator[SourceServer]:
    async with source_server() as server:
        yield server


def test_a_document_becomes_a_png_with_its_pixels() -> None:
    img = drawn(svg.rasterise(FLAG, MAX_PIXELS))
    assert (img.width, img.height, img.bands) == (2048, 1024, 4)  # 2048 on the longer side
    assert img.getpoint(200, 500) == [255, 0, 0, 255]
    assert img.getpoint(1536, 512) == [0, 0, 255, 255]
    assert img.getpoint(1536, 40)[3] == 0  # transparent where nothing is drawn


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ('width="2in" height="1in"', (2048, 1024)),  # units
        ('viewBox="0 0 50 100"', (1024, 2048)),  # the viewBox alone
        ('width="300"', (2048, 2048)),  # one side: the other from the viewBox
        ("", (2048, 1024)),  # nothing: 300 x 150, as a browser
        ('width="100000000" height="50000000"', (2048, 1024)),  # a giant canvas costs the same
        ('viewBox="0 0 1000000000 1000000000"', (2048, 2048)),
    ],
)
def test_the_canvas_is_fitted_to_the_raster_size(size: str, expected: tuple[int, int]) -> None:
    if "viewBox" not in size and 'width="300"' in size:
        size += ' viewBox="0 0 10 10"'
    started = time.perf_counter()
    img = drawn(
        svg.rasterise(document('<rect width="100%" height="100%" fill="red"/>', size), MAX_PIXELS)
    )
    assert (img.width, img.height) == expected
    assert img.getpoint(img.width // 2, img.height // 2)[:3] == [255, 0, 0]
    assert time.perf_counter() - started < 2.0


def test_the_pixel_limit_bounds_the_raster() -> None:
    img = drawn(svg.rasterise(FLAG, 20_000))
    assert img.width * img.height <= 20_000 and img.width == 2 * img.height


@pytest.mark.parametrize(
    "data",
    [
        FLAG,
        b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>",
        b"<!-- made by hand -->\n<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
)
def test_svg_is_recognised(data: bytes) -> None:
    assert svg.is_svg(data)


@pytest.mark.parametrize(
    "data", [b"<html><body><svg></svg></body></html>", b"<?xml version='1.0'?><note/>", b"\x89PNG"]
)
def test_other_documents_are_not_svg(data: bytes) -> None:
    assert not svg.is_svg(data)


# ---- the hostile corpus ----------------------------------------------------------------------

LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)


SIZE_REFUSED = "the SVG's size is out of range"


def hostile(trap: SourceServer) -> dict[str, tuple[bytes, str | None]]:
    """name -> (the document, None when it is drawn inert or the refusal's start)."""
    url = trap.url("/trap")
    red = '<rect width="100" height="100" fill="#ff0000"/>'
    return {
        "image href": (
            document(f'{red}<image href="{url}/i.png" width="100" height="100"/>'),
            None,
        ),
        "image xlink:href": (
            document(f'{red}<image xlink:href="{url}/x.png" width="100" height="100"/>'),
            None,
        ),
        "image of a file": (document(f'{red}<image href="file:///etc/passwd"/>'), None),
        "image of a data: URI": (
            document(f'{red}<image href="data:image/svg+xml,&lt;svg/&gt;" width="9" height="9"/>'),
            None,
        ),
        "use of another file": (document(f'{red}<use href="{url}/u.svg#a"/>'), None),
        "CSS @import": (document(f"<style>@import url({url}/c.css);</style>{red}"), None),
        "CSS url()": (document(f"<style>rect {{ fill: url({url}/p.svg#p) }}</style>{red}"), None),
        "fill url()": (
            document(f'{red}<rect x="50" y="50" width="9" height="9" fill="url({url}/f.svg#g)"/>'),
            None,
        ),
        "style url()": (
            document(
                f'{red}<rect x="50" y="50" width="9" height="9" style="fill:url({url}/s.svg#g)"/>'
            ),
            None,
        ),
        "filter feImage": (
            document(
                f'<filter id="f"><feImage href="{url}/fe.png"/></filter>{red}'
                '<rect width="9" height="9" filter="url(#f)"/>'
            ),
            None,
        ),
        "XInclude": (
            document(
                f'{red}<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}/x.xml"/>'
            ),
            None,
        ),
        "xml:base": (document(red.replace("<rect", f'<rect xml:base="{url}/"')), None),
        "script": (
            document(f'{red}<script>fetch("{url}/js")</script>').replace(
                b"<svg", b'<svg onload="x()"'
            ),
            None,
        ),
        "foreignObject": (
            document(
                f'{red}<foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="{url}/f"/></foreignObject>'
            ),
            None,
        ),
        "giant viewBox": (
            document(red.replace("100", "1000000000"), 'viewBox="0 0 1000000000 1000000000"'),
            None,
        ),
        "XXE of a file": (
            document(
                "<text>&x;</text>", head='<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            ),
            "an SVG declaring entities",
        ),
        "XXE of a URL": (
            document("<text>&x;</text>", head=f'<!DOCTYPE svg [<!ENTITY x SYSTEM "{url}/xxe">]>'),
            "an SVG declaring entities",
        ),
        "parameter entity": (
            document("", head=f'<!DOCTYPE svg [<!ENTITY % p SYSTEM "{url}/dtd"> %p;]>'),
            "an SVG declaring entities",
        ),
        "external DTD": (
            document("<text>&x;</text>", head=f'<!DOCTYPE svg SYSTEM "{url}/svg.dtd">'),
            "not a well-formed SVG",
        ),
        "billion laughs": (document("<text>&j;</text>", head=LAUGHS), "an SVG declaring entities"),
        "entities behind a DOCTYPE in a comment": (
            document(
                '<rect width="100" height="100" fill="&x;"/>',
                head='<!--<!DOCTYPE a>--><!DOCTYPE svg [<!ENTITY x "#ff0000">]>',
            ),
            "an SVG declaring entities",
        ),
        "a CSS-escaped url() in an attribute": (
            document(
                f'{red}<rect x="50" y="50" width="9" height="9" fill="\\75 rl({url}/e.svg#g)"/>'
            ),
            None,
        ),
        "a CSS-escaped url() in a style attribute": (
            document(
                f'{red}<rect x="50" y="50" width="9" height="9" style="fill:U\\52L({url}/s.svg#g)"/>'
            ),
            None,
        ),
        "a CSS-escaped @import": (
            document(f'<style>@\\69mport "{url}/c.css";</style>{red}'),
            None,
        ),
        "a CSS-escaped url() of a data: document": (
            document(
                f'{red}<rect x="50" y="50" width="9" height="9" fill="\\75 rl(data:image/svg+xml;base64,'
                'PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=#q)"/>'
            ),
            None,
        ),
        "recursive use": (
            document('<g id="a"><use href="#b"/></g><g id="b"><use xlink:href="#a"/></g>'),
            "the SVG's <use> references form a cycle",
        ),
        "use fan-out": (
            document(
                '<defs><rect id="l0" width="1" height="1"/>'
                + "".join(
                    f'<g id="l{i}">' + f'<use href="#l{i - 1}"/>' * 10 + "</g>"
                    for i in range(1, 10)
                )
                + '</defs><use href="#l9"/>'
            ),
            "the SVG's <use> references expand",
        ),
        "ten megabytes of empty elements": (  # stopped while parsing (was 8 s and 700 MB)
            document("<g/>" * 2_400_000),
            "the SVG has more than",
        ),
        "too many elements": (
            document('<rect width="1" height="1"/>' * (svg.MAX_ELEMENTS + 1)),
            "the SVG has more than",
        ),
        "an unclosed DOCTYPE": (document(red) + b"<!DOCTYPE svg", "not a well-formed SVG"),
        # the XML declaration's encoding: unknown, not text, or multi-byte (expat's refusals)
        **{
            f"an encoding {name}": (
                document(red, head=f'<?xml version="1.0" encoding="{name}"?>'),
                "not a well-formed SVG",
            )
            for name in ("U-TF-8", "rot13", "utf-32", "idna")
        },
        "deep nesting": (
            document(red + "<g>" * 5000 + "</g>" * 5000),
            f"the SVG nests elements deeper than {svg.MAX_DEPTH}",
        ),
        "a chain of uses in document order": (  # each met first on a short path
            document(
                red
                + "".join(f'<g id="c{i}"><use href="#c{i - 1}"/></g>' for i in range(1, 300))
                + '<g id="c0"/><use href="#c299"/>'
            ),
            f"the SVG's <use> references nest deeper than {svg.MAX_DEPTH}",
        ),
        "a deep chain of uses": (
            document(
                red
                + "".join(f'<g id="g{i}"><use href="#g{i + 1}"/></g>' for i in range(3000))
                + '<g id="g3000"/>'
            ),
            f"the SVG's <use> references nest deeper than {svg.MAX_DEPTH}",
        ),
        "a vanishing size": (document(red, 'width="1e-320" height="1e-320"'), SIZE_REFUSED),
        "an endless size": (
            document(red, 'height="1e308" viewBox="0 0 1e308 1e-308"'),
            SIZE_REFUSED,
        ),
    }


async def test_every_hostile_document_is_refused_or_inert(trap: SourceServer) -> None:
    for name, (data, refusal) in hostile(trap).items():
        assert svg.is_svg(data), name
        started = time.perf_counter()
        try:
            png = await asyncio.to_thread(svg.rasterise, data, MAX_PIXELS)
        except InvalidImage as exc:
            assert refusal is not None and str(exc).startswith(refusal), (name, str(exc))
        else:
            assert refusal is None, (name, "was drawn")
            img = drawn(png)
            assert img.getpoint(1, 1)[:3] == [255, 0, 0], name  # what is left is drawn
        assert time.perf_counter() - started < 3.0, name
    await asyncio.sleep(0.2)  # anything in flight would have arrived
    assert trap.seen == []  # nothing, ever, was fetched


NESTED = Path(__file__).with_name("svg_nested_raster.svg").read_bytes()


@pytest.mark.parametrize(
    ("data", "colour"),
    [
        # a data: document through an escaped url(): a pattern of a green data: PNG (was drawn)
        (NESTED, [0, 0, 0, 255]),  # the fill removed: black, the SVG default
        # an escaped @import of a data: stylesheet making the rect red (was red)
        (
            document(
                '<style>@\\69mport "data:text/css,rect%7Bfill:red%7D";</style>'
                '<rect width="100" height="100" fill="blue"/>'
            ),
            [0, 0, 255, 255],
        ),
    ],
)
def test_a_css_escape_does_not_spell_url_or_import_past_the_cleaning(
    data: bytes, colour: list[int]
) -> None:
    img = drawn(svg.rasterise(data, MAX_PIXELS))
    assert img.getpoint(1024, 1024) == colour


def test_a_drawing_that_takes_too_long_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 214-byte filter kept librsvg busy for two minutes: its process is killed."""
    monkeypatch.setattr(svg, "DRAW_SECONDS", 1)
    slow = document(
        '<filter id="f" x="0" y="0" width="1" height="1"><feMorphology radius="2"/></filter>'
        '<rect width="100" height="100" fill="red" filter="url(#f)"/>'
    )
    started = time.perf_counter()
    with pytest.raises(InvalidImage, match="the SVG takes longer than 1 s to draw"):
        svg.rasterise(slow, MAX_PIXELS)
    assert time.perf_counter() - started < 3


def test_a_drawing_is_held_to_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drawing process may map DRAW_MEMORY at most: what needs more is refused (the
    FLAG needs about 80 MB), never a crash of the caller."""
    monkeypatch.setattr(svg, "DRAW_MEMORY", 60 << 20)
    with pytest.raises(InvalidImage):
        svg.rasterise(FLAG, MAX_PIXELS)
    monkeypatch.setattr(svg, "DRAW_MEMORY", 100 << 20)
    assert drawn(svg.rasterise(FLAG, MAX_PIXELS)).width == svg.RASTER_SIZE


def test_what_leaves_the_cleaning_is_only_svg() -> None:
    root = svg._parse(
        document(
            '<script>x</script><rect onclick="x()" fill="url(#g)" width="1" height="1"/>'
            '<a href="https://example.com"><rect width="1" height="1"/></a>'
            '<use href="#g"/><metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>'
        )
    )
    svg._clean(root)
    text = svg.ET.tostring(root, encoding="unicode")
    assert "script" not in text and "onclick" not in text and "example.com" not in text
    assert 'fill="url(#g)"' in text and 'href="#g"' in text and "rdf" not in text


# ---- any input: drawn within the limits, or refused with InvalidImage (never another error) ----

FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
SMALL = 10_000  # pixels: every fuzzed drawing is small
LENGTHS = st.one_of(
    st.floats().map(repr),  # 'inf', 'nan', '-0.0', '1e-320', '1.7976931348623157e+308'
    st.sampled_from(["", "0", "-5", "100%", "10em", "1e999", "5px", "2in", "1e-320mm"]),
    st.text(max_size=12),
)


def drawn_within(data: bytes, max_pixels: int) -> None:
    """In this process (``draw_here``: what the drawing process runs), 400 cases a run."""
    try:
        img = drawn(svg.draw_here(data, max_pixels))
    except InvalidImage:
        return
    assert img.width * img.height <= max_pixels and max(img.width, img.height) <= svg.RASTER_SIZE


@FUZZ
@given(LENGTHS, LENGTHS, st.lists(LENGTHS, min_size=0, max_size=4))
def test_any_stated_size_is_drawn_within_the_limits_or_refused(
    width: str, height: str, box: list[str]
) -> None:
    size = f'width="{html.escape(width)}" height="{html.escape(height)}"'
    if box:
        size += f' viewBox="{html.escape(" ".join(box))}"'
    drawn_within(document('<rect width="100%" height="100%" fill="red"/>', size), SMALL)


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    data = bytearray(
        draw(
            st.sampled_from(
                [
                    FLAG,
                    document('<g id="a"><use href="#a"/></g>'),
                    document(
                        '<defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient>'
                        '</defs><rect width="50" height="50" fill="url(#g)"/><text x="5" y="60">hi</text>'
                    ),
                ]
            )
        )
    )
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(
                st.sampled_from([b"<g>", b"</g>", b"<!DOCTYPE svg", b"&x;", b"<![CDATA[", b"\xff"])
                | st.binary(min_size=1, max_size=16)
            )
    return bytes(data)


@FUZZ
@given(mutated_documents())
def test_a_mutated_document_is_drawn_or_refused(data: bytes) -> None:
    drawn_within(data, SMALL)
