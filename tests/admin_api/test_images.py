"""Images (admin_api.images) through HTTP: uploads, listing, download, deletion and quotas,
on every (database × storage) pair — every test twice, the files sent as multipart and
uploaded from a URL (the same contract; test_url_upload.py has what only a fetch can do)."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import unquote

import pytest
import pyvips

from origin.signing import signature
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.conftest import OPERATOR_SECRET


@pytest.fixture(params=["multipart", "url"])
def upload_via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


FORMATS = {
    "jpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "gif": ("image/gif", "gif"),
    "webp": ("image/webp", "webp"),
    "avif": ("image/avif", "avif"),
}


def operator_signed(url: str) -> bool:
    path, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    return params["s"] == signature(OPERATOR_SECRET, path, params.get("exp"))


async def object_keys(api: Api) -> list[str]:
    return sorted([info.key async for info in api.services.storage.objects()])


async def usage(api: Api, headers: dict[str, str]) -> tuple[int, int]:
    me = (await api.http.get("/api/me", headers=headers)).json()
    return me["image_count"], me["storage_used_bytes"]


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_upload_each_format(api: Api, fmt: str) -> None:
    user_id, headers = await api.user()
    data = make_image(fmt, 64, 48)
    response = await api.upload(headers, data, filename=f"holiday photo.{FORMATS[fmt][1]}")
    assert response.status_code == 201, response.text
    image = response.json()
    assert set(image) == {
        "id",
        "original_filename",
        "mime_type",
        "size_bytes",
        "width",
        "height",
        "format",
        "created_at",
        "metadata",
        "url",
        "thumbnail_url",
        "public",
        "version",
        "eager",
    }
    assert image["public"] is False  # the account's default
    assert (image["format"], image["mime_type"]) == (fmt, FORMATS[fmt][0])
    assert (image["width"], image["height"], image["size_bytes"]) == (64, 48, len(data))
    assert image["original_filename"] == f"holiday photo.{FORMATS[fmt][1]}"
    assert image["url"].startswith(f"/i/{image['id']}/") and operator_signed(image["url"])
    assert image["thumbnail_url"].startswith(f"/i/{image['id']}/") and operator_signed(
        image["thumbnail_url"]
    )
    key = f"{user_id}/{image['id']}/original.{FORMATS[fmt][1]}"
    assert await object_keys(api) == [key]
    assert await api.services.storage.get(key) == data
    assert await usage(api, headers) == (1, len(data))
    record = await api.services.images.get(image["id"])
    assert record is not None and record.content_hash == hashlib.sha256(data).hexdigest()


async def test_upload_records_displayed_size_and_exif_without_gps(api: Api) -> None:
    _, headers = await api.user()
    image = pyvips.Image.new_from_buffer(make_image("jpeg", 80, 40), "").copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Make", "TestCam")
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd3-GPSLatitudeRef", "N")
    data = image.jpegsave_buffer(keep=pyvips.enums.ForeignKeep.ALL)
    body = (await api.upload(headers, data)).json()
    assert (body["width"], body["height"]) == (40, 80)
    assert body["metadata"].get("Make") == "TestCam"
    assert not any("gps" in key.lower() for key in body["metadata"])


async def test_upload_too_large_is_413_and_leaves_nothing(api: Api, make_settings) -> None:  # type: ignore[no-untyped-def]
    _, headers = await api.user()
    limit = api.services.settings.max_upload_size
    big = make_image("png", 32, 32) + b"\0" * limit
    assert_error(await api.upload(headers, big), 413, "file_too_large")
    assert await object_keys(api) == [] and await usage(api, headers) == (0, 0)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (  # an SVG is drawn (tests/admin_api/test_svg_api.py), but never with entities
            b"<?xml version='1.0'?><!DOCTYPE svg [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
            b"<svg xmlns='http://www.w3.org/2000/svg'><text>&x;</text></svg>",
            422,
            "invalid_image",
        ),
        (b"%PDF-1.4\n%...", 415, "unsupported_media_type"),
        (
            b"push graphic-context\nviewbox 0 0 640 480\nimage over 0,0 0,0 'https://x'\n",
            415,
            "unsupported_media_type",
        ),
        (b"\xff\xd8\xff\xe0" + b"<?php system($_GET['c']); ?>" * 10, 422, "invalid_image"),
        (b"GIF89a" + b"alert(document.cookie)//" * 5, 422, "invalid_image"),
    ],
)
async def test_bad_files_are_refused_and_leave_nothing(
    api: Api, data: bytes, status: int, code: str
) -> None:
    _, headers = await api.user()
    assert_error(await api.upload(headers, data, filename="x.jpg"), status, code)
    assert await object_keys(api) == [] and await usage(api, headers) == (0, 0)


async def test_truncated_image_is_422(api: Api) -> None:
    _, headers = await api.user()
    data = make_image("png", 200, 200)
    assert_error(await api.upload(headers, data[: len(data) // 2]), 422, "invalid_image")
    assert await object_keys(api) == []


async def test_upload_needs_a_file_field(api: Api) -> None:
    _, headers = await api.user()
    missing = await api.http.post(
        "/api/images", headers=headers, files={"other": ("a.png", b"123")}
    )
    assert_error(missing, 400)
    not_multipart = await api.http.post("/api/images", headers=headers, json={"file": "x"})
    assert_error(not_multipart, 400)
    empty = await api.upload(headers, b"")
    assert_error(empty, 400)
    assert_error(await api.upload({}, make_image()), 401)
    for boundary in ("B" * 257, "B" * 70):  # past python-multipart's 256 (was a 500), and RFC's 70
        body = (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n"
                f"Content-Type: image/png\r\n\r\n"
            ).encode()
            + make_image()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        answer = await api.http.post(
            "/api/images",
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=body,
        )
        if len(boundary) > 256:
            assert_error(answer, 400)
        else:
            assert answer.status_code == 201, answer.text


def noisy_jpeg(size: int) -> bytes:
    """A real JPEG of about ``size`` bytes (noise compresses badly)."""
    side = int((size / 2.3) ** 0.5)
    red, green, blue = (pyvips.Image.gaussnoise(side, side, sigma=60).cast("uchar") for _ in "rgb")
    data: bytes = red.bandjoin([green, blue]).copy(interpretation="srgb").jpegsave_buffer(Q=95)
    return data


async def test_a_file_under_another_field_name_is_named_as_missing(local_api: Api) -> None:
    """Not "other form fields are too large": a 259 KB photo sent as ``image``."""
    _, headers = await local_api.user()
    photo = noisy_jpeg(259_000)
    assert 200_000 < len(photo) < 400_000
    for data in (photo, make_image()):  # past the bound for other fields, and within it
        answer = await local_api.http.post(
            "/api/images", headers=headers, files={"image": ("cat.jpg", data, "image/jpeg")}
        )
        assert_error(answer, 400, "bad_request")
        message = answer.json()["error"]["message"]
        assert "no 'file' field" in message and "'image'" in message, message
        assert "too large" not in message
    # a large plain field next to the file is still called what it is
    answer = await local_api.http.post(
        "/api/images",
        headers=headers,
        data={"notes": "x" * 100_000},
        files={"file": ("cat.jpg", make_image(), "image/jpeg")},
    )
    assert_error(answer, 400, "bad_request")
    assert answer.json()["error"]["message"] == "form fields other than 'file' are too large"
    # and a large 'file' sent as a plain field (no filename) is told so
    plain = await local_api.http.post(
        "/api/images", headers=headers, files={"file": (None, b"x" * 100_000)}
    )
    assert_error(plain, 400, "bad_request")
    assert "with a filename" in plain.json()["error"]["message"]
    assert (await local_api.http.get("/api/me", headers=headers)).json()["image_count"] == 0


QUOTA_IMAGE = make_image("png", 64, 64)


@pytest.mark.parametrize("api_env", [{"USER_QUOTA_BYTES": str(2 * len(QUOTA_IMAGE) + 10)}])
async def test_quota_is_enforced_and_nothing_is_counted_twice(
    api: Api, api_env: dict[str, str]
) -> None:
    _, headers = await api.user()
    answers = [await api.upload(headers, QUOTA_IMAGE) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert_error(answers[2], 413, "quota_exceeded")
    assert await usage(api, headers) == (2, 2 * len(QUOTA_IMAGE))
    assert len(await object_keys(api)) == 2
    # deleting one frees its bytes, and the next upload fits again
    assert (
        await api.http.delete(f"/api/images/{answers[0].json()['id']}", headers=headers)
    ).status_code == 204
    assert (await api.upload(headers, QUOTA_IMAGE)).status_code == 201
    assert await usage(api, headers) == (2, 2 * len(QUOTA_IMAGE))


@pytest.mark.parametrize("api_env", [{"USER_QUOTA_BYTES": str(len(QUOTA_IMAGE) * 3 // 2)}])
async def test_concurrent_uploads_never_both_pass_the_quota(
    api: Api, api_env: dict[str, str]
) -> None:
    _, headers = await api.user()
    data = QUOTA_IMAGE
    answers = await asyncio.gather(*(api.upload(headers, data) for _ in range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 413, 413, 413]
    assert len(await object_keys(api)) == 1
    assert await usage(api, headers) == (1, len(data))


async def test_listing_pages_newest_first(api: Api) -> None:
    _, headers = await api.user()
    ids = []
    for _ in range(5):
        ids.append((await api.upload(headers, make_image("png", 16, 16))).json()["id"])
    seen = []
    for page in (1, 2, 3):
        body = (await api.http.get(f"/api/images?page={page}&limit=2", headers=headers)).json()
        assert (body["page"], body["limit"], body["total"]) == (page, 2, 5)
        seen += [item["id"] for item in body["items"]]
    assert seen == list(reversed(ids))
    default = (await api.http.get("/api/images", headers=headers)).json()
    assert default["limit"] == 20 and len(default["items"]) == 5
    past_end = (await api.http.get("/api/images?page=9", headers=headers)).json()
    assert past_end["items"] == [] and past_end["total"] == 5


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "limit=0",
        "limit=101",
        "page=abc",
        "limit=1.5",
        "page=99999999999999999999",
        "page=1000000000&limit=100",
        "sort=name",
        "limit=5&limit=2",
        "page=9&page=1",
    ],
)
async def test_listing_refuses_bad_parameters(local_api: Api, query: str) -> None:
    _, headers = await local_api.user()
    assert_error(await local_api.http.get(f"/api/images?{query}", headers=headers), 400)


async def test_other_users_images_are_404_everywhere(api: Api) -> None:
    _, owner = await api.user()
    _, stranger = await api.user()
    image = (await api.upload(owner, make_image())).json()
    for method, path in [
        ("GET", f"/api/images/{image['id']}"),
        ("GET", f"/api/images/{image['id']}/download"),
        ("GET", f"/api/images/{image['id']}/transform?resize=10x10"),
        ("POST", f"/api/images/{image['id']}/url"),
        ("DELETE", f"/api/images/{image['id']}"),
    ]:
        answer = await api.http.request(
            method, path, headers=stranger, json={} if method == "POST" else None
        )
        assert_error(answer, 404, "not_found")
    assert (await api.http.get(f"/api/images/{image['id']}", headers=owner)).status_code == 200
    assert (await api.http.get("/api/images", headers=stranger)).json()["total"] == 0


async def test_get_and_download(api: Api) -> None:
    _, headers = await api.user()
    data = make_image("webp")
    image = (
        await api.upload(headers, data, filename='../../etc/"evil"\r\nX-Injected: 1.webp')
    ).json()
    assert "/" not in image["original_filename"] and "\r" not in image["original_filename"]
    got = await api.http.get(f"/api/images/{image['id']}", headers=headers)
    assert got.json() == image
    download = await api.http.get(f"/api/images/{image['id']}/download", headers=headers)
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "image/webp"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "\r" not in disposition and "\n" not in disposition and '\\"' not in disposition
    ascii_name = disposition.split('filename="')[1].split('"')[0]
    assert "/" not in ascii_name and ".." not in ascii_name
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == image["original_filename"]
    assert "x-injected" not in download.headers


async def test_delete_removes_row_objects_and_usage(api: Api) -> None:
    user_id, headers = await api.user()
    keep = (await api.upload(headers, make_image("png", 20, 20))).json()
    gone = (await api.upload(headers, make_image("png", 30, 30))).json()
    # a derivative stored for the image goes with it
    derived_key = f"{user_id}/{gone['id']}/derived/abc.webp"
    await api.services.storage.put(derived_key, b"derived")
    before = await usage(api, headers)
    assert (await api.http.delete(f"/api/images/{gone['id']}", headers=headers)).status_code == 204
    assert_error(await api.http.get(f"/api/images/{gone['id']}", headers=headers), 404, "not_found")
    assert_error(
        await api.http.delete(f"/api/images/{gone['id']}", headers=headers), 404, "not_found"
    )
    assert await object_keys(api) == [f"{user_id}/{keep['id']}/original.png"]
    count, used = await usage(api, headers)
    assert count == before[0] - 1 and used == before[1] - gone["size_bytes"]


@pytest.mark.parametrize(
    "bad_id", ["nothex", "..%2F..%2Fetc", "0" * 31, "0" * 33, "A" * 32, "x" * 5000]
)
async def test_odd_ids_are_404(local_api: Api, bad_id: str) -> None:
    _, headers = await local_api.user()
    assert_error(await local_api.http.get(f"/api/images/{bad_id}", headers=headers), 404)
    assert_error(await local_api.http.delete(f"/api/images/{bad_id}", headers=headers), 404)


async def test_an_encoded_slash_is_no_separator(local_api: Api) -> None:
    """Paths are exact: ``{id}%2Fdownload`` downloaded the original (Starlette routes on the
    decoded path)."""
    _, headers = await local_api.user()
    image = (await local_api.upload(headers, make_image())).json()
    for method, path in (
        ("GET", f"/api/images/{image['id']}%2Fdownload"),
        ("GET", f"/api/images/{image['id']}%2fdownload"),
        ("DELETE", f"/api/images/{image['id']}%2F"),
    ):
        answer = await local_api.http.request(method, path, headers=headers)
        assert answer.request.url.raw_path.endswith(path.rsplit("/", 1)[1].encode())
        assert_error(answer, 404, "not_found")
    assert (
        await local_api.http.get(f"/api/images/{image['id']}", headers=headers)
    ).status_code == 200
