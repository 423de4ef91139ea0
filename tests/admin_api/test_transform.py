"""``GET /api/images/{id}/transform`` (admin_api.transform) through HTTP, on every
(database × storage) pair."""

from __future__ import annotations

import pyvips

from tests.admin_api.conftest import Api, assert_error, make_image


async def test_transform_query_api(api: Api) -> None:
    _, headers = await api.user()
    image = (await api.upload(headers, make_image("jpeg", 200, 100))).json()
    answer = await api.http.get(
        f"/api/images/{image['id']}/transform?resize=100x&format=png&flip=horizontal",
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["cache-control"] == "private, no-store"
    out = pyvips.Image.new_from_buffer(answer.content, "")
    assert (out.width, out.height) == (100, 50)
    # flipped: the top-left quadrant is now the original top-right (green)
    r, g, _ = out.getpoint(10, 10)[:3]
    assert g > 150 and r < 100
    crop = await api.http.get(
        f"/api/images/{image['id']}/transform?crop=50x40+10+20", headers=headers
    )
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert pyvips.Image.new_from_buffer(crop.content, "").width == 50
    spaced = await api.http.get(
        f"/api/images/{image['id']}/transform?crop=50x40%2B10%2B20", headers=headers
    )
    assert spaced.status_code == 200
    for bad in [
        "resize=abc",
        "unknown=1",
        "rotate=1000",
        "resize=10x10&resize=20x20",
        "format=bmp",
    ]:
        assert_error(
            await api.http.get(f"/api/images/{image['id']}/transform?{bad}", headers=headers), 400
        )
