"""Shared fixtures: real backends for every contract test.

- ``database_url``: an SQLite file, and PostgreSQL from ``TEST_DATABASE_URL`` (its public
  schema is reset for each test). Without ``TEST_DATABASE_URL`` the PostgreSQL case is
  skipped with a visible reason, unless ``REQUIRE_ALL_BACKENDS=1`` makes it a failure.
- ``s3_server``: moto's server mode in a subprocess on 127.0.0.1, talked to over HTTP.
- ``storage_env``: environment for local storage or for S3 (a fresh bucket per test).
- ``make_settings``: ``Settings.from_environ`` over a test environment in a temp folder.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from origin.services import Services, open_services
from origin.settings import Settings
from origin.store.database import Database
from origin.store.migrations import migrate

REQUIRE_ALL = os.environ.get("REQUIRE_ALL_BACKENDS") == "1"
AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
OPERATOR_SECRET = "operator-secret-for-tests"


def missing_backend(reason: str) -> None:
    """Skip with a visible reason, or fail when every backend is required."""
    if REQUIRE_ALL:
        pytest.fail(f"REQUIRE_ALL_BACKENDS=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


IMGORIGIN = str(Path(sys.executable).with_name("imgorigin"))


@dataclass
class Server:
    """A live ``imgorigin serve``: its base URL, port and process (group leader)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


@contextmanager
def serve(
    env: dict[str, str],
    *,
    workers: int = 1,
    port: int | None = None,
    wait: bool = True,
    cpus: set[int] | None = None,
) -> Iterator[Server]:
    """``imgorigin serve`` (uvicorn, uvloop, httptools) on a loopback port (a free one unless
    given), in its own process group, stopped with SIGTERM (then SIGKILL) on the way out;
    ``wait``: until something listens on the port; ``cpus``: the CPUs it may run on (as a
    container's cpuset would give it)."""
    port = port or free_port()
    process = subprocess.Popen(
        [IMGORIGIN, "serve", "--port", str(port), "--workers", str(workers)],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=None if cpus is None else functools.partial(os.sched_setaffinity, 0, cpus),
    )
    try:
        if wait:
            wait_for_port(port, timeout=30)
        yield Server(f"http://127.0.0.1:{port}", port, process)
    finally:
        stop_group(process)


@contextmanager
def serving(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Like ``serve``, yielding only the base URL."""
    with serve(env, workers=workers) as server:
        yield server.url


def stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        process.wait(10)


# ---- databases ---------------------------------------------------------------------------

RESET_SCHEMA = "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers), each worker gets a database of its
    own beside ``TEST_DATABASE_URL``'s, named after it (``<name>_gw0``, ...): the tests reset
    the public schema as they go, so two workers must never share one. The role needs
    CREATEDB (.ci/run's has it). ``TEST_DATABASE_URL`` is rewritten for the worker, so servers
    a test starts use the worker's database too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = os.environ.get("TEST_DATABASE_URL")
    if worker and url:
        base, _, name = url.rpartition("/")
        own = f"{name}_{worker}"
        _in_thread(_recreate_database(url, own, create=True))
        os.environ["TEST_DATABASE_URL"] = f"{base}/{own}"
        config.stash[_WORKER_DATABASE] = (url, own)


def pytest_unconfigure(config: pytest.Config) -> None:
    made = config.stash.get(_WORKER_DATABASE, None)
    if made is not None:
        _in_thread(_recreate_database(made[0], made[1], create=False))


_WORKER_DATABASE = pytest.StashKey[tuple[str, str]]()


async def _recreate_database(url: str, name: str, *, create: bool) -> None:
    """Drop the database ``name`` (connected through ``url``'s), and make it again."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _in_thread(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on a loop of its own in another thread (pytest's loop is not touched)."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(work)
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


async def _reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(RESET_SCHEMA)
    finally:
        await conn.close()


# A test that asks for a migrated database (``database``, ``api``, ``local_api``) gets it
# made cheaply: a copy of a SQLite file migrated once per session, or PostgreSQL's tables
# emptied when the schema is the one a fresh migration makes (about 0.1 s less a test over
# ~900 tests). The schema's fingerprint (columns, indexes, constraints, triggers, functions,
# versions) tells a schema a test changed (tests/admin_api/test_failures.py adds a failing
# trigger): that one is dropped and migrated again.
MIGRATED_FIXTURES = frozenset({"database", "api", "local_api"})
_SCHEMA = """
    SELECT string_agg(x, ';' ORDER BY x) FROM (
        SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
            || ':' || coalesce(column_default, '') AS x
        FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL SELECT conrelid::regclass || ':' || pg_get_constraintdef(oid)
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        UNION ALL SELECT 'trigger:' || tgrelid::regclass || ':' || tgname
            FROM pg_trigger WHERE NOT tgisinternal
        UNION ALL SELECT 'function:' || proname
            FROM pg_proc WHERE pronamespace = 'public'::regnamespace
        UNION ALL SELECT 'v' || version FROM schema_version
    ) s"""
_migrated: dict[str, str] = {}  # "schema": the fingerprint; "sqlite": the template's path


async def _migrated_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        has_versions = await conn.fetchval("SELECT to_regclass('public.schema_version')")
        schema = await conn.fetchval(_SCHEMA) if has_versions else None
        if schema is not None and schema == _migrated.get("schema"):
            names = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_version'"
            )
            listed = ", ".join(f'"{row[0]}"' for row in names)
            await conn.execute(f"TRUNCATE {listed} RESTART IDENTITY CASCADE")
            return
        await conn.execute(RESET_SCHEMA)
        db = Database(url)
        await migrate(db)
        await db.close()
        _migrated["schema"] = await conn.fetchval(_SCHEMA)
    finally:
        await conn.close()


