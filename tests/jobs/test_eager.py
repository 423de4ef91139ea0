"""Eager derivatives end to end: the upload answers at once, the jobs render into the store,
and the first origin request for each is a store hit; bad chains are 400 and queue nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import pyvips
import sqlalchemy as sa

from origin.store.tables import eager_derivatives, images, jobs
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.jobs.conftest import eventually

EAGER = [
    {"transform": "w_40,h_30,c_fill", "format": "png"},
    {"transform": "w_20", "format": "webp"},
]


async def upload(api: Api, headers: dict[str, str], data: bytes, **fields: Any) -> httpx.Response:
    form = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()}
    return await api.http.post(
        "/api/images", headers=headers, files={"file": ("photo.jpg", data, "image/jpeg")}, data=form
    )


async def all_done(api: Api, headers: dict[str, str], image_id: str) -> list[dict[str, Any]] | None:
    image = (await api.http.get(f"/api/images/{image_id}", headers=headers)).json()
    states = {e["state"] for e in image["eager"]}
    return image["eager"] if states <= {"done", "failed"} else None


def tiers(api: Api) -> dict[str, int]:
    metrics = api.http.app_state["origin"].metrics  # type: ignore[attr-defined]
    return {tier: count.value for tier, count in metrics.hit.items()}


async def test_eager_derivatives_land_in_the_store_and_the_first_request_is_a_store_hit(
    app: Api,
) -> None:
    _, headers = await app.user()
    response = await upload(app, headers, make_image("jpeg", 160, 120), eager=EAGER)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [(e["transform"], e["format"]) for e in body["eager"]] == [
        (e["transform"], e["format"]) for e in EAGER
    ]
    assert {e["state"] for e in body["eager"]} <= {"queued", "running", "done"}
    done = await eventually(lambda: all_done(app, headers, body["id"]))
    assert [e["state"] for e in done] == ["done", "done"]
    assert [(e["width"], e["height"]) for e in done] == [(40, 30), (20, 15)]
    before = tiers(app)
    for entry in done:
        answer = await app.http.get(entry["url"])
        assert answer.status_code == 200
        assert len(answer.content) == entry["size_bytes"]
        picture = pyvips.Image.new_from_buffer(answer.content, "")
        assert (picture.width, picture.height) == (entry["width"], entry["height"])
        # the top-left quadrant of the test image is red
        r, g, b = picture.extract_area(1, 1, 1, 1).getpoint(0, 0)[:3]
        assert r > 180 and g < 90 and b < 90
    after = tiers(app)
    assert after["store"] - before["store"] == 2
    assert after["render"] == before["render"]


async def test_eager_on_an_existing_image_and_the_thumbnail_by_default(
    app: Api, make_settings: Any
) -> None:
    _, headers = await app.user()
    image = (await upload(app, headers, make_image("jpeg", 80, 60))).json()
    assert image["eager"] == []  # EAGER_THUMBNAIL=0 in the tests' environment
    answer = await app.http.post(
        f"/api/images/{image['id']}/eager", headers=headers, json={"eager": EAGER[:1]}
    )
    assert answer.status_code == 202, answer.text
    assert [e["transform"] for e in answer.json()["eager"]] == ["w_40,h_30,c_fill"]
    done = await eventually(lambda: all_done(app, headers, image["id"]))
    assert done[0]["state"] == "done"
    again = await app.http.post(
        f"/api/images/{image['id']}/eager", headers=headers, json={"eager": EAGER[:1]}
    )
    assert len(again.json()["eager"]) == 1  # the same derivative is not queued twice


@pytest.mark.parametrize(
    ("eager", "code"),
    [
        ([{"transform": "w_abc", "format": "jpg"}], "bad_transform"),
        ([{"transform": "w_100", "format": "bmp"}], "bad_request"),
        ([{"transform": "w_100,f_auto", "format": "jpg"}], "bad_transform"),
        ([{"transform": "w_auto", "format": "jpg"}], "bad_transform"),
        # its own v_ could not follow a replace (v_<n> goes first): it failed then
        ([{"transform": "v_3/w_10", "format": "webp"}], "bad_transform"),
        ([{"transform": "w_100"}], "bad_request"),
        ([{"transform": "w_100", "format": "jpg", "x": 1}], "bad_request"),
        ([{"transform": "w_9000,h_9000,c_scale", "format": "jpg"}], "limit_exceeded"),
        ([{"transform": f"w_{n + 1}", "format": "jpg"} for n in range(17)], "bad_request"),
        ({"transform": "w_10", "format": "jpg"}, "bad_request"),
        ("not json", "bad_request"),
        ("[" * 3000 + "]" * 3000, "bad_request"),  # under 8 KB, nested past the parser's depth
        ('[{"transform": "\\ud800", "format": "jpg"}]', "bad_request"),  # a lone surrogate
    ],
)
async def test_bad_eager_entries_are_refused_and_nothing_is_stored(
    app: Api, eager: Any, code: str
) -> None:
    _, headers = await app.user()
    fields = {"eager": eager if isinstance(eager, str) else json.dumps(eager)}
    response = await upload(app, headers, make_image("jpeg", 64, 48), **fields)
    assert_error(response, 400, code)
    async with app.services.db.read() as conn:
        for table in (images, jobs, eager_derivatives):
            assert await conn.scalar(sa.select(sa.func.count()).select_from(table)) == 0


async def test_an_animations_eager_entries_count_every_frame(app: Api) -> None:
    """2500×2500 from a 6-frame GIF: 37.5 M pixels as an animated WebP, over
    MAX_OUTPUT_PIXELS, so refused before anything is stored; one frame as a JPEG is not.
    (The check counted one frame: the upload answered 201 and its job failed later.)"""
    from tests.origin.conftest import animated

    _, headers = await app.user()
    chain = "w_2500,h_2500"
    refused = await upload(
        app, headers, animated(), eager=json.dumps([{"transform": chain, "format": "webp"}])
    )
    assert_error(refused, 400, "limit_exceeded")
    assert "6 frames" in refused.json()["error"]["message"]
    async with app.services.db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(images)) == 0
    still = await upload(
        app, headers, animated(), eager=json.dumps([{"transform": chain, "format": "jpg"}])
    )
    assert still.status_code == 201, still.text
    image_id = still.json()["id"]
    later = await app.http.post(
        f"/api/images/{image_id}/eager",
        headers=headers,
        json={"eager": [{"transform": chain, "format": "gif"}]},
    )
    assert_error(later, 400, "limit_exceeded")
    entries = (await app.http.get(f"/api/images/{image_id}", headers=headers)).json()["eager"]
    assert ("w_2500,h_2500", "gif") not in {(e["transform"], e["format"]) for e in entries}


async def test_an_eager_field_over_8_kb_is_refused(app: Api) -> None:
    _, headers = await app.user()
    big = [{"transform": "w_10," + "c_scale," * 1100 + "h_10", "format": "jpg"}]
    response = await upload(app, headers, make_image("jpeg", 64, 48), eager=big)
    assert_error(response, 400, "bad_request")


async def test_a_burst_of_eager_work_never_turns_requests_into_503(app: Api) -> None:
    """8 slow eager renders (a strong blur, ~0.5 s each) queued at once while 24 distinct
    derivatives are asked for with a 0.4 s queue timeout: every request is answered, since
    background work holds at most its share of the slots (with JOB_RENDER_SHARE=1 the same
    requests are refused with 503: both slots go to the blurs)."""
    _, headers = await app.user()
    big = make_image("jpeg", 2400, 1800)
    eager = [{"transform": f"w_{2000 + n},e_blur:2000", "format": "jpg"} for n in range(8)]
    first = (await upload(app, headers, big, eager=eager)).json()
    target = (await upload(app, headers, make_image("jpeg", 400, 300))).json()
    minted = [
        (
            await app.http.post(
                f"/api/images/{target['id']}/url",
                headers=headers,
                json={"transform": f"w_{50 + n},h_40,c_fill", "format": "jpg"},
            )
        ).json()["url"]
        for n in range(24)
    ]
    await eventually(lambda: running(app, first["id"]), timeout=10)
    answers = []
    for batch in range(4):  # while the blurs run
        answers += await asyncio.gather(*(app.http.get(url) for url in minted[batch::4]))
        await asyncio.sleep(0.2)
    assert [a.status_code for a in answers] == [200] * 24
    done = await eventually(lambda: all_done(app, headers, first["id"]), timeout=60)
    assert {e["state"] for e in done} == {"done"}


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "CONCURRENCY": "2",
        "QUEUE_TIMEOUT_SECONDS": "0.4",
        "RENDER_TIMEOUT_SECONDS": "30",
        "JOB_LEASE_SECONDS": "60",
    }


async def running(app: Api, image_id: str) -> bool:
    async with app.services.db.read() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(eager_derivatives)
            .where(eager_derivatives.c.image_id == image_id)
            .where(eager_derivatives.c.state == "running")
        )
    return bool(count)


async def test_the_queue_shows_in_metrics(app: Api) -> None:
    _, headers = await app.user()
    image = (await upload(app, headers, make_image("jpeg", 64, 48), eager=EAGER)).json()
    await eventually(lambda: all_done(app, headers, image["id"]))
    text = (await app.http.get("/metrics")).text
    assert 'imgorigin_jobs_in_queue{kind="eager",state="done"} 2.0' in text
    assert 'imgorigin_jobs_total{kind="eager",outcome="done"} 2.0' in text
    assert "imgorigin_jobs_oldest_due_seconds 0.0" in text
    assert 'imgorigin_job_seconds_count{kind="eager"} 2.0' in text


async def test_the_listing_thumbnail_is_made_eagerly_by_default(
    database_url: str, make_settings: Any, password_hash: str, sources: Any, receiver: Any
) -> None:
    """With EAGER_THUMBNAIL on (the default; the other tests turn it off), an upload queues
    the listing's thumbnail_url derivative and its first request is a store hit."""
    from tests.admin_api.conftest import fetch_env, start_api
    from tests.jobs.conftest import jobs_env

    env = {**fetch_env(sources), **jobs_env(receiver), "EAGER_THUMBNAIL": "1"}
    async for api in start_api(make_settings(DATABASE_URL=database_url, **env), password_hash):
        _, headers = await api.user()
        image = (await upload(api, headers, make_image("jpeg", 640, 480))).json()
        assert [(e["transform"], e["format"]) for e in image["eager"]] == [
            ("w_256,h_256,c_fit", "webp")
        ]
        [done] = await eventually(lambda: all_done(api, headers, image["id"]))  # noqa: B023 (one iteration)
        assert (done["state"], done["width"], done["height"]) == ("done", 256, 192)
        before = tiers(api)
        answer = await api.http.get(image["thumbnail_url"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
        assert tiers(api)["store"] - before["store"] == 1


async def test_a_long_animation_is_uploaded_without_its_eager_thumbnail(
    database_url: str, make_settings: Any, password_hash: str, sources: Any, receiver: Any
) -> None:
    """The default thumbnail (w_256,h_256,c_fit, every frame as WebP) of a 1×1 GIF of 999
    frames is over MAX_OUTPUT_PIXELS: it is left out, and the upload is not refused (a hunt:
    400 limit_exceeded for a valid file, which a replace accepted)."""
    import io

    from PIL import Image

    from tests.admin_api.conftest import fetch_env, start_api
    from tests.jobs.conftest import jobs_env

    frames = [Image.new("RGB", (1, 1), (n % 256, 0, 0)) for n in range(999)]
    body = io.BytesIO()
    frames[0].save(body, "GIF", save_all=True, append_images=frames[1:], duration=20)
    env = {**fetch_env(sources), **jobs_env(receiver), "EAGER_THUMBNAIL": "1"}
    async for api in start_api(make_settings(DATABASE_URL=database_url, **env), password_hash):
        _, headers = await api.user()
        answer = await api.http.post(
            "/api/images",
            headers=headers,
            files={"file": ("long.gif", body.getvalue(), "image/gif")},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["eager"] == []
        asked = [{"transform": "w_256,h_256,c_fit", "format": "webp"}]  # asked for: refused
        refused = await upload(api, headers, body.getvalue(), eager=asked)
        assert_error(refused, 400, "limit_exceeded")


async def watched_entry(app: Api, settled: bool = False) -> tuple[dict[str, str], Any, Any]:
    """A user with a derivative.ready webhook and an image with one eager entry (w_20 as
    JPEG; with ``settled``, once its job is done): (headers, the upload's answer, the entry's
    stored record with its owner and notification URL)."""
    from origin.store import eager as eager_rows
    from origin.store.webhooks import Webhooks

    user_id, headers = await app.user()
    await Webhooks(app.services.db, app.services.settings.background).create(
        user_id, "http://127.0.0.1:9/h", ("derivative.ready",)
    )
    wanted = json.dumps([{"transform": "w_20", "format": "jpg"}])
    image = (await upload(app, headers, make_image("jpeg", 64, 48), eager=wanted)).json()
    if settled:
        await eventually(lambda: all_done(app, headers, image["id"]))
    (entry,) = [e for e in image["eager"] if e["transform"] == "w_20"]
    found = await eager_rows.find(app.services.db, entry["id"])
    assert found is not None
    return headers, image, found


async def report_done(app: Api, found: Any, body: bytes) -> None:
    """The eager job's ``done`` for the entry, with a made derivative of ``body``."""
    from origin.cache import Derivative, etag_of
    from origin.jobs.eager import EagerJobs, Made

    made = Derivative(body, "image/jpeg", 20, 15, etag_of("v" * 64))
    handler = EagerJobs(app.http.app_state["origin"], app.services.settings.background)  # type: ignore[attr-defined]
    async with app.services.db.write() as conn:
        await handler.done(conn, None, Made(*found, made, "render"))  # type: ignore[arg-type]


async def ready_events(app: Api, eager_id: str) -> int:
    """The derivative.ready events queued for the entry ``eager_id`` (not another entry's:
    the entry a replace asks for again gets its own from its own job, at any moment)."""
    from origin.store.tables import webhook_deliveries

    async with app.services.db.read() as conn:
        return int(
            await conn.scalar(
                sa.select(sa.func.count())
                .select_from(webhook_deliveries)
                .where(webhook_deliveries.c.event_type == "derivative.ready")
                .where(webhook_deliveries.c.payload.contains(f'"eager_id":"{eager_id}"'))
            )
        )


async def test_an_eager_job_overtaken_by_a_replace_reports_nothing(app: Api) -> None:
    """The job made its derivative from the old pixels, and the replace took its entry
    meanwhile (asking for it again): it reported derivative.ready anyway, with the old
    pixels' size, for an entry no longer there. The new entry's job reports."""
    headers, image, found = await watched_entry(app)
    replaced = await app.http.put(
        f"/api/images/{image['id']}",
        headers=headers,
        files={"file": ("b.png", make_image("png", 80, 40))},
    )
    assert replaced.status_code == 200, replaced.text
    before = await ready_events(app, found[0].id)  # 1 when the real job was done before
    await report_done(app, found, b"old pixels")
    assert await ready_events(app, found[0].id) == before


async def test_an_entry_evicted_while_its_job_runs_stays_evicted(app: Api) -> None:
    """The budget's sweep removed the derivative row of an entry still ``running`` (between
    the job's store and its ``done``): it only moved ``done`` entries, and the job then set
    ``done``, with a size and a URL for a derivative no longer stored, and reported
    derivative.ready (seen 7 times in 25 tries by the concurrency hunt)."""
    from origin.store import eager as eager_rows
    from origin.store.eager import RUNNING

    headers, image, found = await watched_entry(app, settled=True)
    record = found[0]
    async with app.services.db.read() as conn:
        variant = await conn.scalar(
            sa.select(eager_derivatives.c.variant).where(eager_derivatives.c.id == record.id)
        )
    before = await ready_events(app, record.id)
    await eager_rows.set_state(app.services.db, record.id, RUNNING)  # a job runs it again
    async with app.services.db.write() as conn:  # the sweep, between its store and its done
        await eager_rows.evicted(conn, [(record.image_id, variant)])
    await report_done(app, found, b"pixels")
    shown = (await app.http.get(f"/api/images/{image['id']}", headers=headers)).json()
    assert [e["state"] for e in shown["eager"] if e["id"] == record.id] == ["evicted"]
    assert await ready_events(app, record.id) == before


async def test_an_entry_names_the_variant_its_job_made(app: Api) -> None:
    """A t_ edited after the entry was asked for changes what the job makes: the entry then
    names the new variant, which the sweep finds it by (a hunt: it kept the variant of the
    old definition, and stayed ``done`` after its derivative was evicted)."""
    from datetime import UTC, datetime

    from origin.jobs.eager import EagerJobs
    from origin.store import budget
    from origin.store.queue import Job
    from origin.store.tables import transformed_images

    user_id, headers = await app.user()
    card = {"transform": "w_30"}
    put = await app.http.put("/api/transformations/card", headers=headers, json=card)
    assert put.status_code == 201, put.text
    wanted = [{"transform": "t_card", "format": "jpg"}]
    image = (await upload(app, headers, make_image("jpeg", 64, 48), eager=wanted)).json()
    [done] = await eventually(lambda: all_done(app, headers, image["id"]))
    assert (done["state"], done["width"]) == ("done", 30)
    card["transform"] = "w_12"
    put = await app.http.put("/api/transformations/card", headers=headers, json=card)
    assert put.status_code == 200, put.text

    handler = EagerJobs(app.http.app_state["origin"], app.services.settings.background)  # type: ignore[attr-defined]
    job = Job("j", "eager", {"eager": done["id"]}, user_id, 1, 3, "c", datetime.now(UTC))
    made = await handler.run(job)  # the job asked again, after the edit
    assert made is not None and made.derivative.width == 12
    async with app.services.db.write() as conn:
        await handler.done(conn, job, made)
    async with app.services.db.read() as conn:
        entry_variant = await conn.scalar(
            sa.select(eager_derivatives.c.variant).where(eager_derivatives.c.id == done["id"])
        )
        stored = dict(
            (
                await conn.execute(
                    sa.select(transformed_images.c.variant, transformed_images.c.width).where(
                        transformed_images.c.image_id == image["id"]
                    )
                )
            ).all()
        )
    assert stored[entry_variant] == 12
    await budget.evict(app.services.db, user_id, 0)
    shown = (await app.http.get(f"/api/images/{image['id']}", headers=headers)).json()
    assert [e["state"] for e in shown["eager"] if e["id"] == done["id"]] == ["evicted"]
