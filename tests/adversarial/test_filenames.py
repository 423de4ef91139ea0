"""Hostile client filenames are stored safely and never reach a header or a storage key raw."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from tests.admin_api.conftest import Api, make_image
from tests.admin_api.test_images import object_keys

NAMES = {
    "traversal": "../../../etc/passwd.jpg",
    "windows traversal": "..\\..\\boot.ini.jpg",
    "crlf": "a\r\nSet-Cookie: x=1\r\n.jpg",
    "nul": "evil\x00.php.jpg",
    "quotes": 'say "cheese"; filename=x.exe.jpg',
    "very long": "é" * 5000 + ".jpg",
    "only dots": "...",
    "emoji": "🙂 photo.jpg",
}


@pytest.mark.parametrize("kind", list(NAMES))
async def test_filenames_are_stored_safely(local_api: Api, kind: str) -> None:
    user_id, headers = await local_api.user()
    answer = await local_api.upload(headers, make_image("jpeg"), filename=NAMES[kind])
    assert answer.status_code == 201, answer.text
    image = answer.json()
    stored = image["original_filename"]
    assert len(stored) <= 255
    assert not any(ch in stored for ch in "/\\\r\n\x00")
    assert await object_keys(local_api) == [f"{user_id}/{image['id']}/original.jpg"]
    assert image["url"].startswith(f"/i/{image['id']}/") and "\\" not in image["url"]
    download = await local_api.http.get(f"/api/images/{image['id']}/download", headers=headers)
    assert download.status_code == 200
    disposition = download.headers["content-disposition"]
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert all(ch.isalnum() or ch in "._ ()-" for ch in fallback)
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == stored[:150]
    assert "set-cookie" not in download.headers
