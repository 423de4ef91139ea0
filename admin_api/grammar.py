"""``GET /api/grammar``: the URL grammar as the transform registry describes it.

Public (no token) and cacheable: it changes only with the code and the limits a process
runs with, so it carries an ETag and a day's ``max-age``; the console builds its URL builder
from it (docs/url-api.md, docs/console.md).
"""

from __future__ import annotations

import functools
import hashlib
import json

from starlette.requests import Request
from starlette.responses import Response

from origin.cache import matches
from origin.services import Services
from origin.transforms.describe import grammar as describe
from origin.transforms.limits import Limits

CACHE_CONTROL = "public, max-age=86400"


@functools.cache
def _encoded(limits: Limits) -> tuple[bytes, str]:
    body = json.dumps(describe(limits), separators=(",", ":"), ensure_ascii=False).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


async def grammar(request: Request) -> Response:
    services: Services = request.state.services
    body, etag = _encoded(services.limits)
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if matches(request.headers.get("if-none-match", ""), etag):  # lists, W/, *
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
