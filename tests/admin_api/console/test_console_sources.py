"""Remote sources in the console, in a real Chromium: an operator account previews an
object of a website (a real HTTP server on 127.0.0.1) in the URL builder — the server signs
with an operator key, the browser never sees one — and another account sees no sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.admin_api.console.test_console_browser import (  # noqa: F401  (the fixture)
    ARTIFACTS,
    browser,
    fetch_pixels,
    photograph,
    static_site,
)
from tests.admin_api.console.test_console_browser import sign_up as signed_up
from tests.conftest import migrate_with, serving


def sign_up(page: Any, base: str, email: str) -> None:
    signed_up(page, base, email)
    page.wait_for_function(
        f"() => document.querySelector('#account-email').textContent === {json.dumps(email)}"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_an_operator_previews_a_source_object(
    base_env: dict[str, str],
    database_url: str,
    browser: Any,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    site = tmp_path / "site" / "media"
    site.mkdir(parents=True)
    (site / "new in").mkdir()
    photograph(site / "new in")  # media/new in/astronaut.jpg, 512 × 512
    with static_site(tmp_path / "site") as port:
        sources = tmp_path / "sources.json"
        sources.write_text(
            json.dumps({"site": {"type": "http", "base_url": f"http://127.0.0.1:{port}/media/"}})
        )
        env = {
            **base_env,
            "DATABASE_URL": database_url,
            "SOURCES_FILE": str(sources),
            "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
            "OPERATOR_EMAILS": "ops@example.com",
        }
        migrate_with(env)
        with serving(env) as base:
            page = browser.pages[0] if browser.pages else browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            seen_keys: list[str] = []
            page.on(
                "response",
                lambda r: seen_keys.append(r.url) if "operator-secret" in r.url else None,
            )
            sign_up(page, base, "ops@example.com")
            page.wait_for_selector("#sources", state="visible")
            assert page.input_value("#source-name") == "site"
            page.fill("#source-path", "new in/astronaut.jpg")
            page.click("#source-open")
            page.wait_for_selector("#builder", state="visible")
            assert "site: new in/astronaut.jpg" in page.inner_text("#builder-name")
            page.fill("#controls [name=w]", "300")
            page.fill("#controls [name=h]", "200")
            page.select_option("#controls [name=c]", "fill")
            chain = page.input_value("#chain")
            page.wait_for_selector(f'#preview[data-state=ready][data-chain="{chain}"]')
            size = page.eval_on_selector("#preview-img", "i => [i.naturalWidth, i.naturalHeight]")
            assert size == [300, 200]
            url = page.input_value("#signed-url")
            assert url.startswith(base + "/r/site/") and "/-/new%20in/astronaut.jpg?s=" in url
            pixels = fetch_pixels(url)
            assert pixels.shape[:2] == (200, 300) and pixels.std() > 20  # a photograph
            page.screenshot(path=str(ARTIFACTS / "source-builder.png"), full_page=True)
            assert problems == [] and seen_keys == []

            page.click("#logout")
            sign_up(page, base, "someone@example.com")
            page.wait_for_timeout(500)
            assert page.is_hidden("#sources")
