"""Webhook endpoints: ``/api/webhooks`` (register, list), ``/api/webhooks/{id}`` (show,
delete), ``/api/webhooks/{id}/test`` (a ping), ``/api/webhooks/{id}/secret`` (rotate),
``/api/webhooks/{id}/deliveries`` (the log) and
``/api/webhooks/{id}/deliveries/{delivery_id}/retry`` (send again). docs/webhooks.md.

An endpoint's URL is checked by the guarded fetcher's rules when it is registered (400
``source_refused`` for a scheme, port or address the rules refuse) and again at every
delivery. Its secret is shown once, when it is made or rotated.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.guards import require_user
from admin_api.requests import no_fields, nudge, query_of, read_json, services_of, string_field
from origin.digits import plain_int
from origin.errors import BadRequest, Conflict, LimitExceeded, NotFound, SourceUnavailable
from origin.fetch import vet
from origin.records import is_id
from origin.services import Services
from origin.store.webhooks import AlreadyRegistered, Endpoint, TooMany, Webhooks
from origin.webhooks.delivery import endpoint_url, webhook_policy
from origin.webhooks.events import EVENTS

DELIVERY_ID = re.compile(r"msg_[0-9a-f]{32}", re.ASCII)
MAX_URL = 2000
FIELDS = frozenset({"url", "events"})


def repository(services: Services) -> Webhooks:
    return Webhooks(services.db, services.settings.background)


GONE = "no such webhook"


async def owned(request: Request) -> tuple[Services, str, Endpoint]:
    user_id = require_user(request)
    services = services_of(request)
    webhook_id = request.path_params["webhook_id"]
    found = await repository(services).get(user_id, webhook_id) if is_id(webhook_id) else None
    if found is None:
        raise NotFound(GONE)
    return services, user_id, found


def read_events(value: Any) -> tuple[str, ...]:
    if value is None:
        return EVENTS
    if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
        raise BadRequest(f"'events' must be a non-empty list of: {', '.join(EVENTS)}")
    unknown = [e for e in value if e not in EVENTS]
    if unknown:
        raise BadRequest(f"unknown event '{unknown[0][:40]}' (known: {', '.join(EVENTS)})")
    return tuple(dict.fromkeys(value))


async def create_webhook(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    data = await read_json(request)
    unknown = set(data) - FIELDS
    if unknown:
        raise BadRequest(f"unknown field '{sorted(unknown)[0][:40]}' (expected url, events)")
    url = endpoint_url(string_field(data, "url"))
    if len(url) > MAX_URL:
        raise BadRequest(f"'url' must be at most {MAX_URL} characters")
    events = read_events(data.get("events"))
    try:
        await vet(url, webhook_policy(services.settings))
    except SourceUnavailable:
        raise BadRequest("the endpoint's host could not be resolved") from None
    try:
        endpoint, secret = await repository(services).create(user_id, url, events)
    except TooMany:
        limit = services.settings.background.webhooks_max_per_user
        raise LimitExceeded(f"at most {limit} webhook endpoints per account") from None
    except AlreadyRegistered as exc:
        raise Conflict(f"an endpoint is registered at this url already: {exc.args[0]}") from None
    return JSONResponse({**endpoint.json(), "secret": secret}, status_code=201)


async def list_webhooks(request: Request) -> Response:
    user_id = require_user(request)
    found = await repository(services_of(request)).of_user(user_id)
    return JSONResponse({"items": [e.json() for e in found]})


async def get_webhook(request: Request) -> Response:
    _, _, endpoint = await owned(request)
    return JSONResponse(endpoint.json())


async def delete_webhook(request: Request) -> Response:
    services, user_id, endpoint = await owned(request)
    if not await repository(services).delete(user_id, endpoint.id):
        raise NotFound(GONE)  # deleted meanwhile: one of two deletes at once is the 204
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    services, user_id, endpoint = await owned(request)
    await no_fields(request, "a new secret")
    rotated = await repository(services).rotate(user_id, endpoint.id)
    if rotated is None:
        raise NotFound(GONE)
    secret, until = rotated
    return JSONResponse({"secret": secret, "previous_secret_valid_until": until.isoformat()})


async def test_webhook(request: Request) -> Response:
    services, user_id, endpoint = await owned(request)
    await no_fields(request, "a test event")
    delivery_id = await repository(services).test(user_id, endpoint.id)
    if delivery_id is None:
        raise NotFound(GONE)  # deleted since it was read
    nudge(request)
    return JSONResponse({"delivery_id": delivery_id}, status_code=202)


async def list_deliveries(request: Request) -> Response:
    services, user_id, endpoint = await owned(request)
    raw = query_of(request, frozenset({"limit"})).get("limit", "50")
    if not plain_int(raw) or len(raw) > 10 or not 1 <= int(raw) <= 200:
        raise BadRequest("'limit' must be between 1 and 200")
    items = await repository(services).deliveries(user_id, endpoint.id, int(raw))
    return JSONResponse({"items": items})


async def retry_delivery(request: Request) -> Response:
    services, user_id, endpoint = await owned(request)
    await no_fields(request, "a retry")
    delivery_id = request.path_params["delivery_id"]
    if not DELIVERY_ID.fullmatch(delivery_id) or not await repository(services).redeliver(
        user_id, endpoint.id, delivery_id
    ):
        raise NotFound("no such delivery, or it is still pending")
    nudge(request)
    return JSONResponse({"delivery_id": delivery_id}, status_code=202)
