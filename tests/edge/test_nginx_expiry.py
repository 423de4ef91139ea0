"""nginx.conf and expiring URLs (``exp``, a policy's ``exp_``): cached until their expiry, then
never served stale — not while the origin refuses the refresh (403 ``url_expired``, not
cacheable) and not while the origin is down. Signed URLs without expiry keep being served
from the cache while the origin is down."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pyvips

from origin.policy import fill, parse_policy
from origin.signing import sign_policy, sign_url
from tests.conftest import free_port
from tests.edge.conftest import nginx_in_front_of, origin_on, upload_as_new_user
from tests.origin.delivery.conftest import encoded

pytestmark = pytest.mark.slow
KEY = "edge-operator-secret"


@dataclass(frozen=True)
class Tier:
    """nginx in front of an origin port that the tests start and stop themselves."""

    url: str
    env: dict[str, str]
    port: int


@pytest.fixture(scope="module")
def tier(edge_env: dict[str, str]) -> Iterator[Tier]:
    port = free_port()
    with nginx_in_front_of(f"http://127.0.0.1:{port}") as (url, _):
        yield Tier(url, edge_env, port)


@pytest.fixture(scope="module")
def image_id(tier: Tier) -> str:
    """A 400 × 300 upload, made against the origin directly."""
    with origin_on(tier.env, tier.port) as origin:
        return upload_as_new_user(origin, encoded("png", 400, 300), "photo.png")


def expiring_url(image_id: str, kind: str, width: int, seconds: int) -> tuple[str, int]:
    """A URL good for ``seconds`` more, signed per URL (``exp``) or by policy (``exp_``)."""
    if kind == "exp":
        url = sign_url(f"/i/{image_id}/w_{width}/{kind}.png", KEY, expires_in=seconds)
        return url, int(parse_qs(urlsplit(url).query)["exp"][0])
    signed = sign_policy(f"/i/{image_id}/w_*/{kind}.png", KEY, f"w_{width}", expires_in=seconds)
    policy = parse_policy(parse_qs(urlsplit(signed).query)["p"][0])
    assert policy.exp is not None
    return fill(signed, w=width), policy.exp


def wait_until_past(exp: int) -> None:
    """The URL is good through second ``exp``. nginx counts ``max-age`` from its own clock
    (whole seconds), which may be one second ahead of the origin's: wait one more."""
    time.sleep(max(0.0, exp + 2.05 - time.time()))


def freshness_left(answer: httpx.Response) -> float:
    """How long a cache behind nginx may keep ``answer`` (RFC 9111 4.2.1: ``max-age`` less
    ``Age``, else ``Expires`` less ``Date``)."""
    control = answer.headers["cache-control"]
    max_age = re.search(r"max-age=([0-9]+)", control)
    if max_age:
        return int(max_age.group(1)) - int(answer.headers.get("age", "0"))
    expires = parsedate_to_datetime(answer.headers["expires"])
    return (expires - parsedate_to_datetime(answer.headers["date"])).total_seconds()


