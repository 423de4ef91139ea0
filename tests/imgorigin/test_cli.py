"""The ``imgorigin`` command through real subprocesses: serve, migrate, sign, gc."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from origin.records import DerivativeRecord, ImageRecord
from origin.services import open_services
from origin.settings import Settings
from origin.signing import signature
from tests.asgi import _WithState, lifespan
from tests.asgi import client as asgi_client
from tests.conftest import IMGORIGIN, OPERATOR_SECRET, free_port, serving


def command(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], **env}
    return subprocess.run(
        [IMGORIGIN, *args], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_bad_setting_exits_with_one_line(tmp_path: Path) -> None:
    result = command({"MAX_UPLOAD_SIZE": "abc"}, "serve", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MAX_UPLOAD_SIZE" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()


def test_sign_prints_a_verifiable_url(base_env: dict[str, str]) -> None:
    result = command(base_env, "sign", "/i/abc/w_10/x.jpg")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == f"/i/abc/w_10/x.jpg?s={signature(OPERATOR_SECRET, '/i/abc/w_10/x.jpg')}"
    )
    result = command(base_env, "sign", "/i/abc/x.png", "--expires-in", "60")
    path, query = result.stdout.strip().split("?")
    exp = query.split("&")[0].removeprefix("exp=")
    assert query == f"exp={exp}&s={signature(OPERATOR_SECRET, path, exp)}"


def test_sign_from_another_folder_refuses_and_creates_nothing(tmp_path: Path) -> None:
    """The README's first run: `make run` in the checkout, `imgorigin sign` from elsewhere.
    It must not mint a new data/secrets.json there and print a URL the server refuses."""
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    checkout.mkdir()
    elsewhere.mkdir()
    assert command({}, "migrate", cwd=checkout).returncode == 0  # as `make run` does
    result = command({}, "sign", "/i/abc/w_10/x.jpg", cwd=elsewhere)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"{elsewhere / 'data' / 'secrets.json'}" in lines[0] and "SECRETS_FILE" in lines[0]
    assert list(elsewhere.iterdir()) == []
    collected = command({}, "gc", cwd=elsewhere)  # gc neither: it serves a deployment
    assert collected.returncode == 2 and "SECRETS_FILE" in collected.stderr
    assert list(elsewhere.iterdir()) == []
    # From the checkout it signs with the key the server uses.
    signed = command({}, "sign", "/i/abc/w_10/x.jpg", cwd=checkout)
    assert signed.returncode == 0, signed.stderr
    keys = json.loads((checkout / "data" / "secrets.json").read_text())["url_signing_keys"]
    secret = keys.partition(":")[2]
    assert signed.stdout.strip() == f"/i/abc/w_10/x.jpg?s={signature(secret, '/i/abc/w_10/x.jpg')}"


def test_make_run_style_first_start_generates_secrets(tmp_path: Path) -> None:
    result = command({}, "migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "generated development secrets" in result.stderr
    assert (tmp_path / "data" / "secrets.json").exists() and (
        tmp_path / "data" / "imgorigin.db"
    ).exists()
    again = command({}, "migrate", cwd=tmp_path)
    assert "generated" not in again.stderr and again.stdout.strip() == "schema is up to date"


@pytest.fixture
def server(base_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    assert command(base_env, "migrate").returncode == 0
    with serving(base_env, workers=2) as url:
        yield url


def test_serve_answers_health_and_readiness(server: str) -> None:
    health = httpx.get(f"{server}/healthz")
    assert health.status_code == 200 and health.headers["x-content-type-options"] == "nosniff"
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
    missing = httpx.get(f"{server}/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert missing.headers["cache-control"] == "no-store"


async def test_readyz_is_503_when_the_database_is_unreachable(make_settings) -> None:  # type: ignore[no-untyped-def]
    from imgorigin.app import create_app

    settings = make_settings(DATABASE_URL="postgresql://nobody:x@127.0.0.1:1/none")
    async with asgi_client(create_app(settings)) as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"database": "unavailable", "storage": "ok"}


async def test_requests_are_503_while_the_database_is_unreachable(make_settings) -> None:  # type: ignore[no-untyped-def]
    """An image URL and an admin call answer 503 ``unavailable`` with ``Retry-After`` (they
    were 500 ``internal_error`` with a traceback each: a CDN may keep a 500, and it is not
    the service's bug)."""
    from imgorigin.app import create_app

    settings = make_settings(DATABASE_URL="postgresql://nobody:x@127.0.0.1:1/none")
    async with asgi_client(create_app(settings)) as client:
        image = await client.get(f"/i/{'a' * 32}/w_10/x.jpg?s={'A' * 43}")
        login = await client.post("/api/auth/login", json={"email": "a@b.co", "password": "x"})
    for answer in (image, login):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
        assert answer.headers["retry-after"] == "5"
    # the answer is the whole story: nothing raised on to the server (which logged a
    # traceback per admin request)
    app = create_app(settings)
    async with lifespan(app) as state:
        transport = httpx.ASGITransport(app=_WithState(app, state), raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            login = await http.post("/api/auth/login", json={"email": "a@b.co", "password": "x"})
    assert login.status_code == 503


def test_only_the_databases_and_the_file_systems_errors_are_one_line() -> None:
    """A bug keeps its traceback and its 500: a statement's error (a missing table) is not
    'the database is unavailable', and SQLAlchemy's own errors are not the operator's."""
    import sqlite3

    import sqlalchemy as sa

    from origin.store.database import failure_line, unreachable

    missing = sa.exc.OperationalError("SELECT x", {}, sqlite3.OperationalError("no such table"))
    assert not unreachable(missing) and failure_line(missing) == "the database: no such table"
    refused = ConnectionRefusedError(111, "Connection refused")
    assert unreachable(refused) and failure_line(refused) == "Connection refused"
    bug = sa.exc.InvalidRequestError("A value is required for bind parameter 'x'")
    assert not unreachable(bug) and failure_line(bug) is None
    assert failure_line(ValueError("x")) is None and not unreachable(TypeError("x"))


def test_gc_removes_only_orphans(base_env: dict[str, str]) -> None:
    settings = Settings.from_environ(base_env)
    user_id, kept_id, orphan_id = (secrets.token_hex(16) for _ in range(3))
    kept_key = f"{user_id}/{kept_id}/original.png"
    orphan_key = f"{user_id}/{orphan_id}/original.png"

    async def prepare() -> None:
        async with open_services(settings) as services:
            await services.users.create(user_id, "gc@example.com", "h", datetime.now(UTC))
            await services.storage.put(kept_key, b"kept")
            await services.storage.put(orphan_key, b"orphan")
            record = ImageRecord(
                kept_id,
                user_id,
                "a.png",
                "image/png",
                "png",
                4,
                1,
                1,
                kept_key,
                "0" * 64,
                datetime.now(UTC),
            )
            await services.images.add(record, quota_bytes=100)

    assert command(base_env, "migrate").returncode == 0
    asyncio.run(prepare())
    # What others keep in the same store (a bucket shared with a source, a backup), one with
    # a name imgorigin would never write: not imgorigin's, never removed (gc used to delete
    # them, and to stop with a traceback at the odd name).
    storage_root = Path(base_env["STORAGE_PATH"])
    foreign = [
        "backups/db.sql",
        "products/café au lait.png",
        f"{user_id}.txt",
        "sources/shop/products/shoe.png",  # an S3 source's own objects under "sources/"
    ]
    for name in foreign:
        (storage_root / name).parent.mkdir(parents=True, exist_ok=True)
        (storage_root / name).write_bytes(b"not imgorigin's")
    young = command(base_env, "gc")  # default minimum age protects uploads in flight
    assert young.returncode == 0 and "0 orphan object(s) removed" in young.stdout
    result = command(base_env, "gc", "--min-age", "0")
    assert result.returncode == 0, result.stderr
    assert f"removed {orphan_key}" in result.stdout and kept_key not in result.stdout
    assert "4 object(s) outside imgorigin's layout left alone" in result.stdout
    assert (storage_root / kept_key).read_bytes() == b"kept"
    assert not (storage_root / orphan_key).exists()
    assert all((storage_root / name).read_bytes() == b"not imgorigin's" for name in foreign)
    for bad in ("-1", "nan", "inf"):
        refused = command(base_env, "gc", "--min-age", bad)
        assert refused.returncode == 2 and "--min-age" in refused.stderr, bad


def test_gc_removes_derivative_rows_whose_object_is_gone(base_env: dict[str, str]) -> None:
    settings = Settings.from_environ(base_env)
    user_id, image_id = secrets.token_hex(16), secrets.token_hex(16)
    prefix = f"{user_id}/{image_id}"

    def derivative(variant: str) -> DerivativeRecord:
        key = f"{prefix}/d/{variant}.webp"
        return DerivativeRecord(image_id, variant, key, "image/webp", 4, 1, 1, datetime.now(UTC))

    kept, lost = derivative("a" * 64), derivative("b" * 64)

    async def prepare() -> None:
        async with open_services(settings) as services:
            await services.users.create(user_id, "gc2@example.com", "h", datetime.now(UTC))
            await services.storage.put(f"{prefix}/original.png", b"orig")
            record = ImageRecord(
                image_id, user_id, "a.png", "image/png", "png", 4, 1, 1,
                f"{prefix}/original.png", "0" * 64, datetime.now(UTC),
            )  # fmt: skip
            await services.images.add(record, quota_bytes=100)
            await services.storage.put(kept.storage_key, b"kept")
            for row in (kept, lost):  # the lost one's object was never there (or went)
                assert await services.derivatives.add(row, record.content_hash)

    async def rows() -> set[str]:
        async with open_services(settings) as services:
            found = await services.derivatives.among(image_id, ["a" * 64, "b" * 64])
            return set(found)

    assert command(base_env, "migrate").returncode == 0
    asyncio.run(prepare())
    result = command(base_env, "gc")
    assert result.returncode == 0, result.stderr
    assert "1 derivative row(s) without their object removed" in result.stdout
    assert asyncio.run(rows()) == {"a" * 64}


def test_gc_with_storage_down_says_so_in_one_line(base_env: dict[str, str]) -> None:
    env = {
        **base_env,
        "STORAGE_TYPE": "s3",
        "STORAGE_BUCKET": "images",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "STORAGE_TIMEOUT_SECONDS": "2",
    }
    assert command(env, "migrate").returncode == 0
    result = command(env, "gc")
    assert result.returncode == 1
    assert (
        result.stderr.startswith("imgorigin: object storage") and "Traceback" not in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_and_worker_refuse_a_database_not_migrated(base_env: dict[str, str]) -> None:
    """Before, `serve` on a fresh database started, answered 500 and logged a traceback per
    job poll ("no such table: jobs"); now it says what to run."""
    for args in (("serve", "--port", str(free_port())), ("worker",)):
        result = command(base_env, *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().endswith("run `imgorigin migrate` first"), result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("flag", "value"), [("--port", "70000"), ("--workers", "0")])
def test_serve_refuses_a_port_or_worker_count_that_cannot_be(
    base_env: dict[str, str], flag: str, value: str
) -> None:
    result = command(base_env, "serve", flag, value)
    assert result.returncode == 2 and f"argument {flag}" in result.stderr


@pytest.mark.parametrize(
    ("change", "args"),
    [
        ({"DATABASE_URL": "postgresql://x:y@127.0.0.1:1/z"}, ("migrate",)),
        ({"DATABASE_URL": "postgresql://x:y@127.0.0.1:1/z"}, ("gc",)),
        ({"DATABASE_URL": "sqlite:////proc/imgorigin-test.db"}, ("migrate",)),
        ({"DATABASE_URL": "sqlite:////proc/imgorigin-test.db"}, ("serve",)),
        ({"DATABASE_URL": "sqlite:////proc/imgorigin-test.db"}, ("worker",)),
        ({"STORAGE_PATH": "/proc/imgorigin-test/store"}, ("serve",)),
        ({"STORAGE_PATH": "/proc/imgorigin-test/store"}, ("gc",)),
    ],
)
def test_a_database_or_folder_that_cannot_be_used_is_one_line(
    base_env: dict[str, str], change: dict[str, str], args: tuple[str, ...]
) -> None:
    """Each printed a Python traceback (~130 lines for an unreachable PostgreSQL)."""
    port = ("--port", str(free_port())) if args == ("serve",) else ()
    result = command({**base_env, **change}, *args, *port)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"imgorigin: {args[0]}: "), result.stderr


def test_a_secrets_file_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    result = command({"SECRETS_FILE": "/proc/imgorigin-test/secrets.json"}, "migrate", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECRETS_FILE" in lines[0], result.stderr


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"WORKERS": "abc"}, ("serve",), "WORKERS"),  # it named only --workers
        ({"WORKER_CPU_AFFINITY": "on"}, ("serve",), "WORKER_CPU_AFFINITY"),
        ({}, ("gc", "--min-age", "-1"), "argument --min-age: must be a number of seconds"),
        ({}, ("sign", "/i/x/a.jpg", "--expires-in", "-60"), "argument --expires-in: must"),
        ({}, ("sign", "/i/x/a.jpg", "--expires-in", "9" * 20), "argument --expires-in: must"),
    ],
)
def test_bad_options_say_what_they_need(
    base_env: dict[str, str], env: dict[str, str], args: tuple[str, ...], said: str
) -> None:
    """gc's said "invalid _seconds value"; sign printed an expired URL, or one the origin
    refuses, with status 0."""
    result = command({**base_env, **env}, *args)
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
