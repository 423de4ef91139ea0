"""Webhooks end to end: a real endpoint on 127.0.0.1 (reachable only through the test
switch) receives signed events that verify with the documented snippets and with the
``standardwebhooks`` package; failures back off and end failed; refused addresses are
refused at registration and at delivery; every event matches the documented schema."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pyvips
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from origin.store.tables import jobs, webhook_deliveries
from origin.store.webhooks import Webhooks
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.jobs.conftest import Delivery, Receiver, eventually

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "webhook-event.schema.json").read_text())


def snippet(language: str) -> str:
    text = (DOCS / "webhooks.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    [code] = [b for b in blocks if "verify(" in b]
    return code


def python_verify() -> Any:
    scope: dict[str, Any] = {}
    exec(snippet("python"), scope)  # the documented snippet, as a user pastes it
    return scope["verify"]


def node_verify(secret: str, delivery: Delivery) -> dict[str, Any]:
    driver = snippet("javascript") + (
        "\nconst input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const event = verify(input.secret, input.headers, Buffer.from(input.body, 'base64'));\n"
        "process.stdout.write(JSON.stringify(event));\n"
    )
    payload = json.dumps(
        {
            "secret": secret,
            "headers": delivery.headers,
            "body": __import__("base64").b64encode(delivery.body).decode(),
        }
    )
    out = subprocess.run(
        ["node", "-e", driver], input=payload.encode(), capture_output=True, check=True
    )
    return json.loads(out.stdout)


def verified(secret: str, delivery: Delivery) -> dict[str, Any]:
    """The event, checked by all three verifiers and against the schema."""
    event = python_verify()(secret, delivery.headers, delivery.body)
    assert Webhook(secret).verify(delivery.body, delivery.headers) == event
    assert node_verify(secret, delivery) == event
    jsonschema.validate(event, SCHEMA)
    return event


async def register(api: Api, headers: dict[str, str], url: str, **body: Any) -> dict[str, Any]:
    answer = await api.http.post("/api/webhooks", headers=headers, json={"url": url, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def log(api: Api, headers: dict[str, str], webhook_id: str) -> list[dict[str, Any]]:
    answer = await api.http.get(f"/api/webhooks/{webhook_id}/deliveries", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_events_arrive_signed_and_verify_with_the_documented_snippets(
    app: Api, receiver: Receiver
) -> None:
    _, headers = await app.user()
    hook = await register(app, headers, receiver.endpoint("/hook"))
    assert hook["secret"].startswith("whsec_")
    shown = (await app.http.get(f"/api/webhooks/{hook['id']}", headers=headers)).json()
    assert "secret" not in shown
    eager = json.dumps([{"transform": "w_20", "format": "png"}])
    image = (
        await app.http.post(
            "/api/images",
            headers=headers,
            files={"file": ("a.jpg", make_image("jpeg", 64, 48))},
            data={"eager": eager},
        )
    ).json()

    async def arrived(kind: str) -> bool:
        return kind in [d.event["type"] for d in receiver.at("/hook")]

    await eventually(lambda: arrived("derivative.ready"))
    await app.http.delete(f"/api/images/{image['id']}", headers=headers)
    await eventually(lambda: arrived("image.deleted"))
    events = {d.event["type"]: verified(hook["secret"], d) for d in receiver.at("/hook")}
    assert set(events) == {"image.uploaded", "derivative.ready", "image.deleted"}
    assert events["image.uploaded"]["data"]["image"]["id"] == image["id"]
    assert events["image.deleted"]["data"]["image"]["id"] == image["id"]
    ids = [d.headers["webhook-id"] for d in receiver.at("/hook")]
    assert len(ids) == len(set(ids))

    async def all_delivered() -> bool:
        items = await log(app, headers, hook["id"])
        return len(items) == 3 and all(i["state"] == "delivered" for i in items)

    await eventually(all_delivered)
    for item in await log(app, headers, hook["id"]):
        assert item["state"] == "delivered" and item["last_status"] == 200


async def test_derivative_ready_and_failed_reach_the_notification_url(
    app: Api, receiver: Receiver
) -> None:
    _, headers = await app.user()
    everything = await register(app, headers, receiver.endpoint("/all"), events=["image.deleted"])
    overlay = (await app.upload(headers, make_image("png", 8, 8), filename="o.png")).json()
    eager = [
        {"transform": "w_20", "format": "png"},
        {"transform": f"w_30,l_{overlay['id']}", "format": "png"},
    ]
    image = (await app.upload(headers, make_image("jpeg", 64, 48))).json()
    answer = await app.http.post(
        f"/api/images/{image['id']}/eager",
        headers=headers,
        # the endpoint's URL spelled otherwise (a fragment): the same endpoint
        json={"eager": eager, "notification_url": receiver.server.url("/all") + "#call"},
    )
    assert answer.status_code == 202, answer.text
    await app.http.delete(f"/api/images/{overlay['id']}", headers=headers)

    async def both() -> bool:
        kinds = [d.event["type"] for d in receiver.at("/all")]
        return len([k for k in kinds if k.startswith("derivative.")]) == 2

    await eventually(both)
    got = {d.event["type"]: verified(everything["secret"], d) for d in receiver.at("/all")}
    ready = got["derivative.ready"]["data"]
    assert ready["image_id"] == image["id"] and (ready["width"], ready["height"]) == (20, 15)
    picture = await app.http.get(ready["url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    failed = got["derivative.failed"]["data"]
    assert failed["error"]["code"] in ("bad_transform", "not_found")
    shown = (await app.http.get(f"/api/images/{image['id']}", headers=headers)).json()["eager"]
    assert [e["state"] for e in shown] == ["done", "failed"]
    assert shown[0]["url"] == ready["url"]


async def test_a_notification_url_must_be_a_registered_endpoint(app: Api) -> None:
    _, headers = await app.user()
    image = (await app.upload(headers, make_image("jpeg", 64, 48))).json()
    answer = await app.http.post(
        f"/api/images/{image['id']}/eager",
        headers=headers,
        json={
            "eager": [{"transform": "w_20", "format": "png"}],
            "notification_url": "https://example.com/x",
        },
    )
    assert_error(answer, 400, "bad_request")


async def test_a_failing_endpoint_is_retried_with_backoff_then_failed_and_can_be_redelivered(
    app: Api, receiver: Receiver
) -> None:
    _, headers = await app.user()
    url = receiver.endpoint("/down", statuses=(500, 503, 502, 500, 200))
    hook = await register(app, headers, url)
    ping = await app.http.post(f"/api/webhooks/{hook['id']}/test", headers=headers)
    assert ping.status_code == 202
    delivery_id = ping.json()["delivery_id"]

    async def ended() -> list[dict[str, Any]] | None:
        items = await log(app, headers, hook["id"])
        return items if items and items[0]["state"] == "failed" else None

    [item] = await eventually(ended)
    assert item["id"] == delivery_id and item["attempts"] == 4 and item["last_status"] == 500
    tries = receiver.at("/down")
    assert len(tries) == 4 and {d.headers["webhook-id"] for d in tries} == {delivery_id}
    gaps = [
        int(b.headers["webhook-timestamp"]) - int(a.headers["webhook-timestamp"])
        for a, b in itertools.pairwise(tries)
    ]
    assert all(g >= 0 for g in gaps)
    again = await app.http.post(
        f"/api/webhooks/{hook['id']}/deliveries/{delivery_id}/retry", headers=headers
    )
    assert again.status_code == 202

    async def delivered() -> bool:
        return (await log(app, headers, hook["id"]))[0]["state"] == "delivered"

    await eventually(delivered)
    assert verified(hook["secret"], receiver.at("/down")[-1])["type"] == "webhook.test"


async def test_a_redirect_is_never_followed(app: Api, receiver: Receiver) -> None:
    _, headers = await app.user()
    hook = await register(app, headers, receiver.endpoint("/moved", statuses=(302,)))
    await app.http.post(f"/api/webhooks/{hook['id']}/test", headers=headers)

    async def ended() -> dict[str, Any] | None:
        items = await log(app, headers, hook["id"])
        return items[0] if items and items[0]["state"] == "failed" else None

    item = await eventually(ended)
    assert item["last_status"] == 302
    assert not [s for s in receiver.server.seen if s.path == "/elsewhere"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ],
)
async def test_ssrf_targets_are_refused_at_registration(app: Api, url: str) -> None:
    _, headers = await app.user()
    answer = await app.http.post("/api/webhooks", headers=headers, json={"url": url})
    assert_error(answer, 400, "source_refused")


async def test_an_address_is_checked_again_at_every_delivery(
    app: Api,
    receiver: Receiver,
    make_settings: Any,
    database_url: str,
    password_hash: str,
    sources: Any,
) -> None:
    """An endpoint registered while loopback was allowed, delivered by a process that does
    not allow it: refused at delivery, logged with no status, never reached."""
    from tests.admin_api.conftest import start_api
    from tests.jobs.conftest import jobs_env

    _, headers = await app.user()
    hook = await register(app, headers, receiver.endpoint("/inside"))
    app_state = app.http.app_state  # type: ignore[attr-defined]
    runner = app_state["job_runner"]
    runner.stopping = True  # this process stops taking jobs
    strict_env = {**jobs_env(receiver), "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "0"}
    settings = make_settings(DATABASE_URL=database_url, **strict_env)
    async for strict in start_api(settings, password_hash, sources):
        await strict.http.post(f"/api/webhooks/{hook['id']}/test", headers=headers)

        async def ended(strict: Api = strict) -> dict[str, Any] | None:
            items = await log(strict, headers, hook["id"])
            return items[0] if items and items[0]["state"] == "failed" else None

        item = await eventually(ended)
        assert item["last_status"] is None
    assert receiver.at("/inside") == []


async def test_the_log_does_not_tell_a_closed_port_from_a_timeout(
    app: Api, receiver: Receiver
) -> None:
    _, headers = await app.user()
    gate = asyncio.Event()
    slow = await register(app, headers, receiver.endpoint("/slow", gate=gate))
    closed = await register(app, headers, receiver.endpoint("/closed"))
    async with app.services.db.write() as conn:  # point one at a closed port of the same host
        from origin.store.tables import webhooks as webhooks_table

        await conn.execute(
            webhooks_table.update()
            .where(webhooks_table.c.id == closed["id"])
            .values(url="http://127.0.0.1:9/none")
        )
    for hook in (slow, closed):
        await app.http.post(f"/api/webhooks/{hook['id']}/test", headers=headers)

    async def both_failed() -> list[dict[str, Any]] | None:
        items = [(await log(app, headers, h["id"]))[0] for h in (slow, closed)]
        return items if all(i["state"] == "failed" for i in items) else None

    items = await eventually(both_failed, timeout=30)
    gate.set()
    shapes = [
        {k: v for k, v in i.items() if k in ("state", "attempts", "last_status")} for i in items
    ]
    assert shapes[0] == shapes[1] == {"state": "failed", "attempts": 4, "last_status": None}


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {"USER_QUOTA_BYTES": "100000"}


async def test_quota_warning_once_per_crossing(app: Api, receiver: Receiver) -> None:
    _, headers = await app.user()
    hook = await register(app, headers, receiver.endpoint("/quota"), events=["quota.warning"])
    used = 0
    n = 0
    while used < 97_000:  # noise PNGs of ~12 KB: the 90 % line is crossed once
        noise = pyvips.Image.gaussnoise(64, 64, sigma=80).cast("uchar").bandjoin([1, 2])
        answer = await app.upload(
            headers, noise.copy(interpretation="srgb").pngsave_buffer(), filename=f"q{n}.png"
        )
        if answer.status_code == 413:
            break
        assert answer.status_code == 201, answer.text
        used += answer.json()["size_bytes"]
        n += 1
    assert used >= 90_000
    await asyncio.sleep(1.0)
    warnings = [verified(hook["secret"], d) for d in receiver.at("/quota")]
    assert len(warnings) == 1
    data = warnings[0]["data"]
    assert data["quota_bytes"] == 100_000 and data["storage_used_bytes"] >= 90_000


async def test_endpoint_limits_and_secret_rotation(app: Api, receiver: Receiver) -> None:
    _, headers = await app.user()
    hook = await register(app, headers, receiver.endpoint("/rot"))
    for query in ("limit=0", "limit=201", "limit=2&limit=1", "page=1"):
        answer = await app.http.get(
            f"/api/webhooks/{hook['id']}/deliveries?{query}", headers=headers
        )
        assert_error(answer, 400, "bad_request")
    for call in ("secret", "test"):  # they take no fields: a body that is not {} is 400
        for body in (b"not json", b'{"x": 1}', b"[]"):
            answer = await app.http.post(
                f"/api/webhooks/{hook['id']}/{call}",
                headers={**headers, "content-type": "application/json"},
                content=body,
            )
            assert_error(answer, 400, "bad_request")
    rotated = await app.http.post(f"/api/webhooks/{hook['id']}/secret", headers=headers, json={})
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != hook["secret"]
    await app.http.post(f"/api/webhooks/{hook['id']}/test", headers=headers)

    async def arrived() -> list[Delivery]:
        return receiver.at("/rot")

    [delivery] = await eventually(arrived)
    assert len(delivery.headers["webhook-signature"].split()) == 2
    assert verified(new, delivery)["type"] == "webhook.test"
    assert verified(hook["secret"], delivery)["type"] == "webhook.test"  # the overlap
    for n in range(9):
        await register(app, headers, receiver.endpoint(f"/more{n}"))
    answer = await app.http.post(
        "/api/webhooks", headers=headers, json={"url": receiver.endpoint("/11")}
    )
    assert_error(answer, 400, "limit_exceeded")
    _other_user, other = await app.user()
    # one endpoint per URL and account: a second was made (each event then went twice)
    again = await app.http.post("/api/webhooks", headers=other, json={"url": hook["url"]})
    assert again.status_code == 201, again.text
    twice = await app.http.post("/api/webhooks", headers=other, json={"url": hook["url"]})
    assert_error(twice, 409, "conflict")
    assert again.json()["id"] in twice.json()["error"]["message"]
    # other spellings of the same URL are the same endpoint (each event went once to each)
    url = hook["url"]
    assert url.startswith("http://") and "#" not in url and "?" not in url
    for spelling in (
        f"HTTP://{url.removeprefix('http://')}",
        f"{url}#x",
        f"{url}?",
        f"{url.rsplit('/', 1)[0]}/./{url.rsplit('/', 1)[1]}",
    ):
        same = await app.http.post("/api/webhooks", headers=other, json={"url": spelling})
        assert_error(same, 409, "conflict")
    assert (await app.http.get(f"/api/webhooks/{hook['id']}", headers=other)).status_code == 404
    assert (
        await app.http.delete(f"/api/webhooks/{hook['id']}", headers=headers)
    ).status_code == 204
    async with app.services.db.read() as conn:
        left = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == hook["id"])
        )
    assert left == 0


def test_the_schema_covers_every_event_and_the_docs_examples_match_it() -> None:
    from origin.webhooks.events import EVENTS, TEST_EVENT

    assert set(SCHEMA["properties"]["type"]["enum"]) == {*EVENTS, TEST_EVENT}
    text = (DOCS / "webhooks.md").read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        example = json.loads(block.replace("…", "0" * 28))
        jsonschema.validate(example, SCHEMA)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is the delivery over HTTP; the database plays no part in it (the queue's and eager derivatives'
    tests run on both), and CI's time is bounded."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


async def test_past_the_pending_bound_a_delivery_is_logged_failed_not_queued(
    app: Api, receiver: Receiver
) -> None:
    _, headers = await app.user()
    hook = await register(app, headers, receiver.endpoint("/bound"))
    app.http.app_state["job_runner"].stopping = True  # type: ignore[attr-defined]
    background = dataclasses.replace(app.services.settings.background, webhook_pending_max=2)
    repository = Webhooks(app.services.db, background)
    user_id = (await app.http.get("/api/me", headers=headers)).json()["id"]
    for _ in range(3):
        await repository.test(user_id, hook["id"])
    items = await log(app, headers, hook["id"])
    assert sorted(i["state"] for i in items) == ["failed", "pending", "pending"]
    async with app.services.db.read() as conn:
        queued = await conn.scalar(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.user_id == user_id)
        )
    assert queued == 2


async def test_one_accounts_hanging_endpoint_delays_no_other_accounts_webhooks(
    app: Api, receiver: Receiver
) -> None:
    """Four deliveries of one account hang at its endpoint; another account's test event is
    delivered at once beside them (before, the first account's deliveries held both of the
    process's delivery slots for WEBHOOK_TIMEOUT_SECONDS each)."""
    _, ann = await app.user()
    _, bob = await app.user()
    gate = asyncio.Event()
    hanging = await register(app, ann, receiver.endpoint("/hang-ann", gate=gate))
    quick = await register(app, bob, receiver.endpoint("/bob"))
    try:
        for _ in range(4):
            await app.http.post(f"/api/webhooks/{hanging['id']}/test", headers=ann)

        async def hanging_now() -> bool:
            return len(receiver.at("/hang-ann")) >= 1

        await eventually(hanging_now)
        began = time.monotonic()
        await app.http.post(f"/api/webhooks/{quick['id']}/test", headers=bob)

        async def delivered() -> bool:
            return len(receiver.at("/bob")) == 1

        await eventually(delivered)
        assert time.monotonic() - began < 1.0  # WEBHOOK_TIMEOUT_SECONDS is 2 here
        assert len(receiver.at("/hang-ann")) == 1  # one of Ann's at a time
    finally:
        gate.set()


async def test_a_hanging_endpoint_delays_no_upload(app: Api, receiver: Receiver) -> None:
    _, headers = await app.user()
    gate = asyncio.Event()
    hook = await register(app, headers, receiver.endpoint("/hang", gate=gate))
    try:
        for _ in range(4):
            await app.http.post(f"/api/webhooks/{hook['id']}/test", headers=headers)

        async def hanging() -> bool:
            return len(receiver.at("/hang")) >= 1

        await eventually(hanging)
        began = time.monotonic()
        answer = await app.upload(headers, make_image("jpeg", 64, 48))
        assert answer.status_code == 201
        assert time.monotonic() - began < 1.0  # WEBHOOK_TIMEOUT_SECONDS is 2 here
    finally:
        gate.set()
