"""Two origin processes sharing PostgreSQL, Redis and S3, with nginx in front of one:
uploads, derivatives, deletions and rate limits are shared; only caches are local."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import pyvips

from origin.signing import sign_url
from tests.conftest import (
    AWS_TEST_CREDENTIALS,
    _reset_postgres,
    create_bucket,
    migrate_with,
    missing_backend,
)
from tests.edge.conftest import metric, nginx_in_front_of, origin_metrics, serving

pytestmark = pytest.mark.slow
KEY = "scale-operator-secret"


@pytest.fixture(scope="module")
def shared_env(s3_server: str, redis_server: str) -> Iterator[dict[str, str]]:
    database = os.environ.get("TEST_DATABASE_URL")
    if not database:
        missing_backend("TEST_DATABASE_URL is not set: the scale-out test needs PostgreSQL")
    assert database is not None
    asyncio.run(_reset_postgres(database))
    bucket = f"scale-{secrets.token_hex(4)}"
    create_bucket(s3_server, bucket)
    env = {
        "DATABASE_URL": database,
        "STORAGE_TYPE": "s3",
        "STORAGE_BUCKET": bucket,
        "S3_ENDPOINT_URL": s3_server,
        **AWS_TEST_CREDENTIALS,
        "REDIS_URL": redis_server.replace("/0", "/1"),
        "JWT_SECRET": "scale-jwt-secret-" + "s" * 32,
        "URL_SIGNING_KEYS": f"scale:{KEY}",
        "RATE_LIMIT_PER_MINUTE": "8",
        "SECRETS_FILE": "/nonexistent/never-written.json",
    }
    migrate_with(env)
    yield env


def wait_for_stored_derivative(database_url: str, image_id: str) -> None:
    """The origin stores a derivative after answering; wait until its row is committed."""
    import asyncpg

    async def rows() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM transformed_images WHERE image_id = $1", image_id
                )
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + 10
    while asyncio.run(rows()) == 0:
        assert time.monotonic() < deadline, "the derivative was never recorded"
        time.sleep(0.05)


def counter(base: str, name: str, **labels: str) -> float:
    return metric(origin_metrics(base), name, **labels)


def test_two_hosts_share_everything_but_caches(shared_env: dict[str, str]) -> None:
    with (
        serving(shared_env) as a,
        serving(shared_env) as b,
        nginx_in_front_of(a) as (edge, _),
        httpx.Client(timeout=30) as http,
    ):
        email, password = f"{secrets.token_hex(4)}@example.com", "scale password 1"
        assert (
            http.post(
                f"{b}/api/auth/signup", json={"email": email, "password": password}
            ).status_code
            == 201
        )
        token = http.post(
            f"{edge}/api/auth/login", json={"email": email, "password": password}
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}

        # uploaded through nginx and host A, served by host B
        data = (
            pyvips.Image.black(400, 300)
            .new_from_image([20, 120, 220])
            .cast("uchar")
            .copy(interpretation="srgb")
            .pngsave_buffer()
        )
        upload = http.post(f"{edge}/api/images", headers=bearer, files={"file": ("s.png", data)})
        assert upload.status_code == 201, upload.text
        image_id = upload.json()["id"]
        url = sign_url(f"/i/{image_id}/w_200,h_100,c_fill/s.webp", KEY)

        # rendered by A, then found by B in the shared derivative store: no second render
        renders_b = counter(b, "imgorigin_cache_hits_total", tier="render")
        first = http.get(a + url)
        assert first.status_code == 200
        wait_for_stored_derivative(shared_env["DATABASE_URL"], image_id)
        from_b = http.get(b + url)
        assert from_b.status_code == 200 and from_b.content == first.content
        assert from_b.headers["etag"] == first.headers["etag"]
        assert counter(b, "imgorigin_cache_hits_total", tier="render") == renders_b
        assert counter(b, "imgorigin_cache_hits_total", tier="store") >= 1
        out = pyvips.Image.new_from_buffer(from_b.content, "")
        assert (out.width, out.height) == (200, 100)
        assert abs(out.getpoint(100, 50)[2] - 220) < 12

        # a delete through A is honoured by B within 5 seconds
        assert http.delete(f"{a}/api/images/{image_id}", headers=bearer).status_code == 204
        began = time.monotonic()
        while http.get(b + url).status_code != 404:
            assert time.monotonic() - began < 5, "B still serves a deleted image"
            time.sleep(0.2)

        # one rate limit across both hosts (Redis): 8 per minute in all, the upload and the
        # delete spent 2 of them (signup and login count against the per-address auth limit)
        statuses = [http.get(f"{host}/api/me", headers=bearer).status_code for host in (a, b) * 6]
        assert statuses == [200] * 6 + [429] * 6
