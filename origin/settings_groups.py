"""The settings that are groups of their own, each parsed from the environment: the
background work's (`Background`: the job queue, eager derivatives, webhooks) and the purge
targets' (`Purging`). `origin.settings` holds one of each; the parts that use only a group
take only it. Standard library only (`origin.environ`'s parsers)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from origin.environ import SettingsError, _flag, _integer, _list, _number, _ports, _schedule, _url


@dataclass(frozen=True)
class Background:
    """The job queue's, eager derivatives' and webhooks' settings (docs/background.md)."""

    jobs_in_serve: bool = True  # `imgorigin serve` runs jobs too (else only `imgorigin worker`)
    job_render_share: float = 0.5  # of CONCURRENCY's slots, background renders use at most this
    job_concurrency: int = 4  # jobs one process runs at once
    job_lease_seconds: float = 60.0  # a claimed job's lease; heartbeats renew it
    job_poll_seconds: float = 1.0
    job_retry_schedule: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0)
    webhook_retry_schedule: tuple[float, ...] = (
        5.0,
        300.0,
        1800.0,
        7200.0,
        18000.0,
        36000.0,
        36000.0,
    )
    webhook_timeout_seconds: float = 10.0
    webhook_ports: frozenset[int] = frozenset({80, 443})
    webhooks_max_per_user: int = 10
    webhook_pending_max: int = 1000
    webhook_secret_overlap_seconds: float = 86400.0
    eager_thumbnail: bool = True

    @property
    def heartbeat_seconds(self) -> float:
        return self.job_lease_seconds / 4

    @property
    def webhooks_per_user(self) -> int:
        """Deliveries of one account that run at once in the whole service: a quarter of
        ``JOB_CONCURRENCY`` (at least one), so an account whose endpoints hang holds no more
        of the delivery slots than that while other accounts' deliveries run."""
        return max(1, self.job_concurrency // 4)


@dataclass(frozen=True)
class Purging:
    """Where the origin purges changed answers (origin.purge, docs/deploy.md#purge)."""

    nginx_urls: tuple[str, ...] = ()  # every nginx of the shipped tier, e.g. http://10.0.0.5:8080
    cloudflare_zone: str | None = None
    cloudflare_token: str | None = field(default=None, repr=False)
    cloudflare_api_url: str = "https://api.cloudflare.com/client/v4"
    fastly_service: str | None = None
    fastly_token: str | None = field(default=None, repr=False)
    fastly_api_url: str = "https://api.fastly.com"
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    purges_per_minute: int = 10  # POST /api/images/{id}/purge, per user


def background(environ: Mapping[str, str], render_timeout: float) -> Background:
    """The job queue's settings; a lease must outlast a render (RENDER_TIMEOUT_SECONDS) and
    a webhook delivery's timeout."""
    timeout = _number(environ, "WEBHOOK_TIMEOUT_SECONDS", 10.0, 0.1, 600)
    lease = _number(
        environ, "JOB_LEASE_SECONDS", max(60.0, 2 * max(render_timeout, timeout)), 0.5, 86400
    )
    if lease <= max(render_timeout, timeout):
        raise SettingsError(
            "JOB_LEASE_SECONDS",
            f"must be longer than RENDER_TIMEOUT_SECONDS and WEBHOOK_TIMEOUT_SECONDS "
            f"({max(render_timeout, timeout):g}), got {lease:g}",
        )
    defaults = Background()
    return Background(
        jobs_in_serve=_flag(environ, "JOBS_IN_SERVE", True),
        job_render_share=_number(environ, "JOB_RENDER_SHARE", 0.5, 0.01, 1.0),
        job_concurrency=_integer(environ, "JOB_CONCURRENCY", 4, 1, 256),
        job_lease_seconds=lease,
        job_poll_seconds=_number(environ, "JOB_POLL_SECONDS", 1.0, 0.01, 60),
        job_retry_schedule=_schedule(environ, "JOB_RETRY_SCHEDULE", defaults.job_retry_schedule),
        webhook_retry_schedule=_schedule(
            environ, "WEBHOOK_RETRY_SCHEDULE", defaults.webhook_retry_schedule
        ),
        webhook_timeout_seconds=timeout,
        webhook_ports=_ports(environ, "WEBHOOK_PORTS"),
        webhooks_max_per_user=_integer(environ, "WEBHOOKS_MAX_PER_USER", 10, 0, 1000),
        webhook_pending_max=_integer(environ, "WEBHOOK_PENDING_MAX", 1000, 1),
        webhook_secret_overlap_seconds=_number(
            environ, "WEBHOOK_SECRET_OVERLAP_SECONDS", 86400.0, 0, 30 * 86400
        ),
        eager_thumbnail=_flag(environ, "EAGER_THUMBNAIL", True),
    )


def purging(environ: Mapping[str, str]) -> Purging:
    """The purge targets: nginx hosts, and the CDN adapters whose settings are all given."""
    nginx = _list(environ, "PURGE_NGINX_URLS")
    for url in nginx:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise SettingsError("PURGE_NGINX_URLS", f"expected http(s)://host[:port], got {url!r}")
    defaults = Purging()
    pairs = {
        "cloudflare": ("PURGE_CLOUDFLARE_ZONE", "PURGE_CLOUDFLARE_TOKEN"),
        "fastly": ("PURGE_FASTLY_SERVICE", "PURGE_FASTLY_TOKEN"),
        "webhook": ("PURGE_WEBHOOK_URL", "PURGE_WEBHOOK_SECRET"),
    }
    for first, second in pairs.values():
        if bool(environ.get(first)) != bool(environ.get(second)):
            present, missing = (first, second) if environ.get(first) else (second, first)
            raise SettingsError(missing, f"needed with {present}")
    secret = environ.get("PURGE_WEBHOOK_SECRET") or None
    if secret is not None and not _webhook_secret(secret):
        raise SettingsError("PURGE_WEBHOOK_SECRET", "a Standard Webhooks secret: whsec_<base64>")
    return Purging(
        nginx_urls=tuple(u.rstrip("/") for u in nginx),
        cloudflare_zone=environ.get("PURGE_CLOUDFLARE_ZONE") or None,
        cloudflare_token=environ.get("PURGE_CLOUDFLARE_TOKEN") or None,
        cloudflare_api_url=_url(environ, "PURGE_CLOUDFLARE_API_URL") or defaults.cloudflare_api_url,
        fastly_service=environ.get("PURGE_FASTLY_SERVICE") or None,
        fastly_token=environ.get("PURGE_FASTLY_TOKEN") or None,
        fastly_api_url=_url(environ, "PURGE_FASTLY_API_URL") or defaults.fastly_api_url,
        webhook_url=_url(environ, "PURGE_WEBHOOK_URL"),
        webhook_secret=secret,
        purges_per_minute=_integer(environ, "PURGES_PER_MINUTE", 10, 1),
    )


def _webhook_secret(secret: str) -> bool:
    """``whsec_`` and the base64 of a non-empty key (what origin.webhooks.signing signs
    with: any other made every purge's signature fail)."""
    if not secret.startswith("whsec_"):
        return False
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except binascii.Error:
        return False
