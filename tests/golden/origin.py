"""What the origin gives each golden request today: its canonical string (the plan the
origin parses and caches), its derivative's storage key, and the ETag a real request gets.

The ETag comes from the whole app over ASGI: a signed ``GET`` with ``If-None-Match: *``
answers 304 with the ETag before anything is loaded or rendered, so the images need rows
(fixed ids and content hashes) but no pixels.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imgorigin.app import create_app
from origin.policy import fill
from origin.records import ImageRecord
from origin.request import read_headers
from origin.settings import Settings
from origin.signing import sign_policy, sign_url
from origin.store.database import Database
from origin.store.migrations import migrate
from origin.stored_derivatives import object_key
from origin.transforms.formats import MEDIA_TYPES
from tests.asgi import client
from tests.golden.vectors import (
    IMAGE,
    IMAGE_HASH,
    OVERLAY,
    OVERLAY_HASH,
    PRESETS,
    USER,
)

KEY = "golden-operator-secret-0123456789abcdef"


def url_of(request: dict[str, Any]) -> str:
    if "policy" in request:
        template = sign_policy(f"/i/{IMAGE}/{request['template']}", KEY, request["policy"])
        return fill(template, **request["fill"])
    chain = request["chain"]
    path = f"/i/{IMAGE}/{chain}/x.{request['ext']}" if chain else f"/i/{IMAGE}/x.{request['ext']}"
    return sign_url(path, KEY)


def headers_of(request: dict[str, Any]) -> dict[str, str]:
    headers = {"If-None-Match": "*"}
    for name, field in (("Accept", "accept"), ("Sec-CH-Width", "width"), ("Sec-CH-DPR", "dpr")):
        if request.get(field) is not None:
            headers[name] = request[field]
    return headers


def image(image_id: str, content_hash: str, fmt: str, width: int, height: int) -> ImageRecord:
    ext = {"jpeg": "jpg", "png": "png"}[fmt]
    return ImageRecord(
        id=image_id,
        user_id=USER,
        original_filename=f"golden.{ext}",
        mime_type=f"image/{fmt}",
        format=fmt,
        size_bytes=1000,
        width=width,
        height=height,
        storage_key=f"{USER}/{image_id}/original.{ext}",
        content_hash=content_hash,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def record(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each request's canonical string, storage key and ETag, from the running app."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        presets = root / "presets.json"
        presets.write_text(json.dumps(PRESETS))
        settings = Settings.from_environ(
            {
                "DATABASE_URL": f"sqlite:///{root / 'golden.db'}",
                "STORAGE_PATH": str(root / "storage"),
                "SECRETS_FILE": str(root / "secrets.json"),
                "JWT_SECRET": "golden-jwt-secret-0123456789abcdef0123",
                "URL_SIGNING_KEYS": f"golden:{KEY}",
                "PRESETS_FILE": str(presets),
            }
        )
        db = Database(settings.database_url)
        await migrate(db)
        await db.close()
        async with client(create_app(settings)) as http:
            state = http.app_state  # type: ignore[attr-defined]
            services = state["services"]
            await services.users.create(USER, "golden@example.com", "!", datetime.now(UTC))
            quota = settings.user_quota_bytes
            await services.images.add(image(IMAGE, IMAGE_HASH, "jpeg", 4000, 3000), quota)
            await services.images.add(image(OVERLAY, OVERLAY_HASH, "png", 400, 100), quota)
            return [await answer(http, state["origin"], r) for r in requests]


async def answer(http: Any, origin: Any, request: dict[str, Any]) -> dict[str, Any]:
    url = url_of(request)
    headers = headers_of(request)
    response = await http.get(url, headers=headers)
    assert response.status_code == 304, (url, response.status_code, response.text)
    path = url.split("?", 1)[0]
    scope_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    prepared = origin.plans.prepared(path, read_headers({"headers": scope_headers}))
    image = await origin.lookup.image(IMAGE)
    overlays = await origin.overlays(image, prepared.plan)
    key = prepared.key_for(image, overlays)
    media_type = MEDIA_TYPES["json"] if prepared.plan.metadata_only else MEDIA_TYPES[key.format]
    return {
        "canonical": prepared.canonical,
        # Each write's own suffix (-8 hex) left out: the vector is the layout and the variant.
        "storage_key": re.sub(
            r"-[0-9a-f]{8}(\.[a-z]+)$", r"\1", object_key(image, key, media_type)
        ),
        "etag": response.headers["etag"],
    }
