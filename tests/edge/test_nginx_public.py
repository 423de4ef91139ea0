"""Public delivery behind the shipped nginx.conf: an unsigned URL of a public image through
an unsigned transformation is kept at the edge (the origin renders it once, per Accept
bucket with f_auto); an unsigned URL public delivery does not allow is 403 and never
stored."""

from __future__ import annotations

import secrets

import httpx
import pytest
import pyvips

from tests.admin_api.conftest import make_image
from tests.edge.conftest import Edge, metric, origin_metrics

pytestmark = pytest.mark.slow


def public_image_with_card(origin: str) -> str:
    """A new account's public ``Cat.jpg`` (64×48) and its unsigned ``card`` (120×80)."""
    email, password = f"{secrets.token_hex(4)}@example.com", "edge password 1"
    with httpx.Client(base_url=origin, timeout=30) as http:
        http.post("/api/auth/signup", json={"email": email, "password": password})
        login = http.post("/api/auth/login", json={"email": email, "password": password})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        card = {"transform": "w_120,h_80,c_fill", "unsigned": True, "formats": ["webp", "jpg"]}
        assert http.put("/api/transformations/card", headers=auth, json=card).status_code == 201
        upload = http.post(
            "/api/images",
            headers=auth,
            files={"file": ("Cat.jpg", make_image(width=64, height=48))},
            data={"public": "true"},
        )
        assert upload.status_code == 201, upload.text
        return str(upload.json()["id"])


def test_an_unsigned_public_url_is_kept_at_the_edge(edge: Edge) -> None:
    image_id = public_image_with_card(edge.origin)
    renders = metric(origin_metrics(edge.origin), "imgorigin_cache_hits_total", tier="render")
    url = f"{edge.url}/i/{image_id}/t_card/Cat.webp"
    answers = [httpx.get(url, timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT"]
    assert answers[2].headers["cache-control"] == "public, max-age=86400"
    image = pyvips.Image.new_from_buffer(answers[2].content, "")
    assert (image.width, image.height) == (120, 80)

    negotiated = f"{edge.url}/i/{image_id}/t_card,f_auto/Cat.jpg"
    avif = [httpx.get(negotiated, headers={"Accept": "image/avif"}, timeout=30) for _ in range(2)]
    plain = [httpx.get(negotiated, headers={"Accept": "*/*"}, timeout=30) for _ in range(2)]
    assert [a.headers["content-type"] for a in avif] == ["image/avif"] * 2
    assert [a.headers["content-type"] for a in plain] == ["image/jpeg"] * 2
    assert [a.headers["x-cache-status"] for a in avif + plain] == ["MISS", "HIT", "MISS", "HIT"]
    after = metric(origin_metrics(edge.origin), "imgorigin_cache_hits_total", tier="render")
    assert after - renders == 3  # webp, avif, jpeg: each rendered once, the rest at the edge

    for refused in (f"/i/{image_id}/w_300/Cat.webp", f"/i/{image_id}/t_card/Other.webp"):
        twice = [httpx.get(edge.url + refused, timeout=30) for _ in range(2)]
        assert [a.status_code for a in twice] == [403, 403]
        assert twice[1].json()["error"]["code"] == "bad_signature"
        assert twice[1].headers["x-cache-status"] == "MISS"  # never stored


def test_cache_tags_reach_nginx_and_never_a_client(edge: Edge) -> None:
    image_id = public_image_with_card(edge.origin)
    path = f"/i/{image_id}/t_card/Cat.webp"
    direct = httpx.get(edge.origin + path, timeout=30)
    tags = direct.headers["cache-tag"].split(",")
    assert [t[0] for t in tags] == ["i", "u"] and all(len(t) == 21 for t in tags)
    assert direct.headers["surrogate-key"] == " ".join(tags)
    assert direct.headers["edge-cache-tag"] == ",".join(tags)
    assert image_id not in direct.headers["cache-tag"]
    for _ in range(2):  # a miss and a hit
        through = httpx.get(edge.url + path, timeout=30)
        assert through.status_code == 200
        assert not {"cache-tag", "surrogate-key", "edge-cache-tag"} & set(through.headers)
