"""Named transformations and public images in the console, in a real Chromium (one session):
save a transformation with the form and see it listed, a refused one shown with the API's
message, an uploaded image made public with its tile's switch, the unsigned URL the console
then shows loaded outside the browser (120 × 80), a transformation an operator preset hides
shown as such, the account's default for new uploads, delete, and private again."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

from tests.admin_api.console.test_console_background import (
    PASSWORD,
    api_call,
    open_console,
    watch_problems,
)
from tests.admin_api.console.test_console_browser import (  # noqa: F401  (the fixture)
    ARTIFACTS,
    api_get,
    browser,
    login,
    photograph,
)
from tests.conftest import migrate_with, serving

CARD = "w_120,h_80,c_fill"


def test_named_transformations_and_a_public_image(
    base_env: dict[str, str],
    browser: Any,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    import pyvips

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps({"hero": "w_90"}))
    env = {**base_env, "PRESETS_FILE": str(presets)}  # SQLite: the database plays no part
    migrate_with(env)
    with serving(env) as base:
        page = browser.pages[0] if browser.pages else browser.new_page()
        problems = watch_problems(page)
        email = "public@example.com"
        open_console(page, base, email, "#signup")
        page.wait_for_selector("#transformations-empty", state="visible")
        assert not page.is_checked("#account-public")
        token = login(email, PASSWORD, base)

        # 1. An upload is private (the account's default): its tile's switch is off.
        page.set_input_files("#file-input", [str(photograph(tmp_path))])
        tile = page.wait_for_selector("#gallery li.tile[data-public=false]")
        image_id = tile.get_attribute("data-id")
        assert page.inner_text("#uploads li[data-state=done] .note") == "Uploaded"
        assert not page.is_checked("#gallery li.tile input[name=public]")

        # 2. Save a transformation with the form: listed, as the API has it.
        page.fill("#transformation-name", "card")
        page.fill("#transformation-transform", CARD)
        page.fill("#transformation-formats", "webp, jpg")
        page.check("#transformation-unsigned")
        page.click("#transformation-save")
        item = page.wait_for_selector("#transformation-list li.transformation[data-name=card]")
        listed = item.inner_text()
        assert "t_card" in listed and CARD in listed and "unsigned URLs" in listed
        assert "webp, jpg" in listed and "hidden by an operator preset" not in listed
        assert page.input_value("#transformation-name") == ""  # the form is reset
        # Edit fills the form with it; saved again, it is replaced (200), not made anew.
        item.eval_on_selector("button:text-is('Edit')", "b => b.click()")
        assert page.input_value("#transformation-name") == "card"
        assert page.input_value("#transformation-transform") == CARD
        assert page.input_value("#transformation-formats") == "webp, jpg"
        assert page.is_checked("#transformation-unsigned")
        page.fill("#transformation-formats", "webp, jpg, png")
        page.click("#transformation-save")
        page.wait_for_selector("#transformation-list li[data-name=card]:has-text('webp, jpg, png')")
        assert page.inner_text("#status").startswith("Replaced t_card")
        (card,) = api_get(base, "/api/transformations", token)["items"]
        assert (card["transform"], card["unsigned"], card["formats"]) == (
            CARD,
            True,
            ["webp", "jpg", "png"],
        )

        # 3. One the API refuses: its message, as it is; nothing saved.
        status, refusal = api_call(
            base, "PUT", "/api/transformations/bad", token, {"transform": "t_x"}
        )
        assert status == 400 and refusal["error"]["code"] == "bad_transform", refusal
        assert "a named transformation cannot use t_" in refusal["error"]["message"]
        page.fill("#transformation-name", "bad")
        page.fill("#transformation-transform", "t_x")
        page.click("#transformation-save")
        page.wait_for_function("() => document.querySelector('#transformation-error').textContent")
        assert page.inner_text("#transformation-error") == refusal["error"]["message"]
        assert page.input_value("#transformation-transform") == "t_x"  # kept, to be corrected
        assert page.locator("#transformation-list li.transformation").count() == 1

        # 4. The image's view: private, no unsigned URL. Its tile's switch makes it public;
        #    the view follows, with the unsigned URL of t_card, a real 120 × 80 WebP.
        page.click("#gallery li.tile button.primary")
        page.wait_for_selector("#public", state="visible")
        assert not page.is_checked("#public-toggle")
        assert page.locator("#public-urls li").count() == 0
        page.check("#gallery li.tile input[name=public]")
        page.wait_for_selector("#gallery li.tile[data-public=true]")
        page.wait_for_selector("#public-urls li[data-name=card]")
        assert page.is_checked("#public-toggle")
        assert api_get(base, f"/api/images/{image_id}", token)["public"] is True
        href = page.get_attribute("#public-urls li[data-name=card] a.open", "href")
        assert href == f"/i/{image_id}/t_card/astronaut.webp"  # no signature
        assert href in page.inner_text("#public-urls li[data-name=card]")
        # the preview loads lazily: scrolled to, as a user would (the builder above grows
        # with every declared effect)
        page.locator("#public-urls li[data-name=card] img").scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector('#public-urls li[data-name=card] img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        size = page.eval_on_selector(
            "#public-urls li[data-name=card] img", "i => [i.naturalWidth, i.naturalHeight]"
        )
        assert size == [120, 80]
        with urllib.request.urlopen(base + href, timeout=30) as answer:
            assert answer.headers["Content-Type"] == "image/webp"
            fetched = pyvips.Image.new_from_buffer(answer.read(), "")
        assert (fetched.width, fetched.height) == (120, 80)
        page.screenshot(path=str(ARTIFACTS / "public-image.png"), full_page=True)

        # 5. A transformation an operator preset of the same name hides (as when the preset
        #    comes later): listed with the note, and not offered as an unsigned URL.
        user_id = api_get(base, "/api/me", token)["id"]
        with sqlite3.connect(base_env["DATABASE_URL"].removeprefix("sqlite:///")) as db:
            db.execute(
                "INSERT INTO transformations SELECT user_id, 'hero', chain, unsigned, formats,"
                " created_at, updated_at FROM transformations WHERE user_id = ? AND name = 'card'",
                (user_id,),
            )
        db.close()
        page.click("#transformations-reload")
        hidden = page.wait_for_selector(
            "#transformation-list li[data-name=hero][data-shadowed=true]"
        )
        assert "hidden by an operator preset of the same name" in hidden.inner_text()
        shown = page.inner_text("#transformation-list li[data-name=card]")
        assert "hidden by an operator preset" not in shown
        assert page.locator("#public-urls li").count() == 1
        page.screenshot(path=str(ARTIFACTS / "transformations.png"), full_page=True)
        page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        page.set_viewport_size({"width": 1280, "height": 900})

        # 6. The account's default for new uploads.
        page.check("#account-public")
        page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            " === 'New uploads are public from now on.'"
        )
        assert api_get(base, "/api/me", token)["public"] is True

        # 7. Delete t_card, with confirmation: gone from the list and the image's view.
        page.click("#transformation-list li[data-name=card] button.danger")
        page.wait_for_selector("#confirm-delete[open]")
        page.click("#confirm-yes")
        page.wait_for_selector("#transformation-list li[data-name=card]", state="detached")
        page.wait_for_selector("#public-empty", state="visible")
        assert page.locator("#public-urls li").count() == 0
        names = [t["name"] for t in api_get(base, "/api/transformations", token)["items"]]
        assert names == ["hero"]

        # 8. The view's own switch makes it private again; the tile follows.
        page.uncheck("#public-toggle")
        page.wait_for_selector("#gallery li.tile[data-public=false]")
        assert not page.is_checked("#gallery li.tile input[name=public]")
        assert api_get(base, f"/api/images/{image_id}", token)["public"] is False
        assert all(p.endswith("400 (Bad Request)") for p in problems), problems
