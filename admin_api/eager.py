"""Eager derivatives in the admin API: the ``eager`` list of ``POST /api/images`` (a
multipart field holding a JSON array, or the JSON body's key) and of
``POST /api/images/{id}/eager``, and the optional ``notification_url``.

Every entry is ``{"transform": "<chain>", "format": "<ext>"}`` as ``POST
/api/images/{id}/url`` takes them, checked here as the origin will parse it — syntax, a
fixed format and size (no ``f_auto``, ``w_auto``, ``dpr_auto``), the work budget against the
image, overlays the owner has — so a bad chain is a 400 at request time and never queued.
What is queued is origin.jobs.eager's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.purges import purge_image
from admin_api.requests import nudge, owned_image, parse_json, read_json
from admin_api.transformations import owner_presets
from admin_api.urls import chain_path, check_format
from origin import source_bytes
from origin.cache import key_of
from origin.decode import read_header
from origin.errors import BadRequest, BadTransform, LimitExceeded, OriginError
from origin.public import url_name
from origin.records import ImageRecord
from origin.services import Services
from origin.store import eager
from origin.store.database import Transaction
from origin.store.eager import EagerPlan
from origin.store.webhooks import emit, has_endpoint, quota_crossed
from origin.transforms.budget import output_size
from origin.transforms.formats import ANIMATED_FORMATS
from origin.transforms.parse import parse_chain, parse_path
from origin.transforms.plan import Plan
from origin.webhooks.delivery import endpoint_url
from origin.webhooks.events import image_data

log = logging.getLogger("imgorigin.admin")

MAX_ENTRIES = 16
MAX_FIELD_BYTES = 8 * 1024
MAX_CHAIN = 2000  # characters of one entry's chain (its column)
ENTRY_FIELDS = frozenset({"transform", "format"})
PLACEHOLDER_ID = "0" * 32  # parse a chain before its image exists (the id is not in the plan)
THUMBNAIL_CHAIN = "w_256,h_256,c_fit"  # the listing's thumbnail_url (admin_api.images)
THUMBNAIL_FORMAT = "webp"


@dataclass(frozen=True)
class Entry:
    """One entry, parsed: its chain, format, plan and its overlays' content hashes."""

    transform: str
    format: str
    plan: Plan
    overlays: tuple[str, ...]
    optional: bool = False  # the default thumbnail: left out, not refused, over the budget

    def planned(self, image: ImageRecord) -> EagerPlan:
        name = url_name(image.original_filename)
        path = chain_path(image.id, self.transform, name, self.format, image.version)
        fmt = self.plan.format or image.format
        # the plan was parsed before the image existed: its canonical form names the image
        plan = dataclasses.replace(self.plan, image_id=image.id)
        key = key_of(image, plan.canonical(), fmt, self.overlays)
        return EagerPlan(self.transform, self.format, path, key.variant)


def animated(image: ImageRecord, entry: Entry) -> bool:
    """Whether ``entry`` renders every frame of ``image`` (origin.render.output_frames)."""
    fmt = entry.plan.format or image.format
    return image.format in ANIMATED_FORMATS and fmt in ANIMATED_FORMATS


async def frames_of(services: Services, image: ImageRecord) -> int:
    """How many frames a stored image has, from its original's header (in the pool)."""
    data = await source_bytes.original(services.storage, image)
    limit = services.limits.max_source_pixels
    header = await services.pool.run(lambda: read_header(data, limit))
    return header.pages


