"""Strict public delivery and named transformations, through HTTP on the whole app.

Users own named transformations (``/api/transformations/{name}``) used as ``t_<name>``; a
public image is served without a signature only at ``/i/<id>/t_<name>[,f_auto][,q_auto]/
<seo>.<ext>`` for a transformation marked ``unsigned`` (or an operator preset marked so),
and every other unsigned URL is 403 ``bad_signature``. Unsigned renders (never cache hits)
are rate limited per image and per owner.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import pyvips

from origin.signing import sign_url
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.conftest import OPERATOR_SECRET

CARD = {"transform": "w_120,h_80,c_fill", "unsigned": True, "formats": ["webp", "jpg"]}


@pytest.fixture
def api_env(tmp_path: Path) -> dict[str, str]:
    presets = tmp_path / "presets.json"
    presets.write_text(
        json.dumps(
            {
                "thumb": "w_50,h_50,c_fill",
                "hero": {"chain": "w_90", "unsigned": True, "formats": ["webp"]},
            }
        )
    )
    return {"PRESETS_FILE": str(presets), "TRANSFORMATIONS_MAX_PER_USER": "3"}


async def public_image(api: Api, filename: str = "My Cat.jpg") -> tuple[str, dict[str, str]]:
    """A new user's public 64×48 JPEG: (image id, bearer headers)."""
    _, headers = await api.user()
    uploaded = await api.http.post(
        "/api/images",
        headers=headers,
        files={"file": (filename, make_image(width=64, height=48), "image/jpeg")},
        data={"public": "true"},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["public"] is True
    return uploaded.json()["id"], headers


async def put(api: Api, headers: dict[str, str], name: str, body: object) -> httpx.Response:
    return await api.http.put(f"/api/transformations/{name}", headers=headers, json=body)


def size_of(answer: httpx.Response) -> tuple[int, int]:
    assert answer.status_code == 200, answer.text
    image = pyvips.Image.new_from_buffer(answer.content, "")
    return image.width, image.height


async def test_a_public_image_is_served_unsigned_only_as_allowed(api: Api) -> None:
    image_id, headers = await public_image(api)
    assert (await put(api, headers, "card", CARD)).status_code == 201
    url = f"/i/{image_id}/t_card/My-Cat.webp"
    answer = await api.http.get(url)
    assert size_of(answer) == (120, 80)
    assert answer.headers["content-type"] == "image/webp"
    assert answer.headers["cache-control"] == "public, max-age=86400"
    again = await api.http.get(url, headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    negotiated = await api.http.get(
        f"/i/{image_id}/t_card,f_auto,q_auto/My-Cat.jpg", headers={"Accept": "image/avif,*/*"}
    )
    assert size_of(negotiated) == (120, 80)
    assert negotiated.headers["content-type"] == "image/avif"
    assert "Accept" in negotiated.headers["vary"]
    # Signed URLs still work as before, and may use the user's transformation too.
    signed = await api.http.get(
        sign_url(f"/i/{image_id}/t_card,e_grayscale/a.png", OPERATOR_SECRET)
    )
    assert size_of(signed) == (120, 80)
    assert signed.headers["cache-control"] == "public, max-age=86400"  # its definition may change

    refused = [
        f"/i/{image_id}/w_300/My-Cat.webp",  # not a named transformation
        f"/i/{image_id}/t_card/other.webp",  # not the image's own name
        f"/i/{image_id}/t_card,w_100/My-Cat.webp",  # an extra token
        f"/i/{image_id}/t_card,q_auto,f_auto/My-Cat.webp",  # not in the documented order
        f"/i/{image_id}/t_card/e_grayscale/My-Cat.webp",  # an extra stage
        f"/i/{image_id}/t_card/My-Cat.png",  # an extension the transformation does not allow
        f"/i/{image_id}/My-Cat.webp",  # the original
        f"/i/{image_id}/t_thumb/My-Cat.webp",  # an operator preset not marked unsigned
        f"/i/{'0' * 32}/t_card/My-Cat.webp",  # no such image: 403 too, nothing revealed
        f"/i/{image_id}/t_card/My-Cat.webp?exp=99999999999",  # a query without s
    ]
    for path in refused:
        assert_error(await api.http.get(path), 403, "bad_signature")

    # An operator preset marked unsigned serves every public image, in its formats only.
    assert size_of(await api.http.get(f"/i/{image_id}/t_hero/My-Cat.webp"))[0] == 90
    assert_error(await api.http.get(f"/i/{image_id}/t_hero/My-Cat.jpg"), 403, "bad_signature")

    # A transformation without `unsigned`, and a private image: 403.
    assert (await put(api, headers, "plain", {"transform": "w_30"})).status_code == 201
    assert_error(await api.http.get(f"/i/{image_id}/t_plain/My-Cat.jpg"), 403, "bad_signature")
    private = await api.http.patch(
        f"/api/images/{image_id}", headers=headers, json={"public": False}
    )
    assert private.status_code == 200 and private.json()["public"] is False
    assert_error(await api.http.get(url), 403, "bad_signature")
    assert (await api.http.get(f"/api/images/{image_id}", headers=headers)).json()[
        "public"
    ] is False


async def test_another_users_image_cannot_use_my_transformation(local_api: Api) -> None:
    _, mine = await local_api.user()
    assert (await put(local_api, mine, "card", CARD)).status_code == 201
    theirs, _ = await public_image(local_api)
    assert_error(await local_api.http.get(f"/i/{theirs}/t_card/My-Cat.webp"), 403, "bad_signature")
    signed = sign_url(f"/i/{theirs}/t_card/a.png", OPERATOR_SECRET)
    assert_error(await local_api.http.get(signed), 400, "bad_transform")


async def test_an_edited_transformation_changes_new_answers(local_api: Api) -> None:
    image_id, headers = await public_image(local_api)
    assert (await put(local_api, headers, "card", CARD)).status_code == 201
    url = f"/i/{image_id}/t_card/My-Cat.webp"
    first = await local_api.http.get(url)
    assert size_of(first) == (120, 80)
    edited = await put(local_api, headers, "card", {**CARD, "transform": "w_60,h_60,c_fill"})
    assert edited.status_code == 200
    assert edited.json()["created_at"] != edited.json()["updated_at"]
    second = await local_api.http.get(url)
    assert size_of(second) == (60, 60)
    assert second.headers["etag"] != first.headers["etag"]
    # the old definition's derivative is not answered for the new one, nor after a revert
    minted = await local_api.http.post(
        f"/api/images/{image_id}/url",
        headers=headers,
        json={"transform": "t_card", "format": "png"},
    )
    assert minted.status_code == 200, minted.text
    assert size_of(await local_api.http.get(minted.json()["url"])) == (60, 60)
    assert (
        await local_api.http.delete("/api/transformations/card", headers=headers)
    ).status_code == 204
    assert_error(await local_api.http.get(url), 403, "bad_signature")
    assert_error(await local_api.http.get(minted.json()["url"]), 400, "bad_transform")


async def test_transformations_are_checked_as_the_origin_would(local_api: Api) -> None:
    _, headers = await local_api.user()
    _, stranger = await local_api.user()
    made = await put(local_api, headers, "card", CARD)
    assert made.status_code == 201
    body = made.json()
    assert body["name"] == "card" and body["transform"] == "w_120,h_80,c_fill"
    assert body["unsigned"] is True and body["formats"] == ["webp", "jpg"]
    assert body["shadowed"] is False
    got = await local_api.http.get("/api/transformations/card", headers=headers)
    assert got.json() == body
    listed = await local_api.http.get("/api/transformations", headers=headers)
    assert [t["name"] for t in listed.json()["items"]] == ["card"]
    assert (await local_api.http.get("/api/transformations", headers=stranger)).json() == {
        "items": []
    }
    assert_error(await local_api.http.get("/api/transformations/card", headers=stranger), 404)
    assert_error(await local_api.http.delete("/api/transformations/card", headers=stranger), 404)

    bad = {
        "Card": (CARD, 400, "bad_request"),  # upper case
        "x" * 65: (CARD, 400, "bad_request"),
        "nest": ({"transform": "t_card"}, 400, "bad_transform"),
        "nest2": ({"transform": "w_10/t_hero"}, 400, "bad_transform"),
        # minted URLs put the image's v_ first: every one of them was refused (repeated v_)
        "version": ({"transform": "v_3,w_100"}, 400, "bad_transform"),
        "broken": ({"transform": "w_abc"}, 400, "bad_transform"),
        "huge": ({"transform": "w_100000"}, 400, None),
        "empty": ({"transform": ""}, 400, "bad_request"),
        "fmt": ({"transform": "w_10", "formats": ["bmp"]}, 400, "bad_request"),
        "fmt2": ({"transform": "w_10", "formats": [[]]}, 400, "bad_request"),  # was a 500
        "extra": ({"transform": "w_10", "colour": "red"}, 400, "bad_request"),
        "overlay": ({"transform": f"l_{'a' * 32}"}, 400, "bad_transform"),
        "thumb": (CARD, 409, "conflict"),  # an operator preset's name
        "hero": (CARD, 409, "conflict"),
    }
    for name, (definition, status, code) in bad.items():
        assert_error(await put(local_api, headers, name, definition), status, code)
    assert (await put(local_api, headers, "b", {"transform": "w_10"})).status_code == 201
    assert (await put(local_api, headers, "c", {"transform": "w_10"})).status_code == 201
    assert_error(await put(local_api, headers, "d", {"transform": "w_10"}), 400, "limit_exceeded")
    assert (await put(local_api, headers, "c", {"transform": "w_20"})).status_code == 200
    names = [
        t["name"]
        for t in (await local_api.http.get("/api/transformations", headers=headers)).json()["items"]
    ]
    assert names == ["b", "c", "card"]


async def test_an_operator_preset_added_later_wins(
    local_api: Api, make_settings, database_url: str, tmp_path: Path, password_hash: str
) -> None:  # type: ignore[no-untyped-def]
    """The user made ``late``; the operator then adds a preset ``late``: URLs use the
    preset, and the listing says the user's is shadowed."""
    from tests.admin_api.conftest import start_api

    image_id, headers = await public_image(local_api)
    assert (await put(local_api, headers, "late", {**CARD, "transform": "w_40"})).status_code == 201
    assert size_of(await local_api.http.get(f"/i/{image_id}/t_late/My-Cat.webp"))[0] == 40
    presets = tmp_path / "later.json"
    presets.write_text(json.dumps({"late": "w_20"}))
    settings = make_settings(DATABASE_URL=database_url, PRESETS_FILE=str(presets))
    async for later in start_api(settings, password_hash):
        listed = (await later.http.get("/api/transformations", headers=headers)).json()
        assert listed["items"][0]["shadowed"] is True
        signed = sign_url(f"/i/{image_id}/t_late/a.png", OPERATOR_SECRET)
        assert size_of(await later.http.get(signed))[0] == 20
        # the preset is not marked unsigned: the user's `unsigned` no longer applies
        assert_error(
            await later.http.get(f"/i/{image_id}/t_late/My-Cat.webp"), 403, "bad_signature"
        )


async def test_the_account_default_and_explicit_choices(local_api: Api) -> None:
    _, headers = await local_api.user()
    me = await local_api.http.get("/api/me", headers=headers)
    assert me.json()["public"] is False
    plain = await local_api.upload(headers, make_image())
    assert plain.json()["public"] is False
    changed = await local_api.http.patch("/api/me", headers=headers, json={"public": True})
    assert changed.status_code == 200 and changed.json()["public"] is True
    # the account as GET /api/me shows it (the derivative fields were missing)
    assert changed.json() == (await local_api.http.get("/api/me", headers=headers)).json()
    assert (await local_api.upload(headers, make_image())).json()["public"] is True
    chosen = await local_api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("a.jpg", make_image(), "image/jpeg")},
        data={"public": "false"},
    )
    assert chosen.json()["public"] is False
    for body in ({"public": "yes"}, {}, {"public": True, "email": "x"}):
        assert_error(await local_api.http.patch("/api/me", headers=headers, json=body), 400)
    image_id = plain.json()["id"]
    for body in ({"public": 1}, {}, {"name": "x"}):
        assert_error(
            await local_api.http.patch(f"/api/images/{image_id}", headers=headers, json=body), 400
        )
    _, stranger = await local_api.user()
    assert_error(
        await local_api.http.patch(
            f"/api/images/{image_id}", headers=stranger, json={"public": True}
        ),
        404,
    )
    bad_field = await local_api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("a.jpg", make_image(), "image/jpeg")},
        data={"public": "maybe"},
    )
    assert_error(bad_field, 400, "bad_request")


