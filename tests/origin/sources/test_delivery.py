"""``/r/…`` answers as ``/i/…`` does: every transform, the output format from ``@``, f_auto,
Client Hints, ``.json``, HEAD, ETag/304, policies — asserted on pixels and sizes."""

from __future__ import annotations

import json

import pytest

from origin.signing import sign_policy
from tests.conftest import OPERATOR_SECRET
from tests.origin.delivery.conftest import decode, encoded, pixel
from tests.origin.sources.conftest import Remote

PHOTO = "/media/shop/red%20shoes/caf%C3%A9.png"  # as the website serves it
OBJECT = "shop/red%20shoes/caf%C3%A9.png"  # the same object in a /r/ URL


@pytest.fixture
def photo(remote: Remote) -> Remote:
    remote.web.conditional(PHOTO, encoded("png", 400, 300))
    return remote


async def test_a_fit_in_every_output_format(photo: Remote) -> None:
    for suffix, media in (
        ("@webp", "image/webp"),
        ("@jpg", "image/jpeg"),
        ("@avif", "image/avif"),
        ("@gif", "image/gif"),
        ("", "image/png"),
    ):
        answer = await photo.get(f"/r/web/w_200/-/{OBJECT}{suffix}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media
        image = decode(answer.content)
        assert (image.width, image.height) == (200, 150)
        assert pixel(image, 20, 20)[0] > 180  # top-left stays red
    assert photo.web.count(PHOTO) == 1  # one fetch for every derivative


async def test_a_chain_of_stages_crops_the_right_quadrant(photo: Remote) -> None:
    answer = await photo.get(f"/r/web/c_crop,x_200,y_150,w_200,h_150/w_100/-/{OBJECT}@png")
    image = decode(answer.content)
    assert (image.width, image.height) == (100, 75)
    assert pixel(image, 50, 37) == [240, 230, 20]  # the yellow bottom-right quadrant


async def test_metadata_head_and_etag(photo: Remote) -> None:
    meta = await photo.get(f"/r/web/w_100/-/{OBJECT}@json")
    assert meta.status_code == 200 and meta.headers["content-type"] == "application/json"
    facts = json.loads(meta.content)
    assert (facts["width"], facts["height"]) == (100, 75)
    assert facts["format"] == "png" and facts["blurhash"] and facts["dominant_color"]

    url = photo.signed(f"/r/web/w_120/-/{OBJECT}@webp")
    first = await photo.service.http.get(url)
    head = await photo.service.http.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == first.headers["etag"]
    assert head.headers["content-length"] == str(len(first.content))
    again = await photo.service.http.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert first.headers["cache-control"] == "public, max-age=600"  # the source's max_age


async def test_an_expiring_url_is_fresh_until_it_expires(photo: Remote) -> None:
    url = photo.signed(f"/r/web/w_90/-/{OBJECT}@png", expires_in=120)
    answer = await photo.service.http.get(url)
    assert answer.status_code == 200
    control = answer.headers["cache-control"]
    assert control.endswith("must-revalidate")
    assert 100 <= int(control.split("max-age=")[1].split(",")[0]) <= 120
    expired = await photo.service.http.get(photo.signed(f"/r/web/w_90/-/{OBJECT}@png", exp=1))
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "url_expired"


async def test_f_auto_negotiates_and_says_vary(photo: Remote) -> None:
    url = photo.signed(f"/r/web/w_100,f_auto/-/{OBJECT}")
    avif = await photo.service.http.get(url, headers={"Accept": "image/avif,image/webp,*/*"})
    plain = await photo.service.http.get(url, headers={"Accept": "*/*"})
    assert avif.headers["content-type"] == "image/avif"
    assert plain.headers["content-type"] == "image/png"  # the object's own format
    assert "Accept" in avif.headers["vary"]
    assert avif.headers["etag"] != plain.headers["etag"]


async def test_client_hints_pick_the_width(photo: Remote) -> None:
    url = photo.signed(f"/r/web/w_auto/-/{OBJECT}@png")
    answer = await photo.service.http.get(url, headers={"Sec-CH-Width": "300"})
    assert answer.status_code == 200, answer.text
    assert decode(answer.content).width == 320  # snapped up to an AUTO_WIDTHS entry
    assert "Sec-CH-Width" in answer.headers["vary"]


async def test_a_policy_signs_a_family_of_source_urls(photo: Remote) -> None:
    url = sign_policy(f"/r/web/w_*,c_fit/-/{OBJECT}@*", OPERATOR_SECRET, "w_100-200.f_webp-png")
    good = await photo.service.http.get(url.replace("w_*", "w_200").replace("@*", "@webp"))
    assert good.status_code == 200, good.text
    assert decode(good.content).width == 200
    off_list = await photo.service.http.get(url.replace("w_*", "w_300").replace("@*", "@webp"))
    assert off_list.status_code == 403
    wrong_format = await photo.service.http.get(url.replace("w_*", "w_100").replace("@*", "@jpg"))
    assert wrong_format.status_code == 403


async def test_an_at_sign_in_a_name_is_part_of_the_name(remote: Remote) -> None:
    remote.web.conditional("/media/logo%402x.png", encoded("png", 64, 64))
    remote.web.conditional("/media/logo%40webp", encoded("png", 32, 32))
    retina = await remote.get("/r/web/w_10/-/logo@2x.png")
    assert retina.status_code == 200 and retina.headers["content-type"] == "image/png"
    named = await remote.get("/r/web/-/logo%40webp")  # "@webp" written %40webp: the name
    assert named.status_code == 200 and decode(named.content).width == 32


async def test_image_overlays_are_for_uploads(photo: Remote) -> None:
    answer = await photo.get(f"/r/web/l_{'0' * 32}/-/{OBJECT}@png")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_transform"
    assert photo.web.count(PHOTO) == 0  # refused before any fetch


async def test_a_bad_transform_is_400_before_any_fetch(photo: Remote) -> None:
    answer = await photo.get(f"/r/web/w_nope/-/{OBJECT}@png")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_transform"
    assert photo.web.count(PHOTO) == 0


async def test_q_auto_and_the_stored_tier(photo: Remote) -> None:
    service = photo.service
    answer = await photo.get(f"/r/web/w_200,q_auto/-/{OBJECT}@webp")
    assert answer.status_code == 200 and decode(answer.content).width == 200
    await service.origin.derivatives.drain()
    key = service.origin.derivatives.memory._lru.keys()  # the derivative just rendered
    (made,) = [k for k in key if k.canonical.endswith("f_webp,q_auto")]
    rows = service.services.source_derivatives
    choice = await rows.auto_quality(made.image_id, made.choice)
    assert choice is not None and 30 <= choice.quality <= 95  # kept with the object's rows
    assert await rows.get(made.image_id, made.variant) is not None
    service.origin.derivatives.memory.forget_image(made.image_id)
    before = await service.metric("imgorigin_cache_hits_total", tier="store")
    again = await photo.get(f"/r/web/w_200,q_auto/-/{OBJECT}@webp")
    assert again.content == answer.content
    assert await service.metric("imgorigin_cache_hits_total", tier="store") == before + 1
    assert photo.web.count(PHOTO) == 1


async def test_an_svg_object_is_drawn_then_transformed(remote: Remote) -> None:
    from tests.origin.test_svg import FLAG  # a red square, a blue circle: 200×100

    remote.web.conditional("/media/flag.svg", FLAG)
    for suffix, media in (("@png", "image/png"), ("", "image/png"), ("@webp", "image/webp")):
        answer = await remote.get(f"/r/web/w_100/-/flag.svg{suffix}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media
        image = decode(answer.content)
        assert (image.width, image.height) == (100, 50)
        red, blue = pixel(image, 10, 25), pixel(image, 75, 25)
        assert red[0] > 240 and max(red[1:3]) < 15, red  # webp is lossy
        assert blue[2] > 240 and max(blue[:2]) < 15, blue
    assert remote.web.count("/media/flag.svg") == 1
