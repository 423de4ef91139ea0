"""The source cache on every database and storage: a fetch, a changed object, the rows and
objects under the operator's prefix, and gc keeping them."""

from __future__ import annotations

from imgorigin.orphans import collect_garbage
from tests.origin.delivery.conftest import decode, encoded, pixel, quadrants
from tests.origin.sources.conftest import Remote


async def test_the_cache_on_every_backend(backed_remote: Remote) -> None:
    remote = backed_remote
    services = remote.service.services
    remote.web.conditional("/media/a.png", encoded("png", 400, 300), etag='"v1"')
    first = await remote.get("/r/live/w_40/-/a.png@png")
    assert first.status_code == 200 and pixel(decode(first.content), 5, 5)[0] > 200
    again = await remote.get("/r/live/w_40/-/a.png@png")  # revalidated: 304 upstream
    assert again.headers["etag"] == first.headers["etag"]
    remote.web.conditional(
        "/media/a.png", quadrants().rot180().write_to_buffer(".png"), etag='"v2"'
    )
    changed = await remote.get("/r/live/w_40/-/a.png@png")
    assert pixel(decode(changed.content), 5, 5) == [240, 230, 20]
    await remote.service.origin.derivatives.drain()
    (record,) = await services.sources.oldest(10)
    assert record.etag == '"v2"'
    keys = {info.key async for info in services.storage.objects("sources/live/")}
    assert record.storage_key in keys and len([k for k in keys if "/derived/" in k]) == 1
    assert (await collect_garbage(services, min_age=0)).removed == []
    remote.put_object("catalogue/b.png", encoded("png", 30, 20))
    from_bucket = await remote.get("/r/bucket/w_15/-/b.png@webp")
    assert from_bucket.status_code == 200 and decode(from_bucket.content).width == 15
