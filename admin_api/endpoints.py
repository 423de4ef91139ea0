"""The admin API's handlers: thin, each one validate → repository/storage → JSON.

Every route answers 404 (never 403) for another user's image. Bodies that are malformed,
not JSON or incomplete are 400 ``bad_request``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api import auth, srcset
from admin_api.guards import caller_address, hit_limit, peek_limit, require_user
from admin_api.multipart import ENVELOPE_BYTES, read_file_field
from origin import render, working_copies
from origin.analysis import analyse, source_summary
from origin.blurhash import data_uri, placeholder_png
from origin.cache import key_of
from origin.deadline import Deadline
from origin.errors import (
    BadRequest,
    BadTransform,
    Conflict,
    NotFound,
    OriginError,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
)
from origin.probe import Probe, probe_upload
from origin.records import (
    Analysis,
    EmailTaken,
    ImageRecord,
    QuotaWouldBeExceeded,
    RefreshTokenRecord,
    Rotation,
    SigningKeyRecord,
)
from origin.services import Services
from origin.signing import sign_url
from origin.store.objects import ObjectMissing
from origin.transforms.budget import output_size
from origin.transforms.formats import EXTENSIONS, FILE_EXTENSIONS
from origin.transforms.parse import parse_chain, parse_path
from origin.transforms.plan import Plan
from origin.transforms.query import parse_query

log = logging.getLogger("imgorigin.admin")

MAX_JSON_BYTES = 64 * 1024
MAX_PAGE_OFFSET = 1_000_000_000
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+", re.ASCII)
IMAGE_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)
URL_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}", re.ASCII)
THUMBNAIL_CHAIN = "w_256,h_256,c_fit"
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600

Handler = Callable[[Request], Awaitable[Response]]


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_hex(16)


# ---- request bodies -------------------------------------------------------------------------


async def read_json(request: Request) -> dict[str, Any]:
    """A JSON object body (at most 64 KB); 400 for anything else."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise BadRequest("the JSON body is too large")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def string_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' is required and must be a string")
    return value


def optional(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"'{name}' must be a {kind.__name__}")
    return value


# ---- accounts and tokens --------------------------------------------------------------------


class EmailInUse(Conflict):
    code = "email_taken"


class InvalidEmail(BadRequest):
    code = "invalid_email"


class InvalidPassword(BadRequest):
    code = "invalid_password"


def valid_credentials(data: dict[str, Any]) -> tuple[str, str]:
    email = string_field(data, "email").strip()
    password = string_field(data, "password")
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidEmail("email is not a valid address")
    if not 8 <= len(password) <= 128:
        raise InvalidPassword("password must be 8 to 128 characters")
    return email, password


async def signup(request: Request) -> Response:
    email, password = valid_credentials(await read_json(request))
    services = services_of(request)
    if await services.users.by_email(email) is not None:
        raise EmailInUse("an account with this email exists")
    password_hash = await auth.hash_password(password)
    try:
        user = await services.users.create(new_id(), email, password_hash, now())
    except EmailTaken:
        raise EmailInUse("an account with this email exists") from None
    body = {"id": user.id, "email": user.email, "created_at": user.created_at.isoformat()}
    return JSONResponse(body, status_code=201)


def refresh_record(
    services: Services, user_id: str, family_id: str, token_hash: str
) -> RefreshTokenRecord:
    issued = now()
    ttl = timedelta(seconds=services.settings.refresh_ttl_seconds)
    return RefreshTokenRecord(new_id(), user_id, family_id, token_hash, issued, issued + ttl)


def tokens_json(services: Services, user_id: str, refresh_token: str) -> dict[str, Any]:
    settings = services.settings
    access = auth.issue_access_token(user_id, settings.jwt_secret, settings.jwt_ttl_seconds)
    return {
        "access_token": access.token,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": access.expires_in,
    }


