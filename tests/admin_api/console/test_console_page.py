"""The console page through the app: strict CSP, no inline code, every asset served, no
other origin referenced."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from admin_api.console import CONSOLE_DIR, CONTENT_SECURITY_POLICY, MEDIA_TYPES
from imgorigin.app import create_app
from origin.settings import Settings
from tests.asgi import client

EXPECTED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class Page(HTMLParser):
    """Collects what the CSP cares about: scripts, styles, links, inline handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self.inline_style = False
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.inline_script = True
        if self._in == "style":
            self.inline_style = True

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def referenced_assets(page: Page) -> set[str]:
    refs = set()
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value and tag in ("script", "link", "img") and not value.startswith(("#", "data:")):
                refs.add(value)
    return refs


def test_the_policy_is_the_one_asked_for() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


async def test_the_page_is_served_at_the_root_with_a_strict_policy(
    make_settings: Callable[..., Settings],
) -> None:
    async with client(create_app(make_settings())) as http:
        answer = await http.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-security-policy"] == EXPECTED_CSP
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["etag"].startswith('"')

    page = parse(answer.text)
    assert not page.inline_script, "inline <script> content"
    assert not page.inline_style, "<style> element"
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"style= on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"inline handler {handlers} on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "a <script> without src"
        if tag == "a":
            assert (attrs.get("href") or "#").startswith("#")
    assert not re.search(r"javascript:", answer.text, re.I)


async def test_every_referenced_asset_is_served_with_its_type(
    make_settings: Callable[..., Settings],
) -> None:
    async with client(create_app(make_settings())) as http:
        page = parse((await http.get("/")).text)
        refs = referenced_assets(page)
        assert refs == {"/console/console.css", "/console/console.js"}
        for ref in refs:
            answer = await http.get(ref)
            assert answer.status_code == 200, ref
            assert answer.headers["content-type"] == MEDIA_TYPES[ref.rsplit("/", 1)[1]]
            assert answer.headers["content-security-policy"] == EXPECTED_CSP
            again = await http.get(ref, headers={"If-None-Match": answer.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
        head = await http.head("/console/console.js")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) > 0
        for missing in ("/console/nope.js", "/console/index.html", "/console/..%2Fconsole.py"):
            answer = await http.get(missing)
            assert answer.status_code == 404, missing
            assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("name", sorted(MEDIA_TYPES))
def test_no_asset_references_another_origin(name: str) -> None:
    text = (CONSOLE_DIR / name).read_text(encoding="utf-8")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
    assert "@import" not in text and "url(" not in text.replace("new URL(", "")


def test_the_script_uses_no_eval_and_no_inner_html() -> None:
    script = (CONSOLE_DIR / "console.js").read_text(encoding="utf-8")
    for forbidden in ("eval(", "new Function", "innerHTML", "localStorage", "document.write"):
        assert forbidden not in script, forbidden


async def test_the_api_and_the_origin_still_answer_beside_the_console(
    make_settings: Callable[..., Settings],
) -> None:
    async with client(create_app(make_settings())) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/api/openapi.json")).status_code == 200
        assert (await http.get("/api/me")).status_code == 401
