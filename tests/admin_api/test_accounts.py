"""Accounts and tokens through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from admin_api.auth import issue_access_token
from tests.admin_api.conftest import PASSWORD, Api, assert_error


async def signup(api: Api, email: str = "ann@example.com", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return await api.http.post("/api/auth/signup", json={"email": email, "password": password})


async def login(api: Api, email: str = "ann@example.com", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return await api.http.post("/api/auth/login", json={"email": email, "password": password})


async def test_signup_login_me(local_api: Api) -> None:
    created = await signup(local_api, "Ann@Example.com")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "email", "created_at"} and body["email"] == "Ann@Example.com"
    assert len(body["id"]) == 32
    datetime.fromisoformat(body["created_at"])

    assert_error(await signup(local_api, "ann@EXAMPLE.com"), 409, "email_taken")

    logged = await login(local_api, "ANN@example.com")
    assert logged.status_code == 200, logged.text
    tokens = logged.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3600

    me = await local_api.http.get(
        "/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == {
        "id": body["id"],
        "email": "Ann@Example.com",
        "image_count": 0,
        "storage_used_bytes": 0,
        "storage_quota_bytes": 5368709120,
        "operator": False,
        "public": False,
        "derivative_bytes": 0,
        "derivative_budget_bytes": 5368709120 // 5,
    }
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "exp", "iat", "jti", "type"}
    assert claims["sub"] == body["id"] and claims["type"] == "access"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@b", "password": PASSWORD},
        {"email": "two@@example.com", "password": PASSWORD},
        {"email": "ann@example.com", "password": "short"},
        {"email": "ann@example.com", "password": "x" * 129},
        {"email": "ann@example.com", "password": "é" * 4096},
        {"email": "ann@example.com"},
        {"password": PASSWORD},
        {"email": 5, "password": PASSWORD},
        [],
    ],
)
async def test_signup_refuses_bad_bodies(local_api: Api, body: object) -> None:
    response = await local_api.http.post("/api/auth/signup", json=body)
    assert_error(response, 400)


DEEP = b"[" * 20_000 + b"]" * 20_000  # valid JSON under 64 KB that Python's parser recurses on


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe",
        b'"string"',
        b"null",
        DEEP,
        b'{"email": ' + DEEP + b"}",
        # a lone surrogate is no Unicode text: it failed later, as a 500 (login's counters)
        b'{"email": "\\ud800", "password": "a good password"}',
        b'{"email": "a@example.com", "password": ["\\udfff"], "\\ud800": 1}',
    ],
)
async def test_malformed_bodies_are_400(local_api: Api, raw: bytes) -> None:
    for path in ("/api/auth/signup", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"):
        response = await local_api.http.post(
            path, content=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400)


async def test_login_answers_the_same_for_unknown_email_and_wrong_password(local_api: Api) -> None:
    await signup(local_api)
    started = time.perf_counter()
    unknown = await login(local_api, "nobody@example.com")
    unknown_seconds = time.perf_counter() - started
    started = time.perf_counter()
    wrong = await login(local_api, password="wrong password!")
    wrong_seconds = time.perf_counter() - started
    assert_error(unknown, 401, "invalid_credentials")
    assert unknown.json() == wrong.json() and wrong.status_code == 401
    assert unknown.headers["www-authenticate"] == wrong.headers["www-authenticate"] == "Bearer"
    assert unknown_seconds > 0.1 and wrong_seconds > 0.1  # both pay one bcrypt check


async def test_long_passwords_never_collide(local_api: Api) -> None:
    base = "p" * 72
    assert (await signup(local_api, "long@example.com", base + "A")).status_code == 201
    assert (await login(local_api, "long@example.com", base + "A")).status_code == 200
    assert (await login(local_api, "long@example.com", base + "B")).status_code == 401
    assert (await login(local_api, "long@example.com", base)).status_code == 401
    assert (await signup(local_api, "exact@example.com", base)).status_code == 201
    assert (await login(local_api, "exact@example.com", base + "x")).status_code == 401
    four_k = await login(local_api, "long@example.com", "y" * 4096)
    assert_error(four_k, 401, "invalid_credentials")


async def test_refresh_rotates_and_reuse_revokes_the_family(local_api: Api) -> None:
    await signup(local_api)
    first = (await login(local_api)).json()
    rotated = await local_api.http.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await local_api.http.get(
        "/api/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me.status_code == 200
    # The spent token comes back: refused, and the successor dies with it.
    reused = await local_api.http.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_error(reused, 401)
    successor = await local_api.http.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert_error(successor, 401)
    # Another login is another family and still works.
    other = (await login(local_api)).json()
    assert (
        await local_api.http.post(
            "/api/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
    ).status_code == 200


async def test_logout_revokes(local_api: Api) -> None:
    await signup(local_api)
    tokens = (await login(local_api)).json()
    out = await local_api.http.post(
        "/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert out.status_code == 204
    again = await local_api.http.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_error(again, 401)
    assert_error(
        await local_api.http.post("/api/auth/refresh", json={"refresh_token": "made-up"}), 401
    )


def forged(secret: str, **claims: object) -> str:
    now = int(time.time())
    base = {"sub": "0" * 32, "iat": now, "exp": now + 60, "jti": "j", "type": "access"}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, secret, algorithm="HS256")


async def test_tokens_are_checked(local_api: Api) -> None:
    user_id, good = await local_api.user()
    secret = local_api.services.settings.jwt_secret
    unsigned = jwt.encode({"sub": user_id, "type": "access"}, key="", algorithm="none")
    bad_tokens = {
        "none": None,
        "not bearer": "Basic abc",
        "garbage": "Bearer abc.def.ghi",
        "alg none": f"Bearer {unsigned}",
        "foreign key": f"Bearer {forged('another secret, thirty-two bytes or more', sub=user_id)}",
        "expired": f"Bearer {forged(secret, sub=user_id, exp=int(time.time()) - 10)}",
        "refresh type": f"Bearer {forged(secret, sub=user_id, type='refresh')}",
        "no jti": f"Bearer {forged(secret, sub=user_id, jti=None)}",
        "no iat": f"Bearer {forged(secret, sub=user_id, iat=None)}",
        "not yet valid": f"Bearer {forged(secret, sub=user_id, iat=int(time.time()) + 3600)}",
        # signed with our secret: a subject that is not one of our ids is no user (was a 500)
        "lone surrogate subject": f"Bearer {forged(secret, sub=chr(0xD800))}",
        "subject not an id": f"Bearer {forged(secret, sub='x' * 32)}",
        "hs512": "Bearer "
        + jwt.encode(
            {"sub": user_id, "iat": 1, "exp": 2**31, "jti": "j", "type": "access"},
            secret * 2,
            algorithm="HS512",
        ),
    }
    for name, header in bad_tokens.items():
        headers = {"Authorization": header} if header else {}
        response = await local_api.http.get("/api/me", headers=headers)
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == "Bearer", name
    assert (await local_api.http.get("/api/me", headers=good)).status_code == 200


async def test_any_valid_access_token_is_accepted_until_exp(local_api: Api) -> None:
    user_id, _ = await local_api.user()
    settings = local_api.services.settings
    past = datetime.now(UTC) - timedelta(seconds=30)
    token = issue_access_token(user_id, settings.jwt_secret, 60, now=past).token
    assert (
        await local_api.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    stale = issue_access_token(user_id, settings.jwt_secret, 10, now=past).token
    assert (
        await local_api.http.get("/api/me", headers={"Authorization": f"Bearer {stale}"})
    ).status_code == 401
