"""Signed URLs of an image: the URL an image JSON carries, ``POST /api/images/{id}/url``
(mint one for a chain, name and format) and ``GET /api/images/{id}/srcset`` (one per width
and format, with ``srcset`` strings, a ``<picture>`` and a placeholder; its pure parts are
in admin_api.srcset).

Every chain is parsed as the origin will parse it, so a URL minted here is one the origin
answers; a derivative's ``bytes`` come from the same key the origin stores it under
(origin.cache.key_of).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api import srcset
from admin_api.requests import optional, owned_image, query_of, read_json, read_object
from admin_api.transformations import owner_presets
from origin.analysis import source_summary
from origin.blurhash import data_uri, placeholder_png
from origin.cache import key_of
from origin.errors import BadRequest, BadTransform
from origin.http import PRIVATE
from origin.public import url_name
from origin.records import ImageRecord
from origin.services import Services
from origin.signing import MAX_EXPIRES_IN, sign_url
from origin.sources.paths import CHAIN_SAFE
from origin.transforms.budget import output_size
from origin.transforms.formats import EXTENSIONS, FILE_EXTENSIONS
from origin.transforms.parse import parse_chain, parse_path
from origin.transforms.plan import Plan

URL_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}", re.ASCII)


def image_path(image: ImageRecord, chain: str = "", ext: str | None = None) -> str:
    stages = f"/{chain}" if chain else ""
    if image.version > 1:
        stages = f"/v_{image.version}{stages}"
    return f"/i/{image.id}{stages}/{url_name(image.original_filename)}.{ext or FILE_EXTENSIONS[image.format]}"


def signed(services: Services, path: str, expires_in: int | None = None) -> str:
    return sign_url(path, services.settings.url_signing_keys[0].secret, expires_in=expires_in)


def check_url_options(name: str, expires_in: int | None) -> None:
    if not URL_NAME.fullmatch(name):
        raise BadRequest("'name' must be 1 to 100 characters of A-Z a-z 0-9 . _ -")
    check_expires_in(expires_in)


def check_format(ext: str) -> None:
    if ext != "json" and ext not in EXTENSIONS:
        raise BadRequest(f"'format' must be one of {', '.join(sorted(EXTENSIONS))} or json")


def check_expires_in(expires_in: int | None) -> None:
    if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise BadRequest(f"'expires_in' must be between 1 and {MAX_EXPIRES_IN} seconds")


def chain_path(image_id: str, chain: str, name: str, ext: str, version: int = 1) -> str:
    """The (unsigned) origin path of ``chain`` on an image served as ``name.ext``; a
    replaced image's version goes first, as its own stage (``v_2``: only a new URL)."""
    stages = f"/{quote(chain, safe=CHAIN_SAFE)}" if chain else ""
    if version > 1:
        stages = f"/v_{version}{stages}"
    return f"/i/{image_id}{stages}/{name}.{ext}"


def origin_path(
    services: Services,
    image: ImageRecord,
    chain: str,
    name: str,
    ext: str,
    presets: Mapping[str, str],
) -> tuple[str, Plan]:
    """The origin path of ``chain`` on the image served as ``name.ext``, and its plan, parsed
    as the origin will parse it with the owner's ``presets`` (admin_api.transformations;
    else 400 ``bad_transform`` / ``limit_exceeded``)."""
    parse_chain(chain, presets=presets, limits=services.limits)
    path = chain_path(image.id, chain, name, ext, image.version)
    return path, parse_path(path, presets=presets, limits=services.limits)


async def mint_url(request: Request) -> Response:
    services, image = await owned_image(request)
    data = await read_json(request)
    unknown = set(data) - {"transform", "name", "format", "expires_in"}
    if unknown:
        raise BadRequest(
            f"unknown field '{sorted(unknown)[0][:40]}' (expected transform, name, format, "
            "expires_in)"
        )
    chain = (optional(data, "transform", str) or "").strip("/")
    name = optional(data, "name", str) or url_name(image.original_filename)
    ext = (optional(data, "format", str) or FILE_EXTENSIONS[image.format]).lower()
    expires_in = optional(data, "expires_in", int)
    check_url_options(name, expires_in)
    check_format(ext)
    presets = await owner_presets(services, image.user_id)
    path, _ = origin_path(services, image, chain, name, ext, presets)
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
    presets: Mapping[str, str],
) -> PlannedVariant:
    """One URL of the answer, sized by a dry run of its chain's geometry (nothing rendered)."""
    chain = srcset.chain_with_width(query.transform, width)
    path, plan = origin_path(services, image, chain, name, ext, presets)
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
    presets = await owner_presets(services, image.user_id)
    stages = parse_chain(query.transform, presets=presets, limits=services.limits)
    natural = output_size(image.width, image.height, stages, services.limits)
    widths = query.widths or srcset.default_widths(natural[0])
    planned = [
        plan_variant(services, image, query, name, ext, width, presets)
        for ext in query.formats
        for width in widths
    ]
    overlays = await overlay_hashes(services, image, planned[0].plan)
    keys = [key_of(image, p.plan.canonical(), EXTENSIONS[p.ext], overlays) for p in planned]
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
    query = srcset.parse_query(query_of(request, srcset.PARAMETERS), services.limits)
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
        headers={"Cache-Control": PRIVATE},
    )
