"""Images: upload (``POST /api/images``), list, get, download and delete, and the image
JSON every one of them answers with.

The upload reads the multipart body here (or fetches the JSON body's ``url``:
admin_api.url_upload) and leaves the rest — validation, working copies, analysis, storing
objects and row — to origin.ingest.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api import url_upload
from admin_api.eager import (
    THUMBNAIL_CHAIN,
    THUMBNAIL_FORMAT,
    EagerRequest,
    read_eager,
    replace_events,
    upload_events,
)
from admin_api.guards import require_user
from admin_api.multipart import ENVELOPE_BYTES, read_file_field
from admin_api.purges import purge_image
from admin_api.requests import (
    caller_account,
    image_id_of,
    nudge,
    optional,
    owned_image,
    query_of,
    read_json,
    read_object,
    services_of,
)
from admin_api.urls import image_path, signed
from origin.digits import plain_int
from origin.errors import BadRequest, Conflict, NotFound, OriginError, PayloadTooLarge
from origin.http import PRIVATE_IMAGE
from origin.ingest import ingest_upload, replace_upload
from origin.records import ImageRecord, ReplacedMeanwhile, UserRecord
from origin.services import Services
from origin.store import eager
from origin.store.database import Transaction
from origin.store.eager import EagerRecord
from origin.store.webhooks import emit
from origin.webhooks.events import image_data

log = logging.getLogger("imgorigin.admin")

MAX_PAGE_OFFSET = 1_000_000_000
JSON = "application/json"
FLAGS = {"true": True, "1": True, "false": False, "0": False}


def image_json(
    services: Services, image: ImageRecord, eager_of: Sequence[EagerRecord] = ()
) -> dict[str, Any]:
    key = services.settings.url_signing_keys[0].secret
    return {
        "id": image.id,
        "original_filename": image.original_filename,
        "mime_type": image.mime_type,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "created_at": image.created_at.isoformat(),
        "metadata": image.metadata,
        "url": signed(services, image_path(image)),
        "thumbnail_url": signed(services, image_path(image, THUMBNAIL_CHAIN, THUMBNAIL_FORMAT)),
        "public": image.public,
        "version": image.version,
        "eager": [e.json(key) for e in eager_of],
    }


async def with_eager(services: Services, image: ImageRecord) -> dict[str, Any]:
    found = await eager.of_images(services.db, [image.id])
    return image_json(services, image, found[image.id])


async def upload(request: Request) -> Response:
    """A multipart ``file``, or a JSON ``{"url"}`` fetched by the guarded fetcher; either
    with ``eager`` derivatives and a ``notification_url`` (admin_api.eager)."""
    user_id = require_user(request)
    services = services_of(request)
    settings = services.settings
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON:
        return await upload_from_url(request, services, user_id)
    declared = request.headers.get("content-length", "")
    if plain_int(declared) and int(declared) > settings.max_upload_size + ENVELOPE_BYTES:
        raise PayloadTooLarge(
            f"the file is larger than the {settings.max_upload_size}-byte upload limit"
        )
    user = await caller_account(services, user_id)
    uploaded = await read_file_field(
        request.headers.get("content-type", ""),
        request.stream(),
        max_bytes=settings.max_upload_size,
    )
    wanted = await read_eager(
        services,
        user_id,
        uploaded.fields.get("eager"),
        uploaded.fields.get("notification_url"),
        from_form=True,
        thumbnail=True,
    )
    public = form_flag(uploaded.fields.get("public"), "public")
    image = await ingest(services, user, uploaded.filename, uploaded.data, wanted, public)
    nudge(request)
    return JSONResponse(await with_eager(services, image), status_code=201)


def form_flag(value: str | None, name: str) -> bool | None:
    """A multipart field holding ``true``/``false`` (or ``1``/``0``); None when absent."""
    if value is None:
        return None
    flag = FLAGS.get(value.strip().lower())
    if flag is None:
        raise BadRequest(f"'{name}' must be true or false")
    return flag


async def ingest(
    services: Services,
    user: UserRecord,
    filename: str,
    data: bytes,
    wanted: EagerRequest,
    public: bool | None,
) -> ImageRecord:
    """Store the upload with its eager jobs and events in the row's transaction; ``public``
    is the account's default when None."""
    kept = wanted  # what the check keeps: the default thumbnail may be left out

    def check(image: ImageRecord, frames: int) -> None:
        nonlocal kept
        kept = wanted.check(image, services.limits, frames)

    return await ingest_upload(
        services,
        user,
        filename,
        data,
        check=check,
        also=lambda conn, image: upload_events(conn, services, image, kept),
        public=public,
    )


async def upload_from_url(request: Request, services: Services, user_id: str) -> Response:
    body = await url_upload.read_request(request)
    user = await caller_account(services, user_id)
    wanted = await read_eager(
        services, user_id, body.eager, body.notification_url, from_form=False, thumbnail=True
    )
    async with url_upload.budget(request, services.settings, user_id):
        fetched = await url_upload.fetch_image(request, services.settings, body.url)
        name = body.filename or url_upload.filename_of(fetched)
        image = await ingest(services, user, name, fetched.body, wanted, body.public)
    nudge(request)
    return JSONResponse(await with_eager(services, image), status_code=201)


PAGE_PARAMETERS = frozenset({"page", "limit"})