@dataclass(frozen=True)
class EagerRequest:
    """What one call asks: its entries and the endpoint to notify."""

    entries: tuple[Entry, ...]
    notification_url: str | None

    def check(self, image: ImageRecord, limits: Any, frames: int = 1) -> EagerRequest:
        """Each entry within the work budget for this image (its size and ``frames``
        known): an animated output of an animation counts every frame, as the render does.
        An entry asked for over it refuses the call; the default thumbnail is left out (a
        long animation's would refuse a valid upload): what is returned is what to queue."""
        kept = []
        for entry in self.entries:
            out = frames if animated(image, entry) else 1
            try:
                output_size(image.width, image.height, entry.plan.stages, limits, out)
            except LimitExceeded:
                if not entry.optional:
                    raise
                continue
            kept.append(entry)
        return EagerRequest(tuple(kept), self.notification_url)

    def wants_frames(self, image: ImageRecord) -> bool:
        return any(animated(image, entry) for entry in self.entries)

    async def add(self, conn: Transaction, services: Services, image: ImageRecord) -> list[str]:
        return await eager.add(
            conn,
            services.settings.background,
            image.id,
            image.user_id,
            [e.planned(image) for e in self.entries],
            self.notification_url,
        )


def raw_entries(value: Any, *, from_form: bool) -> list[Any]:
    """The entries as sent: a JSON array (in a form field: its text, at most 8 KB)."""
    if value is None:
        return []
    if from_form:
        if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
            raise BadRequest(f"'eager' must be at most {MAX_FIELD_BYTES} bytes")
        value = parse_json(value, "'eager' must be a JSON array")
    elif len(json.dumps(value)) > MAX_FIELD_BYTES:
        raise BadRequest(f"'eager' must be at most {MAX_FIELD_BYTES} bytes")
    if not isinstance(value, list):
        raise BadRequest("'eager' must be a JSON array")
    if len(value) > MAX_ENTRIES:
        raise BadRequest(f"'eager' may list at most {MAX_ENTRIES} derivatives")
    return value


async def parse_entries(
    services: Services, user_id: str, values: Sequence[Any]
) -> tuple[Entry, ...]:
    entries = []
    for n, value in enumerate(values):
        if not isinstance(value, dict) or not value.keys() <= ENTRY_FIELDS:
            raise BadRequest(f"'eager' entry {n} must be an object with 'transform' and 'format'")
        chain = value.get("transform", "")
        ext = value.get("format")
        if not isinstance(chain, str) or not isinstance(ext, str):
            raise BadRequest(f"'eager' entry {n}: 'transform' and 'format' must be strings")
        if len(chain) > MAX_CHAIN:
            raise BadRequest(f"'eager' entry {n}: 'transform' is over {MAX_CHAIN} characters")
        entries.append(await parse_entry(services, user_id, chain.strip("/"), ext.lower()))
    return tuple(entries)


async def parse_entry(services: Services, user_id: str, chain: str, ext: str) -> Entry:
    check_format(ext)
    path = chain_path(PLACEHOLDER_ID, chain, "eager", ext)
    presets = await owner_presets(services, user_id)
    parse_chain(chain, presets=presets, limits=services.limits)
    plan = parse_path(path, presets=presets, limits=services.limits)
    # a replace asks for every entry again behind the image's next version (v_<n> first):
    # a chain that could not follow it (its own v_) is refused now, not failed later
    parse_path(
        chain_path(PLACEHOLDER_ID, chain, "eager", ext, 2), presets=presets, limits=services.limits
    )
    if plan.negotiated or plan.client_hints:
        raise BadTransform(
            "an eager derivative names its format and size: no f_auto, w_auto or dpr_auto "
            "(list each format and width as an entry of its own)"
        )
    hashes = []
    for overlay_id in plan.overlay_ids:
        overlay = await services.images.get(overlay_id, user_id=user_id)
        if overlay is None:
            raise BadTransform(f"overlay 'l_{overlay_id}' not found")
        hashes.append(overlay.content_hash)
    return Entry(chain, ext, plan, tuple(hashes))


