"""An upload that fails at any step leaves no row and no object; usage stays as it was.

The failures are real: a storage backend that refuses the write (a missing bucket, a path
blocked by a file) and a database that refuses the row (a trigger raising an error).
"""

from __future__ import annotations

from pathlib import Path

import boto3
import sqlalchemy as sa

from tests.admin_api.conftest import Api, assert_error, make_image
from tests.admin_api.test_images import object_keys, usage
from tests.conftest import AWS_TEST_CREDENTIALS


async def break_storage_for(api: Api, user_id: str) -> None:
    settings = api.services.settings
    if settings.storage_type == "s3":
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=AWS_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        client.delete_bucket(Bucket=settings.storage_bucket)
    else:  # a file where the user's folder must go: every write under it fails
        Path(settings.storage_path, user_id).write_bytes(b"in the way")


async def test_storage_failure_leaves_no_row(api: Api) -> None:
    user_id, headers = await api.user()
    await break_storage_for(api, user_id)
    answer = await api.upload(headers, make_image("png"))
    assert_error(answer, 503, "unavailable")
    assert await usage(api, headers) == (0, 0)
    assert (await api.http.get("/api/images", headers=headers)).json()["total"] == 0


async def install_failing_trigger(api: Api) -> None:
    async with api.services.db.write() as conn:
        if api.services.db.is_sqlite:
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER fail_images BEFORE INSERT ON images BEGIN SELECT RAISE(ABORT, 'injected'); END"
                )
            )
        else:
            await conn.execute(
                sa.text(
                    "CREATE FUNCTION fail_images() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER fail_images BEFORE INSERT ON images FOR EACH ROW EXECUTE FUNCTION fail_images()"
                )
            )


async def test_database_failure_removes_the_object(api: Api) -> None:
    _, headers = await api.user()
    await install_failing_trigger(api)
    answer = await api.upload(headers, make_image("png"))
    assert_error(answer, 500, "internal_error")
    assert "injected" not in answer.text
    assert await object_keys(api) == []
    assert await usage(api, headers) == (0, 0)
