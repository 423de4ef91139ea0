"""The admin API's side of sources: operator accounts list the sources and mint signed
``/r/`` URLs (the server signs; no key leaves it); every other account is refused."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest

from tests.origin.delivery.conftest import decode, encoded
from tests.origin.sources.conftest import AUTH, Remote

OPERATOR = "Ops@Example.com"


@pytest.fixture
def sources_env() -> dict[str, str]:
    return {"OPERATOR_EMAILS": "ops@example.com, other@example.com"}


async def account(remote: Remote, email: str) -> dict[str, str]:
    user_id = secrets.token_hex(16)
    await remote.service.services.users.create(user_id, email, "x", datetime.now(UTC))
    return remote.service.bearer(user_id)


async def test_operators_list_sources_without_secrets(remote: Remote) -> None:
    http = remote.service.http
    headers = await account(remote, OPERATOR)
    me = (await http.get("/api/me", headers=headers)).json()
    assert me["operator"] is True
    listed = await http.get("/api/sources", headers=headers)
    assert listed.status_code == 200
    names = {item["name"]: item for item in listed.json()["items"]}
    assert set(names) == {"web", "live", "hosts", "fallback", "bucket"}
    assert names["bucket"]["prefix"] == "catalogue/" and names["fallback"]["fallback"] is True
    assert AUTH not in listed.text and "secret" not in listed.text.lower()


async def test_others_are_refused(remote: Remote) -> None:
    http = remote.service.http
    user = await account(remote, "someone@example.com")
    assert (await http.get("/api/me", headers=user)).json()["operator"] is False
    for answer in (
        await http.get("/api/sources", headers=user),
        await http.post("/api/sources/web/url", headers=user, json={"path": "a.png"}),
    ):
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    assert (await http.get("/api/sources")).status_code == 401


async def test_an_operator_mints_a_url_the_origin_answers(remote: Remote) -> None:
    remote.web.conditional("/media/new%20in/caf%C3%A9%402x.png", encoded("png", 400, 300))
    http = remote.service.http
    headers = await account(remote, OPERATOR)
    minted = await http.post(
        "/api/sources/web/url",
        headers=headers,
        json={"path": "new in/café@2x.png", "transform": "w_120,c_fit", "format": "webp"},
    )
    assert minted.status_code == 200, minted.text
    url = minted.json()["url"]
    assert url.startswith("/r/web/w_120,c_fit/-/new%20in/caf%C3%A9@2x.png@webp?s=")
    answer = await http.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    assert decode(answer.content).width == 120
    for body, status in (
        ({"path": "../x.png"}, 400),
        ({"path": "a.png", "transform": "w_nope"}, 400),
        ({"path": "a.png", "format": "bmp"}, 400),
        ({"path": "a.png", "expires_in": 0}, 400),
        ({}, 400),
    ):
        refused = await http.post("/api/sources/web/url", headers=headers, json=body)
        assert refused.status_code == status, body
    missing = await http.post("/api/sources/nosuch/url", headers=headers, json={"path": "a.png"})
    assert missing.status_code == 404
