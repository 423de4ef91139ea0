"""Purge at the edge with the shipped nginx.conf and the cache-purge module: the origin
records the keys nginx stored an image's answers under, and on a delete or a replace its
purge job removes every one of them (each Accept bucket of an f_auto URL too) within a
second; /imgorigin-purge answers only the origin's addresses."""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import pyvips

from origin.edge_keys import FLUSH_SECONDS
from origin.signing import sign_url
from tests.admin_api.conftest import make_image
from tests.conftest import free_port, migrate_with, serving
from tests.edge.conftest import metric, nginx_in_front_of, origin_metrics

pytestmark = pytest.mark.slow
KEY = "edge-operator-secret"


@pytest.fixture(scope="module")
def purging() -> Iterator[tuple[str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="imgorigin-purge-"))
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'meta.db'}",
        "STORAGE_PATH": str(folder / "storage"),
        "SECRETS_FILE": str(folder / "secrets.json"),
        "JWT_SECRET": "edge-jwt-secret-" + "e" * 32,
        "URL_SIGNING_KEYS": f"edge:{KEY}",
        "PURGE_NGINX_URLS": f"http://127.0.0.1:{port}",
        "JOB_POLL_SECONDS": "0.05",
        "EAGER_THUMBNAIL": "0",
    }
    migrate_with(env)
    with serving(env) as origin, nginx_in_front_of(origin, port=port) as (edge, _):
        yield origin, edge
    shutil.rmtree(folder, ignore_errors=True)


