"""Working copies through the whole app, on every (database × storage) pair: an upload writes
them (objects first, row second, none left when the row fails), the origin renders a small
derivative from one (shown on pixels), falls back to the original when one is missing,
delete removes them and gc keeps them while their row exists. An animated GIF gets its
frames copy on local storage, and its animated derivatives are rendered from it."""

from __future__ import annotations

import pytest
import pyvips

from imgorigin.orphans import collect_garbage
from origin import frames_copy
from origin.render import render
from origin.transforms.parse import parse_path
from origin.transforms.plan import Plan
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.admin_api.test_failures import install_failing_trigger
from tests.admin_api.test_images import object_keys, usage
from tests.origin.test_gif import pan
from tests.origin.test_working_copies import jpeg, mosaic, ssim

MAGENTA = [255, 0, 255]


def plan(chain: str) -> Plan:
    return parse_path(f"/i/{'0' * 32}/{chain}/x.png")


def mosaic_jpeg() -> bytes:
    return jpeg(mosaic())  # 3200×2400: levels 1600×1200 and 800×600


async def upload_big(api: Api) -> tuple[str, str, dict[str, str], bytes]:
    user_id, headers = await api.user()
    data = mosaic_jpeg()
    answer = await api.upload(headers, data)
    assert answer.status_code == 201, answer.text
    return user_id, answer.json()["id"], headers, data


def colour_at(body: bytes, x: int, y: int) -> list[int]:
    img = pyvips.Image.new_from_buffer(body, "")
    return [round(v) for v in img(x, y)[:3]]


def solid_jpeg(width: int, height: int, colour: list[int]) -> bytes:
    img = (pyvips.Image.black(width, height, bands=3) + colour).cast("uchar")
    return bytes(img.copy(interpretation="srgb").jpegsave_buffer(Q=95))


async def test_upload_writes_the_working_copies_outside_the_quota(api: Api) -> None:
    user_id, image_id, headers, data = await upload_big(api)
    record = await api.services.images.get(image_id)
    assert record is not None
    prefix = f"{user_id}/{image_id}"
    assert [(c.width, c.height, c.storage_key) for c in record.working_copies] == [
        (400, 300, f"{prefix}/work/400x300.jpg"),
        (800, 600, f"{prefix}/work/800x600.jpg"),
        (1600, 1200, f"{prefix}/work/1600x1200.jpg"),
    ]
    assert await object_keys(api) == sorted(
        [
            f"{prefix}/original.jpg",
            f"{prefix}/work/400x300.jpg",
            f"{prefix}/work/800x600.jpg",
            f"{prefix}/work/1600x1200.jpg",
        ]
    )
    for copy in record.working_copies:
        img = pyvips.Image.new_from_buffer(await api.services.storage.get(copy.storage_key), "")
        assert (img.width, img.height, img.get("vips-loader")) == (
            copy.width,
            copy.height,
            "jpegload_buffer",
        )
    assert await usage(api, headers) == (1, len(data))  # the original only


@pytest.mark.parametrize(
    "data",
    [make_image("jpeg", 790, 600), make_image("gif", 2000, 1600)],
    ids=["small", "gif"],
)
async def test_small_and_gif_originals_get_none(api: Api, data: bytes) -> None:
    _, headers = await api.user()
    answer = await api.upload(headers, data)
    assert answer.status_code == 201, answer.text
    record = await api.services.images.get(answer.json()["id"])
    assert record is not None and record.working_copies == ()
    assert len(await object_keys(api)) == 1


