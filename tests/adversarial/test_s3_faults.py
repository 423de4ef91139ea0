"""Object storage that hangs or refuses, during upload, download and render.

Each test runs its own moto server (never the shared session one) and the whole app with
``STORAGE_TIMEOUT_SECONDS=1``; the server is SIGSTOPped (it hangs: "slow") or SIGKILLed (it
refuses connections). The answer must be 503 ``unavailable`` within the timeout + 1 s, with
no row left, the usage unchanged and the libvips pool free; once the server is resumed (or
restarted) the same request succeeds, and ``gc`` removes whatever the hung write left.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import boto3
import pytest
import pyvips

from imgorigin.orphans import collect_garbage
from origin.ingest import remove_objects
from origin.settings import Settings
from origin.signing import sign_url
from tests.admin_api.conftest import Api, assert_error, make_image, start_api
from tests.admin_api.test_images import usage
from tests.conftest import AWS_TEST_CREDENTIALS, OPERATOR_SECRET, free_port, wait_for_port

TIMEOUT = 1.0
BOUND = TIMEOUT + 1.0  # the brief: 503 within about the timeout + 1 s


class Moto:
    """A moto server of our own that can be paused, resumed, killed and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.bucket = f"faults-{secrets.token_hex(4)}"

    def start(self) -> None:
        moto = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port)
        self.client().create_bucket(Bucket=self.bucket)  # moto keeps state in memory

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=AWS_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def keys(self) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def moto() -> Iterator[Moto]:
    server = Moto()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def s3_api(
    moto: Moto, make_settings: Callable[..., Settings], password_hash: str
) -> AsyncIterator[Api]:
    settings = make_settings(
        STORAGE_TYPE="s3",
        STORAGE_BUCKET=moto.bucket,
        S3_ENDPOINT_URL=moto.url,
        STORAGE_TIMEOUT_SECONDS=str(TIMEOUT),
        **AWS_TEST_CREDENTIALS,
    )
    async for ready in start_api(settings, password_hash):
        yield ready


def break_server(moto: Moto, mode: str) -> None:
    if mode == "hang":
        moto.signal(signal.SIGSTOP)
    else:
        moto.kill()


def mend_server(moto: Moto, mode: str) -> None:
    if mode == "hang":
        moto.signal(signal.SIGCONT)
    else:
        moto.start()  # same port, empty state, bucket made again


def assert_pool_free(api: Api) -> None:
    pool = api.services.pool
    assert (pool.busy, pool.waiting) == (0, 0)


async def rows(api: Api) -> set[str]:
    return await api.services.images.referenced_keys()


MODES = ["hang", "refuse"]


@pytest.mark.parametrize("mode", MODES)
async def test_upload_while_storage_is_down(s3_api: Api, moto: Moto, mode: str) -> None:
    user_id, headers = await s3_api.user()
    data = make_image("png", 300, 200)
    break_server(moto, mode)
    try:
        began = time.monotonic()
        answer = await s3_api.upload(headers, data, filename="a.png")
        took = time.monotonic() - began
        print(f"\nupload, S3 {mode}: {answer.status_code} in {took:.2f} s")
        assert_error(answer, 503, "unavailable")
        assert took < BOUND, f"503 took {took:.2f} s"
        assert await usage(s3_api, headers) == (0, 0)
        assert await rows(s3_api) == set()
        assert_pool_free(s3_api)
    finally:
        mend_server(moto, mode)
    # A hung PUT may still land once the server resumes: an orphan with no row, which gc
    # removes; never a row without its object.
    leftovers = moto.keys()
    assert all(key.startswith(f"{user_id}/") for key in leftovers)
    removed = (await collect_garbage(s3_api.services, min_age=0)).removed
    assert sorted(removed) == leftovers
    assert moto.keys() == []
    # and the app works again
    answer = await s3_api.upload(headers, data, filename="a.png")
    assert answer.status_code == 201, answer.text
    assert await usage(s3_api, headers) == (1, len(data))
    assert moto.keys() == sorted(await rows(s3_api))


async def _uploaded(api: Api) -> tuple[str, dict[str, str], bytes]:
    _, headers = await api.user()
    data = make_image("png", 600, 400)
    answer = await api.upload(headers, data, filename="a.png")
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], headers, data