async def _migrated_sqlite(path: Path, session_tmp: Path) -> None:
    template = _migrated.get("sqlite")
    if template is None:
        template = str(session_tmp / "migrated.db")
        db = Database(f"sqlite:///{template}")
        await migrate(db)
        await db.close()
        _migrated["sqlite"] = template
    shutil.copyfile(template, path)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An empty database; migrated already when the test asks for a migrated one."""
    migrated = not MIGRATED_FIXTURES.isdisjoint(request.fixturenames)
    if request.param == "sqlite":
        path = tmp_path / "meta.db"
        if migrated:
            await _migrated_sqlite(path, tmp_path_factory.getbasetemp())
        return f"sqlite:///{path}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        missing_backend("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    assert url is not None
    await (_migrated_postgres(url) if migrated else _reset_postgres(url))
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await migrate(db)
    yield db
    await db.close()


# ---- S3 (moto server) --------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def create_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    client.create_bucket(Bucket=name)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(params=["local", "s3"])
def storage_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "local":
        return {"STORAGE_TYPE": "local", "STORAGE_PATH": str(tmp_path / "storage")}
    endpoint = request.getfixturevalue("s3_server")
    bucket = f"test-{secrets.token_hex(6)}"
    create_bucket(endpoint, bucket)
    return {
        "STORAGE_TYPE": "s3",
        "STORAGE_BUCKET": bucket,
        "S3_ENDPOINT_URL": endpoint,
        **AWS_TEST_CREDENTIALS,
    }


# ---- Redis ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on 127.0.0.1 (installed by .ci/run)."""
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        missing_backend("redis-server is not installed (apt-get install -y redis-server)")
    assert binary is not None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


# ---- settings and services ----------------------------------------------------------------


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'meta.db'}",
        "STORAGE_PATH": str(tmp_path / "storage"),
        "SECRETS_FILE": str(tmp_path / "secrets.json"),
        "JWT_SECRET": "jwt-secret-for-tests-" + "x" * 20,
        "URL_SIGNING_KEYS": f"op1:{OPERATOR_SECRET}",
        # Uploads queue no thumbnail job unless a test asks (tests/jobs turns it on), so a
        # background render never runs beside what a test counts.
        "EAGER_THUMBNAIL": "0",
    }


@pytest.fixture
def make_settings(base_env: dict[str, str]) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        return Settings.from_environ({**base_env, **overrides})

    return make


@asynccontextmanager
async def migrated_services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as services:
        await migrate(services.db)
        yield services


@pytest.fixture
async def services(
    database_url: str, storage_env: dict[str, str], make_settings: Callable[..., Settings]
) -> AsyncIterator[Services]:
    """The services on every (database × storage) pair."""
    async with migrated_services(make_settings(DATABASE_URL=database_url, **storage_env)) as rt:
        yield rt


@pytest.fixture
def live(base_env: dict[str, str], database_url: str) -> Iterator[str]:
    """A live server on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""
    server_env = {**base_env, "DATABASE_URL": database_url}
    migrate_with(server_env)
    with serving(server_env) as base_url:
        yield base_url


def migrate_with(env: dict[str, str]) -> None:
    """``imgorigin migrate`` in a subprocess with exactly ``env`` (plus PATH)."""
    subprocess.run(
        [IMGORIGIN, "migrate"],
        env={"PATH": os.environ["PATH"], **env},
        check=True,
        capture_output=True,
    )
