"""The source cache against a real HTTP server: validators and 304s, a changed object, one
flight per object, missing objects remembered, upstream failures, the auth header, the
fallback image, the byte bound, and ownership (rows, prefix, no user's quota, gc)."""

from __future__ import annotations

import asyncio

import pytest

from imgorigin.orphans import collect_garbage
from tests.origin.delivery.conftest import decode, encoded, pixel, quadrants
from tests.origin.sources.conftest import AUTH, Remote

RED_FIRST = encoded("png", 400, 300)
BLUE_FIRST = quadrants(400, 300).rot180().write_to_buffer(".png")  # yellow top-left


def corner(body: bytes) -> list[int]:
    return pixel(decode(body), 5, 5)


async def test_revalidation_asks_with_the_etag_and_keeps_the_bytes(remote: Remote) -> None:
    remote.web.conditional("/media/a.png", RED_FIRST, etag='"v1"')
    first = await remote.get("/r/live/w_40/-/a.png")
    second = await remote.get("/r/live/w_40/-/a.png")
    assert first.status_code == second.status_code == 200
    assert first.headers["etag"] == second.headers["etag"]
    sent = [seen.headers for seen in remote.web.seen]
    assert len(sent) == 2 and "If-None-Match" not in sent[0]
    assert sent[1]["If-None-Match"] == '"v1"'  # answered 304: nothing downloaded again
    reads = "imgorigin_source_reads_total"
    assert await remote.service.metric(reads, source="live", result="fetched") == 1
    assert await remote.service.metric(reads, source="live", result="not_modified") == 1


async def test_last_modified_when_there_is_no_etag(remote: Remote) -> None:
    stamp = "Wed, 02 Dec 2026 10:00:00 GMT"
    remote.web.conditional("/media/b.png", RED_FIRST, etag=None, last_modified=stamp)
    await remote.get("/r/live/w_40/-/b.png")
    await remote.get("/r/live/w_40/-/b.png")
    assert remote.web.seen[1].headers["If-Modified-Since"] == stamp


async def test_a_changed_object_never_serves_a_stale_derivative(remote: Remote) -> None:
    remote.web.conditional("/media/c.png", RED_FIRST, etag='"v1"')
    before = await remote.get("/r/live/w_40/-/c.png@png")
    assert corner(before.content)[0] > 200  # red
    remote.web.conditional("/media/c.png", BLUE_FIRST, etag='"v2"')
    after = await remote.get("/r/live/w_40/-/c.png@png")
    assert after.headers["etag"] != before.headers["etag"]
    assert corner(after.content) == [240, 230, 20]  # the new object's yellow corner
    old = await remote.service.http.get(
        remote.signed("/r/live/w_40/-/c.png@png"), headers={"If-None-Match": before.headers["etag"]}
    )
    assert old.status_code == 200  # the old ETag no longer matches
    rows = remote.service.services.sources
    (record,) = [r for r in await rows.oldest(10) if r.object_key == "c.png"]
    assert record.etag == '"v2"'


async def test_a_failing_upstream_does_not_take_a_kept_copy_away(remote: Remote) -> None:
    remote.web.conditional("/media/k.png", RED_FIRST)
    first = await remote.get("/r/live/w_40/-/k.png@png")
    remote.web.status("/media/k.png", 503)
    kept = await remote.get("/r/live/w_40/-/k.png@png")
    assert kept.status_code == 200 and kept.headers["etag"] == first.headers["etag"]
    assert remote.web.count("/media/k.png") == 2  # it did ask
    remote.web.status("/media/k.png", 404)
    await asyncio.sleep(1.1)  # the retry interval (missing_ttl 0: one second)
    gone = await remote.get("/r/live/w_40/-/k.png@png")
    assert gone.status_code == 404  # a 404 takes it away: its row and kept bytes too
    rows = remote.service.services.sources
    assert [r for r in await rows.oldest(100) if r.object_key == "k.png"] == []
    # back upstream (another object, its old validator reused): read whole, not revalidated
    # (the kept copy answered a 304 and its old pixels were served)
    remote.web.conditional("/media/k.png", BLUE_FIRST)
    await asyncio.sleep(1.1)
    back = await remote.get("/r/live/w_40/-/k.png@png")
    assert back.status_code == 200 and corner(back.content) == [240, 230, 20]
    assert "If-None-Match" not in remote.web.seen[-1].headers
    assert "If-Modified-Since" not in remote.web.seen[-1].headers


