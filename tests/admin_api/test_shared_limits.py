"""With REDIS_URL, every process enforces one limit; without Redis, requests still pass."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from origin.settings import Settings
from tests.admin_api.conftest import start_api


async def test_two_processes_share_one_limit(
    redis_server: str, make_settings: Callable[..., Settings], password_hash: str
) -> None:
    # a fresh key space per test run: the same Redis serves every test
    settings = make_settings(REDIS_URL=redis_server, RATE_LIMIT_PER_MINUTE="4")
    first = start_api(settings, password_hash)
    second = start_api(settings, password_hash)
    api_a = await anext(first)
    api_b = await anext(second)
    try:
        _, headers = await api_a.user(f"{secrets.token_hex(4)}@example.com")
        statuses = []
        for i in range(6):
            api = api_a if i % 2 == 0 else api_b
            answer = await api.http.get("/api/me", headers=headers)
            statuses.append(answer.status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
        assert (
            answer.headers["ratelimit-limit"] == "4"
            and answer.headers["ratelimit-remaining"] == "0"
        )
        assert 1 <= int(answer.headers["retry-after"]) <= 60
    finally:
        for generator in (first, second):
            await generator.aclose()


async def test_unreachable_redis_fails_open(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    from tests.conftest import free_port

    settings = make_settings(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_PER_MINUTE="1"
    )
    async for api in start_api(settings, password_hash):
        _, headers = await api.user()
        statuses = [(await api.http.get("/api/me", headers=headers)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limiter = api.http.app_state["limiter"]  # type: ignore[attr-defined]
        assert limiter.failures == 3
        metrics = (await api.http.get("/metrics")).text
        assert "imgorigin_ratelimit_store_failures_total 3.0" in metrics


async def test_unreachable_redis_is_counted_for_every_login_check(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    """A login is checked twice (per address and per account): with Redis down both pass,
    and both are counted as store failures."""
    from tests.conftest import free_port

    settings = make_settings(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", AUTH_RATE_LIMIT_PER_MINUTE="1"
    )
    async for api in start_api(settings, password_hash):
        email = f"{secrets.token_hex(4)}@example.com"
        await api.user(email)
        for _ in range(2):
            answer = await api.http.post(
                "/api/auth/login", json={"email": email, "password": "not the password"}
            )
            assert answer.status_code == 401  # not 429: the limit cannot be enforced
        limiter = api.http.app_state["limiter"]  # type: ignore[attr-defined]
        assert limiter.failures == 4
        metrics = (await api.http.get("/metrics")).text
        assert "imgorigin_ratelimit_store_failures_total 4.0" in metrics
