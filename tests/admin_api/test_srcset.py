"""``GET /api/images/{id}/srcset`` through HTTP: every URL it signs is fetched from the origin
and decoded (sizes as announced, formats as named), bytes appear once a derivative is stored,
the ``<picture>`` parses to the expected elements with escaped attributes and a placeholder
decoded from the blurhash, bad parameters are 400s with the contract's body."""

from __future__ import annotations

import asyncio
import base64
from functools import cache
from html.parser import HTMLParser
from typing import Any

import pytest
import pyvips
import sqlalchemy as sa

from admin_api.srcset import chain_with_width, default_widths
from origin.analysis import source_summary
from origin.blurhash import placeholder_png
from origin.store.tables import images, transformed_images
from tests.admin_api.conftest import Api, assert_error
from tests.admin_api.test_images import operator_signed
from tests.origin.conftest import photo

MEDIA = {"avif": "image/avif", "webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}


@cache
def large_photo() -> bytes:
    """scikit-image's cat, enlarged to 1804 x 1200 (room for the whole default ladder)."""
    return bytes(pyvips.Image.new_from_buffer(photo("chelsea"), "").resize(4).jpegsave_buffer(Q=85))


async def upload(api: Api, headers: dict[str, str], data: bytes, name: str = "cat.jpg") -> str:
    answer = await api.upload(headers, data, name)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def srcset(api: Api, headers: dict[str, str], image_id: str, **params: str) -> Any:
    answer = await api.http.get(f"/api/images/{image_id}/srcset", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "private, no-store"
    return answer.json()


async def fetch(api: Api, url: str) -> tuple[str, pyvips.Image, bytes]:
    """A signed URL from the answer, fetched with no credentials but its signature."""
    answer = await api.http.get(url)
    assert answer.status_code == 200, (url, answer.text)
    return (
        answer.headers["content-type"],
        pyvips.Image.new_from_buffer(answer.content, ""),
        answer.content,
    )


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(markup)
    return parser.found


# ---- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "chain"),
    [
        ("", "w_640"),
        ("c_fill,ar_16:9", "w_640,c_fill,ar_16:9"),
        ("c_fill,ar_16:9,g_auto", "w_640,c_fill,ar_16:9,g_auto"),
        ("e_grayscale/c_pad,ar_1:1,b_black", "e_grayscale/w_640,c_pad,ar_1:1,b_black"),
        ("w_300,h_300,c_fill", "w_300,h_300,c_fill/w_640"),
        ("h_500", "h_500/w_640"),
        ("r_90", "r_90/w_640"),
        ("c_crop,ar_1:1", "c_crop,ar_1:1/w_640"),
        ("l_text:Hi", "l_text:Hi/w_640"),
        ("t_hero", "t_hero/w_640"),
        ("dpr_2", "dpr_2/w_640"),
    ],
)
def test_where_the_width_goes(transform: str, chain: str) -> None:
    assert chain_with_width(transform, 640) == chain


@pytest.mark.parametrize(
    ("natural", "widths"),
    [
        (200, (200,)),
        (512, (320, 512)),
        (1280, (320, 640, 960, 1280)),
        (1804, (320, 640, 960, 1280, 1804)),
        (5000, (320, 640, 960, 1280, 1920)),
    ],
)
def test_default_widths(natural: int, widths: tuple[int, ...]) -> None:
    assert default_widths(natural) == widths


# ---- through HTTP ----------------------------------------------------------------------------


async def test_defaults_sign_every_variant_the_origin_then_serves(api: Api) -> None:
    _, headers = await api.user()
    image_id = await upload(api, headers, photo("chelsea"), "My Cat.jpg")  # 451 x 300
    answer = await srcset(api, headers, image_id)
    assert answer["sizes"] == "100vw" and answer["transform"] == ""
    variants = answer["variants"]
    assert [(v["format"], v["width"]) for v in variants] == [
        (fmt, w) for fmt in ("avif", "webp", "jpg") for w in (320, 451)
    ]
    for v in variants:
        assert v["url"].startswith(f"/i/{image_id}/w_{v['width']}/My-Cat.{v['format']}?s=")
        assert operator_signed(v["url"]) and v["bytes"] is None
        media_type, img, _ = await fetch(api, v["url"])
        assert media_type == MEDIA[v["format"]] == v["media_type"]
        assert (img.width, img.height) == (v["width"], v["height"])
    assert (answer["width"], answer["height"]) == (451, 300)
    for fmt in ("avif", "webp", "jpg"):
        urls = [v for v in variants if v["format"] == fmt]
        assert answer["srcset"][fmt] == ", ".join(f"{v['url']} {v['width']}w" for v in urls)


async def test_the_ladder_stops_at_the_transforms_width(api: Api) -> None:
    _, headers = await api.user()
    image_id = await upload(api, headers, large_photo())  # 1804 x 1200
    answer = await srcset(api, headers, image_id, transform="c_fill,ar_16:9", formats="webp")
    assert [(v["width"], v["height"]) for v in answer["variants"]] == [
        (320, 180),
        (640, 360),
        (960, 540),
        (1280, 720),
        (1804, 1015),
    ]
    _, img, _ = await fetch(api, answer["variants"][1]["url"])
    assert (img.width, img.height) == (640, 360)
    rotated = await srcset(
        api, headers, image_id, transform="r_90", widths="300,600", formats="jpg"
    )
    for v in rotated["variants"]:
        assert (v["width"], v["height"]) == (v["width"], round(v["width"] * 1804 / 1200))
        _, img, _ = await fetch(api, v["url"])
        assert (img.width, img.height) == (v["width"], v["height"])


async def test_explicit_widths_formats_and_every_option(api: Api) -> None:
    _, headers = await api.user()
    image_id = await upload(api, headers, large_photo())
    answer = await srcset(
        api,
        headers,
        image_id,
        widths="640,200, 200,1000",
        formats="webp,jpeg,png",
        transform="c_fill,ar_1:1,g_auto/e_grayscale",
        sizes="(min-width: 800px) 50vw, 100vw",
        alt="cat",
        name="kitty",
        expires_in="600",
    )
    assert [(v["format"], v["width"], v["height"]) for v in answer["variants"]] == [
        (fmt, w, w) for fmt in ("webp", "jpg", "png") for w in (200, 640, 1000)
    ]
    grey = answer["variants"][0]
    assert "/c_fill,ar_1:1,g_auto/w_200,e_grayscale/kitty.webp?exp=" in grey["url"]
    _, img, _ = await fetch(api, grey["url"])
    assert (img.width, img.height) == (200, 200)
    r, g, b = (img.extract_band(i).avg() for i in range(3))
    assert abs(r - g) < 2 and abs(g - b) < 2  # grayscale
    found = elements(answer["picture"])
    assert [tag for tag, _ in found] == ["picture", "source", "source", "img"]
    assert [a["type"] for _, a in found[1:3]] == ["image/webp", "image/jpeg"]
    img_attrs = found[3][1]
    assert img_attrs["sizes"] == "(min-width: 800px) 50vw, 100vw"
    assert img_attrs["src"] == answer["variants"][-1]["url"]  # the largest PNG


async def test_bytes_once_a_derivative_is_stored(api: Api) -> None:
    _, headers = await api.user()
    image_id = await upload(api, headers, photo("chelsea"))
    first = await srcset(api, headers, image_id, widths="200", formats="webp,jpg")
    webp = first["variants"][0]
    _, _, body = await fetch(api, webp["url"])
    for _ in range(400):  # the origin stores the derivative just after answering
        async with api.services.db.read() as conn:
            query = sa.select(sa.func.count()).where(transformed_images.c.image_id == image_id)
            if await conn.scalar(query):
                break
        await asyncio.sleep(0.05)
    answer = await srcset(api, headers, image_id, widths="200", formats="webp,jpg")
    assert answer["variants"][0]["bytes"] == len(body)
    assert answer["variants"][1]["bytes"] is None  # the JPEG was never asked for


async def test_the_picture_element(api: Api) -> None:
    _, headers = await api.user()
    image_id = await upload(api, headers, photo("chelsea"))
    alt = 'A "cat" <script>alert(1)</script> & co'
    answer = await srcset(api, headers, image_id, widths="300", alt=alt, sizes="50vw")
    markup = answer["picture"]
    assert "<script>" not in markup and markup.startswith("<picture>")
    found = elements(markup)
    assert [tag for tag, _ in found] == ["picture", "source", "source", "img"]
    (_, avif), (_, webp), (_, img) = found[1:]
    assert avif == {"type": "image/avif", "srcset": answer["srcset"]["avif"], "sizes": "50vw"}
    assert webp == {"type": "image/webp", "srcset": answer["srcset"]["webp"], "sizes": "50vw"}
    jpg = answer["variants"][-1]
    assert img["src"] == jpg["url"] and img["srcset"] == answer["srcset"]["jpg"]
    assert (img["width"], img["height"]) == ("300", str(jpg["height"]))
    assert img["alt"] == alt and img["loading"] == "lazy" and img["decoding"] == "async"
    record = await api.services.images.get(image_id)
    assert record is not None and record.analysis is not None
    placeholder = answer["placeholder"]
    assert placeholder["blurhash"] == record.analysis.blurhash
    assert placeholder["dominant_color"] == record.analysis.dominant_color
    uri = placeholder["data_uri"]
    assert uri.startswith("data:image/png;base64,")
    png = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert png == placeholder_png(record.analysis.blurhash, 451, 300)
    blurred = pyvips.Image.new_from_buffer(png, "")
    assert (blurred.width, blurred.height) == (16, 11)
    assert img["style"] == (
        f"background-size:cover;background-image:url({uri});"
        f"background-color:{record.analysis.dominant_color}"
    )


async def test_rows_from_before_the_analysis_get_a_placeholder_too(api: Api) -> None:
    _, headers = await api.user()
    image_id = await upload(api, headers, photo("chelsea"))
    async with api.services.db.write() as conn:
        await conn.execute(
            images.update()
            .where(images.c.id == image_id)
            .values(blurhash=None, dominant_color=None, focal_x=None, focal_y=None)
        )
    answer = await srcset(api, headers, image_id, widths="100")
    assert answer["placeholder"]["blurhash"] == source_summary(photo("chelsea"))["blurhash"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"width": "300"}, "bad_request"),
        ({"widths": "abc"}, "bad_request"),
        ({"widths": "300,"}, "bad_request"),
        ({"widths": "-300"}, "bad_request"),
        ({"widths": "0"}, "limit_exceeded"),
        ({"widths": "9000"}, "limit_exceeded"),
        ({"widths": ",".join(str(w) for w in range(100, 1800, 100))}, "limit_exceeded"),
        ({"formats": "avif,tiff"}, "bad_request"),
        ({"formats": ""}, "bad_request"),
        ({"transform": "zz_1"}, "bad_transform"),
        ({"transform": "w_abc"}, "bad_transform"),
        ({"transform": "w_9000"}, "limit_exceeded"),
        ({"transform": "w_100/w_9000"}, "limit_exceeded"),
        ({"transform": "f_webp"}, "bad_request"),
        ({"transform": "f_auto"}, "bad_request"),
        ({"transform": "w_auto"}, "bad_request"),
        ({"transform": "c_fill,ar_1:1/w_auto:300"}, "bad_request"),
        ({"transform": "w_300,dpr_auto"}, "bad_request"),
        ({"transform": f"l_{'a' * 32}"}, "bad_transform"),
        ({"name": "../x"}, "bad_request"),
        ({"expires_in": "0"}, "bad_request"),
        ({"expires_in": "soon"}, "bad_request"),
        ({"alt": "x" * 501}, "bad_request"),
        ({"sizes": "50vw\n100vw"}, "bad_request"),
    ],
)
async def test_bad_parameters_are_400(local_api: Api, params: dict[str, str], code: str) -> None:
    _, headers = await local_api.user()
    image_id = await upload(local_api, headers, photo("chelsea"))
    answer = await local_api.http.get(
        f"/api/images/{image_id}/srcset", headers=headers, params=params
    )
    assert_error(answer, 400, code)


async def test_repeated_parameters_are_400(local_api: Api) -> None:
    _, headers = await local_api.user()
    image_id = await upload(local_api, headers, photo("chelsea"))
    answer = await local_api.http.get(
        f"/api/images/{image_id}/srcset?widths=100&widths=200", headers=headers
    )
    assert_error(answer, 400, "bad_request")


async def test_owner_only(local_api: Api) -> None:
    _, owner = await local_api.user()
    _, other = await local_api.user()
    image_id = await upload(local_api, owner, photo("chelsea"))
    assert_error(
        await local_api.http.get(f"/api/images/{image_id}/srcset", headers=other), 404, "not_found"
    )
    assert (await local_api.http.get(f"/api/images/{image_id}/srcset")).status_code == 401
    theirs = await upload(local_api, other, photo("coffee"))
    overlay = await local_api.http.get(
        f"/api/images/{image_id}/srcset", headers=owner, params={"transform": f"l_{theirs}"}
    )
    assert_error(overlay, 400, "bad_transform")
