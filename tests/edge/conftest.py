"""The edge tier for real: the project's own nginx.conf (ports substituted, nothing else) in
front of live ``imgorigin serve`` processes on loopback ports."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    free_port,
    migrate_with,
    missing_backend,
    serve,
    serving,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        missing_backend("nginx is not installed (apt-get install -y nginx)")
    assert found is not None
    return found


@dataclass(frozen=True)
class Edge:
    url: str  # nginx
    origin: str  # the origin behind it
    prefix: Path  # nginx's -p folder (cache/ lives here)

    def cache_entries(self) -> list[Path]:
        return [p for p in (self.prefix / "cache" / "images").rglob("*") if p.is_file()]


@contextmanager
def nginx_in_front_of(
    origin_url: str, edit: Callable[[str], str] | None = None, port: int | None = None
) -> Iterator[tuple[str, Path]]:
    """nginx with the project's nginx.conf, only the listen and upstream ports replaced (and
    ``edit`` applied, for a test that takes one safeguard out to check the next one)."""
    binary = nginx_binary()
    prefix = Path(tempfile.mkdtemp(prefix="imgorigin-nginx-", dir="/tmp"))
    prefix.chmod(0o755)  # nginx workers run as an unprivileged user
    for folder in ("logs", "tmp", "cache"):
        (prefix / folder).mkdir()
        (prefix / folder).chmod(0o777)
    port = port or free_port()
    origin_port = origin_url.rsplit(":", 1)[1]
    conf = (ROOT / "nginx.conf").read_text()
    if edit is not None:
        conf = edit(conf)
    conf, listens = re.subn(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    conf, upstreams = re.subn(
        r"server 127\.0\.0\.1:8000 ", f"server 127.0.0.1:{origin_port} ", conf
    )
    assert (listens, upstreams) == (1, 1), (
        "nginx.conf no longer has the ports where tests expect them"
    )
    (prefix / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=15)
        yield f"http://127.0.0.1:{port}", prefix
    finally:
        os.killpg(process.pid, signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def origin_on(env: dict[str, str], port: int) -> Iterator[str]:
    """``imgorigin serve`` on a chosen loopback port (so it can be stopped and started again
    behind the same nginx upstream), stopped on the way out."""
    with serve(env, port=port) as server:
        yield server.url


def upload_as_new_user(origin: str, data: bytes, filename: str) -> str:
    """Sign up, log in and upload ``data`` against the origin directly; the image's id."""
    email, password = f"{secrets.token_hex(4)}@example.com", "edge password 1"
    with httpx.Client(base_url=origin, timeout=30) as http:
        http.post("/api/auth/signup", json={"email": email, "password": password})
        login = http.post("/api/auth/login", json={"email": email, "password": password})
        upload = http.post(
            "/api/images",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            files={"file": (filename, data)},
        )
        assert upload.status_code == 201, upload.text
        return str(upload.json()["id"])


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus sample over the series whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def origin_metrics(origin: str) -> str:
    return httpx.get(f"{origin}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def edge_env() -> Iterator[dict[str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="imgorigin-edge-"))
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'meta.db'}",
        "STORAGE_PATH": str(folder / "storage"),
        "SECRETS_FILE": str(folder / "secrets.json"),
        "JWT_SECRET": "edge-jwt-secret-" + "e" * 32,
        "URL_SIGNING_KEYS": "edge:edge-operator-secret",
        "AUTH_RATE_LIMIT_PER_MINUTE": "1000",  # nginx's limit_req is under test here
        "CONCURRENCY": "2",
    }
    migrate_with(env)
    yield env
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def edge(edge_env: dict[str, str]) -> Iterator[Edge]:
    with serving(edge_env) as origin, nginx_in_front_of(origin) as (url, prefix):
        yield Edge(url, origin, prefix)
