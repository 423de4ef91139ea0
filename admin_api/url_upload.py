"""Upload from a URL: ``POST /api/images`` with a JSON body ``{"url": "https://…"}``.

The image is fetched through the guarded fetcher (origin.fetch: docs/fetching.md) and then
goes through exactly what a multipart upload goes through (origin.ingest: size, type by
magic bytes, quota, working copies, analysis), with the same answers. The allowed hosts and
ports are the operator's (``URL_UPLOAD_HOSTS``, ``URL_UPLOAD_PORTS``); each user may start
``URL_UPLOADS_PER_MINUTE`` fetches a minute and run ``URL_UPLOAD_CONCURRENCY`` at once (per
worker process), so that an account cannot turn the service into a fetch proxy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from yarl import URL

from admin_api.guards import hit_limit
from admin_api.requests import optional, read_json, string_field
from origin.errors import BadRequest, RateLimited
from origin.fetch import Fetched, Limits, Policy, fetch
from origin.ratelimit import Decision
from origin.settings import Settings

FIELDS = frozenset({"url", "filename", "eager", "notification_url", "public"})


@dataclass(frozen=True)
class UrlUpload:
    """The JSON body of an upload from a URL."""

    url: str
    filename: str | None
    eager: Any  # checked by admin_api.eager
    notification_url: Any
    public: bool | None = None  # the account's default when absent


class FetchSlots:
    """Fetches running now, per user (this process)."""

    def __init__(self) -> None:
        self.running: Counter[str] = Counter()

    @asynccontextmanager
    async def take(self, user_id: str, limit: int) -> AsyncIterator[None]:
        if self.running[user_id] >= limit:
            raise RateLimited(  # this bound's own figures, as the per-minute one's 429
                f"{limit} uploads from a URL are already running for this account; "
                "wait for one to finish",
                headers=Decision(False, limit, 0, 1).refusal_headers(),
            )
        self.running[user_id] += 1
        try:
            yield
        finally:
            self.running[user_id] -= 1
            if not self.running[user_id]:
                del self.running[user_id]


def policy(settings: Settings) -> Policy:
    """Where uploads from a URL may fetch (made once, in the admin API's start)."""
    return Policy.configured(
        ports=settings.url_upload_ports,
        hosts=settings.url_upload_hosts,
        private_hosts=settings.fetch_private_hosts,
        allow_loopback=settings.fetch_allow_loopback_for_tests,
    )


def limits(settings: Settings) -> Limits:
    return Limits(
        connect_timeout=settings.fetch_connect_timeout_seconds,
        total_timeout=settings.fetch_timeout_seconds,
        max_bytes=settings.max_upload_size,
    )


async def read_request(request: Request) -> UrlUpload:
    """The JSON body's fields; 400 for anything else."""
    data: dict[str, Any] = await read_json(request)
    unknown = set(data) - FIELDS
    if unknown:
        raise BadRequest(
            f"unknown field '{sorted(unknown)[0][:40]}' "
            "(expected url, filename, eager, notification_url, public)"
        )
    return UrlUpload(
        string_field(data, "url"),
        optional(data, "filename", str),
        data.get("eager"),
        data.get("notification_url"),
        optional(data, "public", bool),
    )


@asynccontextmanager
async def budget(request: Request, settings: Settings, user_id: str) -> AsyncIterator[None]:
    """One of the user's uploads from a URL at once (held until the upload is stored), then
    one of its fetches this minute (a refused request spends none)."""
    state = request.scope["state"]
    slots: FetchSlots = state["fetch_slots"]  # made in the lifespan (admin_api.app)
    async with slots.take(user_id, settings.url_upload_concurrency):
        key = f"url-upload:{user_id}"
        decision = await hit_limit(state, key, settings.url_uploads_per_minute)
        if not decision.allowed:
            raise RateLimited(
                f"at most {settings.url_uploads_per_minute} uploads from a URL a minute",
                headers=decision.refusal_headers(),
            )
        yield


async def fetch_image(request: Request, settings: Settings, url: str) -> Fetched:
    fetch_policy: Policy = request.scope["state"]["fetch_policy"]  # admin_api.app's start
    return await fetch(url, fetch_policy, limits(settings))


def filename_of(fetched: Fetched) -> str:
    """The last segment of the URL's path (after redirects), as a multipart upload's name."""
    try:
        raw_path = URL(fetched.url).raw_path
    except ValueError:  # UnicodeError among them
        return "upload"
    segment = unquote(raw_path.rstrip("/").rsplit("/", 1)[-1])
    return segment or "upload"
