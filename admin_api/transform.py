"""``GET /api/images/{id}/transform``: the owner's image rendered from a query string
(origin.transforms.query), answered ``private, no-store`` and never stored."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from admin_api.requests import owned_image, query_of, read_object
from origin import render
from origin.deadline import Deadline
from origin.errors import BadTransform
from origin.http import PRIVATE_IMAGE
from origin.services import Services
from origin.transforms.budget import output_size
from origin.transforms.query import parse_query


async def transform(request: Request) -> Response:
    services, image = await owned_image(request)
    plan = parse_query(image.id, query_of(request, error=BadTransform), limits=services.limits)
    output_size(image.width, image.height, plan.stages, services.limits)  # one frame's budget
    source = await read_object(services, image.storage_key)
    overlays = await load_overlays(services, image.user_id, plan.overlay_ids)
    deadline = Deadline(services.settings.render_timeout_seconds)

    def job() -> render.Rendered:
        with deadline.running():
            return render.render(source, plan, overlays=overlays, limits=services.limits)

    rendered = await services.pool.run(job, on_cancel=deadline.cancel)
    return Response(rendered.body, media_type=rendered.media_type, headers=PRIVATE_IMAGE)


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
