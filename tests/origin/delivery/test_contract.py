"""The case table of the origin contract, row by row, through HTTP (pixels checked)."""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime

import pytest

from tests.origin.delivery.conftest import Service, decode, pixel, signed

IMMUTABLE = "public, max-age=31536000, immutable"
CSP = "default-src 'none'; sandbox"


def error_code(answer: object) -> str:
    body = answer.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert answer.headers["cache-control"] == "no-store"  # type: ignore[attr-defined]
    assert answer.headers["x-content-type-options"] == "nosniff"  # type: ignore[attr-defined]
    assert "Traceback" not in answer.text  # type: ignore[attr-defined]
    return str(body["error"]["code"])


async def test_signed_fresh_answers_the_derivative_with_immutable_caching(
    backed_service: Service,
) -> None:
    image_id, _ = await backed_service.image()
    answer = await backed_service.get(signed(f"/i/{image_id}/w_200,h_100,c_fill/cat.webp"))
    assert answer.status_code == 200
    headers = answer.headers
    assert headers["content-type"] == "image/webp"
    assert headers["cache-control"] == IMMUTABLE
    assert headers["content-length"] == str(len(answer.content))
    assert headers["etag"].startswith('"') and not headers["etag"].startswith("W/")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == CSP
    assert "vary" not in headers
    img = decode(answer.content)
    assert (img.width, img.height) == (200, 100)
    assert pixel(img, 10, 10)[0] > 180  # red top-left quadrant
    assert pixel(img, 190, 90)[2] < 90 and pixel(img, 190, 90)[0] > 180  # yellow bottom-right


