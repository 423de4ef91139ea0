"""``POST /api/images/{id}/url`` (admin_api.urls) through HTTP, on every (database ×
storage) pair; the srcset endpoint has its own file (test_srcset.py)."""

from __future__ import annotations

from tests.admin_api.conftest import Api, assert_error, make_image
from tests.admin_api.test_images import operator_signed


async def test_mint_url(api: Api) -> None:
    _, headers = await api.user()
    image = (await api.upload(headers, make_image("jpeg"), filename="My Cat.JPG")).json()
    minted = await api.http.post(
        f"/api/images/{image['id']}/url",
        headers=headers,
        json={
            "transform": "w_300,h_200,c_fill/e_grayscale",
            "name": "photo",
            "format": "webp",
            "expires_in": 3600,
        },
    )
    assert minted.status_code == 200, minted.text
    url = minted.json()["url"]
    assert url.startswith(f"/i/{image['id']}/w_300,h_200,c_fill/e_grayscale/photo.webp?exp=")
    assert operator_signed(url)
    plain = (await api.http.post(f"/api/images/{image['id']}/url", headers=headers)).json()["url"]
    assert plain.startswith(f"/i/{image['id']}/My-Cat.jpg?s=") and operator_signed(plain)
    text = (
        await api.http.post(
            f"/api/images/{image['id']}/url",
            headers=headers,
            json={"transform": "l_text:Hello%2C World,fs_20"},
        )
    ).json()["url"]
    assert "/l_text:Hello%2C%20World,fs_20/" in text and operator_signed(text)
    for bad in [
        {"transform": "w_abc"},
        {"transform": "zz_1"},
        {"transform": "w_100000"},
        {"name": "../x"},
        {"format": "bmp"},
        {"expires_in": -5},
        {"expires_in": "soon"},
        {"transform": 5},
        {"transform": "w_300", "extra": 1},  # was ignored (200)
    ]:
        assert_error(
            await api.http.post(f"/api/images/{image['id']}/url", headers=headers, json=bad), 400
        )
