"""Signing keys (admin_api.keys) through HTTP: listed without their secret, deleted only by
their owner; a user's key verifies at once in the process that made it, even right after a
request made that process look the owner's keys up (and keep the empty list), and within
the lookup's TTL in a process that only sees the key in the database."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime

import httpx
import pytest
import pyvips

from origin.lookup import TTL_SECONDS
from origin.records import SigningKeyRecord
from origin.signing import sign_url
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.conftest import OPERATOR_SECRET


async def owned_image(api: Api) -> tuple[str, dict[str, str]]:
    """A user with one uploaded 64×48 JPEG: (image id, bearer headers)."""
    _, headers = await api.user()
    uploaded = await api.upload(headers, make_image(width=64, height=48))
    assert uploaded.status_code == 201
    return uploaded.json()["id"], headers


async def refused_by_a_stranger_key(api: Api, image_id: str) -> None:
    """A URL signed with a key nobody has: 403, and the owner's keys (none yet) are cached."""
    answer = await api.http.get(sign_url(f"/i/{image_id}/w_20/a.png", secrets.token_urlsafe(32)))
    assert_error(answer, 403, "bad_signature")


def assert_rendered(answer: httpx.Response, width: int) -> None:
    assert answer.status_code == 200, answer.text
    image = pyvips.Image.new_from_buffer(answer.content, "")
    assert (image.width, image.height) == (width, width * 48 // 64)


async def test_a_new_key_verifies_at_once_in_its_own_process(local_api: Api) -> None:
    image_id, headers = await owned_image(local_api)
    await refused_by_a_stranger_key(local_api, image_id)
    made = await local_api.http.post("/api/keys", headers=headers)
    assert made.status_code == 201
    url = sign_url(f"/i/{image_id}/w_32/a.png", made.json()["secret"])
    assert_rendered(await local_api.http.get(url), 32)
    # and a second key, made after the first one's list was cached, as well
    again = await local_api.http.post("/api/keys", headers=headers)
    second = sign_url(f"/i/{image_id}/w_40/a.png", again.json()["secret"])
    assert_rendered(await local_api.http.get(second), 40)
    assert_rendered(await local_api.http.get(url), 32)


async def test_a_key_made_elsewhere_verifies_within_the_lookup_ttl(local_api: Api) -> None:
    """Another process's ``POST /api/keys`` is only a row in the shared database here."""
    image_id, _ = await owned_image(local_api)
    owner = (await local_api.services.images.get(image_id)).user_id  # type: ignore[union-attr]
    await refused_by_a_stranger_key(local_api, image_id)
    secret = secrets.token_urlsafe(32)
    key = SigningKeyRecord(secrets.token_hex(16), owner, secret, datetime.now(UTC))
    await local_api.services.keys.add(key)
    url = sign_url(f"/i/{image_id}/w_24/a.png", secret)
    began = time.monotonic()
    while (answer := await local_api.http.get(url)).status_code == 403:
        assert time.monotonic() - began < TTL_SECONDS + 2, "refused past the lookup's TTL"
        await asyncio.sleep(0.1)
    assert_rendered(answer, 24)


async def test_signing_keys(local_api: Api) -> None:
    _, headers = await local_api.user()
    _, stranger = await local_api.user()
    created = await local_api.http.post("/api/keys", headers=headers)
    assert created.status_code == 201
    key = created.json()
    assert set(key) == {"id", "secret", "created_at"} and len(key["secret"]) >= 32
    listed = (await local_api.http.get("/api/keys", headers=headers)).json()
    assert listed == {"items": [{"id": key["id"], "created_at": key["created_at"]}]}
    assert key["secret"] not in (await local_api.http.get("/api/keys", headers=headers)).text
    assert_error(await local_api.http.delete(f"/api/keys/{key['id']}", headers=stranger), 404)
    assert (
        await local_api.http.delete(f"/api/keys/{key['id']}", headers=headers)
    ).status_code == 204
    assert (await local_api.http.get("/api/keys", headers=headers)).json() == {"items": []}
    assert_error(await local_api.http.delete(f"/api/keys/{key['id']}", headers=headers), 404)


async def test_a_new_keys_body_is_empty_or_an_empty_object(local_api: Api) -> None:
    """As every other body: malformed or unknown is 400 (both made a key, 201)."""
    _, headers = await local_api.user()
    json_type = {**headers, "Content-Type": "application/json"}
    for body in (b"garbage", b'{"x": 1}', b"[]"):
        answer = await local_api.http.post("/api/keys", headers=json_type, content=body)
        assert_error(answer, 400, "bad_request")
    assert (await local_api.http.get("/api/keys", headers=headers)).json() == {"items": []}
    for body in (b"", b"{}"):
        made = await local_api.http.post("/api/keys", headers=json_type, content=body)
        assert made.status_code == 201


@pytest.mark.parametrize("api_env", [{"USER_KEY_RENDERS_PER_MINUTE": "2"}])
async def test_renders_a_user_key_causes_are_limited_and_hits_are_not(local_api: Api) -> None:
    image_id, headers = await owned_image(local_api)
    secret = (await local_api.http.post("/api/keys", headers=headers)).json()["secret"]
    for side in (6000, 6001):  # refused before any render: they use none of the two
        too_big = sign_url(f"/i/{image_id}/w_{side},h_{side},c_scale/a.png", secret)
        assert_error(await local_api.http.get(too_big), 400, "limit_exceeded")
    first = sign_url(f"/i/{image_id}/w_16/a.png", secret)
    assert_rendered(await local_api.http.get(first), 16)
    assert_rendered(await local_api.http.get(sign_url(f"/i/{image_id}/w_20/a.png", secret)), 20)
    refused = await local_api.http.get(sign_url(f"/i/{image_id}/w_24/a.png", secret))
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    for _ in range(3):  # what the key already made is a cache hit: never limited
        assert_rendered(await local_api.http.get(first), 16)
    # another key of the same user has its own count; the operator's keys have none
    other = (await local_api.http.post("/api/keys", headers=headers)).json()["secret"]
    assert_rendered(await local_api.http.get(sign_url(f"/i/{image_id}/w_24/a.png", other)), 24)
    operator = sign_url(f"/i/{image_id}/w_28/a.png", OPERATOR_SECRET)
    assert_rendered(await local_api.http.get(operator), 28)
    metrics = (await local_api.http.get("/metrics")).text
    assert 'imgorigin_renders_refused_total{by="user_key"} 1.0' in metrics


async def test_an_account_holds_at_most_ten_keys(local_api: Api) -> None:
    """A URL signed by none of them is checked against each: with no bound, an account of
    thousands of keys made every bad URL of its images cost thousands of HMACs."""
    _, headers = await local_api.user()
    made = await asyncio.gather(
        *(local_api.http.post("/api/keys", headers=headers) for _ in range(14))
    )
    assert sorted(a.status_code for a in made) == [201] * 10 + [400] * 4
    refused = next(a for a in made if a.status_code == 400)
    assert_error(refused, 400, "limit_exceeded")
    listed = (await local_api.http.get("/api/keys", headers=headers)).json()["items"]
    assert len(listed) == 10
    gone = await local_api.http.delete(f"/api/keys/{listed[0]['id']}", headers=headers)
    assert gone.status_code == 204
    assert (await local_api.http.post("/api/keys", headers=headers)).status_code == 201
