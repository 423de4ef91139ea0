"""Rate limits, CORS and the OpenAPI document."""

from __future__ import annotations

import pytest
from starlette.routing import Mount, Route

from admin_api.app import api_routes
from admin_api.guards import client_address
from admin_api.openapi import openapi_document
from tests.admin_api.conftest import Api
from tests.admin_api.test_auth import assert_error

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


@pytest.mark.parametrize("api_env", [LIMITS])
async def test_login_attempts_are_limited_per_account_across_addresses(
    local_api: Api, api_env: dict[str, str]
) -> None:
    body = {"email": "Target@example.com", "password": "guess number one"}
    statuses = []
    for i in range(3):  # each from a new address behind the trusted proxy
        answer = await local_api.http.post(
            "/api/auth/login", json=body, headers={"X-Forwarded-For": f"203.0.113.{i + 10}"}
        )
        statuses.append(answer.status_code)
    assert statuses == [401, 401, 429]
    assert_error(answer, 429, "rate_limited")
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    # the count is per account, whatever the case of the email; another account is free
    other = await local_api.http.post(
        "/api/auth/login",
        json={"email": "someone.else@example.com", "password": "x" * 8},
        headers={"X-Forwarded-For": "203.0.113.99"},
    )
    assert other.status_code == 401


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
