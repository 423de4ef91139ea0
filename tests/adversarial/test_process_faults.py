"""Faults of the process and the disk: SIGKILL mid-upload then ``gc``, SIGTERM under load,
and a full disk under local storage."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pyvips

from origin.services import Services, open_services
from origin.settings import Settings
from origin.signing import sign_url
from tests.admin_api.conftest import Api, assert_error, start_api
from tests.admin_api.test_images import usage
from tests.adversarial.live import (
    live_env,
    new_user,
    noise_png,
    photo,
    run_cli,
    upload,
)
from tests.conftest import OPERATOR_SECRET, serve

# ---- invariants over real storage and database -------------------------------------------


async def check_consistency(services: Services, users: list[str]) -> tuple[set[str], set[str]]:
    """Every row has its whole object and the usage counters add up; (objects, row keys)."""
    objects = {info.key: info.size async for info in services.storage.objects()}
    referenced = await services.images.referenced_keys()
    missing = referenced - set(objects)
    assert not missing, f"rows without their object: {sorted(missing)}"
    for user_id in users:
        user = await services.users.by_id(user_id)
        assert user is not None
        records, total = await services.images.page(user_id, offset=0, limit=1000)
        assert user.image_count == total == len(records)
        assert user.storage_used_bytes == sum(r.size_bytes for r in records)
        for record in records:
            data = await services.storage.get(record.storage_key)
            assert len(data) == record.size_bytes
            assert hashlib.sha256(data).hexdigest() == record.content_hash
    return set(objects), referenced


def part_files(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["STORAGE_PATH"], ".tmp").glob("*.part"))


# ---- SIGKILL mid-upload, restart, gc --------------------------------------------------------


def multipart_head(boundary: str, filename: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def trickle_upload(port: int, token: str, data: bytes, chunk: int, pause: float) -> str:
    """A slow client streaming a multipart upload in chunks; how it ended."""
    boundary = "adversarialboundary"
    body = multipart_head(boundary, "big.png") + data + f"\r\n--{boundary}--\r\n".encode()
    head = (
        f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)
            for start in range(0, len(body), chunk):
                sock.sendall(body[start : start + chunk])
                time.sleep(pause)
            return sock.recv(64).decode("latin-1").split("\r\n")[0]
    except OSError as exc:
        return f"cut off: {type(exc).__name__}"


def burst_uploads(
    url: str, headers: dict[str, str], images: list[bytes], until: threading.Event
) -> list[str]:
    """One thread per image, each uploading it again and again until the server dies."""
    outcomes = []

    def one(data: bytes) -> None:
        while not until.is_set():
            try:
                answer = httpx.post(
                    f"{url}/api/images",
                    headers=headers,
                    files={"file": ("n.png", data, "application/octet-stream")},
                    timeout=20,
                )
                outcomes.append(str(answer.status_code))
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
                return

    threads = [threading.Thread(target=one, args=(d,)) for d in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


@pytest.mark.slow
async def test_sigkill_mid_upload_then_restart_and_gc(tmp_path: Path) -> None:
    env = live_env(tmp_path)
    user_id, headers = await new_user(env)
    token = headers["Authorization"].split()[1]
    images = [noise_png(400, 400, seed=s) for s in range(8)]  # ~0.5 MB each
    big = noise_png(1200, 1200, seed=99)  # ~4 MB, trickled
    rng = random.Random(7)
    report = []
    for cycle in range(3):
        with serve(env) as server:
            upload(server.url, headers, images[cycle])  # a complete one per cycle
            trickle = threading.Thread(
                target=lambda: report.append(
                    trickle_upload(server.port, token, big, 64 * 1024, 0.02)
                )
            )
            trickle.start()
            outcomes: list[str] = []
            killed = threading.Event()
            burst = threading.Thread(
                target=lambda out=outcomes, stop=killed: out.extend(
                    burst_uploads(server.url, headers, images, stop)
                )
            )
            burst.start()
            time.sleep(0.3 + rng.random() * 0.5)
            os.killpg(server.pid, signal.SIGKILL)  # the whole group, mid-body
            killed.set()
            server.process.wait(10)
            trickle.join(30)
            burst.join(60)
            report.append(
                f"cycle {cycle}: {outcomes.count('201')} uploads done, "
                f"{sorted(set(outcomes) - {'201'})} at the kill"
            )
        async with open_services(Settings.from_environ(env)) as services:
            objects, rows = await check_consistency(services, [user_id])
        report.append(f"  orphans {len(objects - rows)}, parts {len(part_files(env))}")
    print("\n" + "\n".join(report))
    # restart: the server answers normally
    with serve(env) as server:
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        image_id = upload(server.url, headers, images[-1])
        answer = httpx.get(f"{server.url}/api/images/{image_id}/download", headers=headers)
        assert answer.status_code == 200 and answer.content == images[-1]
    gc = run_cli(env, "gc", "--min-age", "0")
    print("gc:", gc.stdout.strip() or "(nothing)", gc.stderr.strip())
    async with open_services(Settings.from_environ(env)) as services:
        objects, rows = await check_consistency(services, [user_id])
    assert objects == rows, f"orphans left by gc: {sorted(objects - rows)}"
    assert part_files(env) == []
    assert len(rows) >= 4  # every cycle's complete upload plus the last one survived


# ---- SIGTERM under load ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_inflight_renders_finish(tmp_path: Path, workers: int) -> None:
    """The whole process group gets SIGTERM (as systemd sends it): with several workers the
    supervisor's own SIGTERM reaches them too, and a second SIGTERM must not cut them off."""
    # What is tested is the drain, not the queue's wait bound (QUEUE_TIMEOUT_SECONDS out of
    # the way: on a slow machine the queued renders would otherwise wait past it).
    env = live_env(tmp_path, CONCURRENCY="2", QUEUE_TIMEOUT_SECONDS="60")
    _, headers = await new_user(env)
    with serve(env, workers=workers) as server:
        image_id = upload(server.url, headers, photo())
        urls = [
            sign_url(f"/i/{image_id}/w_{2600 + n}/e_blur:2000/a.jpg", OPERATOR_SECRET)
            for n in range(6)
        ]
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            began = time.monotonic()
            tasks = [asyncio.create_task(http.get(u)) for u in urls]
            await asyncio.sleep(0.5)  # every request is in flight, most queued
            os.killpg(server.pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            try:  # a new connection is refused once the server stops listening
                late = await http.get("/healthz", timeout=2)
                late_outcome = str(late.status_code)
            except httpx.HTTPError as exc:
                late_outcome = type(exc).__name__
            answers = await asyncio.gather(*tasks, return_exceptions=True)
            took = time.monotonic() - began
        code = await asyncio.to_thread(server.process.wait, 40)
        print(
            f"\n6 renders with SIGTERM at 0.5 s: all done in {took:.2f} s, "
            f"exit {code}; a request after SIGTERM: {late_outcome}"
        )
        for answer in answers:
            assert isinstance(answer, httpx.Response), repr(answer)
            assert answer.status_code == 200, answer.text
            assert pyvips.Image.new_from_buffer(answer.content, "").width in range(2600, 2610)
        # uvicorn re-raises the signal after its graceful shutdown: exit by SIGTERM, not SIGKILL
        # (with workers, the supervisor exits 0 once they have)
        assert code in (0, -signal.SIGTERM)
        assert took > 1.5, "the renders were too quick to be in flight at SIGTERM"
        assert took < 30  # uvicorn's timeout_graceful_shutdown


# ---- disk full (local storage on a 2 MB tmpfs) --------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def full_disk_api(
    tiny_disk: Path, make_settings: Callable[..., Settings], password_hash: str
) -> AsyncIterator[Api]:
    settings = make_settings(STORAGE_PATH=str(tiny_disk / "storage"))
    async for ready in start_api(settings, password_hash):
        yield ready


