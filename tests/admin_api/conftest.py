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

PASSWORD = "correct horse battery"


@dataclass
class Api:
    http: httpx.AsyncClient
    services: Services
    password_hash: str

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


async def start_api(settings: Settings, password_hash: str) -> AsyncIterator[Api]:
    db = Database(settings.database_url)
    await migrate(db)
    await db.close()
    async with client(create_app(settings)) as http:
        yield Api(http, http.app_state["services"], password_hash)  # type: ignore[attr-defined]


@pytest.fixture
async def api(
    database_url: str,
    storage_env: dict[str, str],
    api_env: dict[str, str],
    make_settings: Callable[..., Settings],
    password_hash: str,
) -> AsyncIterator[Api]:
    """The whole app on every (database × storage) pair."""
    settings = make_settings(DATABASE_URL=database_url, **storage_env, **api_env)
    async for ready in start_api(settings, password_hash):
        yield ready


@pytest.fixture
async def local_api(
    database_url: str,
    api_env: dict[str, str],
    make_settings: Callable[..., Settings],
    password_hash: str,
) -> AsyncIterator[Api]:
    """The app on both databases with local storage (for tests where storage plays no part)."""
    settings = make_settings(DATABASE_URL=database_url, **api_env)
    async for ready in start_api(settings, password_hash):
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
