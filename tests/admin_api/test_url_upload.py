"""Upload from a URL (admin_api.url_upload) through HTTP, from a real server on 127.0.0.1:
what only a fetch can do — the guard, upstream failures, timeouts, the per-user limits and
the allowed hosts — and that nothing is half-written. The shared upload contract runs both
ways in test_images.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.admin_api.conftest import Api, assert_error, make_image

PNG = make_image("png", 40, 30)


async def object_keys(api: Api) -> list[str]:
    return sorted([info.key async for info in api.services.storage.objects()])


async def post_url(api: Api, headers: dict[str, str], body: object) -> httpx.Response:
    return await api.http.post("/api/images", headers=headers, json=body)


async def nothing_written(api: Api, headers: dict[str, str]) -> None:
    assert await object_keys(api) == []
    me = (await api.http.get("/api/me", headers=headers)).json()
    assert (me["image_count"], me["storage_used_bytes"]) == (0, 0)


async def test_an_image_from_a_url_is_stored_as_an_upload(api: Api) -> None:
    user_id, headers = await api.user()
    assert api.sources is not None
    url = api.sources.serve("/media/cat%20photo.png", PNG, "image/png")
    answer = await post_url(api, headers, {"url": url})
    assert answer.status_code == 201, answer.text
    image = answer.json()
    assert (image["width"], image["height"], image["mime_type"]) == (40, 30, "image/png")
    assert (image["original_filename"], image["size_bytes"]) == ("cat photo.png", len(PNG))
    assert await object_keys(api) == [f"{user_id}/{image['id']}/original.png"]
    stored = await api.http.get(f"/api/images/{image['id']}/download", headers=headers)
    assert stored.content == PNG
    named = await post_url(api, headers, {"url": url, "filename": "mine.png"})
    assert named.json()["original_filename"] == "mine.png"


async def test_a_redirect_names_the_file_after_where_it_ended(local_api: Api) -> None:
    _, headers = await local_api.user()
    assert local_api.sources is not None
    local_api.sources.serve("/final/dog.png", PNG, "image/png")
    url = local_api.sources.redirect("/short/x1", "/final/dog.png", 301)
    answer = await post_url(local_api, headers, {"url": url})
    assert answer.status_code == 201, answer.text
    assert answer.json()["original_filename"] == "dog.png"


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:{port}/a.png",
        "http://[::ffff:127.0.0.1]:{port}/a.png",
        "http://10.1.1.1:{port}/a.png",
        "ftp://127.0.0.1/a.png",
        "http://127.0.0.1:22/a.png",  # a port not in URL_UPLOAD_PORTS
        "http://user:secret@127.0.0.1:{port}/a.png",
    ],
)
async def test_refused_urls_are_400_and_leave_nothing(api: Api, target: str) -> None:
    _, headers = await api.user()
    assert api.sources is not None
    answer = await post_url(api, headers, {"url": target.format(port=api.sources.port)})
    assert_error(answer, 400, "source_refused")
    await nothing_written(api, headers)


async def test_a_redirect_to_the_metadata_address_is_refused(local_api: Api) -> None:
    _, headers = await local_api.user()
    assert local_api.sources is not None
    url = local_api.sources.redirect("/jump", "http://169.254.169.254/latest/meta-data/")
    assert_error(await post_url(local_api, headers, {"url": url}), 400, "source_refused")
    await nothing_written(local_api, headers)


@pytest.mark.parametrize("status", [404, 500])
async def test_upstream_errors_are_502_without_the_upstreams_body(
    local_api: Api, status: int
) -> None:
    _, headers = await local_api.user()
    assert local_api.sources is not None
    answer = await post_url(local_api, headers, {"url": local_api.sources.status("/x", status)})
    assert_error(answer, 502, "source_unavailable")
    assert "secret" not in answer.text and "x-upstream" not in answer.headers
    await nothing_written(local_api, headers)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"<html><body>not an image</body></html>", "image/png", 415, "unsupported_media_type"),
        (PNG[: len(PNG) // 2], "image/png", 422, "invalid_image"),
        (b"", "image/png", 400, "bad_request"),
    ],
)
async def test_wrong_content_gets_the_uploads_answers(
    local_api: Api, body: bytes, content_type: str, status: int, code: str
) -> None:
    _, headers = await local_api.user()
    assert local_api.sources is not None
    url = local_api.sources.serve("/wrong.png", body, content_type)
    assert_error(await post_url(local_api, headers, {"url": url}), status, code)
    await nothing_written(local_api, headers)


@pytest.mark.parametrize("api_env", [{"MAX_UPLOAD_SIZE": "5000"}])
async def test_too_large_is_413_whether_declared_or_streamed(
    local_api: Api, api_env: dict[str, str]
) -> None:
    _, headers = await local_api.user()
    sources = local_api.sources
    assert sources is not None
    for url in (
        sources.serve("/big.png", b"\x89PNG" + bytes(6000), "image/png"),
        sources.chunked("/stream.png", b"\x89PNG" + bytes(996), times=10),
        sources.gzipped("/bomb.png", b"\x89PNG" + bytes(2_000_000)),
    ):
        assert_error(await post_url(local_api, headers, {"url": url}), 413, "file_too_large")
    await nothing_written(local_api, headers)


@pytest.mark.parametrize("api_env", [{"FETCH_TIMEOUT_SECONDS": "1"}])
async def test_a_slow_source_is_504(local_api: Api, api_env: dict[str, str]) -> None:
    _, headers = await local_api.user()
    assert local_api.sources is not None
    url = local_api.sources.trickle("/slow.png", b"\x89PNG", every=0.4, times=10)
    assert_error(await post_url(local_api, headers, {"url": url}), 504, "source_timeout")
    await nothing_written(local_api, headers)


@pytest.mark.parametrize("api_env", [{"URL_UPLOADS_PER_MINUTE": "2"}])
async def test_fetches_per_minute_are_limited_per_user(
    local_api: Api, api_env: dict[str, str]
) -> None:
    _, headers = await local_api.user()
    _, other = await local_api.user()
    assert local_api.sources is not None
    url = local_api.sources.serve("/a.png", PNG, "image/png")
    for _ in range(2):
        assert (await post_url(local_api, headers, {"url": url})).status_code == 201
    third = await post_url(local_api, headers, {"url": url})
    assert_error(third, 429, "rate_limited")
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers.get_list("ratelimit-limit") == ["2"]  # this limit's, once
    assert (await post_url(local_api, other, {"url": url})).status_code == 201
    # a multipart upload is not a fetch: not counted
    assert (await local_api.upload(headers, PNG, filename="a.png")).status_code == 201


@pytest.mark.parametrize("api_env", [{"URL_UPLOAD_CONCURRENCY": "1"}])
async def test_concurrent_fetches_are_limited_per_user(
    local_api: Api, api_env: dict[str, str]
) -> None:
    _, headers = await local_api.user()
    _, other = await local_api.user()
    sources = local_api.sources
    assert sources is not None
    slow = sources.trickle("/slow.png", PNG[:10], every=0.5, times=2)
    fast = sources.serve("/a.png", PNG, "image/png")
    first = asyncio.create_task(post_url(local_api, headers, {"url": slow}))
    await asyncio.sleep(0.2)
    refused = await post_url(local_api, headers, {"url": fast})
    assert_error(refused, 429, "rate_limited")
    # this bound's own figures, once (it carried the account's)
    assert refused.headers.get_list("ratelimit-limit") == ["1"]
    assert refused.headers.get_list("ratelimit-remaining") == ["0"]
    assert refused.headers["retry-after"] == "1"
    assert (await post_url(local_api, other, {"url": fast})).status_code == 201
    assert_error(await first, 422, "invalid_image")  # it ran to its end
    assert (await post_url(local_api, headers, {"url": fast})).status_code == 201


@pytest.mark.parametrize("api_env", [{"URL_UPLOAD_HOSTS": "localhost"}])
async def test_only_the_allowed_hosts_are_fetched(local_api: Api, api_env: dict[str, str]) -> None:
    _, headers = await local_api.user()
    assert local_api.sources is not None
    url = local_api.sources.serve("/a.png", PNG, "image/png")
    assert_error(await post_url(local_api, headers, {"url": url}), 400, "source_refused")
    allowed = url.replace("127.0.0.1", "localhost")
    assert (await post_url(local_api, headers, {"url": allowed})).status_code == 201


@pytest.mark.parametrize(
    "body",
    [{}, {"url": 5}, {"url": "http://x/a.png", "eager": 1}, {"url": "not a url at all"}, []],
)
async def test_malformed_bodies_are_400(local_api: Api, body: object) -> None:
    _, headers = await local_api.user()
    answer = await post_url(local_api, headers, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] in ("bad_request", "source_refused")


async def test_a_url_upload_needs_a_user(local_api: Api) -> None:
    assert_error(await post_url(local_api, {}, {"url": "http://127.0.0.1/a.png"}), 401)