@dataclass(frozen=True)
class LoginCounters:
    """The failed-login counters one attempt is judged by: per account and client address
    (``pair``), and per account from every address (``account``). The account is the email
    without case, hashed (no email in a key, and a key of bounded length)."""

    pair: str
    account: str

    @classmethod
    def of(cls, request: Request, email: str) -> LoginCounters:
        account = hashlib.sha256(email.lower().encode("utf-8")).hexdigest()[:32]
        return cls(f"login-failed:{account}:{caller_address(request)}", f"login-failed:{account}")


async def throttle_login(request: Request, counters: LoginCounters) -> None:
    """429 before the password is checked, when this address has failed too often for this
    account, or has failed for it at all while the account's failures from every address
    are past their (much higher) ceiling. An address with no failure for the account is
    never refused here, so nobody else's failures lock an owner out (the per-address limit
    on /api/auth/* still applies); the answer is the same for unknown emails."""
    settings = services_of(request).settings
    state = request.scope["state"]
    pair = await peek_limit(state, counters.pair, settings.login_failures_per_minute)
    refused = None if pair.allowed else pair
    if refused is None and pair.remaining < pair.limit:  # this address has failed already
        account = await peek_limit(
            state, counters.account, settings.account_login_failures_per_minute
        )
        refused = None if account.allowed else account
    if refused is not None:
        log.warning("login attempts throttled for an account, from %s", caller_address(request))
        raise RateLimited(
            "too many failed login attempts for this account; retry later",
            headers={"Retry-After": str(refused.reset_seconds)},
        )


async def count_login_failure(request: Request, counters: LoginCounters) -> None:
    settings = services_of(request).settings
    state = request.scope["state"]
    await hit_limit(state, counters.pair, settings.login_failures_per_minute)
    await hit_limit(state, counters.account, settings.account_login_failures_per_minute)


async def login(request: Request) -> Response:
    data = await read_json(request)
    email, password = string_field(data, "email").strip(), string_field(data, "password")
    services = services_of(request)
    counters = LoginCounters.of(request, email)
    await throttle_login(request, counters)
    user = await services.users.by_email(email)
    valid = await auth.verify_password(password, user.password_hash if user else None)
    if user is None or not valid:
        await count_login_failure(request, counters)
        reason = "unknown email" if user is None else "wrong password"
        log.warning("failed login from %s: %s", caller_address(request), reason)
        raise Unauthorized("email or password is wrong", code="invalid_credentials")
    token, token_hash = auth.new_refresh_token()
    await services.users.add_refresh_token(refresh_record(services, user.id, new_id(), token_hash))
    return JSONResponse(tokens_json(services, user.id, token))


async def refresh(request: Request) -> Response:
    """Spend the refresh token and answer a new pair; a spent one revokes its whole family."""
    presented = string_field(await read_json(request), "refresh_token")
    services = services_of(request)
    token, token_hash = auth.new_refresh_token()
    # user_id and family_id of the successor are taken from the spent token by the repository
    successor = refresh_record(services, "", "", token_hash)
    outcome, stored = await services.users.rotate_refresh_token(
        auth.refresh_token_hash(presented), successor, now()
    )
    if outcome is not Rotation.ROTATED or stored is None:
        reason = (
            "spent token reused: family revoked" if outcome is Rotation.REUSED else "invalid token"
        )
        log.warning("refused refresh from %s: %s", caller_address(request), reason)
        raise Unauthorized("the refresh token is not valid", code="invalid_token")
    return JSONResponse(tokens_json(services, stored.user_id, token))


async def logout(request: Request) -> Response:
    token = string_field(await read_json(request), "refresh_token")
    await services_of(request).users.revoke_refresh_token(auth.refresh_token_hash(token), now())
    return Response(status_code=204)


