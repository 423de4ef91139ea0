"""Live servers (``imgorigin serve``, uvicorn with uvloop and httptools) on one SQLite file:
the same ETag everywhere, and a deletion reaching every process within 5 seconds."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from admin_api.auth import issue_access_token
from origin.settings import Settings
from tests.conftest import migrated_services, serving
from tests.origin.delivery.conftest import add_image, decode, signed

pytestmark = pytest.mark.slow


async def test_deletion_reaches_every_process_within_five_seconds(
    base_env: dict[str, str],
) -> None:
    settings = Settings.from_environ(base_env)
    async with migrated_services(settings) as services:
        from datetime import UTC, datetime

        owner = "ab" * 16
        await services.users.create(owner, "live@example.com", "x", datetime.now(UTC))
        image_id, _ = await add_image(services, owner)
    token = issue_access_token(owner, settings.jwt_secret, 600).token
    url = signed(f"/i/{image_id}/w_100,h_100,c_fill/a.webp")
    with serving(base_env, workers=2) as a, serving(base_env, workers=1) as b:
        async with httpx.AsyncClient(timeout=10) as http:
            warm = [await http.get(base + url) for base in (a, b) for _ in range(6)]
            assert {w.status_code for w in warm} == {200}
            assert len({w.headers["etag"] for w in warm}) == 1  # same on every process
            img = decode(warm[0].content)
            assert (img.width, img.height) == (100, 100)
            metrics = (await http.get(a + "/metrics")).text
            assert "imgorigin_requests_total" in metrics

            deleted = await http.delete(
                f"{a}/api/images/{image_id}", headers={"Authorization": f"Bearer {token}"}
            )
            assert deleted.status_code == 204
            began = time.monotonic()
            while True:
                statuses = [(await http.get(base + url)).status_code for base in (a, b) * 4]
                if set(statuses) == {404}:
                    break
                assert time.monotonic() - began < 5.0, statuses
                await asyncio.sleep(0.2)