def account(origin: str) -> dict[str, str]:
    email, password = f"{secrets.token_hex(4)}@example.com", "edge password 1"
    with httpx.Client(base_url=origin, timeout=30) as http:
        http.post("/api/auth/signup", json={"email": email, "password": password})
        login = http.post("/api/auth/login", json={"email": email, "password": password})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def upload(origin: str, auth: dict[str, str], width: int, height: int) -> dict[str, object]:
    data = make_image(width=width, height=height)
    answer = httpx.post(f"{origin}/api/images", headers=auth, files={"file": ("a.jpg", data)})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def until(condition, seconds: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < seconds, "not within the time allowed"
        time.sleep(0.02)
    return time.monotonic() - began


def test_a_deleted_image_is_purged_from_nginx(purging: tuple[str, str]) -> None:
    origin, edge = purging
    auth = account(origin)
    image_id = str(upload(origin, auth, 64, 48)["id"])
    plain = edge + sign_url(f"/i/{image_id}/w_40/a.png", KEY)
    negotiated = edge + sign_url(f"/i/{image_id}/w_40,f_auto/a.jpg", KEY)
    for url, accept in ((plain, "*/*"), (negotiated, "image/avif"), (negotiated, "image/webp")):
        got = [httpx.get(url, headers={"Accept": accept}, timeout=30) for _ in range(2)]
        assert [a.headers["x-cache-status"] for a in got] == ["MISS", "HIT"]
    time.sleep(FLUSH_SECONDS + 0.5)  # the origin writes the keys it saw once a second

    assert httpx.delete(f"{origin}/api/images/{image_id}", headers=auth).status_code == 204
    took = until(lambda: httpx.get(plain, timeout=30).status_code == 404)
    for accept in ("image/avif", "image/webp"):
        answer = httpx.get(negotiated, headers={"Accept": accept}, timeout=30)
        assert answer.status_code == 404, accept
    print(f"\ngone from nginx {took * 1000:.0f} ms after the DELETE answered")
    done = metric(origin_metrics(origin), "imgorigin_purges_total", target="nginx", outcome="done")
    assert done >= 1


def test_a_replaced_image_is_purged_and_new_urls_show_it(purging: tuple[str, str]) -> None:
    origin, edge = purging
    auth = account(origin)
    image = upload(origin, auth, 64, 48)
    image_id = str(image["id"])
    old = edge + str(image["url"])
    first = [httpx.get(old, timeout=30) for _ in range(2)]
    assert [a.headers["x-cache-status"] for a in first] == ["MISS", "HIT"]
    time.sleep(FLUSH_SECONDS + 0.5)

    new_png = make_image("png", 80, 40)
    replaced = httpx.put(
        f"{origin}/api/images/{image_id}", headers=auth, files={"file": ("b.png", new_png)}
    )
    assert replaced.status_code == 200, replaced.text
    minted = edge + str(replaced.json()["url"])
    assert "/v_2/" in minted
    fresh = httpx.get(minted, timeout=30)
    shown = pyvips.Image.new_from_buffer(fresh.content, "")
    assert (shown.width, shown.height) == (80, 40)

    def old_url_shows_the_new_pixels() -> bool:
        answer = httpx.get(old, timeout=30)
        return pyvips.Image.new_from_buffer(answer.content, "").width == 80

    until(old_url_shows_the_new_pixels)  # purged: the old URL answers the current image


def test_the_purge_location_answers_only_the_origins_addresses(purging: tuple[str, str]) -> None:
    _, edge = purging
    conf = (Path(__file__).resolve().parents[2] / "nginx.conf").read_text()
    block = conf.split("location = /imgorigin-purge {", 1)[1].split("}", 1)[0]
    assert "deny all;" in block and "allow 127.0.0.1;" in block
    answer = httpx.get(edge + "/imgorigin-purge", headers={"X-Imgorigin-Purge-Key": "x"})
    assert answer.status_code == 404  # from 127.0.0.1: allowed, and no such entry


def test_answers_cached_just_before_a_delete_or_replace_are_purged(
    purging: tuple[str, str],
) -> None:
    """The change comes within a second of nginx storing the answer, before the origin has
    written the key it saw (it writes them once a second): the purge that ran without the key
    is followed by one naming it. Before, those answers stayed cached (a year for a signed
    URL): 200 HIT after the DELETE, the old pixels after the replace."""
    origin, edge = purging
    auth = account(origin)
    deleted = str(upload(origin, auth, 64, 48)["id"])
    replaced = str(upload(origin, auth, 64, 48)["id"])
    gone = edge + sign_url(f"/i/{deleted}/w_40/a.png", KEY)
    old = edge + sign_url(f"/i/{replaced}/w_40/a.png", KEY)
    for url in (gone, old):
        got = [httpx.get(url, timeout=30) for _ in range(2)]
        assert [a.headers["x-cache-status"] for a in got] == ["MISS", "HIT"]

    assert httpx.delete(f"{origin}/api/images/{deleted}", headers=auth).status_code == 204
    new_png = make_image("png", 80, 40)
    answer = httpx.put(
        f"{origin}/api/images/{replaced}", headers=auth, files={"file": ("b.png", new_png)}
    )
    assert answer.status_code == 200, answer.text

    until(lambda: httpx.get(gone, timeout=30).status_code == 404, FLUSH_SECONDS + 3)

    def old_url_shows_the_new_pixels() -> bool:
        shown = httpx.get(old, timeout=30)
        return pyvips.Image.new_from_buffer(shown.content, "").height == 20  # 80×40 at w_40

    until(old_url_shows_the_new_pixels, FLUSH_SECONDS + 3)


def test_answers_cached_just_before_a_transformation_edit_are_purged(
    purging: tuple[str, str],
) -> None:
    """As above for a named transformation: the edit comes within a second of nginx storing
    an answer through it, before the origin has written the key. Before, that answer stayed
    cached for TRANSFORMATION_MAX_AGE_SECONDS with the old definition's pixels."""
    origin, edge = purging
    auth = account(origin)
    image_id = str(upload(origin, auth, 64, 48)["id"])

    def define(chain: str) -> None:
        answer = httpx.put(
            f"{origin}/api/transformations/card", headers=auth, json={"transform": chain}
        )
        assert answer.status_code in (200, 201), answer.text

    define("w_40")
    url = edge + sign_url(f"/i/{image_id}/t_card/a.png", KEY)
    first = httpx.get(url, timeout=30)
    define("w_20")  # at once: the origin writes the keys it saw once a second
    assert first.headers["x-cache-status"] == "MISS"
    assert pyvips.Image.new_from_buffer(first.content, "").width == 40

    def shows_the_new_definition() -> bool:
        shown = httpx.get(url, timeout=30)
        return pyvips.Image.new_from_buffer(shown.content, "").width == 20

    until(shows_the_new_definition, FLUSH_SECONDS + 3)


def raw_get(edge: str, target: str) -> tuple[int, dict[str, str]]:
    """GET ``target`` exactly as written (a raw ``#``, an empty ``?``: what httpx would
    tidy): the status and headers."""
    host, port = edge.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in fields.items()}


