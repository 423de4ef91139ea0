"""Replace (``PUT /api/images/{id}``) through HTTP on the whole app: the next version of the
original with the same validation and quota accounting (the difference); everything made
from the old pixels goes (derivative rows and objects, q_auto choices, the old original and
working copies), eager derivatives are made again, ``image.replaced`` is delivered, and
minted URLs carry ``v_<n>`` while every URL answers the current image."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pyvips

from origin.ingest import replace_upload
from origin.records import ReplacedMeanwhile
from origin.signing import sign_url
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.conftest import OPERATOR_SECRET


def size_of(answer: httpx.Response) -> tuple[int, int]:
    assert answer.status_code == 200, answer.text
    image = pyvips.Image.new_from_buffer(answer.content, "")
    return image.width, image.height


async def keys_under(api: Api, prefix: str) -> set[str]:
    return {info.key async for info in api.services.storage.objects(prefix)}


async def put_file(api: Api, image_id: str, headers: dict[str, str], data: bytes) -> httpx.Response:
    return await api.http.put(
        f"/api/images/{image_id}", headers=headers, files={"file": ("new.png", data, "image/png")}
    )


async def eager_done(api: Api, image_id: str, headers: dict[str, str]) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        image = (await api.http.get(f"/api/images/{image_id}", headers=headers)).json()
        if all(e["state"] == "done" for e in image["eager"]):
            return image  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, image["eager"]
        await asyncio.sleep(0.1)


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"WEBHOOK_PORTS": "9", "JOB_POLL_SECONDS": "0.05"}


async def test_a_replace_moves_every_url_to_the_new_pixels(api: Api) -> None:
    user_id, headers = await api.user()
    hook = await api.http.post(
        "/api/webhooks",
        headers=headers,
        json={"url": "http://127.0.0.1:9/hook", "events": ["image.replaced"]},
    )
    assert hook.status_code == 201, hook.text
    eager = '[{"transform": "w_32", "format": "png"}]'
    uploaded = await api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("Cat.jpg", make_image(width=64, height=48), "image/jpeg")},
        data={"eager": eager},
    )
    image_id = uploaded.json()["id"]
    assert uploaded.json()["version"] == 1 and "/v_" not in uploaded.json()["url"]
    assert (await eager_done(api, image_id, headers))["eager"][0]["height"] == 24
    old_url = sign_url(f"/i/{image_id}/w_20/a.png", OPERATOR_SECRET)
    assert size_of(await api.http.get(old_url)) == (20, 15)
    prefix = f"{user_id}/{image_id}/"
    before = await keys_under(api, prefix)

    new_png = make_image("png", 80, 40)
    replaced = await put_file(api, image_id, headers, new_png)
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["id"] == image_id and body["version"] == 2
    assert (body["width"], body["height"], body["format"]) == (80, 40, "png")
    assert body["size_bytes"] == len(new_png) and body["original_filename"] == "Cat.jpg"
    assert f"/i/{image_id}/v_2/Cat.png?" in body["url"]
    me = (await api.http.get("/api/me", headers=headers)).json()
    assert me["storage_used_bytes"] == len(new_png) and me["image_count"] == 1

    # every URL, old or new, answers the new pixels at once in this process
    assert size_of(await api.http.get(old_url)) == (20, 10)
    assert size_of(await api.http.get(body["url"])) == (80, 40)
    minted = await api.http.post(
        f"/api/images/{image_id}/url", headers=headers, json={"transform": "w_40"}
    )
    assert "/v_2/w_40/" in minted.json()["url"]
    assert size_of(await api.http.get(minted.json()["url"])) == (40, 20)
    download = await api.http.get(f"/api/images/{image_id}/download", headers=headers)
    assert download.content == new_png

    # the old original and the old derivative's object are gone, the row of the old one too
    after = await keys_under(api, prefix)
    assert not (before & after), (before, after)
    assert any(re.fullmatch(rf"{prefix}original\.v2-[0-9a-f]{{8}}\.png", key) for key in after)
    # the eager derivative was made again, from the new pixels, at its versioned URL
    again = (await eager_done(api, image_id, headers))["eager"]
    assert [(e["width"], e["height"]) for e in again] == [(32, 16)]  # type: ignore[index]
    assert "/v_2/w_32/" in again[0]["url"]  # type: ignore[index]
    assert size_of(await api.http.get(again[0]["url"])) == (32, 16)  # type: ignore[index]
    deliveries = await api.http.get(
        f"/api/webhooks/{hook.json()['id']}/deliveries", headers=headers
    )
    assert [d["event_type"] for d in deliveries.json()["items"]] == ["image.replaced"]


async def test_a_refused_replace_changes_nothing(local_api: Api) -> None:
    _, headers = await local_api.user()
    uploaded = await local_api.upload(headers, make_image(width=64, height=48))
    image = uploaded.json()
    url = sign_url(f"/i/{image['id']}/w_16/a.png", OPERATOR_SECRET)
    assert size_of(await local_api.http.get(url)) == (16, 12)
    assert_error(await put_file(local_api, image["id"], headers, b"not an image"), 415)
    assert_error(await put_file(local_api, image["id"], headers, b""), 400)
    _, stranger = await local_api.user()
    assert_error(await put_file(local_api, image["id"], stranger, make_image("png")), 404)
    unknown = await local_api.http.put(
        f"/api/images/{image['id']}", headers=headers, json={"url": "x", "eager": []}
    )
    assert_error(unknown, 400)
    after = (await local_api.http.get(f"/api/images/{image['id']}", headers=headers)).json()
    assert after == image
    assert size_of(await local_api.http.get(url)) == (16, 12)
    me = (await local_api.http.get("/api/me", headers=headers)).json()
    assert me["storage_used_bytes"] == image["size_bytes"]


async def test_a_multipart_replace_refuses_other_fields(local_api: Api) -> None:
    """As the JSON replace does: ``public`` or ``eager`` beside the file was dropped without
    a word (200, the image still public)."""
    _, headers = await local_api.user()
    image_id = (await local_api.upload(headers, make_image())).json()["id"]
    for extra in ({"public": "false"}, {"eager": "[]"}, {"other": "x"}):
        answer = await local_api.http.put(
            f"/api/images/{image_id}",
            headers=headers,
            data=extra,
            files={"file": ("b.png", make_image("png", 80, 40))},
        )
        assert_error(answer, 400, "bad_request")
        assert next(iter(extra)) in answer.json()["error"]["message"]
    shown = (await local_api.http.get(f"/api/images/{image_id}", headers=headers)).json()
    assert shown["version"] == 1 and shown["format"] == "jpeg"


@pytest.mark.parametrize("api_env", [{"USER_QUOTA_BYTES": "6000"}])
async def test_a_replace_is_charged_the_difference(local_api: Api) -> None:
    _, headers = await local_api.user()
    small = make_image(width=16, height=16)
    image = (await local_api.upload(headers, small)).json()
    big = pyvips.Image.gaussnoise(100, 100).cast("uchar").write_to_buffer(".png")
    assert len(big) > 6000
    assert_error(await put_file(local_api, image["id"], headers, big), 413, "quota_exceeded")
    fits = make_image("png", 24, 24)
    assert (await put_file(local_api, image["id"], headers, fits)).status_code == 200
    me = (await local_api.http.get("/api/me", headers=headers)).json()
    assert me["storage_used_bytes"] == len(fits)


async def test_a_stale_replace_is_refused_in_the_store(local_api: Api) -> None:
    user_id, headers = await local_api.user()
    image_id = (await local_api.upload(headers, make_image())).json()["id"]
    assert (await put_file(local_api, image_id, headers, make_image("png"))).status_code == 200
    images = local_api.services.images
    now = await images.get(image_id)
    assert now is not None and now.version == 2
    stale = dataclasses.replace(now, version=1)
    with pytest.raises(ReplacedMeanwhile):
        await images.replace(stale, dataclasses.replace(now, version=2), 10**9)
    assert user_id == now.user_id


async def test_two_replaces_at_once_leave_the_winners_objects_whole(local_api: Api) -> None:
    """The one refused (409) removes only what it wrote: both once wrote the same
    ``.v2`` keys, and the loser's clean-up removed the winner's original (a row without
    its object: every URL of the image 404)."""
    _, headers = await local_api.user()
    image_id = (await local_api.upload(headers, make_image())).json()["id"]
    red, blue = make_image("png", 60, 30), make_image("png", 90, 30)
    for _ in range(3):
        answers = await asyncio.gather(
            put_file(local_api, image_id, headers, red),
            put_file(local_api, image_id, headers, blue),
        )
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        won = next(a for a in answers if a.status_code == 200).json()
        row = await local_api.services.images.get(image_id)
        assert row is not None
        keys = await keys_under(local_api, f"{row.user_id}/{image_id}/")
        assert row.storage_key in keys and all(c.storage_key in keys for c in row.working_copies)
        download = await local_api.http.get(f"/api/images/{image_id}/download", headers=headers)
        assert download.status_code == 200 and download.content in (red, blue)
        assert size_of(await local_api.http.get(won["url"])) == (won["width"], won["height"])


def slow_replace(
    api: Api, image_id: str, headers: dict[str, str], png: bytes, gate: asyncio.Event
) -> asyncio.Task[httpx.Response]:
    """A multipart replace whose body waits at ``gate`` after its first 100 bytes: the
    replace has read the image's row, and waits for its file."""
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=n.png\r\n"
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:100]
        await gate.wait()
        yield body[100:]

    return asyncio.create_task(
        api.http.put(
            f"/api/images/{image_id}",
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=slowly(),
        )
    )


