"""The bounded derivative store on the whole app: one user with their own signing key asks
for 400 distinct derivatives; renders past the key's per-minute limit answer 429, the
sweep brings the user's store back under USER_DERIVATIVE_BYTES (least recently used first,
rows and objects together, an eager one marked evicted), the user's other image keeps
working, and another user's derivatives are never touched."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
import pyvips

from origin.jobs.sweep import sweep_once
from origin.signing import sign_url
from origin.store import budget
from tests.admin_api.conftest import Api, make_image
from tests.conftest import OPERATOR_SECRET

BUDGET = 20_000
LIMIT = 300  # renders a minute for the user's key
FLOOD = 400  # distinct derivatives asked for; the LIMIT rendered outgrow the budget


@pytest.fixture
def api_env() -> dict[str, str]:
    return {
        "USER_DERIVATIVE_BYTES": str(BUDGET),
        "USER_KEY_RENDERS_PER_MINUTE": str(LIMIT),
        "DERIVATIVE_SWEEP_SECONDS": "0.3",
        "JOB_POLL_SECONDS": "0.05",
        "RATE_LIMIT_PER_MINUTE": "100000",
    }


async def upload(api: Api, headers: dict[str, str], eager: str | None = None) -> str:
    answer = await api.http.post(
        "/api/images",
        headers=headers,
        files={"file": ("a.jpg", make_image(width=64, height=48), "image/jpeg")},
        data={} if eager is None else {"eager": eager},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def state_of_eager(api: Api, image_id: str, headers: dict[str, str], want: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        image = (await api.http.get(f"/api/images/{image_id}", headers=headers)).json()
        if [e["state"] for e in image["eager"]] == [want]:
            return
        assert time.monotonic() < deadline, image["eager"]
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_flood_of_derivatives_settles_within_the_budget(local_api: Api) -> None:
    api = local_api
    user_id, headers = await api.user()
    flooded = await upload(api, headers, '[{"transform": "w_8", "format": "png"}]')
    other = await upload(api, headers)
    await state_of_eager(api, flooded, headers, "done")
    kept_url = sign_url(f"/i/{other}/w_30/a.png", OPERATOR_SECRET)
    assert (await api.http.get(kept_url)).status_code == 200
    stranger_id, stranger = await api.user()
    theirs = await upload(api, stranger)
    for width in (20, 24, 28):
        url = sign_url(f"/i/{theirs}/w_{width}/a.png", OPERATOR_SECRET)
        assert (await api.http.get(url)).status_code == 200
    origin = api.http.app_state["origin"]  # type: ignore[attr-defined]
    await origin.derivatives.drain()  # derivatives are written after their answers
    stranger_bytes = await budget.usage(api.services.db, stranger_id)
    assert stranger_bytes > 0

    secret = (await api.http.post("/api/keys", headers=headers)).json()["secret"]
    urls = [
        sign_url(f"/i/{flooded}/w_{10 + n % 50},h_{10 + n // 50},c_fill/a.png", secret)
        for n in range(FLOOD)
    ]
    statuses: Counter[int] = Counter()
    for start in range(0, len(urls), 16):
        answers = await asyncio.gather(*(api.http.get(u) for u in urls[start : start + 16]))
        statuses.update(a.status_code for a in answers)
    assert statuses == {200: LIMIT, 429: FLOOD - LIMIT}, statuses
    await origin.derivatives.drain()

    deadline = time.monotonic() + 20
    while (used := await budget.usage(api.services.db, user_id)) > BUDGET:
        assert time.monotonic() < deadline, f"still {used} bytes of derivatives"
        await asyncio.sleep(0.2)
    me = (await api.http.get("/api/me", headers=headers)).json()
    assert me["derivative_bytes"] == used <= BUDGET and me["derivative_budget_bytes"] == BUDGET
    assert used > BUDGET // 2  # the most recent ones stay
    # rows and objects went together: what is stored under the image is what rows name
    objects = {i.key async for i in api.services.storage.objects(f"{user_id}/{flooded}/")}
    derived = {k for k in objects if "/original" not in k}
    assert len(derived) <= used // 60 and sum(1 for _ in derived) > 0
    await state_of_eager(api, flooded, headers, "evicted")  # the oldest: evicted
    metrics_state = api.http.app_state["metrics"]  # type: ignore[attr-defined]
    assert await sweep_once(api.services, metrics_state) == 0  # settled: nothing more to do

    assert await budget.usage(api.services.db, stranger_id) == stranger_bytes
    assert (await api.http.get(kept_url)).status_code == 200
    fresh = await api.http.get(sign_url(f"/i/{other}/w_33/a.png", OPERATOR_SECRET))
    image = pyvips.Image.new_from_buffer(fresh.content, "")
    assert (image.width, image.height) == (33, 25)
    metrics = (await api.http.get("/metrics")).text
    assert f'imgorigin_renders_refused_total{{by="user_key"}} {FLOOD - LIMIT}.0' in metrics
    assert "imgorigin_derivatives_evicted_total" in metrics