async def test_disk_full_answers_503_and_leaves_nothing(full_disk_api: Api) -> None:
    api = full_disk_api
    user_id, headers = await api.user()
    stored = 0
    answers = []
    for seed in range(12):  # ~300 KB each: the 2 MB disk is full after a handful
        data = noise_png(320, 320, seed=seed)
        answer = await api.upload(headers, data, filename="n.png")
        answers.append(answer.status_code)
        if answer.status_code == 201:
            stored += len(data)
        else:
            assert_error(answer, 503, "unavailable")
    print(f"\nuploads onto a 2 MB tmpfs: {answers}")
    assert 201 in answers and 503 in answers, answers
    assert 500 not in answers
    count, used = await usage(api, headers)
    assert (count, used) == (answers.count(201), stored)
    objects, rows = await check_consistency(api.services, [user_id])
    assert objects == rows
    assert list(Path(api.services.settings.storage_path, ".tmp").iterdir()) == []
    # a render whose derivative cannot be stored still answers
    image_id = (await api.http.get("/api/images", headers=headers)).json()["items"][0]["id"]
    answer = await api.http.get(sign_url(f"/i/{image_id}/w_300/a.png", OPERATOR_SECRET))
    assert answer.status_code == 200
    # freeing space makes uploads work again
    assert (await api.http.delete(f"/api/images/{image_id}", headers=headers)).status_code == 204
    answer = await api.upload(headers, noise_png(100, 100, seed=50), filename="n.png")
    assert answer.status_code == 201, answer.text
