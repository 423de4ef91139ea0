"""nginx.conf and Client Hints: the cache key holds the snapped hint only for w_auto/dpr_auto
URLs, the origin is sent the bucket, and answers that vary on something the key does not
hold (a t_ preset with f_auto or w_auto) are not cached. Policy URLs through nginx."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import pyvips

from origin.hints import snap_dpr, snap_width
from origin.policy import fill
from origin.settings import DEFAULT_AUTO_WIDTHS
from origin.signing import sign_policy, sign_url
from tests.edge.conftest import Edge, upload_as_new_user
from tests.origin.delivery.conftest import encoded

pytestmark = pytest.mark.slow
KEY = "edge-operator-secret"
CONF = (Path(__file__).resolve().parents[2] / "nginx.conf").read_text()


# ---- the bucket maps, read out of nginx.conf and run on the origin's own cases ----------


def bucket_map(variable: str) -> list[tuple[re.Pattern[str], str]]:
    block = re.search(rf"map \S+ \${variable} \{{\n(.*?)\n    \}}", CONF, re.DOTALL)
    assert block, f"no map for ${variable} in nginx.conf"
    rules = []
    for line in block.group(1).splitlines():
        rule = re.match(r'\s*"~(\*?)(.*?)"\s+(""|\S+?);', line)
        if rule:
            flags = re.IGNORECASE if rule.group(1) else 0
            rules.append((re.compile(rule.group(2), flags), rule.group(3).strip('"')))
    return rules


def nginx_bucket(variable: str, value: str) -> str:
    for pattern, bucket in bucket_map(variable):
        if pattern.search(value):
            return bucket
    return ""


def test_width_buckets_are_the_origin_snapping() -> None:
    cases = [str(n) for n in range(0, 3001)] + ["99999", "999999", "0640", "abc", "1.5", "-3"]
    cases += ["1000000", "9" * 64, "0" * 70 + "640", "9" * 65]  # above the list: its largest
    for value in cases:
        snapped = snap_width(value.encode(), DEFAULT_AUTO_WIDTHS)
        assert nginx_bucket("imgorigin_width", value) == ("" if snapped is None else str(snapped))


def test_dpr_buckets_are_the_origin_snapping() -> None:
    cases = [f"{n / 100:.2f}" for n in range(0, 501)] + [str(n) for n in range(0, 13)]
    cases += ["1.5", "1.50", "1.05", "0.5", ".5", "2,0", "x", "", "1.", "2.625", "3.0001"]
    cases += ["1000", "99999.5", "0" * 70 + "2", "9" * 65]  # above 4: 4
    for value in cases:
        snapped = snap_dpr(value.encode())
        bucket = nginx_bucket("imgorigin_dpr", value)
        assert (Decimal(bucket) if bucket else None) == snapped, value


# ---- real nginx ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge_env(edge_env: dict[str, str]) -> dict[str, str]:
    presets = Path(edge_env["STORAGE_PATH"]).parent / "presets.json"
    presets.write_text(json.dumps({"auto": "w_auto:200", "negotiated": "w_120,f_auto"}))
    return {**edge_env, "PRESETS_FILE": str(presets)}


@pytest.fixture(scope="module")
def image_id(edge: Edge) -> Iterator[str]:
    """A 2000 × 1500 upload, made against the origin directly."""
    yield upload_as_new_user(edge.origin, encoded("png", 2000, 1500), "big.png")


def width_of(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text
    return int(pyvips.Image.new_from_buffer(answer.content, "").width)


def test_w_auto_answers_are_kept_apart_by_bucket(edge: Edge, image_id: str) -> None:
    url = edge.url + sign_url(f"/i/{image_id}/w_auto:300,dpr_auto/hints.png", KEY)
    hints = {
        (): 300,
        (("Sec-CH-Width", "100"),): 160,
        (("Sec-CH-Width", "161"),): 320,
        (("Sec-CH-Width", "500"),): 640,
        (("Width", "600"),): 640,
        (("Sec-CH-Width", "500"), ("Width", "2000")): 640,
        (("Sec-CH-Width", "99999"),): 2560,
        (("Sec-CH-Width", "junk"),): 300,
        (("DPR", "2"),): 600,
        (("Sec-CH-DPR", "1.8"),): 600,
        (("Sec-CH-DPR", "2.625"), ("Width", "700")): 768,
    }
    before = len(edge.cache_entries())
    first = {}
    for headers, width in hints.items():
        answer = httpx.get(url, headers=dict(headers), timeout=60)
        assert width_of(answer) == width, headers
        assert "Sec-CH-Width" in answer.headers["vary"]
        first[headers] = answer.content
    # buckets: none, w160, w320, w640, w2560, d2, w768+d3 (junk is no hint: the first bucket)
    assert len(edge.cache_entries()) - before == 7
    for headers, width in hints.items():
        again = httpx.get(url, headers=dict(headers), timeout=60)
        assert again.headers["x-cache-status"] == "HIT", headers
        assert again.content == first[headers] and width_of(again) == width


def test_urls_without_auto_tokens_ignore_hints(edge: Edge, image_id: str) -> None:
    url = edge.url + sign_url(f"/i/{image_id}/w_150/plain.png", KEY)
    before = len(edge.cache_entries())
    answers = [
        httpx.get(url, headers=h, timeout=60)
        for h in ({}, {"Sec-CH-Width": "1000"}, {"DPR": "3"}, {"Width": "5"})
    ]
    assert [width_of(a) for a in answers] == [150] * 4
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert len(edge.cache_entries()) - before == 1


def test_presets_that_vary_are_not_cached(edge: Edge, image_id: str) -> None:
    hinted = edge.url + sign_url(f"/i/{image_id}/t_auto/preset.png", KEY)
    for width, expected in (("500", 640), ("100", 160), ("500", 640), (None, 200)):
        answer = httpx.get(hinted, headers={"Width": width} if width else {}, timeout=60)
        assert width_of(answer) == expected
        assert answer.headers["x-cache-status"] != "HIT"
    negotiated = edge.url + sign_url(f"/i/{image_id}/t_negotiated/preset.jpg", KEY)
    for accept, media_type in (("image/webp,*/*", "image/webp"), ("*/*", "image/jpeg")) * 2:
        answer = httpx.get(negotiated, headers={"Accept": accept}, timeout=60)
        assert answer.headers["content-type"] == media_type
        assert answer.headers["x-cache-status"] != "HIT"


ENCODED = {
    # path: [(request headers, expected width, expected Content-Type)]
    "w_auto:100,dpr_%61uto/enc-dpr.png": [
        ({"Sec-CH-DPR": "1"}, 100, "image/png"),
        ({"Sec-CH-DPR": "3"}, 300, "image/png"),
        ({}, 100, "image/png"),
        ({"DPR": "2"}, 200, "image/png"),
        ({"Sec-CH-DPR": "3"}, 300, "image/png"),
    ],
    "w_%61uto:100,dpr_auto/enc-width.png": [
        ({"Sec-CH-DPR": "2"}, 200, "image/png"),
        ({"Sec-CH-DPR": "2", "Sec-CH-Width": "500"}, 640, "image/png"),
        ({"Sec-CH-DPR": "2", "Sec-CH-Width": "100"}, 160, "image/png"),
        ({"Sec-CH-DPR": "2"}, 200, "image/png"),
    ],
    "w_%61uto:100,dpr_%61%75to/enc-both.png": [
        ({"Sec-CH-DPR": "1"}, 100, "image/png"),
        ({"Sec-CH-DPR": "3"}, 300, "image/png"),
    ],
    "w_100,f_%61uto/enc-format.jpg": [
        ({"Accept": "image/webp,*/*"}, 100, "image/webp"),
        ({"Accept": "*/*"}, 100, "image/jpeg"),
        ({"Accept": "image/avif,*/*"}, 100, "image/avif"),
        ({"Accept": "image/webp,*/*"}, 100, "image/webp"),
    ],
}


@pytest.mark.parametrize("transform", list(ENCODED))
def test_percent_encoded_auto_tokens_never_share_a_key(
    edge: Edge, image_id: str, transform: str
) -> None:
    """The origin decodes `dpr_%61uto` to `dpr_auto`; nginx's maps read the literal text, so
    the key has no bucket for that hint and such an answer must not be cached."""
    url = edge.url + sign_url(f"/i/{image_id}/{transform}", KEY)
    before = len(edge.cache_entries())
    for headers, width, media_type in ENCODED[transform]:
        answer = httpx.get(url, headers=headers, timeout=60)
        assert width_of(answer) == width, headers
        assert answer.headers["content-type"] == media_type, headers
        assert answer.headers["x-cache-status"] == "MISS", headers
    assert len(edge.cache_entries()) == before


def test_the_origin_gets_the_server_blocks_headers_on_i(edge: Edge, image_id: str) -> None:
    """X-Request-ID (nginx's, 32 hex digits) reaches the origin for /i/ as for other routes."""
    url = edge.url + sign_url(f"/i/{image_id}/w_64/request-id.png", KEY)
    answer = httpx.get(url, headers={"X-Request-ID": "client-chosen"}, timeout=60)
    assert answer.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])


def test_policy_urls_through_nginx(edge: Edge, image_id: str) -> None:
    """Each filled-in variant of a policy URL is its own cache entry; refusals are not kept."""
    signed = sign_policy(f"/i/{image_id}/w_*,c_fill,ar_1:1/policy.*", KEY, "w_100-200.f_webp-png")
    before = len(edge.cache_entries())
    for w, f in (("100", "webp"), ("200", "webp"), ("100", "png"), ("100", "webp")):
        answer = httpx.get(edge.url + fill(signed, w=int(w), f=f), timeout=60)
        assert width_of(answer) == int(w) and answer.headers["content-type"] == f"image/{f}"
    assert answer.headers["x-cache-status"] == "HIT"
    assert len(edge.cache_entries()) - before == 3
    for _ in range(2):
        refused = httpx.get(edge.url + fill(signed, w=150, f="webp"), timeout=60)
        assert refused.status_code == 403 and refused.headers["x-cache-status"] != "HIT"
