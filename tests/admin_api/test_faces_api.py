"""Faces through real HTTP: the upload stores the boxes the detector finds, `g_face` and
`e_blur_faces` read them (a tampered row proves it), a row without them (from before
migration 11) still answers, finding them per request; migration 11 on both backends."""

from __future__ import annotations

import json

import numpy as np
import pyvips
import sqlalchemy as sa

from benchmarks.people import group, iou, one_face_at_the_right
from origin.store.database import Database
from origin.store.migrations import LATEST, current_version, migrate
from origin.store.tables import images, schema_version
from tests.admin_api.conftest import Api
from tests.origin.store.records import image_columns


async def upload(api: Api, headers: dict[str, str], png: bytes) -> str:
    answer = await api.upload(headers, png, "people.png")
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def origin_get(api: Api, headers: dict[str, str], image_id: str, tail: str) -> bytes:
    answer = await api.http.get(f"/i/{image_id}/{tail}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.content


def rgb(body: bytes) -> np.ndarray:  # type: ignore[type-arg]
    img = pyvips.Image.new_from_buffer(body, "")
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    ).astype(np.int16)


async def test_the_upload_stores_every_face(api: Api) -> None:
    _, headers = await api.user()
    scene = group()
    image_id = await upload(api, headers, scene.png)
    record = await api.services.images.get(image_id)
    assert record is not None and record.analysis is not None
    stored = record.analysis.faces
    assert stored is not None and len(stored) == 8
    for expected in scene.faces:
        best = max(
            iou(
                tuple(round(v * s) for v, s in zip(box, (1200, 800, 1200, 800), strict=True)),
                expected,
            )  # type: ignore[arg-type]
            for box in stored
        )
        assert best >= 0.5


async def test_g_face_and_blur_faces_read_the_stored_boxes(api: Api) -> None:
    _, headers = await api.user()
    scene = one_face_at_the_right()
    image_id = await upload(api, headers, scene.png)
    cut = rgb(await origin_get(api, headers, image_id, "w_300,h_300,c_fill,g_face/a.png"))
    whole = rgb(await origin_get(api, headers, image_id, "h_300/a.png"))
    assert cut.shape == (300, 300, 3)
    assert np.abs(cut - whole[:, 600:]).mean() < 1.0  # the face is near the right edge

    # the same pixels, the row tampered to say "a face at the far left": the cut follows it
    moved = await upload(api, headers, scene.png)
    async with api.services.db.write() as conn:
        faces = json.dumps([[0.0, 0.1, 0.05, 0.1]])
        await conn.execute(images.update().where(images.c.id == moved).values(faces=faces))
    cut = rgb(await origin_get(api, headers, moved, "w_300,h_300,c_fill,g_face/a.png"))
    assert np.abs(cut - whole[:, :300]).mean() < 1.0
    # …and e_blur_faces blurs there, not the real face
    blurred = rgb(await origin_get(api, headers, moved, "h_300,e_blur_faces/a.png"))
    x, y, w, h = (round(v * 0.75) for v in scene.faces[0])
    assert np.array_equal(blurred[y : y + h, x : x + w], whole[y : y + h, x : x + w])


async def test_a_row_without_faces_finds_them_per_request(api: Api) -> None:
    _, headers = await api.user()
    scene = one_face_at_the_right()
    image_id = await upload(api, headers, scene.png)
    async with api.services.db.write() as conn:
        await conn.execute(images.update().where(images.c.id == image_id).values(faces=None))
    record = await api.services.images.get(image_id)
    assert record is not None and record.analysis is not None and record.analysis.faces is None
    cut = rgb(await origin_get(api, headers, image_id, "w_300,h_300,c_fill,g_face/a.png"))
    whole = rgb(await origin_get(api, headers, image_id, "h_300/a.png"))
    assert np.abs(cut - whole[:, 600:]).mean() < 1.0


async def test_migration_11_adds_the_faces_column(database: Database) -> None:
    async with database.write() as conn:
        await conn.execute(sa.text("ALTER TABLE images DROP COLUMN faces"))
        await conn.execute(sa.text("ALTER TABLE source_objects DROP COLUMN faces"))
        await conn.execute(schema_version.delete().where(schema_version.c.version >= 11))
    assert "faces" not in await image_columns(database)
    assert 11 in await migrate(database)
    assert "faces" in await image_columns(database)
    assert await current_version(database) == LATEST
    async with database.read() as conn:
        found = await conn.run_sync(lambda c: sa.inspect(c).get_columns("source_objects"))
    assert "faces" in {c["name"] for c in found}
