"""Headless Chromium for the end-to-end tests: Debian's ``chromium`` driven by Playwright with
``executable_path`` (nothing is downloaded). Without either, a test skips with a visible
reason, unless ``REQUIRE_ALL_BACKENDS=1`` makes that a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import missing_backend

TIMEOUT_MS = 10_000
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@contextmanager
def playwright_chromium(what: str) -> Iterator[tuple[Any, str]]:
    """Playwright's Chromium type and the chromium executable, for ``what`` (named in the
    skip reason)."""
    executable = chromium_path()
    if executable is None:
        missing_backend(f"chromium is not installed (apt-get install chromium): {what} skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_backend(f"the playwright package is not installed: {what} skipped")
    assert executable is not None
    with sync_playwright() as playwright:
        yield playwright.chromium, executable
