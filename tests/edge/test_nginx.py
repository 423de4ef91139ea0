"""nginx.conf in front of a live origin: what is cached, what is not, and what is refused."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import pyvips
import skimage

from origin.signing import sign_url
from tests.edge.conftest import Edge, metric, origin_metrics

pytestmark = pytest.mark.slow
KEY = "edge-operator-secret"


@dataclass(frozen=True)
class Account:
    token: str
    image_id: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def account(edge: Edge) -> Iterator[Account]:
    """A user and a real photograph, made against the origin directly (not through nginx)."""
    email, password = f"{secrets.token_hex(4)}@example.com", "edge password 1"
    with httpx.Client(base_url=edge.origin, timeout=30) as http:
        assert (
            http.post("/api/auth/signup", json={"email": email, "password": password}).status_code
            == 201
        )
        token = http.post("/api/auth/login", json={"email": email, "password": password}).json()[
            "access_token"
        ]
        photo = os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")
        data = pyvips.Image.new_from_file(photo).jpegsave_buffer(Q=85)
        upload = http.post(
            "/api/images",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("a.jpg", data)},
        )
        assert upload.status_code == 201, upload.text
        yield Account(token, upload.json()["id"])


def renders(edge: Edge) -> float:
    return metric(origin_metrics(edge.origin), "imgorigin_cache_hits_total", tier="render")


def origin_requests(edge: Edge) -> float:
    return metric(origin_metrics(edge.origin), "imgorigin_requests_total", route="/i/{path:path}")


def non_metrics_requests(edge: Edge) -> float:
    text = origin_metrics(edge.origin)
    return metric(text, "imgorigin_requests_total") - metric(
        text, "imgorigin_requests_total", route="/metrics"
    )


def test_second_request_is_a_hit_that_never_reaches_the_origin(
    edge: Edge, account: Account
) -> None:
    url = edge.url + sign_url(f"/i/{account.image_id}/w_200,h_150,c_fill/hit.jpg", KEY)
    first = httpx.get(url)
    assert first.status_code == 200 and first.headers["x-cache-status"] == "MISS"
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    before = origin_requests(edge)
    second = httpx.get(url)
    assert second.headers["x-cache-status"] == "HIT"
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    image = pyvips.Image.new_from_buffer(second.content, "")
    assert (image.width, image.height) == (200, 150)
    assert origin_requests(edge) == before


def test_each_answer_has_its_own_request_id_hits_too(edge: Edge, account: Account) -> None:
    """nginx's own ``$request_id``, the one the origin got on a miss: a hit used to carry the
    id stored with the answer, the request's that filled the cache."""
    url = edge.url + sign_url(f"/i/{account.image_id}/w_90/ids.jpg", KEY)
    answers = [httpx.get(url) for _ in range(3)]
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT"]
    ids = [a.headers.get_list("x-request-id") for a in answers]
    assert all(len(i) == 1 and re.fullmatch(r"[0-9a-f]{32}", i[0]) for i in ids), ids
    assert len({i[0] for i in ids}) == 3


async def test_a_burst_for_one_new_url_renders_once(edge: Edge, account: Account) -> None:
    url = edge.url + sign_url(f"/i/{account.image_id}/w_321,h_123,c_fill,e_sepia/burst.webp", KEY)
    before = renders(edge)
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(*(http.get(url) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert renders(edge) - before == 1


@pytest.mark.parametrize("kind", ["403", "404", "bearer"])
def test_errors_and_private_answers_are_not_cached(edge: Edge, account: Account, kind: str) -> None:
    if kind == "403":
        url, headers, status = f"/i/{account.image_id}/w_10/x.jpg?s={'A' * 43}", {}, 403
    elif kind == "404":
        url, headers, status = sign_url(f"/i/{'0' * 32}/w_10/x.jpg", KEY), {}, 404
    else:
        url, headers, status = f"/i/{account.image_id}/w_64/private.png", account.bearer, 200
    before = origin_requests(edge)
    answers = [httpx.get(edge.url + url, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [status] * 3
    assert all(a.headers.get("x-cache-status") != "HIT" for a in answers)
    assert origin_requests(edge) - before == 3  # every one reached the origin
    if kind == "bearer":
        assert answers[0].headers["cache-control"] == "private, no-store"
        # and a later anonymous request for the same path is not served the private copy
        anonymous = httpx.get(edge.url + url)
        assert anonymous.status_code == 403


def test_f_auto_makes_at_most_three_cache_entries(edge: Edge, account: Account) -> None:
    url = edge.url + sign_url(f"/i/{account.image_id}/w_150,f_auto/auto.jpg", KEY)
    before = len(edge.cache_entries())
    accepts = {
        "image/avif,image/webp,image/apng,*/*;q=0.8": "image/avif",
        "image/avif,image/webp,*/*": "image/avif",
        "image/webp,*/*": "image/webp",
        "image/webp,image/png,*/*;q=0.5": "image/webp",
        "image/png,image/*;q=0.8,*/*;q=0.5": "image/jpeg",
        "*/*": "image/jpeg",
        "text/html, image/AVIF;q=0.9": "image/avif",
        # Refused with q=0: not that bucket (before, any mention of the type put the client
        # there, and nginx served it the AVIF or WebP others had cached).
        "image/avif;q=0,image/webp;q=0,*/*": "image/jpeg",
        "image/png,image/webp;q=0": "image/jpeg",
        "image/webp; q=0.0, image/avif;Q=0": "image/jpeg",
        "image/avif;q=0,image/webp,*/*": "image/webp",
        "image/avif;q=0.001,*/*": "image/avif",
        "image/avif;level=1;q=0,image/webp;q=-1,*/*": "image/jpeg",  # q after another parameter
    }
    for accept, media_type in accepts.items():
        answer = httpx.get(url, headers={"Accept": accept})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == media_type, accept
        assert answer.headers["vary"] == "Accept"
        assert pyvips.Image.new_from_buffer(answer.content, "").width == 150
    assert len(edge.cache_entries()) - before == 3


def test_an_11_mb_upload_is_refused_by_nginx(edge: Edge, account: Account) -> None:
    before = non_metrics_requests(edge)
    body = os.urandom(11 * 1024 * 1024)
    answer = httpx.post(
        edge.url + "/api/images",
        headers=account.bearer,
        files={"file": ("big.jpg", body)},
        timeout=30,
    )
    assert answer.status_code == 413
    assert non_metrics_requests(edge) == before  # refused by nginx: the origin never saw it


def test_forged_forwarded_for_cannot_dodge_the_auth_limit(edge: Edge) -> None:
    statuses = []
    with httpx.Client(base_url=edge.url) as http:
        for i in range(40):
            answer = http.post(
                "/api/auth/login",
                json={"email": "nobody@example.com", "password": "wrong password"},
                headers={"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"198.51.100.{i}"},
            )
            statuses.append(answer.status_code)
    assert statuses[0] == 401
    assert statuses.count(429) >= 20  # burst of 10 at 20/min: most of 40 quick tries refused