async def test_the_ttl_keeps_the_upstream_out(remote: Remote) -> None:
    remote.web.conditional("/media/d.png", RED_FIRST)
    for width in (10, 20, 30):
        assert (await remote.get(f"/r/web/w_{width}/-/d.png")).status_code == 200
    assert remote.web.count("/media/d.png") == 1  # ttl 3600: fetched once, never revalidated


async def test_one_flight_per_object(remote: Remote) -> None:
    gate = asyncio.Event()
    remote.web.gated("/media/e.jpg", encoded("jpeg", 400, 300), gate)
    requests = [remote.get(f"/r/web/w_{100 + n}/-/e.jpg@png") for n in range(100)]
    running = asyncio.gather(*requests)
    await asyncio.sleep(0.5)
    gate.set()
    answers = await running
    assert [a.status_code for a in answers] == [200] * 100
    assert {decode(a.content).width for a in answers} == set(range(100, 200))
    assert remote.web.count("/media/e.jpg") == 1  # 100 derivatives, one fetch


async def test_a_missing_object_is_404_and_remembered(remote: Remote) -> None:
    for _ in range(3):
        answer = await remote.get("/r/web/w_10/-/nothing.png")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert remote.web.count("/media/nothing.png") == 1  # missing_ttl 60 s
    gone = remote.web.status("/media/gone.png", 410)
    del gone
    assert (await remote.get("/r/web/-/gone.png")).status_code == 404


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "source_unavailable"), (503, "source_unavailable"), (403, "source_unavailable")],
)
async def test_upstream_errors_are_502_and_not_remembered(
    remote: Remote, status: int, code: str
) -> None:
    remote.web.status("/media/f.png", status)
    for _ in range(2):
        answer = await remote.get("/r/web/-/f.png")
        assert (answer.status_code, answer.json()["error"]["code"]) == (502, code)
        assert "secret" not in answer.text  # never the upstream's words
    assert remote.web.count("/media/f.png") == 2


async def test_slow_oversized_and_wrong_bodies(remote: Remote) -> None:
    remote.web.trickle("/media/slow.jpg", b"\xff" * 10, every=1.0, times=5)
    slow = await remote.get("/r/web/-/slow.jpg")
    assert (slow.status_code, slow.json()["error"]["code"]) == (504, "source_timeout")
    remote.web.chunked("/media/big.jpg", b"\xff" * 65536, times=60)  # 3.9 MB > 3 MB
    big = await remote.get("/r/web/-/big.jpg")
    assert (big.status_code, big.json()["error"]["code"]) == (502, "source_unavailable")
    remote.web.serve("/media/page.jpg", b"<html>not an image</html>", "text/html")
    page = await remote.get("/r/web/-/page.jpg")
    assert (page.status_code, page.json()["error"]["code"]) == (422, "invalid_image")
    rows = remote.service.services.sources
    assert await rows.oldest(10) == []  # nothing kept from any of them


async def test_the_auth_header_goes_to_the_source_only(remote: Remote) -> None:
    remote.web.conditional("/elsewhere/g.png", RED_FIRST)
    other = remote.web.url("/elsewhere/g.png", host="localhost")  # another origin
    remote.web.redirect("/media/g.png", other)
    remote.web.conditional("/media/h.png", RED_FIRST)
    assert (await remote.get("/r/web/-/h.png")).status_code == 200
    assert remote.web.seen[-1].headers["Authorization"] == AUTH
    answer = await remote.get("/r/web/-/g.png")
    assert answer.status_code == 200, answer.text
    first, second = remote.web.seen[-2:]
    assert first.headers["Authorization"] == AUTH
    assert "Authorization" not in second.headers


async def test_the_fallback_image_stands_in_briefly(remote: Remote) -> None:
    answer = await remote.get("/r/fallback/w_32/-/missing.png@png")
    assert answer.status_code == 200
    assert answer.headers["x-imgorigin-fallback"] == "1"
    assert answer.headers["cache-control"] == "public, max-age=60"
    image = decode(answer.content)
    assert (image.width, image.height) == (32, 32)
    assert pixel(image, 2, 2)[0] > 200  # the fallback's red quadrant
    remote.web.status("/gone/broken.png", 500)
    assert (await remote.get("/r/fallback/-/broken.png")).headers["x-imgorigin-fallback"] == "1"
    no_fallback = await remote.get("/r/web/w_32/-/missing.png")
    assert no_fallback.status_code == 404