@pytest.mark.parametrize("mode", MODES)
async def test_download_while_storage_is_down(s3_api: Api, moto: Moto, mode: str) -> None:
    image_id, headers, data = await _uploaded(s3_api)
    before = await usage(s3_api, headers)
    break_server(moto, mode)
    try:
        began = time.monotonic()
        answer = await s3_api.http.get(f"/api/images/{image_id}/download", headers=headers)
        took = time.monotonic() - began
        print(f"\ndownload, S3 {mode}: {answer.status_code} in {took:.2f} s")
        assert_error(answer, 503, "unavailable")
        assert took < BOUND, f"503 took {took:.2f} s"
        assert await usage(s3_api, headers) == before
        assert_pool_free(s3_api)
    finally:
        mend_server(moto, mode)
    if mode == "hang":  # the object survived the pause
        answer = await s3_api.http.get(f"/api/images/{image_id}/download", headers=headers)
        assert answer.status_code == 200 and answer.content == data
    else:  # a restarted moto has lost everything (see test_lost_object.py): a new image
        image_id, headers, data = await _uploaded(s3_api)
        answer = await s3_api.http.get(f"/api/images/{image_id}/download", headers=headers)
        assert answer.status_code == 200 and answer.content == data


@pytest.mark.parametrize("mode", MODES)
async def test_render_while_storage_is_down(s3_api: Api, moto: Moto, mode: str) -> None:
    image_id, _, _ = await _uploaded(s3_api)
    url = sign_url(f"/i/{image_id}/w_123,h_77,c_fill/a.webp", OPERATOR_SECRET)
    break_server(moto, mode)
    try:
        began = time.monotonic()
        answer = await s3_api.http.get(url)
        took = time.monotonic() - began
        print(f"\nrender, S3 {mode}: {answer.status_code} in {took:.2f} s")
        assert_error(answer, 503, "unavailable")
        assert took < BOUND, f"503 took {took:.2f} s"
        assert_pool_free(s3_api)
    finally:
        mend_server(moto, mode)
    if mode == "hang":  # the 503 was not cached: the same URL renders now
        answer = await s3_api.http.get(url)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "image/webp"
    else:
        image_id, _, _ = await _uploaded(s3_api)
        answer = await s3_api.http.get(sign_url(f"/i/{image_id}/w_123/a.webp", OPERATOR_SECRET))
        assert answer.status_code == 200, answer.text
    assert_pool_free(s3_api)


@pytest.mark.parametrize("mode", MODES)
async def test_readyz_reports_storage_down(s3_api: Api, moto: Moto, mode: str) -> None:
    break_server(moto, mode)
    try:
        began = time.monotonic()
        answer = await s3_api.http.get("/readyz")
        took = time.monotonic() - began
        assert answer.status_code == 503, answer.text
        assert took < BOUND, f"/readyz took {took:.2f} s"
        healthz = await s3_api.http.get("/healthz")
        assert healthz.status_code == 200
    finally:
        mend_server(moto, mode)
    assert (await s3_api.http.get("/readyz")).status_code == 200


@pytest.mark.parametrize("mode", MODES)
async def test_cleanup_stops_at_the_first_unanswered_delete(
    s3_api: Api, moto: Moto, mode: str
) -> None:
    """The old objects of a replace (or what a failed upload wrote) are removed after the
    commit; once storage stops answering, the rest is left to gc at once (a hunt: one
    timeout per object, a replace of an image with 22 derivatives answered after 66 s)."""
    storage = s3_api.services.storage
    keys = [f"{secrets.token_hex(16)}/old/{n}.png" for n in range(6)]
    for key in keys:
        await storage.put(key, b"old", content_type="image/png")
    break_server(moto, mode)
    try:
        began = time.monotonic()
        await remove_objects(s3_api.services, keys)
        took = time.monotonic() - began
    finally:
        mend_server(moto, mode)
    assert took < BOUND, f"the cleanup took {took:.2f} s"  # what is left, gc removes


async def test_a_source_fallback_waits_for_storage_that_is_down_at_start(
    moto: Moto, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Object storage that does not answer yet does not stop the start (a hunt: with a
    source's fallback configured, `serve` exited with a traceback): the fallback image is
    stored when it is first needed, once storage answers."""
    from tests.origin.delivery.conftest import start_service
    from tests.origin.sources.conftest import sources_file
    from tests.sources import source_server

    moto.kill()  # refuses connections
    async with source_server() as web:
        settings = make_settings(
            STORAGE_TYPE="s3",
            STORAGE_BUCKET=moto.bucket,
            S3_ENDPOINT_URL=moto.url,
            STORAGE_TIMEOUT_SECONDS=str(TIMEOUT),
            SOURCES_FILE=str(sources_file(tmp_path, web, moto.url, moto.bucket)),
            FETCH_ALLOW_LOOPBACK_FOR_TESTS="1",
            **AWS_TEST_CREDENTIALS,
        )
        async for service in start_service(settings):
            url = sign_url("/r/fallback/w_32/-/missing.png@png", OPERATOR_SECRET)
            assert_error(await service.http.get(url), 503, "unavailable")  # still down
            moto.start()  # the same port, its bucket made again
            answer = await service.http.get(url)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-imgorigin-fallback"] == "1"
            image = pyvips.Image.new_from_buffer(answer.content, "")
            assert (image.width, image.height) == (32, 32)
            stored = moto.keys()
            assert any(key.startswith("sources/fallback/fallback/") for key in stored)
