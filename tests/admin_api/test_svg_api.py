"""SVG through real HTTP: an upload (as a file and from a URL) is stored as the PNG it is
drawn to and delivered from it; every hostile document of tests/origin/test_svg.py (as a
file; the ones naming a URL also from a URL) is refused (422) or stored inert, and nothing is
fetched; f_auto never answers SVG."""

from __future__ import annotations

import asyncio

import pytest
import pyvips

from tests.admin_api.conftest import Api, assert_error
from tests.origin.test_svg import FLAG, hostile


@pytest.fixture(params=["multipart", "url"])
def upload_via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def decoded(body: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


async def test_an_svg_is_stored_as_its_png_and_delivered(api: Api) -> None:
    user_id, headers = await api.user()
    answer = await api.upload(headers, FLAG, "flag.svg")
    assert answer.status_code == 201, answer.text
    image = answer.json()
    assert (image["width"], image["height"], image["mime_type"]) == (2048, 1024, "image/png")
    stored = await api.http.get(f"/api/images/{image['id']}/download", headers=headers)
    assert stored.content.startswith(b"\x89PNG")
    assert image["size_bytes"] == len(stored.content)  # the quota counts what is stored
    keys = sorted([info.key async for info in api.services.storage.objects()])
    assert f"{user_id}/{image['id']}/original.png" in keys

    thumb = await api.http.get(f"/i/{image['id']}/w_200/flag.png", headers=headers)
    assert thumb.status_code == 200, thumb.text
    img = decoded(thumb.content)
    assert (img.width, img.height) == (200, 100)
    assert img.getpoint(20, 50)[:3] == [255, 0, 0]
    assert img.getpoint(150, 50)[:3] == [0, 0, 255]
    assert img.getpoint(150, 3)[3] == 0  # transparency kept

    # f_auto picks among raster formats only, whatever the browser accepts
    for accept in ("image/svg+xml", "image/svg+xml,image/webp,*/*", "*/*"):
        auto = await api.http.get(
            f"/i/{image['id']}/w_100,f_auto/flag.png", headers={**headers, "Accept": accept}
        )
        assert auto.status_code == 200, auto.text
        assert auto.headers["content-type"] in ("image/png", "image/webp", "image/avif"), accept


async def uploads_refused_or_inert(
    api: Api, documents: dict[str, tuple[bytes, str | None]]
) -> None:
    """Each document uploaded: 422 with its refusal, or stored (drawn inert); nothing fetched
    but the uploads themselves; the user's image count is what was stored."""
    assert api.sources is not None
    _, headers = await api.user()
    api.sources.seen.clear()
    stored = 0
    for name, (data, refusal) in documents.items():
        answer = await api.upload(headers, data, "hostile.svg")
        if refusal is None:
            assert answer.status_code == 201, (name, answer.text)
            stored += 1
        else:
            assert_error(answer, 422, "invalid_image")
            assert answer.json()["error"]["message"].startswith(refusal), name
    await asyncio.sleep(0.2)  # anything in flight would have arrived
    # only the upload itself, when it came from a URL, was fetched
    assert [s.path for s in api.sources.seen if not s.path.startswith("/files/")] == []
    me = (await api.http.get("/api/me", headers=headers)).json()
    assert me["image_count"] == stored


@pytest.mark.parametrize("upload_via", ["multipart"])
async def test_hostile_svgs_are_refused_or_inert_and_fetch_nothing(local_api: Api) -> None:
    assert local_api.sources is not None  # every document, on both databases
    await uploads_refused_or_inert(local_api, hostile(local_api.sources))


@pytest.mark.parametrize("upload_via", ["url"])
async def test_hostile_svgs_uploaded_from_a_url_fetch_only_themselves(local_api: Api) -> None:
    """The documents that name the trap server, fetched from a URL (the same drawing as a
    file's: the whole set runs above and in tests/origin/test_svg.py)."""
    assert local_api.sources is not None
    trap = local_api.sources.url("/trap").encode()
    documents = {n: d for n, d in hostile(local_api.sources).items() if trap in d[0]}
    assert len(documents) >= 15
    await uploads_refused_or_inert(local_api, documents)
