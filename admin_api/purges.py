"""What the admin API purges at the edge (origin.purge), queued in the change's own
transaction: an image's answers on delete, replace, a change of ``public`` and ``POST
/api/images/{id}/purge``; the answers through a named transformation when it is edited or
deleted (nginx: the keys whose URL uses it; CDNs: the owner's tag)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.guards import hit_limit, require_user
from admin_api.requests import no_fields, nudge, owned_image
from origin.cache_tags import tag, tag_key
from origin.errors import RateLimited
from origin.purge import queue_purge
from origin.records import ImageRecord
from origin.services import Services
from origin.store import edge_keys
from origin.store.database import Transaction


def tag_of(services: Services, kind: str, ident: str) -> str:
    return tag(tag_key(services.settings.jwt_secret), kind, ident)


async def purge_image(conn: Transaction, services: Services, image: ImageRecord) -> int:
    """Queue the purge of the image's answers; how many nginx keys it names."""
    keys = await edge_keys.take_of_image(conn, image.id)
    tags = [tag_of(services, "image", image.id)]
    await queue_purge(conn, services.settings, image.user_id, keys, tags)
    return len(keys)


async def purge_transformation(services: Services, user_id: str, name: str) -> None:
    """Queue the purge of the answers through the user's ``t_<name>``."""
    async with services.db.write() as conn:
        keys = await edge_keys.take_naming(conn, user_id, name)
        tags = [tag_of(services, "user", user_id)]
        await queue_purge(conn, services.settings, user_id, keys, tags)


async def purge(request: Request) -> Response:
    """``POST /api/images/{id}/purge``: 202, the purge queued (``PURGES_PER_MINUTE``)."""
    user_id = require_user(request)
    services, image = await owned_image(request)
    await no_fields(request, "a purge")
    decision = await hit_limit(
        request.scope["state"], f"purge:{user_id}", services.settings.purging.purges_per_minute
    )
    if not decision.allowed:
        raise RateLimited("too many purges: try again later", headers=decision.refusal_headers())
    async with services.db.write() as conn:
        keys = await purge_image(conn, services, image)
    nudge(request)
    return JSONResponse({"queued": True, "nginx_keys": keys}, status_code=202)
