"""Purge at the CDNs (origin.purge) against a recording server on 127.0.0.1: Cloudflare by
tag, Fastly by surrogate key, a generic webhook signed as Standard Webhooks — each
request's method, URL, headers and body; a failing CDN is retried by the job; POST
/api/images/{id}/purge is rate limited. (Real nginx: tests/edge/test_nginx_purge.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from origin.cache_tags import tag, tag_key
from origin.webhooks.signing import new_secret
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.jobs.conftest import Receiver, eventually

SECRET = new_secret()


@pytest.fixture
def extra_env(receiver: Receiver) -> dict[str, str]:
    receiver.endpoint("/cf/zones/zone-1/purge_cache", (500, 200))  # fails once: retried
    receiver.endpoint("/fastly/service/svc-1/purge")
    receiver.endpoint("/purge-hook")
    url = receiver.server.url
    return {
        "PURGE_CLOUDFLARE_ZONE": "zone-1",
        "PURGE_CLOUDFLARE_TOKEN": "cf-token",
        "PURGE_CLOUDFLARE_API_URL": url("/cf"),
        "PURGE_FASTLY_SERVICE": "svc-1",
        "PURGE_FASTLY_TOKEN": "fastly-token",
        "PURGE_FASTLY_API_URL": url("/fastly"),
        "PURGE_WEBHOOK_URL": url("/purge-hook"),
        "PURGE_WEBHOOK_SECRET": SECRET,
        "PURGES_PER_MINUTE": "2",
    }


async def test_each_cdn_gets_the_images_tag(app: Api, receiver: Receiver) -> None:
    user_id, headers = await app.user()
    uploaded = await app.upload(headers, make_image())
    image_id = uploaded.json()["id"]
    image_tag = tag(tag_key(app.services.settings.jwt_secret), "image", image_id)
    answer = await app.http.get(uploaded.json()["url"])
    assert image_tag in answer.headers["cache-tag"].split(",")  # the tag the CDN keeps

    purged = await app.http.post(f"/api/images/{image_id}/purge", headers=headers)
    assert purged.status_code == 202 and purged.json() == {"queued": True, "nginx_keys": 0}

    async def all_three() -> bool:
        paths = [d.path for d in receiver.got]
        return paths.count("/cf/zones/zone-1/purge_cache") == 2 and len(paths) == 4

    await eventually(all_three)
    cloudflare = receiver.at("/cf/zones/zone-1/purge_cache")[-1]
    assert cloudflare.method == "POST"
    assert cloudflare.headers["authorization"] == "Bearer cf-token"
    assert cloudflare.headers["content-type"] == "application/json"
    assert json.loads(cloudflare.body) == {"tags": [image_tag]}
    (fastly,) = receiver.at("/fastly/service/svc-1/purge")
    assert fastly.method == "POST" and fastly.body == b""
    assert fastly.headers["fastly-key"] == "fastly-token"
    assert fastly.headers["surrogate-key"] == image_tag
    (hook,) = receiver.at("/purge-hook")
    assert hook.method == "POST" and hook.headers["content-type"] == "application/json"
    event: Any = Webhook(SECRET).verify(hook.body, hook.headers)
    assert event == {"type": "purge", "tags": [image_tag], "keys": []}

    async def counted() -> bool:
        text = (await app.http.get("/metrics")).text
        return (
            'imgorigin_purges_total{outcome="failed",target="cloudflare"} 1.0' in text
            and 'imgorigin_purges_total{outcome="done",target="cloudflare"} 1.0' in text
        )

    await eventually(counted)
    assert (
        await app.http.post(f"/api/images/{image_id}/purge", headers=headers)
    ).status_code == 202
    malformed = await app.http.post(
        f"/api/images/{image_id}/purge", headers=headers, content=b"{not json"
    )
    assert_error(malformed, 400, "bad_request")  # refused before it counts
    limited = await app.http.post(f"/api/images/{image_id}/purge", headers=headers)
    assert_error(limited, 429, "rate_limited")
    # the purge limit's own figures, once (not beside the account's request limit's)
    assert limited.headers.get_list("ratelimit-limit") == ["2"]
    assert limited.headers.get_list("ratelimit-remaining") == ["0"]
    assert user_id


async def test_changes_purge_by_themselves(app: Api, receiver: Receiver) -> None:
    """A public change, a replace, an edited or deleted transformation and a deletion each
    queue a purge: the image's tag, or the owner's for a transformation."""
    user_id, headers = await app.user()
    image_id = (await app.upload(headers, make_image())).json()["id"]
    key = tag_key(app.services.settings.jwt_secret)
    image_tag, user_tag = tag(key, "image", image_id), tag(key, "user", user_id)
    card = {"transform": "w_20", "unsigned": True}
    await app.http.put("/api/transformations/card", headers=headers, json=card)
    steps = [
        app.http.patch(f"/api/images/{image_id}", headers=headers, json={"public": True}),
        app.http.put(
            f"/api/images/{image_id}",
            headers=headers,
            files={"file": ("b.png", make_image("png"), "image/png")},
        ),
        app.http.put(
            "/api/transformations/card", headers=headers, json={**card, "transform": "w_30"}
        ),
        app.http.delete("/api/transformations/card", headers=headers),
        app.http.delete(f"/api/images/{image_id}", headers=headers),
    ]
    for step in steps:
        assert (await step).status_code in (200, 204)

    async def five() -> list[list[str]] | None:
        sent = [json.loads(d.body)["tags"] for d in receiver.at("/purge-hook")]
        return sent if len(sent) == 5 else None

    sent = await eventually(five)
    assert sorted(map(tuple, sent)) == sorted(
        [(image_tag,), (image_tag,), (user_tag,), (user_tag,), (image_tag,)]
    )
