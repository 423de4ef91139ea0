"""An admin API over real backends, driven through HTTP, with helpers to make users fast.

bcrypt at cost 12 takes ~0.3 s, so only the account tests sign up and log in through the
API; other tests create their user with one password hash made once per session and mint
the access token the way the API does.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pyvips

from admin_api.auth import hash_password, issue_access_token
from imgorigin.app import create_app
from origin.services import Services
from origin.settings import Settings
from origin.store.database import Database
from origin.store.migrations import migrate
from tests.asgi import client
from tests.sources import SourceServer, source_server

PASSWORD = "correct horse battery"


@dataclass
class Api:
    http: httpx.AsyncClient
    services: Services
    password_hash: str
    sources: SourceServer | None = None
    via: str = "multipart"  # how `upload` sends a file: "multipart", or "url" (fetched)

    async def user(self, email: str | None = None) -> tuple[str, dict[str, str]]:
        """A new user straight through the repository; its id and bearer headers."""
        user_id = secrets.token_hex(16)
        email = email or f"{user_id[:8]}@example.com"
        await self.services.users.create(user_id, email, self.password_hash, datetime.now(UTC))
        return user_id, self.headers(user_id)

    def headers(self, user_id: str) -> dict[str, str]:
        settings = self.services.settings
        token = issue_access_token(user_id, settings.jwt_secret, settings.jwt_ttl_seconds).token
        return {"Authorization": f"Bearer {token}"}

    async def upload(
        self, headers: dict[str, str], data: bytes, filename: str = "photo.jpg", **kw: Any
    ) -> httpx.Response:
        """``data`` uploaded as ``filename``: a multipart file, or (``via`` "url") served by
        the source server under that name and uploaded from its URL."""
        if self.via == "url":
            assert self.sources is not None, "upload from a URL needs the source server"
            url = self.sources.serve_file(filename, data, "application/octet-stream")
            return await self.http.post("/api/images", headers=headers, json={"url": url}, **kw)
        return await self.http.post(
            "/api/images",
            headers=headers,
            files={"file": (filename, data, "application/octet-stream")},
            **kw,
        )


@pytest.fixture(scope="session")
async def password_hash() -> str:
    return await hash_password(PASSWORD)


@pytest.fixture
def api_env() -> dict[str, str]:
    """Overrides for the app's environment; tests replace this fixture to change settings."""
    return {}


@pytest.fixture
def upload_via() -> str:
    """How ``Api.upload`` sends files; a test module may parametrize it (test_images.py)."""
    return "multipart"


@pytest.fixture
async def sources() -> AsyncIterator[SourceServer]:
    """A real HTTP server on 127.0.0.1 that the app may fetch from (the test switch)."""
    async with source_server() as server:
        yield server


def fetch_env(sources: SourceServer) -> dict[str, str]:
    """Upload from a URL reaches the source server: loopback (the test-only switch) on its
    port, limits out of the way (test_url_upload.py sets its own)."""
    return {
        "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
        "URL_UPLOAD_PORTS": str(sources.port),
        "URL_UPLOADS_PER_MINUTE": "10000",
        "URL_UPLOAD_CONCURRENCY": "100",
    }


async def start_api(
    settings: Settings,
    password_hash: str,
    sources: SourceServer | None = None,
    via: str = "multipart",
) -> AsyncIterator[Api]:
    db = Database(settings.database_url)
    await migrate(db)
    await db.close()
    async with client(create_app(settings)) as http:
        services = http.app_state["services"]  # type: ignore[attr-defined]
        yield Api(http, services, password_hash, sources, via)


@pytest.fixture
async def api(
    database_url: str,
    storage_env: dict[str, str],
    api_env: dict[str, str],
    make_settings: Callable[..., Settings],
    password_hash: str,
    sources: SourceServer,
    upload_via: str,
) -> AsyncIterator[Api]:
    """The whole app on every (database × storage) pair."""
    env = {**fetch_env(sources), **storage_env, **api_env}
    settings = make_settings(DATABASE_URL=database_url, **env)
    async for ready in start_api(settings, password_hash, sources, upload_via):
        yield ready


@pytest.fixture
async def local_api(
    database_url: str,
    api_env: dict[str, str],
    make_settings: Callable[..., Settings],
    password_hash: str,
    sources: SourceServer,
    upload_via: str,
) -> AsyncIterator[Api]:
    """The app on both databases with local storage (for tests where storage plays no part)."""
    settings = make_settings(DATABASE_URL=database_url, **{**fetch_env(sources), **api_env})
    async for ready in start_api(settings, password_hash, sources, upload_via):
        yield ready


def make_image(fmt: str = "jpeg", width: int = 64, height: int = 48, **save: Any) -> bytes:
    """A four-colour quadrant image encoded as ``fmt``."""
    top = (
        pyvips.Image.black(width // 2, height // 2)
        .new_from_image([230, 30, 30])
        .join(
            pyvips.Image.black(width - width // 2, height // 2).new_from_image([30, 200, 30]),
            "horizontal",
        )
    )
    bottom = (
        pyvips.Image.black(width // 2, height - height // 2)
        .new_from_image([30, 30, 220])
        .join(
            pyvips.Image.black(width - width // 2, height - height // 2).new_from_image(
                [240, 230, 20]
            ),
            "horizontal",
        )
    )
    image = top.join(bottom, "vertical").cast("uchar").copy(interpretation="srgb")
    suffix = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "avif": ".avif"}[fmt]
    data: bytes = image.write_to_buffer(suffix, **save)
    return data


def assert_error(response, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text