async def me(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    user = await services.users.by_id(user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return JSONResponse(
        {
            "id": user.id,
            "email": user.email,
            "image_count": user.image_count,
            "storage_used_bytes": user.storage_used_bytes,
            "storage_quota_bytes": services.settings.user_quota_bytes,
        }
    )


# ---- images -----------------------------------------------------------------------------------


def url_name(filename: str) -> str:
    """A URL-safe SEO name from an original filename (``My Cat.JPG`` → ``My-Cat``)."""
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_stem).strip("-._")[:80]
    return slug or "image"


def stored_filename(filename: str) -> str:
    """The client's filename kept for display: no path, no control characters, ≤ 255 chars."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "upload"


def image_path(image: ImageRecord, chain: str = "", ext: str | None = None) -> str:
    stages = f"/{chain}" if chain else ""
    return f"/i/{image.id}{stages}/{url_name(image.original_filename)}.{ext or FILE_EXTENSIONS[image.format]}"


def signed(services: Services, path: str, expires_in: int | None = None) -> str:
    return sign_url(path, services.settings.url_signing_keys[0].secret, expires_in=expires_in)


def image_json(services: Services, image: ImageRecord) -> dict[str, Any]:
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
        "thumbnail_url": signed(services, image_path(image, THUMBNAIL_CHAIN, "webp")),
    }


async def upload(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    settings = services.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_size + ENVELOPE_BYTES:
        raise PayloadTooLarge(
            f"the file is larger than the {settings.max_upload_size}-byte upload limit"
        )
    user = await services.users.by_id(user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    uploaded = await read_file_field(
        request.headers.get("content-type", ""),
        request.stream(),
        max_bytes=settings.max_upload_size,
    )
    if not uploaded.data:
        raise BadRequest("the file is empty")
    if user.storage_used_bytes + len(uploaded.data) > settings.user_quota_bytes:
        raise QuotaExceeded("this upload would exceed your storage quota")
    inspected = await services.pool.run(lambda: inspect_upload(services, uploaded.data))
    probe = inspected.probe
    image_id = new_id()
    image = ImageRecord(
        id=image_id,
        user_id=user_id,
        original_filename=stored_filename(uploaded.filename),
        mime_type=probe.mime_type,
        format=probe.format,
        size_bytes=len(uploaded.data),
        width=probe.width,
        height=probe.height,
        storage_key=f"{user_id}/{image_id}/original.{FILE_EXTENSIONS[probe.format]}",
        content_hash=inspected.content_hash,
        created_at=now(),
        metadata=dict(probe.metadata),
        analysis=inspected.analysis,
    )
    await store_image(services, image, uploaded.data, inspected.levels)
    return JSONResponse(image_json(services, image), status_code=201)


@dataclass(frozen=True)
class Inspected:
    probe: Probe
    levels: list[working_copies.Level]
    analysis: Analysis | None
    content_hash: str


def inspect_upload(services: Services, data: bytes) -> Inspected:
    """One pool job: validate the upload, build its working copies (origin.working_copies), analyse
    it (blurhash, colour, focal point) from the smallest of them — the same upright sRGB
    picture with far fewer pixels to decode — or from the original when there are none, and
    hash it (off the event loop)."""
    settings = services.settings
    probe = probe_upload(
        data, max_source_pixels=settings.max_source_pixels, max_frames=settings.max_frames
    )
    levels = working_copies.build_for(data, probe)
    smallest = min(levels, key=lambda lv: lv.width * lv.height).body if levels else data
    analysis = analyse(smallest, limits=services.limits)
    return Inspected(probe, levels, analysis, hashlib.sha256(data).hexdigest())


async def store_image(
    services: Services, image: ImageRecord, data: bytes, levels: Sequence[working_copies.Level] = ()
) -> ImageRecord:
    """Objects first (the original, then its working copies), row second; on any failure
    every object is removed again. Returns the row as stored (with its working copies)."""
    copies = tuple(working_copies.working_copy(image.user_id, image.id, level) for level in levels)
    image = dataclasses.replace(image, working_copies=copies)
    objects = [(image.storage_key, data, image.mime_type)]
    objects += [(c.storage_key, v.body, v.media_type) for c, v in zip(copies, levels, strict=True)]
    written: list[str] = []  # a write that failed is not removed (gc takes what lands late)
    try:
        for key, body, media_type in objects:
            await services.storage.put(key, body, content_type=media_type)
            written.append(key)
        await services.images.add(image, services.settings.user_quota_bytes)
    except BaseException as exc:
        await remove_objects(services, written)
        if isinstance(exc, QuotaWouldBeExceeded):
            raise QuotaExceeded("this upload would exceed your storage quota") from None
        raise
    return image


async def remove_objects(services: Services, keys: Sequence[str]) -> None:
    """Best effort, after a failed upload: what cannot be removed now, gc removes later."""
    for key in reversed(keys):
        try:
            await services.storage.delete(key)
        except Exception:
            log.exception("could not remove %s after a failed upload; gc will", key)


def page_parameters(request: Request) -> tuple[int, int]:
    params = request.query_params
    unknown = set(params) - {"page", "limit"}
    if unknown:
        raise BadRequest(f"unknown query parameter '{sorted(unknown)[0][:40]}'")
    values = []
    for name, default, high in (("page", 1, None), ("limit", 20, 100)):
        raw = params.get(name, str(default))
        if not raw.isdigit() or len(raw) > 10:
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
    return JSONResponse(
        {
            "items": [image_json(services, i) for i in items],
            "page": page,
            "limit": limit,
            "total": total,
        }
    )


def image_id_of(request: Request) -> str:
    """The ``{image_id}`` path parameter; an id of the wrong shape is simply not found."""
    image_id: str = request.path_params["image_id"]
    if not IMAGE_ID.fullmatch(image_id):
        raise NotFound("no such image")
    return image_id


async def owned_image(request: Request) -> tuple[Services, ImageRecord]:
    user_id = require_user(request)
    services = services_of(request)
    image = await services.images.get(image_id_of(request), user_id=user_id)
    if image is None:
        raise NotFound("no such image")
    return services, image


async def get_image(request: Request) -> Response:
    services, image = await owned_image(request)
    return JSONResponse(image_json(services, image))


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._ ()-]+", "_", ascii_name).strip(" ._")[:150] or "image"
    utf8_name = quote(filename[:150], safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"


async def read_object(services: Services, key: str) -> bytes:
    """A stored original; a row whose object is gone (a racing delete) is simply not found."""
    try:
        return await services.storage.get(key)
    except ObjectMissing:
        raise NotFound("no such image") from None


async def download(request: Request) -> Response:
    services, image = await owned_image(request)
    data = await read_object(services, image.storage_key)
    headers = {
        "Content-Disposition": content_disposition(image.original_filename),
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return Response(data, media_type=image.mime_type, headers=headers)


async def delete_image(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    removed = await services.images.delete(image_id_of(request), user_id)
    if removed is None:
        raise NotFound("no such image")
    image, _ = removed  # every derivative is stored under the image's prefix
    forget = getattr(request.state, "forget_image", None)
    if forget is not None:
        forget(image.id)
    try:
        await services.storage.delete_prefix(f"{image.user_id}/{image.id}/")
    except OriginError:
        log.exception("objects of deleted image %s stay for gc", image.id)
    return Response(status_code=204)


def single_values(request: Request) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise BadTransform(f"parameter '{name[:40]}' is repeated")
        params[name] = value
    return params


async def transform(request: Request) -> Response:
    services, image = await owned_image(request)
    plan = parse_query(image.id, single_values(request), limits=services.limits)
    output_size(image.width, image.height, plan.stages, services.limits)  # one frame's budget
    source = await read_object(services, image.storage_key)
    overlays = await load_overlays(services, image.user_id, plan.overlay_ids)
    deadline = Deadline(services.settings.render_timeout_seconds)

    def job() -> render.Rendered:
        with deadline.running():
            return render.render(source, plan, overlays=overlays, limits=services.limits)

    rendered = await services.pool.run(job, on_cancel=deadline.cancel)
    return Response(
        rendered.body,
        media_type=rendered.media_type,
        headers={
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def load_overlays(
    services: Services, user_id: str, image_ids: tuple[str, ...]
) -> dict[str, bytes]:
    overlays = {}
    for overlay_id in image_ids:
        overlay = await services.images.get(overlay_id, user_id=user_id)
        if overlay is None:
            raise BadTransform(f"overlay image '{overlay_id}' not found")
        overlays[overlay_id] = await read_object(services, overlay.storage_key)
    return overlays


def check_url_options(name: str, expires_in: int | None) -> None:
    if not URL_NAME.fullmatch(name):
        raise BadRequest("'name' must be 1 to 100 characters of A-Z a-z 0-9 . _ -")
    if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise BadRequest(f"'expires_in' must be between 1 and {MAX_EXPIRES_IN} seconds")


def origin_path(
    services: Services, image: ImageRecord, chain: str, name: str, ext: str
) -> tuple[str, Plan]:
    """The origin path of ``chain`` on the image served as ``name.ext``, and its plan, parsed
    as the origin will parse it (else 400 ``bad_transform`` / ``limit_exceeded``)."""
    presets = services.settings.presets
    parse_chain(chain, presets=presets, limits=services.limits)
    encoded_chain = quote(chain, safe="/,:_.-!~*'()%")
    path = f"/i/{image.id}/{encoded_chain}/{name}.{ext}" if chain else f"/i/{image.id}/{name}.{ext}"
    return path, parse_path(path, presets=presets, limits=services.limits)


async def mint_url(request: Request) -> Response:
    services, image = await owned_image(request)
    data = await read_json(request)
    chain = (optional(data, "transform", str) or "").strip("/")
    name = optional(data, "name", str) or url_name(image.original_filename)
    ext = (optional(data, "format", str) or FILE_EXTENSIONS[image.format]).lower()
    expires_in = optional(data, "expires_in", int)
    check_url_options(name, expires_in)
    if ext != "json" and ext not in EXTENSIONS:
        raise BadRequest(f"'format' must be one of {', '.join(sorted(EXTENSIONS))} or json")
    path, _ = origin_path(services, image, chain, name, ext)
    return JSONResponse({"url": signed(services, path, expires_in)})


# ---- srcset and <picture> -------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedVariant:
    ext: str
    size: tuple[int, int]
    path: str
    plan: Plan


def plan_variant(
    services: Services,
    image: ImageRecord,
    query: srcset.SrcsetQuery,
    name: str,
    ext: str,
    width: int,
) -> PlannedVariant:
    """One URL of the answer, sized by a dry run of its chain's geometry (nothing rendered)."""
    chain = srcset.chain_with_width(query.transform, width)
    path, plan = origin_path(services, image, chain, name, ext)
    if plan.negotiated or plan.format != EXTENSIONS[ext]:
        raise BadRequest("'transform' must not set f_: list the formats in 'formats'")
    if plan.client_hints:
        raise BadRequest("'transform' must not use w_auto or dpr_auto: list the widths")
    size = output_size(image.width, image.height, plan.stages, services.limits)
    return PlannedVariant(ext, size, path, plan)


async def overlay_hashes(services: Services, image: ImageRecord, plan: Plan) -> tuple[str, ...]:
    """Content hashes of the chain's image overlays (part of a derivative's identity)."""
    hashes = []
    for overlay_id in plan.overlay_ids:
        overlay = await services.images.get(overlay_id, user_id=image.user_id)
        if overlay is None:
            raise BadTransform(f"overlay 'l_{overlay_id}' not found")
        hashes.append(overlay.content_hash)
    return tuple(hashes)


async def image_summary(services: Services, image: ImageRecord) -> tuple[str, str]:
    """Blurhash and dominant colour: stored at upload, else (older rows) computed now."""
    if image.analysis is not None:
        return image.analysis.blurhash, image.analysis.dominant_color
    original = await read_object(services, image.storage_key)
    summary = await services.pool.run(lambda: source_summary(original, limits=services.limits))
    return str(summary["blurhash"]), str(summary["dominant_color"])


async def srcset_variants(
    services: Services, image: ImageRecord, query: srcset.SrcsetQuery
) -> dict[str, list[srcset.Variant]]:
    """The signed variants by format, narrowest first; a width the chain cannot reach
    (``c_limit``, a small source) is dropped when the previous one has it already."""
    name = query.name or url_name(image.original_filename)
    check_url_options(name, query.expires_in)
    stages = parse_chain(query.transform, presets=services.settings.presets, limits=services.limits)
    natural = output_size(image.width, image.height, stages, services.limits)
    widths = query.widths or srcset.default_widths(natural[0])
    planned = [
        plan_variant(services, image, query, name, ext, width)
        for ext in query.formats
        for width in widths
    ]
    overlays = await overlay_hashes(services, image, planned[0].plan)
    keys = [
        key_of(image.id, image.content_hash, p.plan.canonical(), EXTENSIONS[p.ext], overlays)
        for p in planned
    ]
    stored = await services.derivatives.among(image.id, [k.variant for k in keys])
    by_format: dict[str, list[srcset.Variant]] = {}
    for p, key in zip(planned, keys, strict=True):
        same = by_format.setdefault(p.ext, [])
        if same and same[-1].width >= p.size[0]:
            continue
        record = stored.get(key.variant)
        url = signed(services, p.path, query.expires_in)
        size_bytes = None if record is None else record.size_bytes
        same.append(srcset.Variant(p.ext, *p.size, url, size_bytes))
    return by_format


async def image_srcset(request: Request) -> Response:
    """Signed URLs per width and format (with their sizes, and bytes once rendered), a
    ``srcset`` per format and a ready ``<picture>`` with a blurred placeholder."""
    services, image = await owned_image(request)
    query = srcset.parse_query(request.query_params.multi_items(), services.limits)
    by_format = await srcset_variants(services, image, query)
    blurhash, colour = await image_summary(services, image)
    png = await services.pool.run(lambda: placeholder_png(blurhash, image.width, image.height))
    uri = data_uri(png)
    fallback = by_format[query.formats[-1]][-1]
    return JSONResponse(
        {
            "transform": query.transform,
            "sizes": query.sizes,
            "width": fallback.width,
            "height": fallback.height,
            "variants": [v.json() for variants in by_format.values() for v in variants],
            "srcset": {ext: srcset.srcset(variants) for ext, variants in by_format.items()},
            "placeholder": {"blurhash": blurhash, "dominant_color": colour, "data_uri": uri},
            "picture": srcset.picture(by_format, query.sizes, query.alt, uri, colour),
        },
        headers={"Cache-Control": "private, no-store"},
    )


# ---- signing keys ---------------------------------------------------------------------------


async def list_keys(request: Request) -> Response:
    user_id = require_user(request)
    keys = await services_of(request).keys.of_user(user_id)
    return JSONResponse(
        {"items": [{"id": k.id, "created_at": k.created_at.isoformat()} for k in keys]}
    )


async def create_key(request: Request) -> Response:
    user_id = require_user(request)
    with contextlib.suppress(BadRequest):
        await read_json(request)  # no body needed; one may be sent
    key = SigningKeyRecord(
        id=new_id(), user_id=user_id, secret=secrets.token_urlsafe(32), created_at=now()
    )
    await services_of(request).keys.add(key)
    forget_user_keys(request, user_id)  # this process may hold the list without it
    body = {"id": key.id, "secret": key.secret, "created_at": key.created_at.isoformat()}
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})


async def delete_key(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    key_id = request.path_params["key_id"]
    if not await services.keys.delete(key_id, user_id):
        raise NotFound("no such key")
    forget_user_keys(request, user_id)
    return Response(status_code=204)


def forget_user_keys(request: Request, user_id: str) -> None:
    """Drop this process's cached copy of the user's keys (the origin's hook, when the
    origin runs here): a new key verifies, a deleted one stops, at once."""
    forget = getattr(request.state, "forget_user_keys", None)
    if forget is not None:
        forget(user_id)
