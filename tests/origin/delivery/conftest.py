"""The origin service over real backends, driven through HTTP.

Images are added through the repository and storage (as the admin API's upload does), users
straight through the repository, so the tests do not depend on bcrypt or the upload probe.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pyvips
from prometheus_client.parser import text_string_to_metric_families

from admin_api.auth import issue_access_token
from imgorigin.app import create_app
from origin.delivery import Origin
from origin.records import ImageRecord
from origin.services import Services
from origin.settings import Settings
from origin.signing import sign_url
from origin.store.database import Database
from origin.store.migrations import migrate
from tests.asgi import client, lifespan
from tests.asgi import get_scope as http_scope
from tests.conftest import OPERATOR_SECRET

FORMATS = {
    "jpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "webp": ("webp", "image/webp"),
    "gif": ("gif", "image/gif"),
}


def quadrants(width: int = 400, height: int = 300) -> pyvips.Image:
    """Top-left red, top-right green, bottom-left blue, bottom-right yellow."""

    def solid(w: int, h: int, colour: list[int]) -> pyvips.Image:
        return (pyvips.Image.black(w, h, bands=3) + colour).cast("uchar")

    hw, hh = width // 2, height // 2
    top = solid(hw, hh, [230, 30, 30]).join(solid(width - hw, hh, [30, 200, 30]), "horizontal")
    bottom = solid(hw, height - hh, [30, 30, 220]).join(
        solid(width - hw, height - hh, [240, 230, 20]), "horizontal"
    )
    return top.join(bottom, "vertical").copy(interpretation="srgb")


def encoded(fmt: str = "png", width: int = 400, height: int = 300) -> bytes:
    data: bytes = quadrants(width, height).write_to_buffer("." + FORMATS[fmt][0])
    return data


def decode(body: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


def pixel(img: pyvips.Image, x: int, y: int) -> list[int]:
    return [round(v) for v in img(x, y)[:3]]


@dataclass
class Service:
    http: httpx.AsyncClient
    services: Services
    origin: Origin

    async def user(self) -> str:
        user_id = secrets.token_hex(16)
        await self.services.users.create(
            user_id, f"{user_id[:8]}@example.com", "x", datetime.now(UTC)
        )
        return user_id

    def bearer(self, user_id: str) -> dict[str, str]:
        settings = self.services.settings
        token = issue_access_token(user_id, settings.jwt_secret, settings.jwt_ttl_seconds).token
        return {"Authorization": f"Bearer {token}"}

    async def image(
        self, user_id: str | None = None, fmt: str = "png", width: int = 400, height: int = 300
    ) -> tuple[str, str]:
        """A stored image: (image id, owner id)."""
        return await add_image(self.services, user_id or await self.user(), fmt, width, height)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, **kw)

    async def metric(self, name: str, **labels: str) -> float:
        return await metric(self.http, name, **labels)


async def add_image(
    services: Services,
    user_id: str,
    fmt: str = "png",
    width: int = 400,
    height: int = 300,
    data: bytes | None = None,
) -> tuple[str, str]:
    """An image stored as an upload stores it (without the upload's checks): ``data``, or a
    generated ``width``×``height`` image of ``fmt``."""
    data = encoded(fmt, width, height) if data is None else data
    image_id = secrets.token_hex(16)
    ext, mime = FORMATS[fmt]
    key = f"{user_id}/{image_id}/original.{ext}"
    await services.storage.put(key, data, content_type=mime)
    record = ImageRecord(
        id=image_id,
        user_id=user_id,
        original_filename=f"photo.{ext}",
        mime_type=mime,
        format=fmt,
        size_bytes=len(data),
        width=width,
        height=height,
        storage_key=key,
        content_hash=hashlib.sha256(data).hexdigest(),
        created_at=datetime.now(UTC),
    )
    await services.images.add(record, services.settings.user_quota_bytes)
    return image_id, user_id


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels`` (0 when none)."""
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def signed(path: str, key: str = OPERATOR_SECRET, **kw: Any) -> str:
    return sign_url(path, key, **kw)


async def start_service(settings: Settings) -> AsyncIterator[Service]:
    db = Database(settings.database_url)
    await migrate(db)
    await db.close()
    async with client(create_app(settings)) as http:
        state = http.app_state  # type: ignore[attr-defined]
        yield Service(http, state["services"], state["origin"])


@pytest.fixture
def service_env() -> dict[str, str]:
    """Overrides for the app's environment; tests replace this fixture to change settings."""
    return {}


@pytest.fixture
async def service(
    service_env: dict[str, str], make_settings: Callable[..., Settings]
) -> AsyncIterator[Service]:
    """The whole app on SQLite and local storage."""
    async for ready in start_service(make_settings(**service_env)):
        yield ready


@pytest.fixture
async def backed_service(
    database_url: str,
    storage_env: dict[str, str],
    service_env: dict[str, str],
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Service]:
    """The whole app on every (database × storage) pair."""
    settings = make_settings(DATABASE_URL=database_url, **storage_env, **service_env)
    async for ready in start_service(settings):
        yield ready


async def started_app(settings: Settings) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """The whole app, migrated and through its lifespan, driven with raw ASGI messages:
    ``(app, lifespan state)``."""
    db = Database(settings.database_url)
    await migrate(db)
    await db.close()
    app = create_app(settings)
    async with lifespan(app) as state:
        yield app, state


def get_scope(url: str, state: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of a plain ``GET url`` (path and query) as uvicorn makes it."""
    return {**http_scope(url), "state": dict(state)}