def test_urls_nginx_would_key_apart_from_what_the_origin_sees_are_not_stored(
    purging: tuple[str, str],
) -> None:
    """nginx keys on the raw request URI, which keeps a ``#…`` and an empty ``?``; the origin
    never sees either, so it cannot record the key nor purge it. Those answers are
    ``no-store``: before, they were cached (and still served after the image's DELETE)."""
    origin, edge = purging
    auth = account(origin)
    image_id = str(upload(origin, auth, 64, 48)["id"])
    signed = sign_url(f"/i/{image_id}/w_40/a.png", KEY)
    for target in (f"{signed}#junk", f"{signed}&#x", f"/i/{image_id}/w_30/a.png?"):
        first, second = raw_get(edge, target), raw_get(edge, target)
        assert first[0] in (200, 400, 403), target
        assert second[1].get("x-cache-status") != "HIT", target
        if first[0] == 200:
            assert first[1]["cache-control"] == "no-store", target
    assert raw_get(edge, signed)[1]["cache-control"].startswith("public")


def test_a_fragment_right_after_its_url_is_not_stored_either(purging: tuple[str, str]) -> None:
    """The same, within a second of the URL itself: the repeat answered from the origin's
    one-second table (origin.recent_answers) kept its ``immutable`` headers and nginx stored
    ``…#frag`` for a year, still served after the image's DELETE."""
    origin, edge = purging
    auth = account(origin)
    image_id = str(upload(origin, auth, 64, 48)["id"])
    signed = sign_url(f"/i/{image_id}/w_50/a.webp", KEY)
    assert raw_get(edge, signed)[1]["cache-control"].startswith("public")
    first, second = raw_get(edge, f"{signed}#frag"), raw_get(edge, f"{signed}#frag")
    assert first[0] == 200 and first[1]["cache-control"] == "no-store"
    assert second[1].get("x-cache-status") != "HIT"
    assert httpx.delete(f"{origin}/api/images/{image_id}", headers=auth).status_code == 204
    until(lambda: raw_get(edge, signed)[0] == 404, 5.0)
    assert raw_get(edge, f"{signed}#frag")[0] == 404


def test_a_composite_is_purged_with_the_image_it_overlays(purging: tuple[str, str]) -> None:
    """``l_<id>`` answers were recorded and tagged under the base image only: a replace or
    delete of the overlay left nginx (and CDNs) serving the old composite for a year."""
    origin, edge = purging
    auth = account(origin)
    base, overlay = upload(origin, auth, 64, 48), upload(origin, auth, 16, 16)
    url = sign_url(f"/i/{base['id']}/w_60/l_{overlay['id']},w_10/a.jpg", KEY)
    direct = httpx.get(origin + url, timeout=30)
    assert direct.status_code == 200, direct.text
    assert len(direct.headers["cache-tag"].split(",")) == 3  # base, overlay, owner
    first = [httpx.get(edge + url, timeout=30) for _ in range(2)]
    assert [a.headers["x-cache-status"] for a in first] == ["MISS", "HIT"]
    time.sleep(FLUSH_SECONDS + 0.5)
    gone = httpx.delete(f"{origin}/api/images/{overlay['id']}", headers=auth)
    assert gone.status_code == 204
    until(lambda: httpx.get(edge + url, timeout=30).status_code == 400)  # purged
