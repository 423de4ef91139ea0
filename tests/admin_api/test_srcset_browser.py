"""The ``<picture>`` from ``GET /api/images/{id}/srcset`` in a real headless Chromium (Debian's
``chromium``, driven by Playwright with ``executable_path``; nothing is downloaded).

A live ``imgorigin serve``; a real photograph uploaded through the API; the answer's
``<picture>`` put as it is into a page served from the live server's origin (its URLs are
root-relative). At a 400 px and a 1400 px wide viewport (device scale factor 1, a fresh
browser context each) the browser must load the expected width — 640 w for 400 CSS px, the
largest (1280 w) for 1400 — in the first format it supports (AVIF when this Chromium decodes
AVIF, else WebP), decode it at that size, fetch no other variant, and paint the blurhash
placeholder behind it. Screenshots go to ``test-artifacts/srcset/``.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyvips

from tests.browser import CHROMIUM_FLAGS, TIMEOUT_MS, playwright_chromium
from tests.origin.conftest import photo

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "srcset"
WIDTHS = (320, 640, 960, 1280)
EXPECTED = {400: 640, 1400: 1280}  # viewport width (CSS px, DPR 1) -> the width chosen


def call(base: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    data = None
    if isinstance(body, bytes):
        data = body
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "imgorigin-srcset-test"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def cat_photo() -> bytes:
    """scikit-image's cat (a real photograph), enlarged to 1804 x 1200: room for 1280 w."""
    cat = pyvips.Image.new_from_buffer(photo("chelsea"), "")
    return bytes(cat.resize(4).jpegsave_buffer(Q=85))


@pytest.fixture
def chromium() -> Iterator[Any]:
    with playwright_chromium("srcset e2e") as (chromium, executable):
        browser = chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def picture_answer(live: str) -> dict[str, Any]:
    call(
        live,
        "POST",
        "/api/auth/signup",
        {"email": "srcset@example.com", "password": "a good password"},
    )
    tokens = call(
        live,
        "POST",
        "/api/auth/login",
        {"email": "srcset@example.com", "password": "a good password"},
    )
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    body, content_type = multipart("cat.jpg", cat_photo())
    image = call(live, "POST", "/api/images", body, **auth, **{"Content-Type": content_type})
    query = "widths=" + ",".join(map(str, WIDTHS)) + "&transform=c_fill,ar_16:9&alt=A%20cat"
    answer: dict[str, Any] = call(live, "GET", f"/api/images/{image['id']}/srcset?{query}", **auth)
    return answer


def tiny_avif_uri() -> str:
    avif = pyvips.Image.black(8, 8, bands=3).heifsave_buffer(compression="av1", effort=0)
    return "data:image/avif;base64," + base64.b64encode(bytes(avif)).decode()


def supports_avif(browser: Any) -> bool:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<p>probe</p>")
        return bool(
            page.evaluate(
                """(uri) => new Promise((done) => {
                    const img = new Image();
                    img.onload = () => done(img.naturalWidth === 8);
                    img.onerror = () => done(false);
                    img.src = uri;
                })""",
                tiny_avif_uri(),
            )
        )
    finally:
        context.close()


SEEN = """async () => {
    const i = document.querySelector('img');
    const style = getComputedStyle(i);
    const bitmap = await createImageBitmap(i);
    return {src: i.currentSrc, w: i.naturalWidth, h: i.naturalHeight,
            pw: bitmap.width, ph: bitmap.height,
            shown: i.getBoundingClientRect().width,
            background: style.backgroundImage, colour: style.backgroundColor};
}"""
LOADED = (
    "() => { const i = document.querySelector('img'); return i.complete && i.naturalWidth > 0; }"
)


def load_at(
    browser: Any, page_url: str, html: str, viewport: int
) -> tuple[Any, list[str], list[str]]:
    """Open the page in a fresh context `viewport` CSS px wide (DPR 1); what the <img> shows,
    the image URLs the page asked for, and the page's errors."""
    context = browser.new_context(
        viewport={"width": viewport, "height": 900}, device_scale_factor=1
    )
    context.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    asked: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: asked.append(r.url) if "/i/" in r.url else None)
        page.route(page_url, lambda route: route.fulfill(body=html, content_type="text/html"))
        page.goto(page_url)
        page.wait_for_function(LOADED)
        seen = page.evaluate(SEEN)
        page.screenshot(path=str(ARTIFACTS / f"viewport-{viewport}.png"))
    finally:
        context.close()
    return seen, asked, problems


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_the_browser_loads_the_expected_variant(live: str, chromium: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    answer = picture_answer(live)
    fmt = "avif" if supports_avif(chromium) else "webp"
    by_width = {v["width"]: v for v in answer["variants"] if v["format"] == fmt}
    assert sorted(by_width) == list(WIDTHS)
    html = (
        "<!doctype html><html><head><meta charset=utf-8><title>srcset</title>"
        "<style>body{margin:0} img{display:block;max-width:100%;height:auto}</style>"
        f"</head><body>{answer['picture']}</body></html>"
    )
    page_url = f"{live}/srcset-test.html"
    colour = answer["placeholder"]["dominant_color"]
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    for viewport, width in EXPECTED.items():
        seen, asked, problems = load_at(chromium, page_url, html, viewport)
        expected = by_width[width]
        assert seen["src"] == live + expected["url"], (viewport, seen["src"])
        # decoded at the variant's size; its natural (CSS) size is that over its density
        # (width / the 100vw slot), i.e. the slot's width
        assert (seen["pw"], seen["ph"]) == (expected["width"], expected["height"])
        assert seen["w"] == viewport
        assert abs(seen["h"] - viewport * expected["height"] / expected["width"]) <= 1
        assert seen["shown"] == min(viewport, expected["width"])  # the width attribute caps it
        assert [u.removeprefix(live) for u in asked] == [expected["url"]]
        assert seen["background"].startswith('url("data:image/png;base64,')
        assert seen["colour"] == f"rgb({r}, {g}, {b})"
        assert problems == []
