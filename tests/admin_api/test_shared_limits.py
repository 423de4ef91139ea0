"""With REDIS_URL, every process enforces one limit; without Redis, requests still pass."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from origin.settings import Settings
from tests.admin_api.conftest import PASSWORD, Api, make_image, start_api


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


async def test_login_failures_are_counted_once_for_every_process(
    redis_server: str, make_settings: Callable[..., Settings], password_hash: str
) -> None:
    """Failures on two processes add up, per account and address and per account; the
    owner, from an address that never failed, still logs in on either."""
    settings = make_settings(
        REDIS_URL=redis_server,
        AUTH_RATE_LIMIT_PER_MINUTE="3",
        LOGIN_FAILURES_PER_MINUTE="2",
        ACCOUNT_LOGIN_FAILURES_PER_MINUTE="4",
    )
    first = start_api(settings, password_hash)
    second = start_api(settings, password_hash)
    api_a = await anext(first)
    api_b = await anext(second)
    try:
        email = f"{secrets.token_hex(4)}@example.com"
        await api_a.user(email)

        async def login(api: Api, address: str, password: str) -> int:
            answer = await api.http.post(
                "/api/auth/login",
                json={"email": email, "password": password},
                headers={"X-Forwarded-For": address},
            )
            return answer.status_code

        # one address, one failure on each process: its third try is refused on either
        assert [await login(api, "203.0.113.1", "a guess") for api in (api_a, api_b)] == [401] * 2
        assert await login(api_a, "203.0.113.1", PASSWORD) == 429
        # more addresses, alternating: past the shared ceiling, one that failed is refused
        statuses = [
            await login(api_a if i % 2 else api_b, f"203.0.113.{i}", "a guess") for i in range(2, 6)
        ]
        assert statuses == [401] * 4
        assert await login(api_a, "203.0.113.2", PASSWORD) == 429
        # the owner's address never failed: in on both processes, successes never count
        assert [await login(api, "198.51.100.7", PASSWORD) for api in (api_a, api_b, api_a)] == [
            200
        ] * 3
    finally:
        for generator in (first, second):
            await generator.aclose()


async def test_unreachable_redis_is_counted_for_every_login_check(
    make_settings: Callable[..., Settings], password_hash: str
) -> None:
    """A failed login calls the store four times (the per-address limit, a look at this
    address's failures for the account, then the failure counted per account and address
    and per account): with Redis down every login reaches the password check, and every
    failed call is counted."""
    from tests.conftest import free_port

    settings = make_settings(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        AUTH_RATE_LIMIT_PER_MINUTE="1",
        LOGIN_FAILURES_PER_MINUTE="1",
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
        assert limiter.failures == 8
        metrics = (await api.http.get("/metrics")).text
        assert "imgorigin_ratelimit_store_failures_total 8.0" in metrics


async def test_two_processes_share_the_unsigned_render_limit(
    redis_server: str, make_settings: Callable[..., Settings], password_hash: str
) -> None:
    settings = make_settings(REDIS_URL=redis_server, UNSIGNED_RENDERS_PER_IMAGE="2")
    first = start_api(settings, password_hash)
    second = start_api(settings, password_hash)
    api_a = await anext(first)
    api_b = await anext(second)
    try:
        _, headers = await api_a.user()
        card = {"transform": "w_20", "unsigned": True, "formats": ["webp", "jpg", "png"]}
        made = await api_a.http.put("/api/transformations/card", headers=headers, json=card)
        assert made.status_code == 201
        uploaded = await api_a.http.post(
            "/api/images",
            headers=headers,
            files={"file": ("Cat.jpg", make_image(), "image/jpeg")},
            data={"public": "true"},
        )
        image_id = uploaded.json()["id"]
        statuses = [
            (await api.http.get(f"/i/{image_id}/t_card/Cat.{ext}")).status_code
            for api, ext in ((api_a, "webp"), (api_b, "jpg"), (api_a, "png"))
        ]
        assert statuses == [200, 200, 429]
    finally:
        for generator in (first, second):
            await generator.aclose()
