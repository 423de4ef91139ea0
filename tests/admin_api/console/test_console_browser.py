"""The console end to end in a real headless Chromium (Debian's ``chromium``, driven by
Playwright with ``executable_path``; nothing is downloaded).

Sign up, upload a real photograph, see it in the gallery, build ``w_300,h_200,c_fill,
e_grayscale`` with the controls, check the preview's natural size, copy the signed URL and
fetch it, copy the ``<picture>`` (the API's ``/srcset`` answer) and fetch its URLs, delete. A
screenshot of each step goes to ``test-artifacts/console/``. Then the builder against
``GET /api/grammar``: what it says without one, and a control for every token and effect the
grammar lists, each writing the chain the grammar's order gives.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser import CHROMIUM_FLAGS, TIMEOUT_MS, playwright_chromium
from tests.conftest import migrate_with, serving

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
CHAIN = "w_300,h_200,c_fill,e_grayscale"


def photograph(folder: Path) -> Path:
    """scikit-image's astronaut (a real photograph) as a JPEG."""
    import pyvips
    import skimage

    source = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    target = folder / "astronaut.jpg"
    pyvips.Image.new_from_file(str(source)).write_to_file(str(target), Q=88)
    return target


def copy_picture(page: Any) -> str:
    """Press "Copy <picture>" (enabled in the builder) and read what reached the clipboard."""
    assert page.is_enabled("#copy-picture")
    page.eval_on_selector("#status", "s => { s.textContent = '' }")
    page.click("#copy-picture")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('<picture> element copied')"
    )
    copied: str = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.input_value("#picture-tag")
    assert copied.startswith("<picture>") and copied.endswith("</picture>")
    return copied


def login(email: str, password: str, base: str) -> str:
    answer = api_post(base, "/api/auth/login", {"email": email, "password": password})
    return str(answer["access_token"])