async def test_objects_belong_to_the_operator(remote: Remote) -> None:
    remote.web.conditional("/media/i.png", RED_FIRST)
    assert (await remote.get("/r/web/w_50/-/i.png@webp")).status_code == 200
    services = remote.service.services
    await remote.service.origin.derivatives.drain()
    (record,) = await services.sources.oldest(10)
    assert record.storage_key.startswith(f"sources/web/{record.id}/")
    keys = [info.key async for info in services.storage.objects("sources/")]
    assert record.storage_key in keys
    assert any(k.startswith(f"sources/web/{record.id}/derived/") for k in keys)
    assert await services.sources.total_bytes() > record.size_bytes
    assert (await collect_garbage(services, min_age=0)).removed == []  # gc keeps the source cache
    assert not [
        info async for info in services.storage.objects() if not info.key.startswith("sources/")
    ]


async def test_an_object_asked_for_again_gets_working_copies(remote: Remote) -> None:
    big = encoded("png", 1600, 1200)
    remote.web.conditional("/media/big.png", big)
    service, services = remote.service, remote.service.services
    assert (await remote.get("/r/web/w_100/-/big.png@png")).status_code == 200
    await service.origin.derivatives.drain()
    (once,) = await services.sources.oldest(10)
    assert once.working_copies == () and once.analysis is None  # asked once: one decode
    assert (await remote.get("/r/web/w_120/-/big.png@png")).status_code == 200
    await service.http.app_state["sources"].cache.drain()
    (twice,) = await services.sources.oldest(10)
    assert [(c.width, c.height) for c in twice.working_copies] == [(400, 300), (800, 600)]
    assert twice.analysis is not None and twice.content_hash == once.content_hash
    keys = {info.key async for info in services.storage.objects(f"sources/web/{twice.id}/work/")}
    assert keys == {c.storage_key for c in twice.working_copies}
    assert (await collect_garbage(services, min_age=0)).removed == []  # gc keeps them
    # from now on a small derivative is rendered from a copy: the original is not read
    await services.storage.delete(twice.storage_key)
    small = await remote.get("/r/web/w_150/-/big.png@png")
    assert small.status_code == 200 and decode(small.content).width == 150
    assert pixel(decode(small.content), 10, 10)[0] > 200  # still the red quadrant
    copies = [await services.storage.get(c.storage_key) for c in twice.working_copies]
    derived = await services.sources.total_bytes() - twice.size_bytes - sum(map(len, copies))
    assert derived > 0  # the copies are counted in the bound, with the derivatives


async def test_a_new_version_drops_the_old_copies(remote: Remote) -> None:
    remote.web.conditional("/media/v.png", encoded("png", 1600, 1200), etag='"v1"')
    for width in (100, 110):
        assert (await remote.get(f"/r/live/w_{width}/-/v.png@png")).status_code == 200
    await remote.service.http.app_state["sources"].cache.drain()
    services = remote.service.services
    (first,) = await services.sources.oldest(10)
    assert first.working_copies
    remote.web.conditional(
        "/media/v.png", quadrants(1600, 1200).rot180().write_to_buffer(".png"), etag='"v2"'
    )
    changed = await remote.get("/r/live/w_100/-/v.png@png")
    assert pixel(decode(changed.content), 5, 5) == [240, 230, 20]
    (second,) = await services.sources.oldest(10)
    assert second.working_copies == () and second.content_hash != first.content_hash
    left = {info.key async for info in services.storage.objects(f"sources/live/{first.id}/work/")}
    assert left == set()


async def test_kept_bytes_gone_elsewhere_are_read_again(remote: Remote) -> None:
    """Another worker evicted the object (row, then bytes): this one still knows the record
    and finds the bytes gone; it drops the row and reads the object again."""
    remote.web.conditional("/media/lost.png", RED_FIRST)
    assert (await remote.get("/r/web/w_60/-/lost.png@png")).status_code == 200
    services = remote.service.services
    (record,) = await services.sources.oldest(10)
    await services.storage.delete(record.storage_key)
    again = await remote.get("/r/web/w_70/-/lost.png@png")  # a new derivative: a render
    assert again.status_code == 200 and decode(again.content).width == 70
    assert remote.web.count("/media/lost.png") == 2
    (kept,) = await services.sources.oldest(10)
    assert await services.storage.get(kept.storage_key)


async def test_fallback_derivatives_are_kept_in_memory_only(remote: Remote) -> None:
    """No source_objects row stands for a fallback, so its derivatives are neither looked
    up in nor written to the store."""
    assert (await remote.get("/r/fallback/w_16/-/none.png@png")).status_code == 200
    await remote.service.origin.derivatives.drain()
    services = remote.service.services
    derived = [
        i.key async for i in services.storage.objects("sources/fallback/") if "/derived/" in i.key
    ]
    assert derived == []
    again = await remote.get("/r/fallback/w_16/-/none.png@png")
    assert again.status_code == 200 and decode(again.content).width == 16