def page_parameters(request: Request) -> tuple[int, int]:
    params = query_of(request, PAGE_PARAMETERS)
    values = []
    for name, default, high in (("page", 1, None), ("limit", 20, 100)):
        raw = params.get(name, str(default))
        if not plain_int(raw) or len(raw) > 10:
            raise BadRequest(f"'{name}' must be a positive integer")
        value = int(raw)
        if value < 1 or (high is not None and value > high):
            raise BadRequest(f"'{name}' must be between 1 and {high or 'the last page'}")
        values.append(value)
    page, limit = values
    if (page - 1) * limit > MAX_PAGE_OFFSET:
        raise BadRequest("'page' is too large")
    return page, limit


async def list_images(request: Request) -> Response:
    user_id = require_user(request)
    page, limit = page_parameters(request)
    services = services_of(request)
    items, total = await services.images.page(user_id, offset=(page - 1) * limit, limit=limit)
    found = await eager.of_images(services.db, [i.id for i in items])
    return JSONResponse(
        {
            "items": [image_json(services, i, found[i.id]) for i in items],
            "page": page,
            "limit": limit,
            "total": total,
        }
    )


async def get_image(request: Request) -> Response:
    services, image = await owned_image(request)
    return JSONResponse(await with_eager(services, image))


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._ ()-]+", "_", ascii_name).strip(" ._")[:150] or "image"
    utf8_name = quote(filename[:150], safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"


async def download(request: Request) -> Response:
    services, image = await owned_image(request)
    data = await read_object(services, image.storage_key)
    headers = {"Content-Disposition": content_disposition(image.original_filename), **PRIVATE_IMAGE}
    return Response(data, media_type=image.mime_type, headers=headers)


async def replace_image(request: Request) -> Response:
    """``PUT /api/images/{id}``: a multipart ``file``, or JSON ``{"url"}`` fetched by the
    guarded fetcher; the image's next version (admin_api docs: Replace)."""
    services, image = await owned_image(request)
    settings = services.settings
    user = await caller_account(services, image.user_id)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON:
        body = await url_upload.read_request(request)
        if body.eager is not None or body.notification_url is not None or body.public is not None:
            raise BadRequest("a replace takes only 'url' (and 'filename', which is ignored)")
        async with url_upload.budget(request, settings, image.user_id):
            data = (await url_upload.fetch_image(request, settings, body.url)).body
    else:
        declared = request.headers.get("content-length", "")
        if plain_int(declared) and int(declared) > settings.max_upload_size + ENVELOPE_BYTES:
            raise PayloadTooLarge(
                f"the file is larger than the {settings.max_upload_size}-byte upload limit"
            )
        uploaded = await read_file_field(
            request.headers.get("content-type", ""),
            request.stream(),
            max_bytes=settings.max_upload_size,
        )
        if uploaded.fields:  # as the JSON replace: nothing may be asked that is not done
            field = sorted(uploaded.fields)[0][:40]
            raise BadRequest(f"a replace takes only 'file' (not '{field}')")
        data = uploaded.data
    grew = len(data) - image.size_bytes
    try:
        new = await replace_upload(
            services,
            user,
            image,
            data,
            also=lambda conn, new: replace_events(conn, services, new, grew),
        )
    except ReplacedMeanwhile:
        if await services.images.get(image.id, user_id=image.user_id) is None:
            raise NotFound("no such image") from None  # deleted meanwhile
        raise Conflict("the image was replaced meanwhile: read it again") from None
    forget = getattr(request.state, "forget_image", None)
    if forget is not None:
        forget(image.id)
    nudge(request)
    return JSONResponse(await with_eager(services, new))


async def update_image(request: Request) -> Response:
    """``PATCH /api/images/{id}``: ``{"public": bool}`` (strict public delivery)."""
    services, image = await owned_image(request)
    data = await read_json(request)
    unknown = set(data) - {"public"}
    if unknown or "public" not in data:
        raise BadRequest('expected {"public": true or false}')
    public = optional(data, "public", bool)
    if public is None:
        raise BadRequest("'public' must be true or false")

    async def purged(conn: Transaction) -> None:  # its unsigned answers change
        await purge_image(conn, services, image)

    changed = public != image.public
    updated = await services.images.set_public(
        image.id, image.user_id, public, purged if changed else None
    )
    if updated is None:
        raise NotFound("no such image")
    forget = getattr(request.state, "forget_image", None)
    if forget is not None:
        forget(image.id)
    nudge(request)
    return JSONResponse(await with_eager(services, updated))


async def delete_image(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    background = services.settings.background

    async def deleted(conn: Transaction, image: ImageRecord) -> None:
        await emit(conn, background, user_id, "image.deleted", {"image": image_data(image)})
        await purge_image(conn, services, image)

    removed = await services.images.delete(image_id_of(request), user_id, deleted)
    if removed is None:
        raise NotFound("no such image")
    image, _ = removed  # every derivative is stored under the image's prefix
    forget = getattr(request.state, "forget_image", None)
    if forget is not None:
        forget(image.id)
    nudge(request)
    try:
        await services.storage.delete_prefix(f"{image.user_id}/{image.id}/")
    except OriginError:
        log.exception("objects of deleted image %s stay for gc", image.id)
    return Response(status_code=204)
