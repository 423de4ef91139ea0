"""Remote sources behind the shipped nginx.conf: a ``/r/`` answer is kept at the edge for the
source's max-age (the origin and the website see one request), and an expiring ``/r/`` URL is
never served stale."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import pyvips

from origin.signing import sign_url
from tests.admin_api.console.test_console_browser import photograph, static_site
from tests.conftest import migrate_with, serving
from tests.edge.conftest import metric, nginx_in_front_of, origin_metrics

KEY = "edge-operator-secret"


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[int, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="imgorigin-site-"))
    (folder / "media").mkdir()
    photograph(folder / "media")
    with static_site(folder) as port:
        yield port, folder
    shutil.rmtree(folder, ignore_errors=True)


def source_env(tmp_path: Path, port: int, **source: int) -> dict[str, str]:
    """A migrated origin's environment with the source ``site`` (the test website's
    ``/media/``, with ``source``'s settings)."""
    sources = tmp_path / "sources.json"
    site = {"type": "http", "base_url": f"http://127.0.0.1:{port}/media/", **source}
    sources.write_text(json.dumps({"site": site}))
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'meta.db'}",
        "STORAGE_PATH": str(tmp_path / "storage"),
        "SECRETS_FILE": str(tmp_path / "secrets.json"),
        "JWT_SECRET": "edge-jwt-secret-" + "e" * 32,
        "URL_SIGNING_KEYS": f"edge:{KEY}",
        "SOURCES_FILE": str(sources),
        "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
    }
    migrate_with(env)
    return env


def test_a_source_answer_is_kept_at_the_edge(site: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = site
    env = source_env(tmp_path, port, max_age=600)
    with serving(env) as origin, nginx_in_front_of(origin) as (edge, _):
        url = sign_url("/r/site/w_120,h_80,c_fill/-/astronaut.jpg@webp", KEY)
        answers = [httpx.get(edge + url, timeout=30) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT"]
        assert answers[0].headers["cache-control"] == "public, max-age=600"
        image = pyvips.Image.new_from_buffer(answers[2].content, "")
        assert (image.width, image.height) == (120, 80)
        renders = metric(origin_metrics(origin), "imgorigin_cache_hits_total", tier="render")
        assert renders == 1  # the edge kept it: the origin rendered once

        expiring = sign_url("/r/site/w_60/-/astronaut.jpg@png", KEY, expires_in=2)
        first = httpx.get(edge + expiring, timeout=30)
        assert first.status_code == 200 and "must-revalidate" in first.headers["cache-control"]
        time.sleep(3.1)
        late = httpx.get(edge + expiring, timeout=30)
        assert late.status_code == 403 and late.json()["error"]["code"] == "url_expired"


def test_an_object_gone_upstream_is_gone_at_the_edge_after_max_age(
    site: tuple[int, Path], tmp_path: Path
) -> None:
    """Past ``max_age`` nginx asks the origin again; when the object went upstream the origin
    answers 404 (``no-store``), and nginx passes it on. With a background refresh, nginx
    answered its stale copy to every request, for good: a refresh that is not stored
    leaves the old entry in place (each request started another refresh and got STALE)."""
    port, folder = site
    shutil.copy(folder / "media" / "astronaut.jpg", folder / "media" / "leaving.jpg")
    env = source_env(tmp_path, port, max_age=2, ttl=0, missing_ttl=0)
    with serving(env) as origin, nginx_in_front_of(origin) as (edge, _):
        url = sign_url("/r/site/w_60/-/leaving.jpg@webp", KEY)
        answers = [httpx.get(edge + url, timeout=30) for _ in range(2)]
        assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT"]
        (folder / "media" / "leaving.jpg").unlink()
        time.sleep(3.1)
        later = []
        for _ in range(4):
            later.append(httpx.get(edge + url, timeout=30))
            time.sleep(0.2)
        assert [a.status_code for a in later] == [404] * 4, [
            (a.status_code, a.headers.get("x-cache-status")) for a in later
        ]
        assert later[-1].json()["error"]["code"] == "not_found"
