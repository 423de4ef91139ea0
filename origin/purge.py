"""Purge at the edge: when an image's answers change (deleted, replaced, made private or
public, a transformation edited or deleted), the origin tells every cache in front.

- **nginx** (``PURGE_NGINX_URLS``): the shipped tier, by exact cache key — every key nginx
  stored the image's answers under (origin.edge_keys: each Accept and hint bucket of every
  URL it cached), through its ``/imgorigin-purge`` location (the cache-purge module;
  answered only to the origin's addresses). 200 purged and 404 not cached are both done.
- **CDNs**, by cache tag (origin.cache_tags): Cloudflare (``POST
  /zones/{zone}/purge_cache {"tags"}``, 30 a call), Fastly (``POST /service/{id}/purge`` with
  ``Surrogate-Key``, 256 a call), and a generic webhook signed as Standard Webhooks
  (``{"type": "purge", "tags", "keys"}``).

A purge is a background job (origin.jobs), queued in the transaction of the change itself,
retried on ``JOB_RETRY_SCHEDULE`` while any target fails, counted in
``imgorigin_purges_total{target, outcome}``. Every call goes through the guarded fetcher:
the CDNs' under the usual policy, nginx's to exactly its configured hosts (which may be
private or loopback: the operator named them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from origin import fetch
from origin.fetch.guard import Policy
from origin.jobs.runner import Failure, Retry
from origin.metrics import Metrics
from origin.settings import Settings
from origin.settings_groups import Purging
from origin.store import queue
from origin.store.database import Transaction
from origin.store.queue import Job
from origin.webhooks import signing

log = logging.getLogger("imgorigin.purge")

KIND = "purge"
KEYS_PER_JOB = 500
PURGE_PATH = "/imgorigin-purge"
PURGE_HEADER = "X-Imgorigin-Purge-Key"
CLOUDFLARE_TAGS, FASTLY_KEYS = 30, 256
ANSWER_BYTES = 64 * 1024


def targets(purging: Purging) -> list[str]:
    """The configured targets: nginx, cloudflare, fastly, webhook."""
    configured = {
        "nginx": bool(purging.nginx_urls),
        "cloudflare": bool(purging.cloudflare_zone),
        "fastly": bool(purging.fastly_service),
        "webhook": bool(purging.webhook_url),
    }
    return [name for name, on in configured.items() if on]


async def queue_purge(
    conn: Transaction,
    settings: Settings,
    user_id: str | None,
    keys: Sequence[str],
    tags: Sequence[str],
) -> None:
    """Queue the purge of ``keys`` at nginx and ``tags`` at the CDNs, in the caller's
    transaction: one job per target (and per ``KEYS_PER_JOB`` keys), so a failing target is
    retried alone. Nothing when no target is configured."""
    retries = len(settings.background.job_retry_schedule)
    for target in targets(settings.purging):
        payloads: list[dict[str, Any]] = []
        if target == "nginx":
            for start in range(0, len(keys), KEYS_PER_JOB):
                payloads.append({"keys": list(keys[start : start + KEYS_PER_JOB])})
        elif tags:
            payloads.append({"tags": list(tags), "keys": list(keys)})
        for payload in payloads:
            payload["target"] = target
            await queue.add(conn, KIND, payload, retries=retries, user_id=user_id)


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class PurgeJobs:
    """The handler of ``purge`` jobs."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.purging = settings.purging
        self.metrics = metrics
        self.schedule = settings.background.job_retry_schedule
        self.limits = fetch.Limits(
            connect_timeout=settings.fetch_connect_timeout_seconds,
            total_timeout=settings.background.webhook_timeout_seconds,
            max_bytes=ANSWER_BYTES,
            max_redirects=0,
        )
        nginx = self.purging.nginx_urls
        hosts = [urlsplit(u).hostname or "" for u in nginx]
        self.nginx_policy = Policy.configured(
            ports={_port(u) for u in nginx}, hosts=hosts, private_hosts=hosts, allow_loopback=True
        )
        cdn_urls = [
            u
            for u in (
                self.purging.cloudflare_api_url if self.purging.cloudflare_zone else None,
                self.purging.fastly_api_url if self.purging.fastly_service else None,
                self.purging.webhook_url,
            )
            if u
        ]
        self.cdn_policy = Policy.configured(
            ports={_port(u) for u in cdn_urls},
            private_hosts=settings.fetch_private_hosts,
            allow_loopback=settings.fetch_allow_loopback_for_tests,
        )

    async def run(self, job: Job) -> None:
        target: str = job.payload["target"]
        keys: list[str] = job.payload.get("keys", [])
        tags: list[str] = job.payload.get("tags", [])
        ok = True
        for url, policy, body, headers, method in self._calls(job, keys, tags).get(target, []):
            ok &= await self._send(url, policy, body, headers, method, target)
        self.metrics.purges[target, "done" if ok else "failed"] += 1
        if not ok:
            raise Retry("purge_failed", f"not purged at {target}")

    def _calls(self, job: Job, keys: list[str], tags: list[str]) -> dict[str, list[Any]]:
        p = self.purging
        calls: dict[str, list[Any]] = {}
        if keys:
            for base in p.nginx_urls:
                calls.setdefault("nginx", []).extend(
                    (base + PURGE_PATH, self.nginx_policy, b"", {PURGE_HEADER: k}, "GET")
                    for k in keys
                )
        if tags and p.cloudflare_zone:
            url = f"{p.cloudflare_api_url.rstrip('/')}/zones/{p.cloudflare_zone}/purge_cache"
            head = {
                "Authorization": f"Bearer {p.cloudflare_token}",
                "Content-Type": "application/json",
            }
            calls["cloudflare"] = [
                (url, self.cdn_policy, json.dumps({"tags": c}).encode(), head, "POST")
                for c in _chunks(tags, CLOUDFLARE_TAGS)
            ]
        if tags and p.fastly_service:
            url = f"{p.fastly_api_url.rstrip('/')}/service/{p.fastly_service}/purge"
            calls["fastly"] = [
                (
                    url,
                    self.cdn_policy,
                    b"",
                    {"Fastly-Key": str(p.fastly_token), "Surrogate-Key": " ".join(c)},
                    "POST",
                )
                for c in _chunks(tags, FASTLY_KEYS)
            ]
        if p.webhook_url and p.webhook_secret:
            body = json.dumps({"type": "purge", "tags": tags, "keys": keys}).encode()
            message = f"purge_{job.id}"
            head = {
                "Content-Type": "application/json",
                **signing.headers([p.webhook_secret], message, int(time.time()), body),
            }
            calls["webhook"] = [(p.webhook_url, self.cdn_policy, body, head, "POST")]
        return calls

    async def _send(
        self,
        url: str,
        policy: Policy,
        body: bytes,
        headers: dict[str, str],
        method: str,
        target: str,
    ) -> bool:
        try:
            status = await fetch.post(url, policy, self.limits, body, headers, method=method)
        except Exception as exc:  # refused, unreachable, timed out: retried with the job
            log.warning("purge at %s: %s", target, getattr(exc, "message", repr(exc)))
            return False
        if 200 <= status < 300 or (target == "nginx" and status == 404):
            return True
        log.warning("purge at %s answered HTTP %d", target, status)
        return False

    async def done(self, conn: Transaction, job: Job, result: Any) -> None:
        return None

    async def retrying(self, conn: Transaction, job: Job, failure: Failure, due: datetime) -> None:
        log.info("purge %s retries at %s: %s", job.id, due.isoformat(), failure.message)

    async def failed(self, conn: Transaction, job: Job, failure: Failure) -> None:
        log.error("purge %s failed for good: %s", job.id, failure.message)