async def test_a_replace_that_loses_to_a_delete_is_404_and_leaves_nothing(
    local_api: Api,
) -> None:
    """The image is deleted while the replace's body arrives: the replace answers 404
    ``not_found``, as a replace of a deleted image does (it said 409 "replaced or deleted
    meanwhile"), and leaves no object and no charge behind."""
    _, headers = await local_api.user()
    image_id = (await local_api.upload(headers, make_image())).json()["id"]
    gate = asyncio.Event()
    replace = slow_replace(local_api, image_id, headers, make_image("png", 80, 40), gate)
    await asyncio.sleep(0.2)
    deleted = await local_api.http.delete(f"/api/images/{image_id}", headers=headers)
    assert deleted.status_code == 204
    gate.set()
    assert_error(await replace, 404, "not_found")
    me = (await local_api.http.get("/api/me", headers=headers)).json()
    assert me["storage_used_bytes"] == 0
    assert await keys_under(local_api, f"{me['id']}/{image_id}/") == set()


async def test_eager_derivatives_asked_for_during_a_replace_are_made_again(
    local_api: Api,
) -> None:
    """The list to ask again was read before the replace's body arrived: an entry added
    meanwhile (202 queued) was removed at the commit and never made."""
    _, headers = await local_api.user()
    image_id = (await local_api.upload(headers, make_image())).json()["id"]
    gate = asyncio.Event()
    replace = slow_replace(local_api, image_id, headers, make_image("png", 80, 40), gate)
    await asyncio.sleep(0.2)
    asked = await local_api.http.post(
        f"/api/images/{image_id}/eager",
        headers=headers,
        json={"eager": [{"transform": "w_40", "format": "webp"}]},
    )
    assert asked.status_code == 202, asked.text
    gate.set()
    replaced = await replace
    assert replaced.status_code == 200, replaced.text
    done = await eager_done(local_api, image_id, headers)
    made = {(e["transform"], e["format"]): e for e in done["eager"]}  # type: ignore[union-attr]
    assert ("w_40", "webp") in made, done["eager"]
    assert (made["w_40", "webp"]["width"], made["w_40", "webp"]["height"]) == (40, 20)
    assert size_of(await local_api.http.get(made["w_40", "webp"]["url"])) == (40, 20)


async def test_a_process_still_holding_the_old_row_renders_the_new_pixels(
    local_api: Api,
) -> None:
    """Another worker's replace removes the old objects at its commit; this process's row
    cache (up to 3 s) still names them. The render finds them gone: the row is read again
    and the new version rendered (was 404 "no such image" for an image that exists)."""
    _, headers = await local_api.user()
    image_id = (await local_api.upload(headers, make_image("jpeg", 64, 48))).json()["id"]
    assert size_of(
        await local_api.http.get(sign_url(f"/i/{image_id}/w_20/a.png", OPERATOR_SECRET))
    ) == (20, 15)
    services = local_api.services
    old = await services.images.get(image_id)
    assert old is not None
    user = await services.users.by_id(old.user_id)
    assert user is not None
    await replace_upload(services, user, old, make_image("png", 80, 40))  # as another worker
    fresh = await local_api.http.get(sign_url(f"/i/{image_id}/w_40/a.png", OPERATOR_SECRET))
    assert size_of(fresh) == (40, 20)  # the new pixels' shape (the old was 64x48)
    assert size_of(
        await local_api.http.get(sign_url(f"/i/{image_id}/w_30/a.png", OPERATOR_SECRET))
    ) == (30, 15)