async def test_a_small_derivative_is_rendered_from_the_smallest_level_that_serves_it(
    api: Api,
) -> None:
    user_id, image_id, headers, _ = await upload_big(api)
    # Paint the 400×300 level magenta: what is rendered from it shows.
    small = f"{user_id}/{image_id}/work/400x300.jpg"
    await api.services.storage.put(small, solid_jpeg(400, 300, MAGENTA), content_type="image/jpeg")

    async def magenta(chain: str) -> bool:
        answer = await api.http.get(f"/i/{image_id}/{chain}/x.png", headers=headers)
        assert answer.status_code == 200, answer.text
        img = pyvips.Image.new_from_buffer(answer.content, "")
        centre = colour_at(answer.content, img.width // 2, img.height // 2)
        return all(abs(a - b) <= 3 for a, b in zip(centre, MAGENTA, strict=True))

    assert await magenta("w_200,h_200,c_fit")
    assert await magenta("w_266,c_fit")  # 266×200: the level is 1.5× that
    assert not await magenta("w_267,c_fit")  # the 800×600 level
    assert not await magenta("x_1500,y_1100,w_200,h_200,c_crop")  # the original
    assert not await magenta("r_90/w_100,c_fit")  # the first stage does not scale


async def test_a_missing_working_copy_falls_back_to_the_original(api: Api) -> None:
    user_id, image_id, headers, data = await upload_big(api)
    await api.services.storage.delete_prefix(f"{user_id}/{image_id}/work/")
    answer = await api.http.get(f"/i/{image_id}/w_300,h_200,c_fit/x.png", headers=headers)
    assert answer.status_code == 200
    assert answer.content == render(data, plan("w_300,h_200,c_fit")).body


async def test_delete_removes_the_working_copies(api: Api) -> None:
    _, image_id, headers, _ = await upload_big(api)
    assert (await api.http.delete(f"/api/images/{image_id}", headers=headers)).status_code == 204
    assert await object_keys(api) == []
    assert await usage(api, headers) == (0, 0)


async def test_gc_keeps_working_copies_of_a_stored_image_and_removes_orphaned_ones(
    api: Api,
) -> None:
    user_id, image_id, _, _ = await upload_big(api)
    before = await object_keys(api)
    assert (await collect_garbage(api.services, min_age=0)).removed == []
    assert await object_keys(api) == before
    # A crash between a delete's rows and its objects: the rows are gone, the objects stay.
    assert await api.services.images.delete(image_id, user_id) is not None
    removed = (await collect_garbage(api.services, min_age=0)).removed
    assert sorted(removed) == before
    assert await object_keys(api) == []


async def test_a_failed_row_removes_the_working_copies_too(api: Api) -> None:
    _, headers = await api.user()
    await install_failing_trigger(api)
    answer = await api.upload(headers, mosaic_jpeg())
    assert_error(answer, 500, "internal_error")
    assert await object_keys(api) == []
    assert await usage(api, headers) == (0, 0)


async def test_derivatives_from_a_level_over_http_match_the_original(api: Api) -> None:
    _, image_id, headers, data = await upload_big(api)
    for chain in ("w_300,h_200,c_fill,g_auto", "w_500,c_fit,e_blur:30", "w_640,h_480,c_pad"):
        answer = await api.http.get(f"/i/{image_id}/{chain}/x.png", headers=headers)
        assert answer.status_code == 200
        from_original = render(data, plan(chain)).body
        assert answer.content != from_original  # made from a level…
        assert ssim(answer.content, from_original) >= 0.99  # …and indistinguishable


async def test_json_describes_the_derivative_served_from_a_level(api: Api) -> None:
    _, image_id, headers, data = await upload_big(api)
    chain = "w_300,h_200,c_fit"
    served = await api.http.get(f"/i/{image_id}/{chain}/x.webp", headers=headers)
    facts = (await api.http.get(f"/i/{image_id}/{chain},f_webp/x.json", headers=headers)).json()
    assert (facts["width"], facts["height"], facts["bytes"]) == (267, 200, len(served.content))
    assert served.content != render(data, parse_path(f"/i/{'0' * 32}/{chain}/x.webp")).body


def local(api: Api) -> bool:
    return api.services.storage.blocking is not None


async def upload_animation(api: Api) -> tuple[str, str, dict[str, str], bytes]:
    user_id, headers = await api.user()
    data = pan()  # 12 frames of 200×150
    answer = await api.upload(headers, data)
    assert answer.status_code == 201, answer.text
    return user_id, answer.json()["id"], headers, data


async def test_an_animated_gif_gets_a_frames_copy_on_local_storage_only(api: Api) -> None:
    user_id, image_id, headers, data = await upload_animation(api)
    record = await api.services.images.get(image_id)
    assert record is not None
    prefix = f"{user_id}/{image_id}"
    assert await usage(api, headers) == (1, len(data))  # the original only
    if not local(api):  # over the network its ~3x bytes would cost more than the decode
        assert record.working_copies == ()
        assert await object_keys(api) == [f"{prefix}/original.gif"]
        return
    key = f"{prefix}/work/200x150.frames"
    assert [(c.width, c.height, c.storage_key) for c in record.working_copies] == [(200, 150, key)]
    assert await object_keys(api) == sorted([f"{prefix}/original.gif", key])
    assert await api.services.storage.get(key) == frames_copy.build(data, 10**9)
    assert (await api.http.delete(f"/api/images/{image_id}", headers=headers)).status_code == 204
    assert await object_keys(api) == []


async def test_animated_derivatives_are_rendered_from_the_frames_copy(api: Api) -> None:
    user_id, image_id, headers, data = await upload_animation(api)
    if not local(api):  # no copy: from the GIF
        answer = await api.http.get(f"/i/{image_id}/w_90,h_60,c_fit/x.gif", headers=headers)
        assert (
            answer.content == render(data, parse_path(f"/i/{'0' * 32}/w_90,h_60,c_fit/x.gif")).body
        )
        return
    # Paint the copy's frames magenta: what is rendered from it shows.
    key = f"{user_id}/{image_id}/work/200x150.frames"
    original = await api.services.storage.get(key)
    pixels = original.index(b"\n", len(frames_copy.MAGIC)) + 1  # after the header line
    magenta = original[:pixels] + bytes(MAGENTA) * (200 * 150 * 12)
    await api.services.storage.put(key, magenta, content_type=frames_copy.MEDIA_TYPE)

    async def get(chain: str, ext: str) -> bytes:
        answer = await api.http.get(f"/i/{image_id}/{chain}/x.{ext}", headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.content

    def is_magenta(body: bytes) -> bool:
        return all(abs(a - b) <= 3 for a, b in zip(colour_at(body, 50, 37), MAGENTA, strict=True))

    assert is_magenta(await get("w_100,h_75,c_fit", "gif"))
    assert is_magenta(await get("w_100,h_75,c_fit", "webp"))
    assert not is_magenta(await get("w_100,h_75,c_fit", "png"))  # one frame: from the GIF

    # the true copy: the answer is byte for byte the one from the GIF itself
    await api.services.storage.put(key, original, content_type=frames_copy.MEDIA_TYPE)
    body = await get("w_120,h_80,c_fill", "gif")
    assert body == render(data, parse_path(f"/i/{'0' * 32}/w_120,h_80,c_fill/x.gif")).body
    # a missing copy: the GIF
    await api.services.storage.delete(key)
    body = await get("w_90,h_60,c_fit", "gif")
    assert body == render(data, parse_path(f"/i/{'0' * 32}/w_90,h_60,c_fit/x.gif")).body
