"""Text the admin API takes that a database would refuse, on SQLite and PostgreSQL alike:
a NUL character (PostgreSQL cannot store one), digits that are not ASCII, text longer than
its column. Each is a 400 (or the 404 of an id that cannot exist) with the contract's body,
never a 500 (before: PostgreSQL's CharacterNotInRepertoireError or
StringDataRightTruncationError, and Python's int() taking '٣' or failing on '²')."""

from __future__ import annotations

import json

import pytest

from tests.admin_api.conftest import Api, make_image

NUL = "\u0000"


def refused(answer, status: int = 400) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) >= {"code", "message"}


async def test_nul_in_account_fields_is_refused(local_api: Api) -> None:
    for path in ("/api/auth/signup", "/api/auth/login"):
        body = {"email": f"a{NUL}b@example.com", "password": "a good password"}
        refused(await local_api.http.post(path, json=body))
        body = {"email": "ann@example.com", "password": f"a good{NUL}password"}
        answer = await local_api.http.post(path, json=body)
        assert answer.status_code in (400, 401), answer.text
        for encoding in ("utf-16", "utf-32"):  # JSON parsers read these too
            text = json.dumps({"email": f"a{NUL}b@example.com", "password": "a good password"})
            answer = await local_api.http.post(
                path, content=text.encode(encoding), headers={"content-type": "application/json"}
            )
            refused(answer)


async def test_nul_in_urls_and_ids_is_refused(local_api: Api) -> None:
    _, headers = await local_api.user()
    http = local_api.http
    refused(
        await http.post(
            "/api/webhooks", headers=headers, json={"url": f"http://127.0.0.1:8766/hook{NUL}"}
        )
    )
    upload = await http.post(
        "/api/images",
        headers=headers,
        files={"file": ("a.jpg", make_image())},
        data={"notification_url": f"http://127.0.0.1:8766/n{NUL}"},
    )
    refused(upload)
    refused(await http.delete("/api/keys/ab%00", headers=headers), 404)
    image = await local_api.upload(headers, make_image())
    assert image.status_code == 201, image.text
    eager = {"eager": [{"transform": "w_33", "format": "webp"}], "notification_url": f"x{NUL}"}
    refused(await http.post(f"/api/images/{image.json()['id']}/eager", headers=headers, json=eager))
    assert (await http.get("/api/me", headers=headers)).json()["image_count"] == 1


@pytest.mark.parametrize("value", ["٣", "²", "３", "1٣"])
async def test_only_ascii_digits_are_numbers(local_api: Api, value: str) -> None:
    _, headers = await local_api.user()
    for name in ("page", "limit"):
        refused(await local_api.http.get("/api/images", headers=headers, params={name: value}))


async def test_an_eager_chain_longer_than_its_column_is_refused(local_api: Api) -> None:
    _, headers = await local_api.user()
    image = await local_api.upload(headers, make_image())
    assert image.status_code == 201, image.text
    long_text = "l_text:" + "%25" * 200
    chain = "/".join([long_text] * 4)  # 2431 characters: within the 8 KB eager field
    assert len(chain) > 2000
    body = {"eager": [{"transform": chain, "format": "png"}]}
    answer = await local_api.http.post(
        f"/api/images/{image.json()['id']}/eager", headers=headers, json=body
    )
    refused(answer)
    assert "2000" in answer.json()["error"]["message"]
    upload = await local_api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("a.jpg", make_image())},
        data={"eager": json.dumps(body["eager"])},
    )
    refused(upload)
    assert (await local_api.http.get("/api/me", headers=headers)).json()["image_count"] == 1
