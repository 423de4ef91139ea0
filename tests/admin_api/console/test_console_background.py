"""The console's background work in a real Chromium: webhook endpoints (register one and see
its secret once, a refused address shown with the API's message, a test event that fails,
is retried and delivered to a real receiver on 127.0.0.1, a rotated secret, delete) and an
image's eager derivatives (their states, refreshed until done, the done ones' signed URLs, a
request from the form, a bad chain's message, no refreshing once the view is left).

The app runs its job runner in the serving process (``JOBS_IN_SERVE=1``) polling every
0.1 s; webhooks reach 127.0.0.1 through the tests' switch and ``WEBHOOK_PORTS``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.admin_api.console.test_console_browser import (  # noqa: F401  (the fixture)
    ARTIFACTS,
    api_get,
    api_post,
    browser,
    login,
    photograph,
)
from tests.conftest import free_port, migrate_with, serving

PASSWORD = "a good password"


# ---- helpers ---------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What a webhook receiver on 127.0.0.1 got, and the statuses it answers next (then
    ``default``)."""

    port: int
    statuses: list[int] = field(default_factory=list)
    default: int = 204
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.received.append(Received(headers, body))
            return self.statuses.pop(0) if self.statuses else self.default


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A real HTTP server taking webhook POSTs on a loopback port."""
    port = free_port()
    got = Receiver(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = got.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


def background_env(base_env: dict[str, str], database_url: str, port: int) -> dict[str, str]:
    return {
        **base_env,
        "DATABASE_URL": database_url,
        "JOBS_IN_SERVE": "1",
        "JOB_POLL_SECONDS": "0.1",
        "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
        "WEBHOOK_PORTS": str(port),
        "WEBHOOK_RETRY_SCHEDULE": "0",  # one retry, at once: a failing endpoint fails fast
        "WEBHOOK_TIMEOUT_SECONDS": "5",
    }


def api_call(base: str, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    """Any API call; the status and the JSON answer (errors included)."""
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def upload_with_eager(base: str, token: str, path: Path, eager: list[dict[str, str]]) -> Any:
    """``POST /api/images`` as a multipart form: the file and an ``eager`` JSON field."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="eager"\r\n\r\n'.encode()
        + json.dumps(eager).encode()
        + b"\r\n",
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    request = urllib.request.Request(
        base + "/api/images",
        data=b"".join(parts),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201
        return json.loads(answer.read())


def open_console(page: Any, base: str, email: str, button: str) -> None:
    """Open the console and sign up (``#signup``) or log in (``#login``)."""
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click(button)
    page.wait_for_selector("#app-view", state="visible")
    page.wait_for_function(
        f"() => document.querySelector('#account-email').textContent === {json.dumps(email)}"
    )


def watch_problems(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def verify(secret: str, delivery: Received) -> dict[str, Any]:
    """The delivery checked with the Standard Webhooks reference package and ``secret``."""
    from standardwebhooks.webhooks import Webhook

    checked: dict[str, Any] = Webhook(secret).verify(delivery.body, delivery.headers)
    return checked


def wait_until(what: str, check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---- webhooks ----------------------------------------------------------------------------------


def test_a_webhook_endpoint_from_register_to_delete(
    base_env: dict[str, str],
    database_url: str,
    browser: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with receiver() as got:
        env = background_env(base_env, database_url, got.port)
        migrate_with(env)
        with serving(env) as base:
            page = browser.pages[0] if browser.pages else browser.new_page()
            problems = watch_problems(page)
            email = "hooks@example.com"
            open_console(page, base, email, "#signup")
            page.wait_for_selector("#webhooks-empty", state="visible")
            assert page.is_hidden("#webhook-secret")

            # 1. Register, leaving one event out: the secret is shown once, with the note.
            hook_url = f"http://127.0.0.1:{got.port}/hook"
            page.fill("#webhook-url", hook_url)
            page.uncheck("#webhook-form [value='quota.warning']")
            page.click("#webhook-add")
            page.wait_for_selector("#webhook-secret", state="visible")
            secret = page.input_value("#webhook-secret-value")
            assert secret.startswith("whsec_") and len(secret) > 30
            note = page.inner_text("#webhook-secret")
            assert "will not be shown again" in note and hook_url in note
            item = page.wait_for_selector("#webhook-list li.hook")
            listed = item.inner_text()
            assert hook_url in listed and "derivative.ready" in listed
            assert "quota.warning" not in listed
            assert page.input_value("#webhook-url") == ""  # the form is reset
            # kept in no storage, and the API never shows it again
            assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]
            token = login(email, PASSWORD, base)
            (endpoint,) = api_get(base, "/api/webhooks", token)["items"]
            assert endpoint["url"] == hook_url and "secret" not in endpoint
            assert "quota.warning" not in endpoint["events"]
            assert len(endpoint["events"]) == 5
            page.screenshot(path=str(ARTIFACTS / "webhook-secret.png"), full_page=True)

            # 2. A test event the endpoint refuses twice: the log shows it failed, twice
            #    tried, last answered 500; Retry sends it again, and it is delivered.
            got.statuses = [500, 500]
            page.click("#webhook-list li.hook button:text-is('Send test')")
            page.wait_for_selector(f"#deliveries-{endpoint['id']}", state="visible")
            failed = page.wait_for_selector(f"#deliveries-{endpoint['id']} tr[data-state=failed]")
            cells = failed.eval_on_selector_all("td", "cells => cells.map(c => c.textContent)")
            assert cells[:4] == ["webhook.test", "failed", "2", "500"], cells
            page.screenshot(path=str(ARTIFACTS / "webhook-failed.png"), full_page=True)
            page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
            page.set_viewport_size({"width": 1280, "height": 900})
            failed.eval_on_selector("button", "b => b.click()")  # Retry
            page.wait_for_selector(f"#deliveries-{endpoint['id']} tr[data-state=delivered]")
            assert page.locator(f"#deliveries-{endpoint['id']} tbody tr").count() == 1
            assert len(got.received) == 3
            for delivery in got.received:  # each signed with the secret the page showed
                assert verify(secret, delivery)["type"] == "webhook.test"

            # 3. Rotate: a new secret, shown once; the next delivery verifies with it.
            page.click("#webhook-list li.hook button:text-is('Rotate secret')")
            page.wait_for_selector("#confirm-delete[open]")
            assert "Rotate" in page.inner_text("#confirm-title")
            page.click("#confirm-yes")
            page.wait_for_function(
                "old => document.querySelector('#webhook-secret-value').value !== old",
                arg=secret,
            )
            rotated = page.input_value("#webhook-secret-value")
            assert rotated.startswith("whsec_") and rotated != secret
            assert "will not be shown again" in page.inner_text("#webhook-secret")
            assert "previous secret" in page.inner_text("#webhook-secret-overlap")
            page.wait_for_selector("#webhook-list li.hook:has-text('previous secret')")
            page.click("#webhook-list li.hook button:text-is('Send test')")
            wait_until("the second test event", lambda: len(got.received) == 4)
            assert verify(rotated, got.received[3])["type"] == "webhook.test"
            assert verify(secret, got.received[3])  # the old one overlaps

            # 4. Dismissed, the secret is gone from the page.
            page.click("#forget-secret")
            assert page.is_hidden("#webhook-secret")
            assert page.input_value("#webhook-secret-value") == ""

            # 5. After a reload (which signs out) the endpoint is listed, no secret shown.
            page.reload()
            page.wait_for_selector("body[data-ready=true]")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_selector(f"#webhook-list li.hook:has-text('{hook_url}')")
            assert page.is_hidden("#webhook-secret")
            assert page.input_value("#webhook-secret-value") == ""
            content = page.content()
            assert secret not in content and rotated not in content
            assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]

            # 6. Delete, with confirmation.
            page.click("#webhook-list li.hook button.danger")
            page.wait_for_selector("#confirm-delete[open]")
            page.click("#confirm-yes")
            page.wait_for_selector("#webhook-list li.hook", state="detached")
            page.wait_for_selector("#webhooks-empty", state="visible")
            assert api_get(base, "/api/webhooks", token)["items"] == []
            assert problems == [], problems


def test_a_refused_endpoint_address_shows_the_api_message(
    base_env: dict[str, str],
    database_url: str,
    browser: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    port = free_port()
    env = background_env(base_env, database_url, port)
    migrate_with(env)
    with serving(env) as base:
        page = browser.pages[0] if browser.pages else browser.new_page()
        problems = watch_problems(page)
        email = "refused@example.com"
        open_console(page, base, email, "#signup")
        token = login(email, PASSWORD, base)
        # port 80 is not one of WEBHOOK_PORTS; a link-local address never is allowed
        for url in ("http://127.0.0.1/", f"http://169.254.169.254:{port}/hook"):
            status, refusal = api_call(base, "POST", "/api/webhooks", token, {"url": url})
            assert status == 400 and refusal["error"]["code"] == "source_refused", refusal
            page.eval_on_selector("#webhook-error", "e => { e.textContent = '' }")
            page.fill("#webhook-url", url)
            page.click("#webhook-add")
            page.wait_for_function("() => document.querySelector('#webhook-error').textContent")
            assert page.inner_text("#webhook-error") == refusal["error"]["message"]
            assert page.input_value("#webhook-url") == url  # kept, to be corrected
        assert page.is_hidden("#webhook-secret")
        assert page.locator("#webhook-list li.hook").count() == 0
        page.screenshot(path=str(ARTIFACTS / "webhook-refused.png"), full_page=True)
        assert api_get(base, "/api/webhooks", token)["items"] == []
        assert all(p.endswith("400 (Bad Request)") for p in problems), problems


# ---- eager derivatives -------------------------------------------------------------------------


def test_eager_derivatives_on_the_image_view(
    base_env: dict[str, str],
    database_url: str,
    browser: Any,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    import pyvips

    env = background_env(base_env, database_url, free_port())
    migrate_with(env)
    with serving(env) as base:
        email = "eager@example.com"
        api_post(base, "/api/auth/signup", {"email": email, "password": PASSWORD})
        token = login(email, PASSWORD, base)
        wanted = [
            {"transform": "w_300,h_200,c_fill", "format": "webp"},
            {"transform": "w_64", "format": "png"},
        ]
        image = upload_with_eager(base, token, photograph(tmp_path), wanted)
        image_id = image["id"]
        assert [(e["transform"], e["format"]) for e in image["eager"]] == [
            ("w_300,h_200,c_fill", "webp"),
            ("w_64", "png"),
        ]

        page = browser.pages[0] if browser.pages else browser.new_page()
        problems = watch_problems(page)
        polls: list[float] = []
        page.on(
            "request",
            lambda r: (
                polls.append(time.monotonic())
                if r.method == "GET" and r.url == f"{base}/api/images/{image_id}"
                else None
            ),
        )
        open_console(page, base, email, "#login")

        # 1. The image's view lists both, each with its state, until both are done.
        page.click("#gallery li.tile button.primary")
        page.wait_for_selector("#eager", state="visible")
        page.wait_for_function(
            "() => { const items = document.querySelectorAll('#eager-list li.derivative');"
            " return items.length === 2 && [...items].every(i => i.dataset.state === 'done'); }"
        )
        assert page.inner_text("#eager-summary") == "2 of 2 done"
        first = page.locator("#eager-list li.derivative").first
        assert first.locator(".badge").inner_text() == "Done"
        assert "w_300,h_200,c_fill" in first.inner_text() and "300 × 200" in first.inner_text()
        href = first.locator("a.open").get_attribute("href")
        assert href.startswith(f"/i/{image_id}/w_300,h_200,c_fill/") and ".webp?" in href
        assert first.locator("a.open").get_attribute("target") == "_blank"
        page.wait_for_function(
            "() => [...document.querySelectorAll('#eager-list img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        size = first.locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert size == [300, 200]
        with urllib.request.urlopen(base + href, timeout=30) as answer:
            assert answer.headers["Content-Type"] == "image/webp"
            made = pyvips.Image.new_from_buffer(answer.read(), "")
        assert (made.width, made.height) == (300, 200)
        done = api_get(base, f"/api/images/{image_id}", token)["eager"]
        assert [e["state"] for e in done] == ["done", "done"] and done[0]["url"] == href

        # 2. One more from the form: shown at once, refreshed until it is done.
        page.fill("#eager-transform", "w_120,h_120,c_fill,e_grayscale")
        page.select_option("#eager-format", "jpeg")
        page.click("#eager-add")
        page.wait_for_selector("#eager-list li.derivative:nth-child(3)")
        page.wait_for_selector("#eager-list li.derivative:nth-child(3)[data-state=done]")
        assert page.inner_text("#eager-summary") == "3 of 3 done"
        third = page.locator("#eager-list li.derivative").nth(2)
        assert "120 × 120" in third.inner_text()
        third_href = third.locator("a.open").get_attribute("href")
        assert "/w_120,h_120,c_fill,e_grayscale/" in third_href and ".jpeg?" in third_href
        page.screenshot(path=str(ARTIFACTS / "eager-done.png"), full_page=True)

        # once every one is done the view stops asking
        settled = len(polls)
        page.wait_for_timeout(2500)
        assert len(polls) == settled, "the view kept refreshing after every one was done"

        # 3. A chain the API refuses: its message, and nothing queued.
        for chain, format_ in (("w_300,zz_1", "webp"), ("w_300,f_auto", "webp")):
            status, refusal = api_call(
                base,
                "POST",
                f"/api/images/{image_id}/eager",
                token,
                {"eager": [{"transform": chain, "format": format_}]},
            )
            assert status == 400, refusal
            page.eval_on_selector("#eager-error", "e => { e.textContent = '' }")
            page.fill("#eager-transform", chain)
            page.select_option("#eager-format", format_)
            page.click("#eager-add")
            page.wait_for_function("() => document.querySelector('#eager-error').textContent")
            assert page.inner_text("#eager-error") == refusal["error"]["message"]
        assert page.locator("#eager-list li.derivative").count() == 3

        # 4. A failed one shows its error code: the image's stored files go missing, so the
        #    job for one more derivative fails for good (not_found), and the view settles.
        user_id = api_get(base, "/api/me", token)["id"]
        folder = Path(env["STORAGE_PATH"]) / user_id / image_id
        for stored in folder.iterdir():
            if stored.is_file():
                stored.unlink()
        page.fill("#eager-transform", "w_10")
        page.select_option("#eager-format", "webp")
        page.click("#eager-add")
        failed = page.wait_for_selector(
            "#eager-list li.derivative[data-state=failed]", timeout=30_000
        )
        assert "not_found" in failed.inner_text() and "Failed" in failed.inner_text()
        assert "1 failed" in page.inner_text("#eager-summary")
        page.screenshot(path=str(ARTIFACTS / "eager-states.png"), full_page=True)
        page.set_viewport_size({"width": 360, "height": 740})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(ARTIFACTS / "eager-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.click("#close-builder")
        assert page.is_hidden("#builder") and page.is_hidden("#eager")
        page.wait_for_timeout(300)  # one already on its way
        left = len(polls)
        page.wait_for_timeout(2500)
        assert len(polls) == left, "the view kept refreshing after it was left"
        assert all(p.endswith("400 (Bad Request)") for p in problems), problems


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the console's views are tested here; the database plays no part in it (the queue's and eager derivatives'
    tests run on both), and CI's time is bounded."""
    return f"sqlite:///{tmp_path / 'meta.db'}"
