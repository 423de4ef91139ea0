"""Client Hints through HTTP: ``w_auto``/``dpr_auto`` resolved from ``Sec-CH-Width``/``Width``
and ``Sec-CH-DPR``/``DPR``, snapped so caches stay small; ``Vary`` and ``Accept-CH``; the
fallbacks without hints; one derivative per snapped value."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from origin.hints import snap_dpr, snap_width
from origin.settings import DEFAULT_AUTO_WIDTHS, Settings, SettingsError
from tests.origin.delivery.conftest import Service, decode, pixel, signed, start_service

RED, GREEN, BLUE, YELLOW = [230, 30, 30], [30, 200, 30], [30, 30, 220], [240, 230, 20]


def close(got: list[int], want: list[int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(got, want, strict=True))


def assert_quadrants(body: bytes, width: int, height: int) -> None:
    """The answer is the whole quadrant picture at ``width`` × ``height``."""
    image = decode(body)
    assert (image.width, image.height) == (width, height)
    for (x, y), colour in {
        (width // 4, height // 4): RED,
        (3 * width // 4, height // 4): GREEN,
        (width // 4, 3 * height // 4): BLUE,
        (3 * width // 4, 3 * height // 4): YELLOW,
    }.items():
        assert close(pixel(image, x, y), colour), (x, y, pixel(image, x, y))


async def big(service: Service) -> str:
    image_id, _ = await service.image(width=2000, height=1500)
    return image_id


async def get(service: Service, path: str, **headers: str) -> httpx.Response:
    answer = await service.get(signed(path), headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


# ---- snapping (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "snapped"),
    [
        (b"1", 160),
        (b"160", 160),
        (b"161", 320),
        (b"500", 640),
        (b" 640 ", 640),
        (b"641", 768),
        (b"2560", 2560),
        (b"99999", 2560),  # above the list: its largest entry
        (b"1000000", 2560),  # however large (it was no hint past six digits)
        (b"0" * 70 + b"640", 640),
        (b"0", None),
        (b"-5", None),
        (b"1.5", None),
        (b"abc", None),
        (b"", None),
        (None, None),
    ],
)
def test_width_snaps_up_to_the_configured_list(raw: bytes | None, snapped: int | None) -> None:
    assert snap_width(raw, DEFAULT_AUTO_WIDTHS) == snapped


@pytest.mark.parametrize(
    ("raw", "snapped"),
    [
        (b"1", "1"),
        (b"0.5", "1"),
        (b"1.25", "1.5"),
        (b"1.5", "1.5"),
        (b"1.75", "2"),
        (b"2.625", "3"),
        (b"3.0", "3"),
        (b"3.5", "4"),
        (b"12", "4"),  # dpr_'s own cap
        (b"1000", "4"),  # however large (it was no hint past three digits)
        (b"0", None),
        (b"2,0", None),
        (b"x", None),
        (None, None),
    ],
)
def test_dpr_snaps_up_to_a_small_set(raw: bytes | None, snapped: str | None) -> None:
    assert snap_dpr(raw) == (None if snapped is None else Decimal(snapped))


# ---- w_auto ---------------------------------------------------------------------------


async def test_sec_ch_width_500_gives_the_640_wide_image(service: Service) -> None:
    image_id = await big(service)
    answer = await get(service, f"/i/{image_id}/w_auto/a.png", **{"Sec-CH-Width": "500"})
    assert_quadrants(answer.content, 640, 480)
    assert answer.headers["vary"] == "Sec-CH-Width, Width"
    assert answer.headers["accept-ch"] == "Sec-CH-Width, Sec-CH-DPR, Width, DPR"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_hints_in_one_snap_share_one_derivative(service: Service) -> None:
    image_id = await big(service)
    path = f"/i/{image_id}/w_auto/a.jpg"
    answers = [
        await get(service, path, **{"Sec-CH-Width": "500"}),
        await get(service, path, **{"Sec-CH-Width": "640"}),
        await get(service, path, Width="481"),  # the legacy header, same meaning
    ]
    assert {a.headers["etag"] for a in answers} == {answers[0].headers["etag"]}
    assert {a.content for a in answers} == {answers[0].content}
    bigger = await get(service, path, **{"Sec-CH-Width": "641"})
    assert bigger.headers["etag"] != answers[0].headers["etag"]
    assert decode(bigger.content).width == 768


async def test_sec_ch_width_wins_over_width(service: Service) -> None:
    image_id = await big(service)
    answer = await get(
        service, f"/i/{image_id}/w_auto/a.png", **{"Sec-CH-Width": "300", "Width": "1900"}
    )
    assert decode(answer.content).width == 320


async def test_without_hints_the_fallback_or_the_source_width(service: Service) -> None:
    image_id = await big(service)
    fallback = await get(service, f"/i/{image_id}/w_auto:300/a.png")
    assert_quadrants(fallback.content, 300, 225)
    assert fallback.headers["vary"] == "Sec-CH-Width, Width"
    whole = await get(service, f"/i/{image_id}/w_auto/a.png")
    assert_quadrants(whole.content, 2000, 1500)
    junk = await get(service, f"/i/{image_id}/w_auto:300/a.png", **{"Sec-CH-Width": "wide"})
    assert junk.content == fallback.content  # a malformed hint is no hint, never an error


async def test_without_hints_the_source_width_is_capped(
    make_settings: Callable[..., Settings],
) -> None:
    async for service in start_service(make_settings(MAX_OUTPUT_DIMENSION="1000")):
        image_id = await big(service)
        answer = await get(service, f"/i/{image_id}/w_auto/a.png")
        assert_quadrants(answer.content, 1000, 750)
        small, _ = await service.image(width=400, height=300)
        kept = await get(service, f"/i/{small}/w_auto/a.png")
        assert_quadrants(kept.content, 400, 300)  # never enlarged


async def test_auto_widths_setting(make_settings: Callable[..., Settings]) -> None:
    async for service in start_service(make_settings(AUTO_WIDTHS="100,250")):
        image_id = await big(service)
        path = f"/i/{image_id}/w_auto/a.png"
        assert decode((await get(service, path, Width="101")).content).width == 250
        assert decode((await get(service, path, Width="5000")).content).width == 250
        assert decode((await get(service, path, Width="3")).content).width == 100


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abc", "expected"),
        ("300,200", "ascending"),
        ("0,100", "between 1"),
        ("100,9000", "between 1"),
        (",".join(str(i) for i in range(1, 66)), "expected"),
    ],
)
def test_auto_widths_is_validated(
    make_settings: Callable[..., Settings], value: str, problem: str
) -> None:
    with pytest.raises(SettingsError, match="AUTO_WIDTHS") as caught:
        make_settings(AUTO_WIDTHS=value)
    assert problem in str(caught.value)


# ---- dpr_auto --------------------------------------------------------------------------


async def test_dpr_2_doubles(service: Service) -> None:
    image_id = await big(service)
    path = f"/i/{image_id}/w_300,dpr_auto/a.png"
    plain = await get(service, path)
    assert_quadrants(plain.content, 300, 225)
    doubled = await get(service, path, **{"Sec-CH-DPR": "2"})
    assert_quadrants(doubled.content, 600, 450)
    assert doubled.headers["vary"] == "Sec-CH-DPR, DPR"
    assert "accept-ch" in doubled.headers
    legacy = await get(service, path, DPR="1.8")  # snapped up to 2
    assert legacy.content == doubled.content
    assert legacy.headers["etag"] == doubled.headers["etag"] != plain.headers["etag"]


async def test_w_auto_with_dpr_auto(service: Service) -> None:
    image_id = await big(service)
    path = f"/i/{image_id}/w_auto:320,dpr_auto/a.png"
    # Without a width hint (an <img> without sizes): the fallback times the DPR.
    assert_quadrants((await get(service, path, **{"Sec-CH-DPR": "2.625"})).content, 960, 720)
    # A width hint is physical pixels already: no DPR on top.
    both = await get(service, path, **{"Sec-CH-DPR": "2", "Sec-CH-Width": "700"})
    assert_quadrants(both.content, 768, 576)
    assert both.headers["vary"] == "Sec-CH-Width, Width, Sec-CH-DPR, DPR"


async def test_dpr_auto_is_capped_at_the_maximum_dimension(
    make_settings: Callable[..., Settings],
) -> None:
    async for service in start_service(make_settings(MAX_OUTPUT_DIMENSION="1000")):
        image_id = await big(service)
        answer = await get(service, f"/i/{image_id}/w_400,dpr_auto/a.png", DPR="4")
        assert_quadrants(answer.content, 1000, 750)  # clamped: a header never makes a 400
        # the side the image's shape gives is bounded too (h_1200 of a 4:3 image: 1600 wide)
        tall = await get(service, f"/i/{image_id}/h_300,dpr_auto/a.png", DPR="4")
        assert_quadrants(tall.content, 1000, 750)
        one = await get(service, f"/i/{image_id}/h_300,dpr_auto/a.png", DPR="1")
        assert_quadrants(one.content, 400, 300)  # no hint multiplies: the URL's own size
        explicit = await service.get(signed(f"/i/{image_id}/w_400,dpr_4/a.png"))
        assert explicit.status_code == 400  # as before for a dpr_ written in the URL
        assert explicit.json()["error"]["code"] == "limit_exceeded"


async def test_f_auto_and_hints_vary_on_both(service: Service) -> None:
    image_id = await big(service)
    answer = await get(
        service,
        f"/i/{image_id}/w_auto,f_auto/a.jpg",
        Accept="image/webp,*/*",
        **{"Sec-CH-Width": "200"},
    )
    assert answer.headers["content-type"] == "image/webp"
    assert answer.headers["vary"] == "Accept, Sec-CH-Width, Width"
    assert decode(answer.content).width == 320


async def test_hints_do_not_touch_urls_without_auto_tokens(service: Service) -> None:
    image_id = await big(service)
    path = f"/i/{image_id}/w_200/a.png"
    plain = await get(service, path)
    hinted = await get(service, path, **{"Sec-CH-Width": "1900", "Sec-CH-DPR": "3"})
    assert hinted.content == plain.content and hinted.headers["etag"] == plain.headers["etag"]
    assert "vary" not in hinted.headers and "accept-ch" not in hinted.headers
    assert decode(hinted.content).width == 200


async def test_conditional_requests_follow_the_hint(service: Service) -> None:
    image_id = await big(service)
    path = f"/i/{image_id}/w_auto/a.webp"
    first = await get(service, path, Width="300")
    etag = first.headers["etag"]
    same = await service.get(signed(path), headers={"Width": "310", "If-None-Match": etag})
    assert same.status_code == 304 and same.headers["vary"] == "Sec-CH-Width, Width"
    other = await service.get(signed(path), headers={"Width": "1000", "If-None-Match": etag})
    assert other.status_code == 200 and decode(other.content).width == 1024


async def test_metadata_follows_the_hint(service: Service) -> None:
    image_id = await big(service)
    answer = await get(service, f"/i/{image_id}/w_auto,h_200,c_fill/a.json", Width="1000")
    facts = json.loads(answer.content)
    assert (facts["width"], facts["height"]) == (1024, 200)


async def test_hinted_plans_are_remembered_per_snapped_value(service: Service) -> None:
    image_id = await big(service)
    path = f"/i/{image_id}/w_auto,dpr_auto/a.png"
    for width in ("100", "150", "160", "500", "99999", "x"):
        for dpr in ("1", "2", "9", "junk"):
            await get(service, path, Width=width, DPR=dpr)
    prepared = service.origin.plans.paths[path]
    # width: 160, 640, 2560 and none; dpr: 1, 2, 4 and none (4 × 4, minus none × none)
    assert prepared.variants is not None and len(prepared.variants) == 15


@pytest.mark.parametrize(
    ("chain", "code"),
    [
        ("w_auto:abc", "bad_transform"),
        ("w_auto:0.5", "bad_transform"),
        ("w_auto:9000", "limit_exceeded"),
        ("h_auto", "bad_transform"),
        ("dpr_auto", "bad_transform"),  # needs w_ or h_
        ("l_text:Hi,w_auto", "bad_transform"),
    ],
)
async def test_bad_auto_tokens(service: Service, chain: str, code: str) -> None:
    image_id = await big(service)
    answer = await service.get(signed(f"/i/{image_id}/{chain}/a.png"), headers={"Width": "500"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert answer.headers["cache-control"] == "no-store"


async def test_the_admin_api_mints_w_auto_urls(service: Service) -> None:
    image_id, owner = await service.image(width=2000, height=1500)
    made = await service.http.post(
        f"/api/images/{image_id}/url",
        headers=service.bearer(owner),
        json={"transform": "w_auto:400,dpr_auto", "format": "webp"},
    )
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    assert "/w_auto:400,dpr_auto/" in url
    assert decode((await service.get(url)).content).width == 400
    assert decode((await service.get(url, headers={"DPR": "2"})).content).width == 800
    assert decode((await service.get(url, headers={"Width": "900"})).content).width == 1024
