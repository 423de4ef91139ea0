"""The hot tier (``origin/recent_answers.py``): repeats of a signed, public, immutable URL answered from
a table of ready answers, which must never outlive a deletion or a deleted key."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from origin.recent_answers import SECONDS, cacheable
from origin.signing import sign_url
from tests.origin.delivery.conftest import Service, decode, signed

PER_REQUEST = {"x-request-id", "date"}


def stable(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k not in PER_REQUEST}


async def hot_twice(service: Service, url: str, **kw: object) -> httpx.Response:
    """Request ``url`` until its answer is in the table; return the table's answer."""
    first = await service.get(url, **kw)  # type: ignore[arg-type]
    assert first.status_code == 200, first.text
    hot = await service.get(url, **kw)  # type: ignore[arg-type]
    assert hot.status_code == 200
    assert hot.content == first.content
    assert stable(hot) == stable(first)
    return hot


async def test_a_repeat_is_the_same_answer_without_lookups(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_120,h_80,c_fill/a.webp")
    first = await service.get(url)
    queries = service.origin.lookup.queries
    ids = {first.headers["x-request-id"]}
    for _ in range(5):
        again = await service.get(url)
        assert again.content == first.content
        assert stable(again) == stable(first)
        ids.add(again.headers["x-request-id"])
    assert len(ids) == 6  # the request id is per request, never from the table
    assert service.origin.lookup.queries == queries
    assert (decode(first.content).width, decode(first.content).height) == (120, 80)
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert await service.metric("imgorigin_cache_hits_total", tier="memory") == 5
    assert await service.metric("imgorigin_bytes_out_total") == 6 * len(first.content)


async def test_a_deleted_image_is_404_at_once(service: Service) -> None:
    image_id, owner = await service.image()
    url = signed(f"/i/{image_id}/w_50/a.png")
    await hot_twice(service, url)
    deleted = await service.http.delete(f"/api/images/{image_id}", headers=service.bearer(owner))
    assert deleted.status_code == 204
    answer = await service.get(url)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_a_deleted_signing_key_stops_at_once(service: Service) -> None:
    image_id, owner = await service.image()
    made = await service.http.post("/api/keys", headers=service.bearer(owner))
    key_id, secret = made.json()["id"], made.json()["secret"]
    url = sign_url(f"/i/{image_id}/w_40/a.png", secret)
    await hot_twice(service, url)
    gone = await service.http.delete(f"/api/keys/{key_id}", headers=service.bearer(owner))
    assert gone.status_code == 204
    after = await service.get(url)
    assert after.status_code == 403
    assert after.json()["error"]["code"] == "bad_signature"


async def test_a_deletion_elsewhere_reaches_a_hot_url_within_five_seconds(
    service: Service,
) -> None:
    """Another process deletes the row: this one has no ``forget`` call to go by, only the
    lookup's TTL and the table's ``SECONDS``."""
    image_id, owner = await service.image()
    url = signed(f"/i/{image_id}/w_30/a.png")
    await hot_twice(service, url)
    assert await service.services.images.delete(image_id, owner) is not None
    began = time.monotonic()
    while (answer := await service.get(url)).status_code == 200:
        assert time.monotonic() - began < 5.0, "still served 5 s after the deletion"
        await asyncio.sleep(0.1)
    assert answer.status_code == 404


async def test_conditional_private_and_head_requests_bypass_the_table(
    service: Service,
) -> None:
    image_id, owner = await service.image()
    url = signed(f"/i/{image_id}/w_60/a.png")
    hot = await hot_twice(service, url)
    conditional = await service.get(url, headers={"If-None-Match": hot.headers["etag"]})
    assert conditional.status_code == 304
    assert conditional.content == b""
    private = await service.get(f"/i/{image_id}/w_60/a.png", headers=service.bearer(owner))
    assert private.headers["cache-control"] == "private, no-store"
    head = await service.http.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(hot.content))


async def test_negotiated_answers_are_kept_apart_by_accept(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_64,f_auto/a.jpg")
    kinds = {
        "image/avif,image/webp,*/*": "image/avif",
        "image/webp,*/*": "image/webp",
        "*/*": "image/jpeg",
    }
    for _ in range(2):
        for accept, media_type in kinds.items():
            answer = await service.get(url, headers={"Accept": accept})
            assert answer.headers["content-type"] == media_type
            assert answer.headers["vary"] == "Accept"
            assert decode(answer.content).width == 64


async def test_expiring_urls_are_not_kept(service: Service) -> None:
    """Their max-age counts down, so the answer is not the same from one second to the next."""
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_20/a.png", exp=int(time.time()) + 3600)
    for _ in range(2):
        answer = await service.get(url)
        assert answer.status_code == 200
        assert "immutable" not in answer.headers["cache-control"]
    hot = service.http.app_state["recent_answers"]  # type: ignore[attr-defined]
    assert len(hot) == 0


async def test_entries_expire(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_25/a.png")
    await hot_twice(service, url)
    hot = service.http.app_state["recent_answers"]  # type: ignore[attr-defined]
    assert len(hot) == 1
    await asyncio.sleep(SECONDS + 0.05)
    assert await service.get(url)  # refreshed through the whole path
    assert len(hot) == 1
    assert hot.bytes == len((await service.get(url)).content)


@pytest.mark.parametrize(
    ("head", "kept"),
    [
        ([(b"cache-control", b"public, max-age=31536000, immutable")], True),
        ([(b"cache-control", b"public, max-age=31536000, immutable"), (b"vary", b"Accept")], True),
        ([(b"cache-control", b"public, max-age=31536000, immutable"), (b"vary", b"DPR")], False),
        ([(b"cache-control", b"public, max-age=60")], False),
        ([(b"cache-control", b"private, no-store")], False),
        ([], False),
    ],
)
def test_only_answers_the_same_for_everyone_are_kept(
    head: list[tuple[bytes, bytes]], kept: bool
) -> None:
    assert cacheable(head) is kept


async def test_client_hints_are_part_of_the_key(service: Service) -> None:
    """A URL that does not use hints is kept once per set of hints a browser sends."""
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_33/a.png")
    for dpr in ("1", "2", "1", "2"):
        answer = await service.get(url, headers={"Sec-CH-DPR": dpr})
        assert decode(answer.content).width == 33
    hot = service.http.app_state["recent_answers"]  # type: ignore[attr-defined]
    assert len(hot) == 2
