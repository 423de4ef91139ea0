"""Rate limits, CORS and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest
from starlette.routing import Mount, Route

from admin_api.app import api_routes
from admin_api.guards import client_address
from admin_api.openapi import openapi_document
from tests.admin_api.conftest import PASSWORD, Api, assert_error

LIMITS = {"RATE_LIMIT_PER_MINUTE": "3", "AUTH_RATE_LIMIT_PER_MINUTE": "2"}


@pytest.mark.parametrize("api_env", [LIMITS])
async def test_per_user_limit_with_headers(local_api: Api, api_env: dict[str, str]) -> None:
    _, headers = await local_api.user()
    _, other = await local_api.user()
    answers = [await local_api.http.get("/api/me", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    for answer in answers:
        assert answer.headers["ratelimit-limit"] == "3"
        assert 1 <= int(answer.headers["ratelimit-reset"]) <= 60
    assert_error(answers[3], 429, "rate_limited")
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    # another user has their own budget; error answers carry the headers too
    missing = await local_api.http.get("/api/images/" + "0" * 32, headers=other)
    assert missing.status_code == 404 and missing.headers["ratelimit-remaining"] == "2"


@pytest.mark.parametrize("api_env", [LIMITS])
async def test_auth_limit_per_address(local_api: Api, api_env: dict[str, str]) -> None:
    first = [
        await local_api.http.post(
            "/api/auth/login",
            json={"email": f"x{i}@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        for i in range(3)
    ]
    assert [a.status_code for a in first] == [401, 401, 429]
    # a different client behind the trusted proxy has its own budget
    other = await local_api.http.post(
        "/api/auth/login",
        json={"email": "y@example.com", "password": "wrong password"},
        headers={"X-Forwarded-For": "203.0.113.8"},
    )
    assert other.status_code == 401 and other.headers["ratelimit-limit"] == "2"


# Per-account throttling of logins counts failures only (docs/admin-api.md#rate-limits).
LOGINS = {
    "AUTH_RATE_LIMIT_PER_MINUTE": "3",
    "LOGIN_FAILURES_PER_MINUTE": "2",
    "ACCOUNT_LOGIN_FAILURES_PER_MINUTE": "4",
}


async def login_from(api: Api, address: str, email: str, password: str) -> httpx.Response:
    """A login from ``address`` (behind the trusted proxy, as nginx would say)."""
    return await api.http.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


@pytest.mark.parametrize("api_env", [LOGINS])
async def test_strangers_failures_never_lock_the_owner_out(
    local_api: Api, api_env: dict[str, str]
) -> None:
    email = "Owner@example.com"
    await local_api.user(email)
    # failures from 8 addresses (twice the account's ceiling), the email in another case
    statuses = [
        (await login_from(local_api, f"203.0.113.{i}", "OWNER@example.com", "a guess")).status_code
        for i in range(8)
    ]
    assert statuses == [401] * 8
    # past the ceiling, an address that has failed for the account is refused, even with
    # the right password: brute force from many addresses is still slowed
    refused = await login_from(local_api, "203.0.113.0", email, PASSWORD)
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # the owner, from an address that has not failed, gets in every time: successes never
    # count (3 of them, past both failure limits)
    for _ in range(3):
        answer = await login_from(local_api, "198.51.100.7", email, PASSWORD)
        assert answer.status_code == 200, answer.text
        assert answer.json()["token_type"] == "bearer"


@pytest.mark.parametrize("api_env", [{**LOGINS, "AUTH_RATE_LIMIT_PER_MINUTE": "20"}])
async def test_failures_per_account_and_address_are_limited_tightly(
    local_api: Api, api_env: dict[str, str]
) -> None:
    email = "target@example.com"
    await local_api.user(email)
    guesses = [
        (await login_from(local_api, "203.0.113.50", email, "a guess")).status_code
        for _ in range(2)
    ]
    assert guesses == [401, 401]
    refused = await login_from(local_api, "203.0.113.50", email, PASSWORD)
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # the same for an email nobody has: the answers tell nothing about which exist
    unknown = [
        (await login_from(local_api, "203.0.113.50", "nobody@example.com", "a guess")).status_code
        for _ in range(3)
    ]
    assert unknown == [401, 401, 429]
    # that address still has its budget for other accounts, other addresses for this one
    assert (
        await login_from(local_api, "203.0.113.50", "x@example.com", "x" * 8)
    ).status_code == 401
    assert (await login_from(local_api, "203.0.113.51", email, PASSWORD)).status_code == 200


@pytest.mark.parametrize("api_env", [{**LIMITS, "FORWARDED_ALLOW_IPS": "10.9.9.9"}])
async def test_forged_forwarded_for_cannot_dodge_the_limit(
    local_api: Api, api_env: dict[str, str]
) -> None:
    body = {"email": "x@example.com", "password": "wrong password"}
    statuses = [
        (
            await local_api.http.post(
                "/api/auth/login", json=body, headers={"X-Forwarded-For": f"198.51.100.{i}"}
            )
        ).status_code
        for i in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_client_address_takes_the_last_untrusted_hop() -> None:
    def scope(peer: str, xff: str | None) -> dict[str, object]:
        headers = [(b"x-forwarded-for", xff.encode())] if xff else []
        return {"client": (peer, 1234), "headers": headers}

    trusted = ("127.0.0.1", "10.0.0.0/8")
    assert client_address(scope("127.0.0.1", "1.2.3.4"), trusted) == "1.2.3.4"
    assert client_address(scope("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1"), trusted) == "1.2.3.4"
    assert client_address(scope("5.5.5.5", "1.2.3.4"), trusted) == "5.5.5.5"
    assert client_address(scope("127.0.0.1", None), trusted) == "127.0.0.1"


@pytest.mark.parametrize("api_env", [{"CORS_ORIGINS": "https://app.example.com"}])
async def test_cors_follows_the_setting(local_api: Api, api_env: dict[str, str]) -> None:
    preflight = await local_api.http.options(
        "/api/images",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-credentials" not in preflight.headers
    _, headers = await local_api.user()
    allowed = await local_api.http.get(
        "/api/me", headers={**headers, "Origin": "https://app.example.com"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "ratelimit-remaining" in allowed.headers["access-control-expose-headers"].lower()
    other = await local_api.http.get(
        "/api/me", headers={**headers, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_without_the_setting(local_api: Api) -> None:
    _, headers = await local_api.user()
    answer = await local_api.http.get(
        "/api/me", headers={**headers, "Origin": "https://app.example.com"}
    )
    assert "access-control-allow-origin" not in answer.headers


def app_operations() -> set[tuple[str, str]]:
    operations = set()
    for route in api_routes():
        assert isinstance(route, Route) and not isinstance(route, Mount)
        for method in route.methods or ():
            if method != "HEAD":
                operations.add((method.lower(), "/api" + route.path))
    return operations


def test_openapi_matches_the_routes() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == app_operations()


async def test_openapi_is_served(local_api: Api) -> None:
    answer = await local_api.http.get("/api/openapi.json")
    assert answer.status_code == 200 and answer.json() == openapi_document()
