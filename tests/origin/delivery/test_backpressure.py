"""Backpressure: 503 when the queue is full or the wait too long; a client that goes away
while queued costs no render."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from origin.settings import Settings
from tests.origin.delivery.conftest import (
    Service,
    add_image,
    decode,
    get_scope,
    signed,
    started_app,
)


@pytest.fixture
def service_env() -> dict[str, str]:
    return {"CONCURRENCY": "1", "QUEUE_MAX": "1", "QUEUE_TIMEOUT_SECONDS": "0.3"}


async def test_overfilled_queue_answers_503_with_retry_after(service: Service) -> None:
    image_id, _ = await service.image()
    pool = service.services.pool
    await pool.slots.acquire()  # a slow render holds the only slot
    try:
        urls = [signed(f"/i/{image_id}/w_{w}/a.png") for w in (50, 51, 52)]
        answers = await asyncio.gather(*(service.get(u) for u in urls))
    finally:
        pool.slots.release()
    assert [a.status_code for a in answers] == [503, 503, 503]
    for answer in answers:
        assert answer.json()["error"]["code"] == "overloaded"
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["cache-control"] == "no-store"
    messages = sorted(a.json()["error"]["message"] for a in answers)
    assert sum("queue full" in m for m in messages) == 2
    assert sum("too long" in m for m in messages) == 1
    # with the slot free again the same URL renders
    answer = await service.get(urls[0])
    assert answer.status_code == 200 and decode(answer.content).width == 50


async def test_real_slow_renders_overfill_the_queue(service: Service) -> None:
    image_id, _ = await service.image(width=2400, height=1800)
    urls = [
        signed(f"/i/{image_id}/e_blur:{b}/w_{w}/a.png")
        for b, w in ((1500, 2000), (1400, 1999), (1300, 1998), (1200, 1997))
    ]
    answers = await asyncio.gather(*(service.get(u) for u in urls))
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200 and statuses[-1] == 503
    assert all(a.headers.get("retry-after") == "1" for a in answers if a.status_code == 503)


@pytest.fixture
async def raw_app(
    service_env: dict[str, str], make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    async for started in started_app(make_settings(**service_env)):
        yield started


async def test_a_client_gone_while_queued_costs_no_render(
    raw_app: tuple[Any, dict[str, Any]],
) -> None:
    app, state = raw_app
    services, origin = state["services"], state["origin"]
    image_id, _ = await add_image(services, await _user(services))
    scope = get_scope(signed(f"/i/{image_id}/w_64/a.png"), state)
    inbox: list[dict[str, Any]] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop()
        await asyncio.sleep(0.1)  # then the client hangs up
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await services.pool.slots.acquire()
    try:
        await asyncio.wait_for(app(scope, receive, send), 2)
        await asyncio.sleep(0.05)  # the cancelled flight's callbacks run
        assert services.pool.waiting == 0  # it left the queue...
        assert len(origin.derivatives.flights) == 0  # ...and its flight was cancelled
    finally:
        services.pool.slots.release()
    await asyncio.sleep(0.2)
    assert origin.metrics.hit["render"].value == 0
    assert len(origin.derivatives.memory) == 0
    assert sent[0]["status"] == 499


async def _user(services: Any) -> str:
    import secrets
    from datetime import UTC, datetime

    user_id = secrets.token_hex(16)
    await services.users.create(user_id, f"{user_id[:8]}@example.com", "x", datetime.now(UTC))
    return user_id
