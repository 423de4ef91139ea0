"""The console end to end in a real headless Chromium (Debian's ``chromium``, driven by
Playwright with ``executable_path``; nothing is downloaded).

Sign up, upload a real photograph, see it in the gallery, build ``w_300,h_200,c_fill,
e_grayscale`` with the controls, check the preview's natural size, copy the signed URL and
fetch it, copy the ``<picture>`` (the API's ``/srcset`` answer) and fetch its URLs, delete. A screenshot of each step goes to ``test-artifacts/console/``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser import CHROMIUM_FLAGS, TIMEOUT_MS, playwright_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
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