def api_post(base: str, path: str, body: dict[str, str]) -> Any:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def api_get(base: str, path: str, token: str) -> Any:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def assert_picture_loads(
    base: str, picture: str, media_types: set[str], largest: tuple[int, int]
) -> None:
    """Every URL of the markup (root-relative) answers an image of the size its ``w``
    descriptor says, in the formats listed; the ``<img>``'s ``src`` is the largest."""
    import pyvips

    candidates = re.findall(r"(/i/\S+) (\d+)w", html.unescape(picture))
    assert candidates
    seen = set()
    for url, width in candidates:
        with urllib.request.urlopen(base + url, timeout=30) as answer:
            seen.add(answer.headers["Content-Type"])
            decoded = pyvips.Image.new_from_buffer(answer.read(), "")
        assert decoded.width == int(width)
    assert seen == media_types
    src = html.unescape(re.search(r'<img src="([^"]+)"', picture).group(1))  # type: ignore[union-attr]
    with urllib.request.urlopen(base + src, timeout=30) as answer:
        decoded = pyvips.Image.new_from_buffer(answer.read(), "")
    assert (decoded.width, decoded.height) == largest


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with playwright_chromium("console e2e") as (chromium, executable):
        context = chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_console_end_to_end(live: str, browser: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.pages[0] if browser.pages else browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    def shot(step: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{step}.png"), full_page=True)

    # 1. The root is the console, signed out.
    page.goto(live + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_visible("#auth-view")
    shot("01-signed-out")

    # 2. Sign up (then the page logs in by itself).
    page.fill("#email", "console@example.com")
    page.fill("#password", "a good password")
    page.click("#signup")
    page.wait_for_selector("#app-view", state="visible")
    page.wait_for_function(
        "() => document.querySelector('#account-email').textContent.includes('@')"
    )
    shot("02-signed-in")

    # 3. Upload a real photograph and a file that is not an image, at once, through the
    #    file picker: one progress bar each, the API's refusal shown as it is.
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not an image\n")
    page.set_input_files("#file-input", [str(photograph(tmp_path)), str(bogus)])
    page.wait_for_selector("#uploads li[data-state=done]")
    refused = page.wait_for_selector("#uploads li[data-state=error]")
    assert page.locator("#uploads li progress").count() == 2
    note = refused.query_selector(".note").inner_text()
    assert note and not note.startswith(("Uploading", "HTTP")), note
    tile = page.wait_for_selector("#gallery li.tile")
    assert "astronaut.jpg" in tile.inner_text()
    assert "512 × 512" in tile.inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_function("() => document.querySelector('#quota-meter').value > 0")
    shot("03-uploaded")

    # 4. Build the chain with the controls; the preview is the real derivative.
    page.click("#gallery li.tile button.primary")
    page.wait_for_selector("#builder", state="visible")
    page.fill("#controls [name=w]", "300")
    page.fill("#controls [name=h]", "200")
    page.select_option("#controls [name=c]", "fill")
    page.check("#controls [name=e_grayscale]")
    assert page.input_value("#chain") == CHAIN
    page.wait_for_selector(f'#preview[data-state=ready][data-chain="{CHAIN}"]')
    size = page.eval_on_selector("#preview-img", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [300, 200]
    assert page.inner_text("#preview-info").startswith("300 × 200 · jpeg ·")
    shot("04-builder")
    page.eval_on_selector("#builder", "b => b.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / "04-builder-viewport.png"))

    # 5. Copy the signed URL and fetch it outside the browser.
    page.click("#copy-url")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('copied')")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.input_value("#signed-url")
    assert copied.startswith(live + "/i/") and f"/{CHAIN}/" in copied and "s=" in copied
    with urllib.request.urlopen(copied, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "image/jpeg"
        body = answer.read()
    import pyvips

    fetched = pyvips.Image.new_from_buffer(body, "")
    assert (fetched.width, fetched.height) == (300, 200)
    shot("05-copied")

    # 5b. Copy the <picture>: the API's own answer for this chain, every URL a real image.
    image_id = tile.get_attribute("data-id")
    picture = copy_picture(page)
    token = login("console@example.com", "a good password", live)
    query = urlencode({"transform": CHAIN, "alt": "astronaut.jpg"})
    assert picture == api_get(live, f"/api/images/{image_id}/srcset?{query}", token)["picture"]
    assert_picture_loads(live, picture, {"image/avif", "image/webp", "image/jpeg"}, (300, 200))
    # an f_ in the chain picks the one format; the widths come from the API's ladder
    page.fill("#chain", "c_fill,ar_16:9,f_webp")
    page.wait_for_selector('#preview[data-state=ready][data-chain="c_fill,ar_16:9,f_webp"]')
    assert page.input_value("#picture-tag") == ""  # a new chain forgets the old markup
    picture = copy_picture(page)
    query = urlencode({"transform": "c_fill,ar_16:9", "formats": "webp", "alt": "astronaut.jpg"})
    assert picture == api_get(live, f"/api/images/{image_id}/srcset?{query}", token)["picture"]
    assert "<source" not in picture and " 320w, " in picture
    assert_picture_loads(live, picture, {"image/webp"}, (512, 288))
    shot("05b-picture")
    page.fill("#chain", CHAIN)
    page.wait_for_selector(f'#preview[data-state=ready][data-chain="{CHAIN}"]')

    # 6. A phone's width: nothing is wider than the viewport.
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    shot("06-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # 7. A bad hand-edited chain shows the API's message, naming the token.
    page.fill("#chain", CHAIN + ",zz_1")
    page.wait_for_selector("#preview[data-state=error]")
    assert "zz_1" in page.inner_text("#chain-error")

    # 8. Delete, with confirmation.
    page.click("#gallery li.tile button.danger")
    page.wait_for_selector("#confirm-delete[open]")
    shot("07-confirm-delete")
    page.click("#confirm-yes")
    page.wait_for_selector("#gallery li.tile", state="detached")
    page.wait_for_selector("#gallery-empty", state="visible")
    assert page.is_hidden("#builder")
    shot("08-deleted")

    # 9. Drag and drop uploads too (a DataTransfer carrying the photograph).
    data = base64.b64encode((tmp_path / "astronaut.jpg").read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            return transfer;
        }""",
        [data, "dropped.jpg"],
    )
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#gallery li.tile h3:text-is('dropped.jpg')")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shot("09-dropped")

    page.click("#logout")
    page.wait_for_selector("#auth-view", state="visible")
    # The refused upload's 415 and the bad chain's 400s are expected; nothing else may fail.
    expected = ("415 (Unsupported Media Type)", "400 (Bad Request)")
    unexpected = [p for p in problems if not p.endswith(expected)]
    assert not unexpected, unexpected


# ---- the builder follows GET /api/grammar ---------------------------------------------------

TEXT_ONLY = "only applies to a text overlay"


def grammar_of(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/api/grammar", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        grammar: dict[str, Any] = json.loads(answer.read())
    return grammar


def stage_tokens(grammar: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """The keys the grammar gives the base stage, a text overlay and an image overlay: every
    token but the effect and the layer ones, those only an overlay reads going to the overlays
    (the text-only ones to the text overlay alone)."""
    phase = {t["name"]: t["phase"] for t in grammar["transforms"]}
    tokens = {t["key"]: t for t in grammar["tokens"]}
    special = {k for k, t in tokens.items() if t["argument"]["type"] in ("effect", "layer")}
    base = [
        k
        for k, t in tokens.items()
        if k not in special
        and not (t["transforms"] and all(phase.get(n) == "overlay" for n in t["transforms"]))
    ]
    overlay: list[str] = []
    for transform in grammar["transforms"]:
        if transform["phase"] == "overlay":
            overlay += [k for k in transform["tokens"] if k not in special and k not in overlay]
    image = [k for k in overlay if TEXT_ONLY not in tokens[k]["rules"]]
    return base, overlay, image


def sign_up(page: Any, base: str, email: str) -> None:
    """Open the console, create an account; the page logs in by itself."""
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#email", email)
    page.fill("#password", "a good password")
    page.click("#signup")
    page.wait_for_selector("#app-view", state="visible")


def sign_up_and_upload(page: Any, base: str, email: str, tmp_path: Path) -> None:
    sign_up(page, base, email)
    page.set_input_files("#file-input", [str(photograph(tmp_path))])
    page.wait_for_selector("#gallery li.tile")


def control_names(page: Any) -> list[str]:
    names: list[str] = page.eval_on_selector_all(
        "#controls input[name], #controls select[name], #controls textarea[name]",
        "fields => fields.map(f => f.name)",
    )
    return names


def fetch_pixels(url: str) -> Any:
    """The image at ``url`` as a float array (height, width, bands)."""
    import numpy as np
    import pyvips

    with urllib.request.urlopen(url, timeout=30) as answer:
        image = pyvips.Image.new_from_buffer(answer.read(), "")
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    ).astype(float)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_the_builder_is_built_from_the_grammar(live: str, browser: Any, tmp_path: Path) -> None:
    import numpy as np

    page = browser.pages[0] if browser.pages else browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # 1. Without the grammar the builder says so, and a chain written by hand still works.
    refusal = {"error": {"code": "unavailable", "message": "grammar down for a test"}}
    page.route(
        "**/api/grammar",
        lambda route: route.fulfill(status=503, json=refusal),
    )
    sign_up_and_upload(page, live, "grammar@example.com", tmp_path)
    page.click("#gallery li.tile button.primary")
    page.wait_for_selector("#controls[data-grammar=error]")
    message = page.inner_text("#grammar-status")
    assert "/api/grammar" in message and "grammar down for a test" in message, message
    assert control_names(page) == ["expires"]
    page.fill("#chain", "w_100")
    page.wait_for_selector('#preview[data-state=ready][data-chain="w_100"]')
    assert page.eval_on_selector("#preview-img", "i => [i.naturalWidth, i.naturalHeight]") == [
        100,
        100,
    ]

    # 2. Once it answers, opening the builder again builds the controls, one per token of
    #    each stage and one per effect, and nothing else; all empty, they write no chain.
    page.unroute("**/api/grammar")
    page.click("#gallery li.tile button.primary")
    page.wait_for_selector("#controls[data-grammar=ready]")
    assert page.is_hidden("#grammar-status")
    assert page.input_value("#chain") == ""
    grammar = grammar_of(live)
    base, text, image = stage_tokens(grammar)
    assert {"w", "h", "c", "g", "x", "y", "ar", "dpr", "r", "fl", "b", "q", "f", "t"} <= set(base)
    assert {"g", "co", "fs", "o", "x", "y"} <= set(text)
    assert {"w", "g", "o"} <= set(image) and not {"co", "fs"} & set(image)
    effects = {e["name"]: e for e in grammar["effects"]}
    assert {"grayscale", "sepia", "blur"} <= set(effects)
    expected = [
        *base,
        *(f"e_{name}" for name in effects),
        "expires",
        "lt",
        *(f"lt_{k}" for k in text),
        "li",
        *(f"li_{k}" for k in image),
    ]
    names = control_names(page)
    assert sorted(names) == sorted(expected)

    # every effect: a checkbox without an amount, else a number input with its range
    for name, effect in effects.items():
        kind = page.eval_on_selector(
            f"#controls [name=e_{name}]", "f => [f.type, f.min, f.max, f.checked, f.value]"
        )
        if effect["amount"] is None:
            assert kind == ["checkbox", "", "", False, "on"], name
        else:
            low, high = effect["amount"]["min"], effect["amount"]["max"]
            assert kind == ["number", str(low), str(high), False, ""], name

    # every token: a choice offers exactly the declared options (after "not set"; in an
    # overlay what an overlay takes: g_ without auto, entropy, face), an integer takes its
    # declared range, in the base stage and in the overlays alike
    tokens = {t["key"]: t for t in grammar["tokens"]}
    fields = (
        [(k, k) for k in base] + [(f"lt_{k}", k) for k in text] + [(f"li_{k}", k) for k in image]
    )
    for field, key in fields:
        argument = tokens[key]["argument"]
        selector = f"#controls [name={field}]"
        title = page.get_attribute(selector, "title")
        assert title == tokens[key]["doc"], field
        if argument["type"] == "choice":
            options = page.eval_on_selector(selector, "s => [...s.options].map(o => o.value)")
            declared = argument.get("overlay_options") if field != key else None
            assert options == ["", *(declared or argument["options"])], field
        elif argument["type"] == "integer" and "auto" not in argument:
            bounds = page.eval_on_selector(selector, "f => [f.type, f.min, f.max]")
            assert bounds == ["number", str(argument["min"]), str(argument["max"])], field

    # 3. Blur's amount and the grayscale checkbox: the chain in the grammar's effect order,
    #    a preview of the right size, grey and softer than without the blur.
    page.fill("#controls [name=w]", "200")
    page.check("#controls [name=e_grayscale]")
    page.fill("#controls [name=e_blur]", "60")
    written = [
        f"e_{n}:60" if n == "blur" else f"e_{n}" for n in effects if n in ("grayscale", "blur")
    ]
    chain = ",".join(["w_200", *written])
    assert chain == "w_200,e_grayscale,e_blur:60"
    assert page.input_value("#chain") == chain
    page.wait_for_selector(f'#preview[data-state=ready][data-chain="{chain}"]')
    assert page.eval_on_selector("#preview-img", "i => [i.naturalWidth, i.naturalHeight]") == [
        200,
        200,
    ]
    blurred = fetch_pixels(page.input_value("#signed-url"))
    assert blurred.shape[:2] == (200, 200)
    assert np.abs(blurred - blurred[:, :, :1]).max() <= 3  # every band alike: grey
    page.fill("#controls [name=e_blur]", "")  # empty: off
    assert page.input_value("#chain") == "w_200,e_grayscale"
    page.wait_for_selector('#preview[data-state=ready][data-chain="w_200,e_grayscale"]')
    sharp = fetch_pixels(page.input_value("#signed-url"))

    def detail(pixels: Any) -> float:
        return float(np.abs(np.diff(pixels[:, :, 0], axis=1)).mean())

    assert detail(blurred) < detail(sharp) / 2

    # 4. The overlay stages come from the same description: a text watermark's choice of
    #    gravity and its colour make the second stage.
    page.fill("#controls [name=lt]", "Hi there")
    page.select_option("#controls [name=lt_g]", "north")
    page.fill("#controls [name=lt_co]", "ff0000")
    assert page.input_value("#chain") == "w_200,e_grayscale/l_text:Hi%20there,g_north,co_ff0000"
    page.wait_for_selector("#preview[data-state=ready][data-chain^='w_200,e_grayscale/l_text']")
    red = fetch_pixels(page.input_value("#signed-url"))
    assert (red[:40, :, 0] - red[:40, :, 1]).max() > 100  # red text at the top of a grey image
    assert (red[-40:, :, 0] - red[-40:, :, 1]).max() <= 3

    # 5. Reset empties every control and the chain.
    page.click("#reset-builder")
    assert page.input_value("#chain") == ""
    # The refused grammar's 503 is expected; nothing else may fail.
    unexpected = [p for p in problems if not p.endswith("503 (Service Unavailable)")]
    assert not unexpected, unexpected


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_the_builder_copies_only_what_it_shows(live: str, browser: Any, tmp_path: Path) -> None:
    """What a hunt in Chromium found: copy fields kept the last good chain's URL after a bad
    chain; the <img> tag's alt did not escape ``&``; the watermark picker dropped a choice no
    longer on the gallery page while the chain kept it; Expires rewrote a hand-written chain;
    the t_ field had no pattern (not valid with the "v" flag browsers compile patterns with);
    b_'s pattern refused its fills."""
    page = browser.pages[0] if browser.pages else browser.new_page()
    sign_up(page, live, "copies@example.com")
    shutil.copy(photograph(tmp_path), tmp_path / "mark.jpg")
    odd = tmp_path / "Tom & Jerry's <best>.jpg"
    shutil.copy(tmp_path / "astronaut.jpg", odd)
    page.set_input_files("#file-input", [str(tmp_path / "mark.jpg")])
    page.wait_for_selector("#gallery li.tile")
    page.set_input_files("#file-input", [str(odd)])
    page.wait_for_function("() => document.querySelectorAll('#gallery li.tile').length === 2")
    page.click("#gallery li.tile:first-child button.primary")  # newest first: the odd name
    page.wait_for_selector("#controls[data-grammar=ready]")

    # the fields' patterns: t_ has one, and b_ takes its fills
    assert page.get_attribute("#controls [name=t]", "pattern")
    for field, text in (("b", "blurred"), ("b", "blurred:40"), ("b", "auto"), ("t", "card-1.x")):
        page.fill(f"#controls [name={field}]", text)
        valid = page.eval_on_selector(f"#controls [name={field}]", "f => f.validity.valid")
        assert valid, (field, text)
        page.fill(f"#controls [name={field}]", "")

    # the <img> tag's alt, escaped for an attribute
    page.fill("#controls [name=w]", "120")
    page.wait_for_selector('#preview[data-state=ready][data-chain="w_120"]')
    tag = page.input_value("#img-tag")
    assert 'alt="Tom &amp; Jerry&#x27;s &lt;best&gt;.jpg"' in tag, tag

    # Expires signs again and keeps a chain written by hand
    page.fill("#chain", "w_123")
    page.wait_for_selector('#preview[data-state=ready][data-chain="w_123"]')
    page.select_option("#controls [name=expires]", "3600")
    page.wait_for_function("() => document.querySelector('#signed-url').value.includes('exp=')")
    assert page.input_value("#chain") == "w_123"
    assert "/w_123/" in page.input_value("#signed-url")

    # a chain that does not render leaves nothing to copy
    page.fill("#chain", "w_123,zz_1")
    page.wait_for_selector("#preview[data-state=error]")
    assert page.input_value("#signed-url") == "" and page.input_value("#img-tag") == ""

    # the watermark chosen stays chosen when its image leaves the gallery page
    page.click("#reset-builder")
    other = page.eval_on_selector(
        "#controls [name=li]", "s => [...s.options].map(o => o.value).filter(Boolean)"
    )
    assert len(other) == 1
    page.select_option("#controls [name=li]", other[0])
    assert page.input_value("#chain") == f"l_{other[0]}"
    page.click("#gallery li.tile:last-child button.primary")  # the watermark's own builder
    assert page.input_value("#controls [name=li]") == ""  # never its own watermark
    assert f"l_{other[0]}" not in page.input_value("#chain")
    page.click("#gallery li.tile:first-child button.primary")
    page.select_option("#controls [name=li]", other[0])
    assert page.input_value("#chain") == f"l_{other[0]}"
    page.click("#gallery li.tile:last-child button.danger")
    page.wait_for_selector("#confirm-delete[open]")
    page.click("#confirm-yes")
    page.wait_for_function("() => document.querySelectorAll('#gallery li.tile').length === 1")
    assert page.input_value("#controls [name=li]") == other[0]
    assert page.input_value("#chain") == f"l_{other[0]}"


@contextmanager
def static_site(folder: Path) -> Iterator[int]:
    """A real HTTP server on 127.0.0.1 serving ``folder`` (a website's media); its port."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_an_image_address_pasted_into_the_upload_box(
    base_env: dict[str, str], database_url: str, browser: Any, tmp_path: Path
) -> None:
    """Upload from a URL in the console: the photograph on a website (a server on
    127.0.0.1, reached through the test-only switch) lands in the gallery under its name; the
    metadata address is refused with the API's message, shown as it is."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    site = tmp_path / "site"
    site.mkdir()
    photograph(site)
    with static_site(site) as port:
        env = {
            **base_env,
            "DATABASE_URL": database_url,
            "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
            "URL_UPLOAD_PORTS": str(port),
        }
        migrate_with(env)
        with serving(env) as base:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready=true]")
            page.fill("#email", "url-upload@example.com")
            page.fill("#password", "a good password")
            page.click("#signup")
            page.wait_for_selector("#app-view", state="visible")

            page.fill("#url-input", f"http://127.0.0.1:{port}/astronaut.jpg")
            page.click("#url-fetch")
            page.wait_for_selector("#gallery li.tile")
            page.wait_for_selector("#uploads li[data-state=done]")
            assert "astronaut.jpg" in page.inner_text("#uploads li[data-state=done]")
            assert page.input_value("#url-input") == ""
            token = login("url-upload@example.com", "a good password", base)
            images = api_get(base, "/api/images", token)["items"]
            assert [(i["original_filename"], i["width"], i["height"]) for i in images] == [
                ("astronaut.jpg", 512, 512)
            ]

            page.fill("#url-input", f"http://169.254.169.254:{port}/latest/meta-data/")
            page.click("#url-fetch")
            page.wait_for_selector("#uploads li[data-state=error]")
            shown = page.inner_text("#uploads li[data-state=error]")
            assert "link-local address" in shown, shown
            page.screenshot(path=str(ARTIFACTS / "url-upload.png"), full_page=True)
            assert len(api_get(base, "/api/images", token)["items"]) == 1
