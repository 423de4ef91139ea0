"""Named transformations: ``GET /api/transformations``, ``PUT``/``GET``/``DELETE
/api/transformations/{name}``, and the presets every chain the admin API parses for a user
is read with (the operator's presets over the user's own, as the origin reads them).

A definition is checked as the origin would parse it (400 ``bad_transform`` /
``limit_exceeded``); it may not use ``t_`` (no nesting, no cycles), nor name an image
overlay the user does not own. A name an operator preset holds is 409 ``conflict``. After a
change this process's origin forgets the user's definitions at once; other processes within
the lookup's TTL (docs/admin-api.md#transformations).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.guards import require_user
from admin_api.purges import purge_transformation
from admin_api.requests import now, nudge, optional, read_json, services_of
from origin.errors import BadRequest, BadTransform, Conflict, LimitExceeded, NotFound
from origin.named import DEFAULT_FORMATS, NAME, Presets, check_formats, named_for
from origin.records import TransformationRecord
from origin.services import Services
from origin.sources.paths import CHAIN_SAFE
from origin.store.transformations import TooMany
from origin.transforms.parse import parse_chain, parse_path

MAX_CHAIN_CHARACTERS = 2048
PLACEHOLDER_ID = "0" * 32


async def owner_presets(services: Services, user_id: str) -> Mapping[str, str]:
    """What ``t_`` means in the user's chains: the operator's presets over their own."""
    settings = services.settings
    records = await services.transformations.of_user(user_id)
    return named_for(Presets(settings.presets, settings.unsigned_presets), records).chains


def transformation_json(record: TransformationRecord, presets: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": record.name,
        "transform": record.chain,
        "unsigned": record.unsigned,
        "formats": list(record.formats),
        # An operator preset of the same name, added later, hides it in URLs.
        "shadowed": record.name in presets,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


def name_of(request: Request) -> str:
    name: str = request.path_params["name"]
    if NAME.fullmatch(name):
        return name
    if request.method == "PUT":
        raise BadRequest("a transformation's name is 1 to 64 characters of a-z 0-9 _ -")
    raise NotFound("no such transformation")


async def check_chain(services: Services, user_id: str, chain: str) -> None:
    """The chain as the origin parses it, without ``t_``, its overlays the user's own."""
    if not chain or len(chain) > MAX_CHAIN_CHARACTERS:
        raise BadRequest(f"'transform' must be a chain of 1 to {MAX_CHAIN_CHARACTERS} characters")
    for stage in chain.split("/"):
        for token in stage.split(","):
            if token.startswith("t_"):
                raise BadTransform(f"'{token[:70]}': a named transformation cannot use t_")
            if token.startswith("v_"):  # minted URLs add the image's own: twice is refused
                raise BadTransform(
                    f"'{token[:70]}': a named transformation cannot use v_ (URLs carry the "
                    "image's version)"
                )
    parse_chain(chain, limits=services.limits)
    plan = parse_path(
        f"/i/{PLACEHOLDER_ID}/{quote(chain, safe=CHAIN_SAFE)}/x.png", limits=services.limits
    )
    for overlay_id in plan.overlay_ids:
        if await services.images.get(overlay_id, user_id=user_id) is None:
            raise BadTransform(f"overlay 'l_{overlay_id}' not found")


async def read_definition(
    request: Request, services: Services, user_id: str, name: str
) -> TransformationRecord:
    data = await read_json(request)
    unknown = set(data) - {"transform", "unsigned", "formats"}
    if unknown:
        raise BadRequest(f"unknown field '{sorted(unknown)[0][:40]}'")
    chain = (optional(data, "transform", str) or "").strip("/")
    unsigned = optional(data, "unsigned", bool) or False
    try:
        formats = check_formats(data.get("formats", list(DEFAULT_FORMATS)))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    await check_chain(services, user_id, chain)
    at = now()
    return TransformationRecord(user_id, name, chain, unsigned, formats, at, at)


async def put_transformation(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    name = name_of(request)
    if name in services.settings.presets:
        raise Conflict(f"'{name}' is an operator preset: choose another name")
    record = await read_definition(request, services, user_id, name)
    try:
        stored = await services.transformations.put(
            record, services.settings.transformations_max_per_user
        )
    except TooMany:
        limit = services.settings.transformations_max_per_user
        raise LimitExceeded(f"at most {limit} named transformations per account") from None
    forget_user_transformations(request, user_id)
    created = stored.created_at == stored.updated_at
    if not created:  # answers made from the old definition are stale in caches
        await purge_transformation(services, user_id, name)
        nudge(request)
    body = transformation_json(stored, services.settings.presets)
    return JSONResponse(body, status_code=201 if created else 200)


async def get_transformation(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    record = await services.transformations.get(user_id, name_of(request))
    if record is None:
        raise NotFound("no such transformation")
    return JSONResponse(transformation_json(record, services.settings.presets))


async def list_transformations(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    records = await services.transformations.of_user(user_id)
    presets = services.settings.presets
    return JSONResponse({"items": [transformation_json(r, presets) for r in records]})


async def delete_transformation(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    name = name_of(request)
    if not await services.transformations.delete(user_id, name):
        raise NotFound("no such transformation")
    forget_user_transformations(request, user_id)
    await purge_transformation(services, user_id, name)
    nudge(request)
    return Response(status_code=204)


def forget_user_transformations(request: Request, user_id: str) -> None:
    """Drop this process's cached definitions of the user (the origin's hook, when the
    origin runs here): the next request uses the new ones."""
    forget = getattr(request.state, "forget_user_transformations", None)
    if forget is not None:
        forget(user_id)