async def test_head_has_the_headers_and_no_body(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_100/cat.png")
    got = await service.get(url)
    head = await service.http.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-type"] == "image/png"


async def test_exp_gives_max_age_until_exp_must_revalidate_and_no_immutable(
    service: Service,
) -> None:
    """No cache may serve it stale: after exp the origin's answer is 403 url_expired."""
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_50/a.jpg", expires_in=600)
    answer = await service.get(url)
    assert answer.status_code == 200
    control = re.fullmatch(
        r"public, max-age=([0-9]+), must-revalidate", answer.headers["cache-control"]
    )
    assert control and 595 <= int(control.group(1)) <= 600
    exp = int(url.split("exp=")[1].split("&")[0])
    assert parsedate_to_datetime(answer.headers["expires"]).timestamp() == exp  # for nginx
    assert decode(answer.content).width == 50
    revalidated = await service.get(url, headers={"If-None-Match": answer.headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["cache-control"].endswith(", must-revalidate")


async def test_if_none_match_answers_304(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_80/a.png")
    etag = (await service.get(url)).headers["etag"]
    for value in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = await service.get(url, headers={"If-None-Match": value})
        assert again.status_code == 304, value
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == IMMUTABLE
    other = await service.get(url, headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


async def test_etag_is_the_same_for_equal_meaning_and_differs_otherwise(service: Service) -> None:
    image_id, _ = await service.image()
    a = await service.get(signed(f"/i/{image_id}/w_100,dpr_2/a.png"))
    b = await service.get(signed(f"/i/{image_id}/w_200/other-name.png"))
    c = await service.get(signed(f"/i/{image_id}/w_200/a.webp"))
    assert a.headers["etag"] == b.headers["etag"] != c.headers["etag"]
    assert a.content == b.content


async def test_f_auto_varies_on_accept(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_100,f_auto/a.jpg")
    webp = await service.get(url, headers={"Accept": "image/webp,*/*"})
    jpeg = await service.get(url, headers={"Accept": "*/*"})
    assert webp.headers["vary"] == "Accept" == jpeg.headers["vary"]
    assert webp.headers["content-type"] == "image/webp"
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert webp.headers["etag"] != jpeg.headers["etag"]
    assert decode(webp.content).width == decode(jpeg.content).width == 100
    not_modified = await service.get(
        url, headers={"Accept": "image/webp", "If-None-Match": webp.headers["etag"]}
    )
    assert not_modified.status_code == 304 and not_modified.headers["vary"] == "Accept"
    # repeated lines of a list header are one list (the last line alone chose JPEG)
    lines = [("Accept", "image/webp"), ("Accept", "*/*")]
    assert (await service.get(url, headers=lines)).headers["content-type"] == "image/webp"
    tags = [("Accept", "image/webp"), ("If-None-Match", '"x"')]
    tags.append(("If-None-Match", webp.headers["etag"]))
    assert (await service.get(url, headers=tags)).status_code == 304


async def test_accept_splits_plans_only_by_the_format_it_negotiates(service: Service) -> None:
    """Browsers send many different ``Accept`` strings: an f_auto path gets one plan and one
    answer per negotiated format, and a path without f_auto one in all."""
    image_id, _ = await service.image()
    auto = f"/i/{image_id}/w_50,f_auto/a.jpg"
    fixed = f"/i/{image_id}/w_50/a.png"
    accepts = [
        "image/avif,image/webp,*/*;q=0.8",
        "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
        "image/webp,*/*",
        "image/webp;q=0.9,image/avif;q=0",
        "*/*",
        "image/png,image/*;q=0.8",
    ]
    types = {}
    for accept in accepts:
        for path in (auto, fixed):
            answer = await service.get(signed(path), headers={"Accept": accept})
            assert answer.status_code == 200 and decode(answer.content).width == 50
            types[(path, accept)] = (answer.headers["content-type"], answer.headers["etag"])
    assert [types[(auto, a)][0] for a in accepts] == [
        "image/avif",
        "image/avif",
        "image/webp",
        "image/webp",
        "image/jpeg",
        "image/jpeg",
    ]
    assert len({types[(auto, a)][1] for a in accepts}) == 3  # one ETag per format
    assert {types[(fixed, a)] for a in accepts} == {types[(fixed, "*/*")]}
    plans = service.origin.plans.paths
    assert plans[auto].formats is not None and set(plans[auto].formats) == {"avif", "webp"}
    assert plans[fixed].formats is None
    assert {plans[auto].plan.format, plans[fixed].plan.format} == {"jpeg", "png"}


async def test_owner_bearer_token_without_s_is_private(service: Service) -> None:
    image_id, owner = await service.image()
    answer = await service.get(f"/i/{image_id}/w_60/a.png", headers=service.bearer(owner))
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "private, no-store"
    assert decode(answer.content).width == 60


async def test_another_users_token_is_404_and_a_bad_token_403(service: Service) -> None:
    image_id, _ = await service.image()
    stranger = await service.user()
    answer = await service.get(f"/i/{image_id}/w_60/a.png", headers=service.bearer(stranger))
    assert answer.status_code == 404 and error_code(answer) == "not_found"
    bad = await service.get(f"/i/{image_id}/w_60/a.png", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 403 and error_code(bad) == "bad_signature"


@pytest.mark.parametrize(
    "query",
    ["", "?s=", "?s=" + "A" * 43, "?s=" + "é"],
)
async def test_missing_or_wrong_s_is_403(service: Service, query: str) -> None:
    image_id, _ = await service.image()
    answer = await service.get(f"/i/{image_id}/w_60/a.png{query}")
    assert answer.status_code == 403 and error_code(answer) == "bad_signature"


async def test_tampered_paths_are_403(service: Service) -> None:
    image_id, _ = await service.image()
    path = f"/i/{image_id}/w_60,e_blur:50/a%20b.png"
    url = signed(path)
    assert (await service.get(url)).status_code == 200
    query = url[len(path) :]
    tampered = [
        path.replace("w_60", "w_61"),  # one byte changed
        path.replace("a%20b", "A%20b"),  # different case
        path.replace("%20", "%2520"),  # added percent-encoding
        path.replace("e_blur:50", "e_blur%3A50"),  # added percent-encoding (same meaning)
        path.replace("a%20b", "ab"),  # removed
        path.replace(image_id, image_id[:-1] + ("0" if image_id[-1] != "0" else "1")),
    ]
    for candidate in tampered:
        answer = await service.get(candidate + query)
        assert answer.status_code == 403, candidate
        assert error_code(answer) == "bad_signature"


async def test_expiry_edges(service: Service) -> None:
    image_id, _ = await service.image()
    path = f"/i/{image_id}/w_40/a.png"
    now = int(time.time())
    ok = await service.get(signed(path, exp=now + 1))
    assert ok.status_code == 200 and decode(ok.content).width == 40
    gone = await service.get(signed(path, exp=now - 1))
    assert gone.status_code == 403 and error_code(gone) == "url_expired"
    # exp is signed: moving it forward breaks the signature
    moved = signed(path, exp=now - 1).replace(f"exp={now - 1}", f"exp={now + 999}")
    assert error_code(await service.get(moved)) == "bad_signature"
    # any exp of up to 12 digits: past the year 9999 no Expires can be written (it was a
    # 500), and no answer is fresh for more than a year
    for far in (253_402_300_800, 999_999_999_999):
        answer = await service.get(signed(path, exp=far))
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "public, max-age=31536000, must-revalidate"
        expires = parsedate_to_datetime(answer.headers["expires"]).timestamp()
        assert abs(expires - (time.time() + 31_536_000)) < 5


@pytest.mark.parametrize(
    "query",
    [
        "?exp=soon&s=x",
        "?exp=1.5&s=x",
        "?exp=-1&s=x",
        "?w=100&s=x",
        "?s=x&s=y",
        "?exp=1&exp=2&s=x",
        "?s=x&",
        "?S=x",
    ],
)
async def test_query_shape_is_400_before_the_signature(service: Service, query: str) -> None:
    image_id, _ = await service.image()
    answer = await service.get(f"/i/{image_id}/w_40/a.png{query}")
    assert answer.status_code == 400 and error_code(answer) == "bad_request"


async def test_unknown_deleted_and_malformed_ids_are_404_with_a_valid_signature(
    service: Service,
) -> None:
    for image_id in ("0" * 32, "NOT-AN-ID", "ab" * 15):
        answer = await service.get(signed(f"/i/{image_id}/w_40/a.png"))
        assert answer.status_code == 404 and error_code(answer) == "not_found"
    # ... and a bad signature is 403 whatever the path
    assert (await service.get(f"/i/{'0' * 32}/w_40/a.png?s={'A' * 43}")).status_code == 403
    assert (await service.get("/i/zzz/qq_1/a.png?s=" + "A" * 43)).status_code == 403


@pytest.mark.parametrize(
    ("chain", "code"),
    [("w_abc", "bad_transform"), ("zz_1", "bad_transform"), ("w_9000", "limit_exceeded")],
)
async def test_bad_token_or_value_is_400(service: Service, chain: str, code: str) -> None:
    image_id, _ = await service.image()
    answer = await service.get(signed(f"/i/{image_id}/{chain}/a.png"))
    assert answer.status_code == 400 and error_code(answer) == code


async def test_json_returns_metadata_with_the_same_caching(service: Service) -> None:
    image_id, _ = await service.image()
    answer = await service.get(signed(f"/i/{image_id}/w_100,h_100,c_fill/a.json"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == IMMUTABLE
    facts = json.loads(answer.content)
    assert (facts["width"], facts["height"], facts["format"]) == (100, 100, "png")
    assert facts["dominant_color"].startswith("#")


async def test_overlays_must_belong_to_the_owner(service: Service) -> None:
    image_id, owner = await service.image()
    mine, _ = await service.image(owner, width=40, height=40)
    theirs, _ = await service.image()
    ok = await service.get(signed(f"/i/{image_id}/w_200/l_{mine},g_north_west/a.png"))
    assert ok.status_code == 200
    assert decode(ok.content).width == 200
    bad = await service.get(signed(f"/i/{image_id}/w_200/l_{theirs}/a.png"))
    assert bad.status_code == 400 and error_code(bad) == "bad_transform"
    assert f"l_{theirs}" in bad.json()["error"]["message"]


async def test_zero_stage_url_is_re_encoded_without_metadata(service: Service) -> None:
    image_id, _ = await service.image(fmt="jpeg")
    answer = await service.get(signed(f"/i/{image_id}/a.jpg"))
    assert answer.status_code == 200
    img = decode(answer.content)
    assert (img.width, img.height) == (400, 300)
    assert "exif-data" not in img.get_fields()


@pytest.mark.parametrize("path", ["/api/images/", "/api/grammar/", "/metrics/", "/healthz/"])
async def test_a_trailing_slash_is_404_never_a_redirect_to_the_callers_host(
    service: Service, path: str
) -> None:
    """Starlette's slash redirect built its Location from the request's Host header: a
    redirect to any host the caller named, which a cache in front could keep."""
    answer = await service.get(path, headers={"Host": "evil.example"})
    assert answer.status_code == 404 and "location" not in answer.headers
    assert error_code(answer) == "not_found"


async def test_request_id_is_echoed_or_made(service: Service) -> None:
    given = await service.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await service.get("/healthz", headers={"X-Request-ID": "bad id\x01"})
    assert len(made.headers["x-request-id"]) == 16


async def test_access_log_line(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    image_id, _ = await service.image()
    with caplog.at_level("INFO", logger="imgorigin.access"):
        await service.get(signed(f"/i/{image_id}/w_30/a.png"), headers={"X-Request-ID": "r1"})
        service.http.app_state["access_log"].flush()  # type: ignore[attr-defined]
    lines = [
        line
        for r in caplog.records
        if r.name == "imgorigin.access"
        for line in r.getMessage().splitlines()
        if "request_id=r1" in line
    ]
    assert len(lines) == 1
    line = lines[0]
    for part in (
        "request_id=r1",
        "status=200",
        "tier=render",
        "wait_us=",
        "load_us=",
        "render_us=",
        "total_us=",
    ):
        assert part in line
