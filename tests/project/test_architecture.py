"""docs/architecture.md's map holds: one cold /i/ request, traced on every thread, enters
only the modules its table lists, and at most five of them tell the story."""

from __future__ import annotations

import hashlib
import re
import secrets
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pyvips

from imgorigin.app import create_app
from origin.records import ImageRecord
from origin.settings import Settings
from origin.signing import sign_url
from origin.store.database import Database
from origin.store.migrations import migrate
from tests.asgi import client

ROOT = Path(__file__).resolve().parents[2]
KEY = "architecture-operator-secret-0123456789"
TABLE = "### The modules a cold request enters"


def mapped() -> dict[str, str]:
    """The table of docs/architecture.md: module → role."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split(TABLE, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|$", section, re.M)
    return {module: role.split(":")[0].strip() for module, role in rows}


class Tracer:
    """Which project modules (and functions) are entered while ``on``, on any thread."""

    def __init__(self) -> None:
        self.on = False
        self.entered: dict[str, set[str]] = {}
        self.prefix = str(ROOT) + "/"

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and self.on:
            name = frame.f_code.co_filename
            if name.startswith(self.prefix) and "/tests/" not in name and "/.venv/" not in name:
                module = name[len(self.prefix) :]
                self.entered.setdefault(module, set()).add(frame.f_code.co_name)

    def install(self) -> Callable[[], None]:
        threading.setprofile(self)
        sys.setprofile(self)

        def remove() -> None:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]

        return remove


async def add_image(services: Any) -> str:
    user, image = secrets.token_hex(16), secrets.token_hex(16)
    await services.users.create(user, f"{user[:8]}@example.com", "!", datetime.now(UTC))
    data = bytes(pyvips.Image.black(400, 300).pngsave_buffer())
    key = f"{user}/{image}/original.png"
    await services.storage.put(key, data, content_type="image/png")
    record = ImageRecord(
        id=image,
        user_id=user,
        original_filename="x.png",
        mime_type="image/png",
        format="png",
        size_bytes=len(data),
        width=400,
        height=300,
        storage_key=key,
        content_hash=hashlib.sha256(data).hexdigest(),
        created_at=datetime.now(UTC),
    )
    await services.images.add(record, services.settings.user_quota_bytes)
    return image


async def test_one_cold_request_enters_only_the_mapped_modules(tmp_path: Path) -> None:
    settings = Settings.from_environ(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "STORAGE_PATH": str(tmp_path / "storage"),
            "SECRETS_FILE": str(tmp_path / "secrets.json"),
            "JWT_SECRET": "architecture-jwt-secret-0123456789abcdef",
            "URL_SIGNING_KEYS": f"a:{KEY}",
        }
    )
    db = Database(settings.database_url)
    await migrate(db)
    await db.close()
    tracer = Tracer()
    remove = tracer.install()  # before any thread of the app starts
    try:
        async with client(create_app(settings)) as http:
            image = await add_image(http.app_state["services"])  # type: ignore[attr-defined]
            warm = await http.get(sign_url(f"/i/{image}/w_101/x.jpg", KEY))
            assert warm.status_code == 200
            tracer.on = True
            answer = await http.get(sign_url(f"/i/{image}/w_100,e_blur:30/x.jpg", KEY))
            tracer.on = False
            assert answer.status_code == 200
            assert pyvips.Image.new_from_buffer(answer.content, "").width == 100
            await http.app_state["origin"].derivatives.drain()  # type: ignore[attr-defined]
    finally:
        remove()
    table = mapped()
    story = [module for module, role in table.items() if role == "story"]
    assert 0 < len(story) <= 5, story
    unmapped = sorted(set(tracer.entered) - set(table))
    assert unmapped == [], {m: sorted(tracer.entered[m]) for m in unmapped}
    assert [m for m in story if m not in tracer.entered] == []  # the story is what runs