@pytest.mark.parametrize(
    "api_env",
    [{"UNSIGNED_RENDERS_PER_IMAGE": "2", "UNSIGNED_RENDERS_PER_USER": "3"}],
)
async def test_unsigned_renders_are_rate_limited_and_hits_are_not(local_api: Api) -> None:
    image_id, headers = await public_image(local_api)
    wide = {"transform": "w_40", "unsigned": True, "formats": ["webp", "jpg", "png", "gif"]}
    assert (await put(local_api, headers, "wide", wide)).status_code == 201
    first = await local_api.http.get(f"/i/{image_id}/t_wide/My-Cat.webp")
    assert size_of(first)[0] == 40
    assert size_of(await local_api.http.get(f"/i/{image_id}/t_wide/My-Cat.jpg"))[0] == 40
    refused = await local_api.http.get(f"/i/{image_id}/t_wide/My-Cat.png")
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    for _ in range(5):  # a render already made is a cache hit: never limited
        assert size_of(await local_api.http.get(f"/i/{image_id}/t_wide/My-Cat.webp"))[0] == 40
    signed = sign_url(f"/i/{image_id}/t_wide/a.png", OPERATOR_SECRET)
    assert size_of(await local_api.http.get(signed))[0] == 40  # signed URLs are not limited
    # the owner's bound: a second image has its own per-image count, the owner has one left
    other = await local_api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("Dog.jpg", make_image(), "image/jpeg")},
        data={"public": "true"},
    )
    other_id = other.json()["id"]
    assert size_of(await local_api.http.get(f"/i/{other_id}/t_wide/Dog.webp"))[0] == 40
    assert_error(await local_api.http.get(f"/i/{other_id}/t_wide/Dog.jpg"), 429, "rate_limited")
    # the owner's bound refused it: the image's own count took nothing (it left the image
    # one render short once the owner's minute was over)
    left = await local_api.services.limiter.peek(f"unsigned:image:{other_id}", 2)
    assert left.remaining == 1
    metrics = (await local_api.http.get("/metrics")).text
    assert 'imgorigin_renders_refused_total{by="unsigned"} 2.0' in metrics


async def test_w_auto_in_an_unsigned_transformation_snaps(local_api: Api) -> None:
    _, headers = await local_api.user()
    uploaded = await local_api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("Wide.jpg", make_image(width=800, height=600), "image/jpeg")},
        data={"public": "true"},
    )
    image_id = uploaded.json()["id"]
    body = {"transform": "w_auto:200", "unsigned": True, "formats": ["png"]}
    assert (await put(local_api, headers, "resp", body)).status_code == 201
    url = f"/i/{image_id}/t_resp/Wide.png"
    assert size_of(await local_api.http.get(url))[0] == 200  # no hint: the default
    hinted = await local_api.http.get(url, headers={"Sec-CH-Width": "333"})
    assert size_of(hinted)[0] == 480  # snapped up to AUTO_WIDTHS, never 333
    assert "Sec-CH-Width" in hinted.headers["vary"]
    odd = await local_api.http.get(url, headers={"Sec-CH-Width": "334"})
    assert odd.headers["etag"] == hinted.headers["etag"]  # one variant per snapped width