def width_of(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text
    return int(pyvips.Image.new_from_buffer(answer.content, "").width)


def assert_expired(answer: httpx.Response) -> None:
    """The origin's 403 ``url_expired``, passed on by nginx: no stale image."""
    assert answer.status_code == 403, (answer.status_code, answer.headers)
    assert answer.json()["error"]["code"] == "url_expired"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-cache-status"] not in ("STALE", "UPDATING", "HIT")


@pytest.mark.parametrize("kind", ["exp", "policy"])
def test_a_hit_until_expiry_then_the_origins_403_never_stale(
    tier: Tier, image_id: str, kind: str
) -> None:
    with origin_on(tier.env, tier.port):
        # signed once the origin is up: its start under load may take seconds of the URL's life
        url, exp = expiring_url(image_id, kind, 120, seconds=4)
        first = httpx.get(tier.url + url, timeout=30)
        assert first.headers["x-cache-status"] == "MISS" and width_of(first) == 120
        assert first.headers["cache-control"] == "public, must-revalidate"
        assert freshness_left(first) <= exp - int(time.time()) + 1
        second = httpx.get(tier.url + url, timeout=30)
        assert second.headers["x-cache-status"] == "HIT" and second.content == first.content
        wait_until_past(exp)
        for _ in range(3):
            assert_expired(httpx.get(tier.url + url, timeout=30))
            time.sleep(0.2)  # room for a background refresh, had one been started


@pytest.mark.parametrize("kind", ["exp", "policy"])
def test_a_hit_tells_caches_behind_nginx_only_the_time_left(
    tier: Tier, image_id: str, kind: str
) -> None:
    """nginx sends a stored answer's headers again and no ``Age``: a ``max-age`` counted from
    the miss let a browser or CDN behind nginx keep the answer past its expiry."""
    with origin_on(tier.env, tier.port):
        url, exp = expiring_url(image_id, kind, 130, seconds=30)
        first, first_at = httpx.get(tier.url + url, timeout=30), time.time()
        assert first.headers["x-cache-status"] == "MISS" and width_of(first) == 130
        time.sleep(2.5)
        hit, hit_at = httpx.get(tier.url + url, timeout=30), time.time()
        assert hit.headers["x-cache-status"] == "HIT" and hit.content == first.content
    for answer, at in ((first, first_at), (hit, hit_at)):
        assert "must-revalidate" in answer.headers["cache-control"]
        left = exp + 1 - at  # exp is good through its second
        assert left - 4 <= freshness_left(answer) <= left + 1, answer.headers


def test_an_expired_entry_is_not_served_while_the_origin_is_down(tier: Tier, image_id: str) -> None:
    expiring, exp = expiring_url(image_id, "exp", 90, seconds=10)
    lasting = sign_url(f"/i/{image_id}/w_90/lasting.png", KEY)
    with origin_on(tier.env, tier.port):
        for url in (expiring, lasting):
            assert httpx.get(tier.url + url, timeout=30).headers["x-cache-status"] == "MISS"
    # the origin is down: both are still fresh, so both are hits
    for url in (expiring, lasting):
        answer = httpx.get(tier.url + url, timeout=30)
        assert answer.headers["x-cache-status"] == "HIT" and width_of(answer) == 90
    assert time.time() < exp, "the origin took too long to stop for this test"
    wait_until_past(exp)
    for _ in range(2):
        down = httpx.get(tier.url + expiring, timeout=30)
        assert down.status_code == 502 and b"PNG" not in down.content[:8]
        assert down.headers["x-cache-status"] not in ("STALE", "UPDATING", "HIT")
    kept = httpx.get(tier.url + lasting, timeout=30)
    assert kept.headers["x-cache-status"] == "HIT" and width_of(kept) == 90
    with origin_on(tier.env, tier.port):
        assert_expired(httpx.get(tier.url + expiring, timeout=30))
        assert width_of(httpx.get(tier.url + lasting, timeout=30)) == 90


# ---- the two /i/ locations ------------------------------------------------------------


def directives(location: str) -> list[str]:
    conf = (Path(__file__).resolve().parents[2] / "nginx.conf").read_text()
    block = re.search(
        rf"\n        location {re.escape(location)} \{{\n(.*?)\n        \}}\n", conf, re.DOTALL
    )
    assert block, f"no location {location} in nginx.conf"
    lines = (re.sub(r"#.*", "", line).strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


def test_the_expiring_location_is_the_i_location_without_stale_copies() -> None:
    """Both locations proxy the same way with the same key; only staleness differs."""
    routed, expiring = directives("~ ^/[ir]/"), directives("@imgorigin_expiring")
    assert routed[:4] == [
        "error_page 418 = @imgorigin_expiring;",
        "if ($imgorigin_expiring) {",
        "return 418;",
        "}",
    ]
    stale = ("proxy_cache_use_stale ",)
    same = [
        line.replace(" $imgorigin_must_revalidate;", ";")
        for line in routed[4:]
        if not line.startswith(stale)
    ]
    assert not any(line.startswith("proxy_cache_background_update") for line in routed)
    assert [line for line in expiring if line != "proxy_cache_use_stale off;"] == same
    assert "proxy_cache_use_stale off;" in expiring


def test_the_i_location_alone_never_stores_an_answer_with_an_expiry(
    edge_env: dict[str, str], image_id: str
) -> None:
    """Should an expiring URL ever reach location /i/ (a spelling $imgorigin_expiring misses),
    the answer's `must-revalidate` keeps it out of the cache that serves stale copies."""

    def unrouted(conf: str) -> str:
        routing = (
            "            if ($imgorigin_expiring) {\n                return 418;\n            }\n"
        )
        assert routing in conf
        return conf.replace(routing, "")

    port = free_port()
    with (
        origin_on(edge_env, port) as origin,
        nginx_in_front_of(origin, edit=unrouted) as (url, _),
    ):
        expiring, _exp = expiring_url(image_id, "exp", 70, seconds=600)
        answers = [httpx.get(url + expiring, timeout=30) for _ in range(3)]
        assert [width_of(a) for a in answers] == [70] * 3
        assert [a.headers["x-cache-status"] for a in answers] == ["MISS"] * 3
        lasting = sign_url(f"/i/{image_id}/w_70/unrouted.png", KEY)
        answers = [httpx.get(url + lasting, timeout=30) for _ in range(2)]
        assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT"]
