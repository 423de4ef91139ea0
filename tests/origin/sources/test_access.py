"""Who may read a source, and what a path may name: operator keys only; a path never leaves
its source — each refusal before any network I/O (the upstream saw nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from origin.errors import BadRequest
from origin.records import SigningKeyRecord, new_id
from origin.signing import sign_url
from origin.sources.paths import encode_key, parse_source_path
from tests.origin.delivery.conftest import decode, encoded
from tests.origin.sources.conftest import Remote

PHOTO = "/media/p.png"


@pytest.fixture
def photo(remote: Remote) -> Remote:
    remote.web.conditional(PHOTO, encoded("png", 40, 30))
    return remote


def code(answer: object) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]  # type: ignore[attr-defined]


async def test_a_users_key_never_reads_a_source(photo: Remote) -> None:
    service = photo.service
    user = await service.user()
    secret = "a-users-own-signing-key-" + "k" * 16
    await service.services.keys.add(SigningKeyRecord(new_id(), user, secret, datetime.now(UTC)))
    url = sign_url("/r/web/w_20/-/p.png", secret)
    assert code(await service.http.get(url)) == (403, "bad_signature")
    token = service.bearer(user)
    assert code(await service.http.get("/r/web/w_20/-/p.png", headers=token)) == (
        403,
        "bad_signature",
    )
    assert photo.web.seen == []
    assert (await photo.get("/r/web/w_20/-/p.png")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/r/web/-/../secret.png",
        "/r/web/-/a/../../secret.png",
        "/r/web/-/./p.png",
        "/r/web/-/a%2F..%2Fp.png",
        "/r/web/-/a%2fp.png",
        "/r/web/-/a%5Cp.png",
        "/r/web/-/a\\p.png",
        "/r/web/-/a//p.png",
        "/r/web/-/http://evil.example/p.png",
        "/r/web/-/https:/evil.example/p.png",
        "/r/web/-/file:%2F%2F%2Fetc%2Fpasswd",
        "/r/web/-/p%00.png",
        "/r/web/-/p%0a.png",
        "/r/web/-/%C3.png",
        "/r/web/-/",
        "/r/web/w_10/p.png",
        "/r/Web/-/p.png",
    ],
)
async def test_a_path_never_leaves_its_source(photo: Remote, path: str) -> None:
    status, error = await photo.raw(path)
    assert (status, error) == (400, "bad_request"), path
    assert photo.web.seen == []


async def test_unknown_sources_and_foreign_hosts_are_404_without_io(photo: Remote) -> None:
    assert code(await photo.get("/r/nosuch/-/p.png")) == (404, "not_found")
    assert code(await photo.get("/r/hosts/-/evil.example/p.png")) == (404, "not_found")
    assert code(await photo.get("/r/hosts/-/127.0.0.1:1/media/p.png")) == (404, "not_found")
    assert photo.web.seen == []
    port = photo.web.port
    answer = await photo.get(f"/r/hosts/w_20/-/127.0.0.1:{port}/media/p.png@png")
    assert answer.status_code == 200, answer.text


async def test_an_s3_source_stays_in_its_prefix(remote: Remote) -> None:
    remote.put_object("private/secret.png", encoded("png", 20, 20))
    remote.put_object("catalogue/ok.png", encoded("png", 20, 20))
    assert (await remote.get("/r/bucket/-/ok.png")).status_code == 200
    assert await remote.raw("/r/bucket/-/../private/secret.png") == (400, "bad_request")
    assert await remote.raw("/r/bucket/-/%2E%2E/private/secret.png") == (400, "bad_request")
    assert code(await remote.get("/r/bucket/-/private/secret.png")) == (404, "not_found")


async def test_a_bucket_is_read_conditionally_and_never_written(remote: Remote) -> None:
    remote.put_object("catalogue/c.png", encoded("png", 40, 30))
    listing = remote.s3.list_objects_v2(Bucket=remote.bucket)["Contents"]
    first = await remote.get("/r/bucket/w_20/-/c.png@png")
    again = await remote.get("/r/bucket/w_20/-/c.png@png")  # ttl 0: IfNoneMatch → 304
    assert first.headers["etag"] == again.headers["etag"]
    reads = "imgorigin_source_reads_total"
    assert await remote.service.metric(reads, source="bucket", result="not_modified") == 1
    remote.put_object("catalogue/c.png", encoded("png", 80, 30))  # a new version
    changed = await remote.get("/r/bucket/w_20/-/c.png@png")
    assert changed.headers["etag"] != first.headers["etag"]
    assert decode(changed.content).height == 8  # the new object's shape
    assert await remote.service.metric(reads, source="bucket", result="fetched") == 2
    after = remote.s3.list_objects_v2(Bucket=remote.bucket)["Contents"]
    assert [o["Key"] for o in after] == [o["Key"] for o in listing] == ["catalogue/c.png"]


def test_encoded_keys_round_trip() -> None:
    for key in ("a b/café.png", "logo@2x.png", "x@webp", "100%/é@json", "a+b,c;d=e.png"):
        parsed = parse_source_path(f"/r/web/w_10/-/{encode_key(key)}")
        assert parsed.key == key and parsed.ext is None, key
    with pytest.raises(BadRequest):
        parse_source_path("/r/web/-/..")