async def notification_endpoint(services: Services, user_id: str, value: Any) -> str | None:
    """``notification_url``: the URL of one of the caller's webhook endpoints, whose secret
    signs the call's events and whose log shows them (docs/webhooks.md)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("'notification_url' must be a string")
    url = endpoint_url(value)  # the form endpoints are kept in
    if not await has_endpoint(services.db, user_id, url):
        raise BadRequest(
            "'notification_url' must be the URL of one of your webhook endpoints "
            "(register it with POST /api/webhooks)"
        )
    return url


async def read_eager(
    services: Services,
    user_id: str,
    raw: Any,
    notification_url: Any,
    *,
    from_form: bool,
    thumbnail: bool,
) -> EagerRequest:
    """The ``eager`` and ``notification_url`` of a call, checked (400 before anything)."""
    entries = await parse_entries(services, user_id, raw_entries(raw, from_form=from_form))
    if thumbnail and services.settings.background.eager_thumbnail:
        made = await parse_entry(services, user_id, THUMBNAIL_CHAIN, THUMBNAIL_FORMAT)
        entries = (dataclasses.replace(made, optional=True), *entries)
    url = await notification_endpoint(services, user_id, notification_url)
    return EagerRequest(entries, url)


async def upload_events(
    conn: Transaction, services: Services, image: ImageRecord, wanted: EagerRequest
) -> None:
    """What an upload's transaction adds: its eager jobs, ``image.uploaded`` and, when it
    took the owner over 90 % of the quota, ``quota.warning``."""
    background = services.settings.background
    await wanted.add(conn, services, image)
    data = {"image": image_data(image)}
    await emit(conn, background, image.user_id, "image.uploaded", data, wanted.notification_url)
    await quota_crossed(
        conn, background, image.user_id, image.size_bytes, services.settings.user_quota_bytes
    )


async def asked_again(
    services: Services, image: ImageRecord, asked: Sequence[tuple[str, str, str | None]]
) -> list[EagerRequest]:
    """The image's eager derivatives as they were ``asked`` (by notification URL), to ask
    again after a replace; an entry that no longer parses (its t_ deleted) is dropped."""
    groups: dict[str | None, list[Entry]] = {}
    for transform, ext, url in asked:
        try:
            entry = await parse_entry(services, image.user_id, transform, ext)
        except OriginError as exc:
            log.info("eager %s of image %s dropped at replace: %s", transform, image.id, exc)
            continue
        groups.setdefault(url, []).append(entry)
    return [EagerRequest(tuple(entries), url) for url, entries in groups.items()]


async def replace_events(
    conn: Transaction, services: Services, image: ImageRecord, grew: int
) -> None:
    """What a replace's transaction adds: its eager derivatives, as they are asked for at
    its commit, queued again for the new pixels, ``image.replaced`` and, when it took the
    owner over 90 %, ``quota.warning``."""
    background = services.settings.background
    again = await asked_again(services, image, await eager.take_all(conn, image.id))
    for wanted in again:
        await wanted.add(conn, services, image)
    await emit(conn, background, image.user_id, "image.replaced", {"image": image_data(image)})
    await purge_image(conn, services, image)
    await quota_crossed(
        conn, background, image.user_id, max(0, grew), services.settings.user_quota_bytes
    )


async def add_eager(request: Request) -> Response:
    """``POST /api/images/{id}/eager``: ``{"eager": [...], "notification_url"?}``; 202 with
    the image's eager derivatives."""
    services, image = await owned_image(request)
    data = await read_json(request)
    unknown = set(data) - {"eager", "notification_url"}
    if unknown:
        raise BadRequest(
            f"unknown field '{sorted(unknown)[0][:40]}' (expected eager, notification_url)"
        )
    if not data.get("eager"):
        raise BadRequest("'eager' is required: a JSON array of {transform, format}")
    wanted = await read_eager(
        services,
        image.user_id,
        data.get("eager"),
        data.get("notification_url"),
        from_form=False,
        thumbnail=False,
    )
    frames = await frames_of(services, image) if wanted.wants_frames(image) else 1
    wanted = wanted.check(image, services.limits, frames)
    async with services.db.write() as conn:
        await wanted.add(conn, services, image)
    nudge(request)
    shown = await eager.of_images(services.db, [image.id])
    key = services.settings.url_signing_keys[0].secret
    return JSONResponse(
        {"image_id": image.id, "eager": [e.json(key) for e in shown[image.id]]},
        status_code=202,
    )
