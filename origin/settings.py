"""Settings: one frozen object built once from the environment and validated at start-up.

Nothing reads ``os.environ`` at import time: ``Settings.from_environ(environ)`` takes the
mapping explicitly, so tests inject their own. A bad value raises ``SettingsError`` whose
text is one line naming the variable; the CLI prints it and exits without a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from origin.dev_secrets import development_secrets, existing_development_secrets, say
from origin.digits import plain_int
from origin.environ import (
    SettingsError,
    _choice,
    _integer,
    _list,
    _number,
    _ports,
    _url,
)
from origin.named import Presets, load_presets
from origin.settings_groups import Background, Purging, background, purging
from origin.sources.config import Source, SourceError, load_sources

# The widths w_auto snaps up to (origin/hints.py) when AUTO_WIDTHS is not set.
DEFAULT_AUTO_WIDTHS = (160, 320, 480, 640, 768, 1024, 1280, 1536, 1920, 2560)
# q_auto's SSIM target (origin/quality.py; the choice is explained in docs/responsive.md).
DEFAULT_AUTO_QUALITY_SSIM = 0.96
# Production refuses a JWT_SECRET or URL-signing secret shorter than this (bytes, UTF-8).
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    """An operator URL-signing key: its id and the secret's UTF-8 bytes."""

    key_id: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class Settings:
    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./data/imgorigin.db"
    storage_type: Literal["local", "s3"] = "local"
    storage_path: Path = Path("./data/storage")
    storage_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    storage_timeout_seconds: float = 10.0
    jwt_secret: str = field(default="", repr=False)
    jwt_ttl_seconds: int = 3600
    refresh_ttl_seconds: int = 2_592_000
    url_signing_keys: tuple[SigningKey, ...] = ()
    max_upload_size: int = 10_485_760
    user_quota_bytes: int = 5_368_709_120
    rate_limit_per_minute: int = 100
    auth_rate_limit_per_minute: int = 20
    login_failures_per_minute: int = 5
    account_login_failures_per_minute: int = 100
    # Named transformations and strict public delivery (origin.named, origin.public).
    presets: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    unsigned_presets: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    transformations_max_per_user: int = 100
    unsigned_renders_per_image: int = 60  # a minute, renders (not cache hits) of unsigned URLs
    unsigned_renders_per_user: int = 600  # a minute, the same for all of an owner's images
    transformation_max_age_seconds: int = 86400  # answers whose URL a definition can change
    user_key_renders_per_minute: int = 300  # renders (not hits) one user signing key may cause
    # The bounded derivative store (docs/admin-api.md#derivative-budget).
    user_derivative_bytes: int = 1_073_741_824  # default: a fifth of USER_QUOTA_BYTES
    derivative_sweep_seconds: float = 60.0
    max_source_pixels: int = 100_000_000
    max_output_dimension: int = 8192
    # The work budget of one request (docs/url-api.md#work-budget, docs/origin.md).
    max_output_pixels: int = 25_000_000
    max_frames: int = 1000
    render_timeout_seconds: float = 10.0
    auto_widths: tuple[int, ...] = DEFAULT_AUTO_WIDTHS
    cache_max_bytes: int = 33_554_432  # a worker's memory budget: docs/deploy.md
    concurrency: int = 2
    queue_timeout_seconds: float = 10.0
    queue_max: int = 100
    auto_quality_ssim: float = DEFAULT_AUTO_QUALITY_SSIM
    redis_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    secrets_file: Path = Path("./data/secrets.json")
    # A directly exposed origin (no nginx in front): who may read /metrics, and how long a
    # client may take over a request (imgorigin/protocol.py enforces these in `serve`).
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    max_connections: int = 1000
    # The guarded fetcher and upload from a URL (docs/fetching.md).
    fetch_connect_timeout_seconds: float = 5.0
    fetch_timeout_seconds: float = 30.0
    fetch_private_hosts: frozenset[str] = frozenset()
    fetch_allow_loopback_for_tests: bool = False
    url_upload_hosts: tuple[str, ...] = ()
    url_upload_ports: frozenset[int] = frozenset({80, 443})
    url_uploads_per_minute: int = 10
    url_upload_concurrency: int = 2
    # Remote sources (docs/sources.md) and the accounts that may sign for them in the console.
    sources: Mapping[str, Source] = field(default_factory=lambda: MappingProxyType({}))
    source_cache_max_bytes: int = 1_073_741_824
    operator_emails: frozenset[str] = frozenset()
    # Background work: the job queue, eager derivatives and webhooks (docs/background.md).
    background: Background = field(default_factory=lambda: Background())
    purging: Purging = field(default_factory=lambda: Purging())
    # Set by `imgorigin serve --workers N` for its workers (imgorigin.supervisor): the
    # private folder where each writes its metrics, so /metrics sums them.
    metrics_dir: Path | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        announce: Callable[[str], None] | None = None,
        generate: bool = True,
    ) -> Settings:
        """Build and validate settings; generate development secrets when none are given.

        ``announce`` receives the one line said when secrets are generated (stderr by default).
        ``generate=False`` (read-only commands such as ``imgorigin sign``): development secrets
        are only read, and a missing secrets file is a ``SettingsError`` naming its path.
        """
        env = _choice(environ, "IMGORIGIN_ENV", ("development", "production"), "development")
        secrets_file = Path(environ.get("SECRETS_FILE") or "./data/secrets.json")
        storage_type = _choice(environ, "STORAGE_TYPE", ("local", "s3"), "local")
        bucket = environ.get("STORAGE_BUCKET") or None
        if storage_type == "s3" and not bucket:
            raise SettingsError("STORAGE_BUCKET", "required when STORAGE_TYPE=s3")
        values: dict[str, Any] = dict(
            env=env,
            database_url=_database_url(environ),
            storage_type=storage_type,
            storage_path=Path(environ.get("STORAGE_PATH") or "./data/storage"),
            storage_bucket=bucket,
            s3_endpoint_url=_url(environ, "S3_ENDPOINT_URL"),
            s3_region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            storage_timeout_seconds=_number(environ, "STORAGE_TIMEOUT_SECONDS", 10.0, 0.1, 600),
            jwt_ttl_seconds=_integer(environ, "JWT_TTL_SECONDS", 3600, 1),
            refresh_ttl_seconds=_integer(environ, "REFRESH_TTL_SECONDS", 2_592_000, 1),
            max_upload_size=_integer(environ, "MAX_UPLOAD_SIZE", 10_485_760, 1),
            user_quota_bytes=_integer(environ, "USER_QUOTA_BYTES", 5_368_709_120, 0),
            rate_limit_per_minute=_integer(environ, "RATE_LIMIT_PER_MINUTE", 100, 1),
            auth_rate_limit_per_minute=_integer(environ, "AUTH_RATE_LIMIT_PER_MINUTE", 20, 1),
            login_failures_per_minute=_integer(environ, "LOGIN_FAILURES_PER_MINUTE", 5, 1),
            account_login_failures_per_minute=_integer(
                environ, "ACCOUNT_LOGIN_FAILURES_PER_MINUTE", 100, 1
            ),
            max_source_pixels=_integer(environ, "MAX_SOURCE_PIXELS", 100_000_000, 1),
            max_output_dimension=_integer(environ, "MAX_OUTPUT_DIMENSION", 8192, 1, 65535),
            max_output_pixels=_integer(environ, "MAX_OUTPUT_PIXELS", 25_000_000, 1),
            max_frames=_integer(environ, "MAX_FRAMES", 1000, 1),
            render_timeout_seconds=_number(environ, "RENDER_TIMEOUT_SECONDS", 10.0, 0.01, 3600),
            cache_max_bytes=_integer(environ, "CACHE_MAX_BYTES", 33_554_432, 0),
            concurrency=_integer(environ, "CONCURRENCY", os.cpu_count() or 1, 1, 1024),
            queue_timeout_seconds=_number(environ, "QUEUE_TIMEOUT_SECONDS", 10.0, 0.001, 3600),
            queue_max=_integer(environ, "QUEUE_MAX", 100, 0),
            auto_quality_ssim=_number(
                environ, "AUTO_QUALITY_SSIM", DEFAULT_AUTO_QUALITY_SSIM, 0.5, 0.999
            ),
            redis_url=_url(environ, "REDIS_URL", schemes=("redis", "rediss", "unix")),
            cors_origins=_cors_origins(environ),
            forwarded_allow_ips=_networks(environ, "FORWARDED_ALLOW_IPS", ("127.0.0.1",)),
            secrets_file=secrets_file,
            **_exposure(environ),
            **_fetching(environ, env),
            **_sources(environ),
            **_public(environ),
        )
        values["background"] = background(environ, values["render_timeout_seconds"])
        values["user_derivative_bytes"] = _integer(
            environ, "USER_DERIVATIVE_BYTES", values["user_quota_bytes"] // 5, 0
        )
        values["purging"] = purging(environ)
        values["derivative_sweep_seconds"] = _number(
            environ, "DERIVATIVE_SWEEP_SECONDS", 60.0, 0.05, 86400
        )
        values["auto_widths"] = _auto_widths(environ, values["max_output_dimension"])
        # Secrets last: a bad value elsewhere must not leave a generated secrets file behind.
        jwt_secret = environ.get("JWT_SECRET", "")
        signing_keys_text = environ.get("URL_SIGNING_KEYS", "")
        if signing_keys_text.strip():
            parse_signing_keys(signing_keys_text)  # refuse a bad value before generating anything
        if env == "production":
            for name, value in (
                ("JWT_SECRET", jwt_secret),
                ("URL_SIGNING_KEYS", signing_keys_text),
            ):
                if not value.strip():
                    raise SettingsError(name, "required when IMGORIGIN_ENV=production")
        elif not jwt_secret or not signing_keys_text:
            generated = (
                development_secrets(secrets_file, announce or say)
                if generate
                else existing_development_secrets(secrets_file)
            )
            jwt_secret = jwt_secret or generated["jwt_secret"]
            signing_keys_text = signing_keys_text or generated["url_signing_keys"]
        keys = parse_signing_keys(signing_keys_text)
        if env == "production":
            _refuse_short_secrets(jwt_secret, keys)
        return cls(**values, jwt_secret=jwt_secret, url_signing_keys=keys)


def _refuse_short_secrets(jwt_secret: str, keys: tuple[SigningKey, ...]) -> None:
    """Production: every secret at least ``MIN_SECRET_BYTES`` long (the secret is never shown,
    a signing key is named by its id)."""
    notes = "see the upgrade notes in docs/deploy.md"
    length = len(jwt_secret.encode("utf-8"))
    if length < MIN_SECRET_BYTES:
        raise SettingsError(
            "JWT_SECRET",
            f"must be at least {MIN_SECRET_BYTES} bytes in production, got {length}; {notes}",
        )
    for key in keys:
        if len(key.secret) < MIN_SECRET_BYTES:
            raise SettingsError(
                "URL_SIGNING_KEYS",
                f"the secret of key {key.key_id[:40]!r} must be at least {MIN_SECRET_BYTES} "
                f"bytes in production, got {len(key.secret)}; {notes}",
            )


def parse_signing_keys(text: str) -> tuple[SigningKey, ...]:
    """``keyid:secret,keyid2:secret2`` → keys; the secret is used as UTF-8 bytes, as written."""
    keys: list[SigningKey] = []
    for item in text.split(","):
        key_id, sep, secret = item.strip().partition(":")
        if not sep or not key_id or not secret:
            raise SettingsError("URL_SIGNING_KEYS", "expected comma-separated keyid:secret pairs")
        keys.append(SigningKey(key_id, secret.encode("utf-8")))
    if len({k.key_id for k in keys}) != len(keys):
        raise SettingsError("URL_SIGNING_KEYS", "key ids must be unique")
    return tuple(keys)


def _database_url(environ: Mapping[str, str]) -> str:
    value = environ.get("DATABASE_URL", "").strip() or "sqlite:///./data/imgorigin.db"
    scheme = value.split("://", 1)[0]
    if scheme == "sqlite" and value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if scheme in ("postgresql", "postgres") and urlsplit(value).netloc:
        return value
    raise SettingsError(
        "DATABASE_URL", "expected sqlite:///path or postgresql://user:pass@host:port/db"
    )


def _auto_widths(environ: Mapping[str, str], max_output_dimension: int) -> tuple[int, ...]:
    """``AUTO_WIDTHS``: what ``w_auto`` snaps a width hint up to; ascending, 1 to 64 of
    them, each at most ``MAX_OUTPUT_DIMENSION``."""
    items = _list(environ, "AUTO_WIDTHS")
    if not items:
        return tuple(w for w in DEFAULT_AUTO_WIDTHS if w <= max_output_dimension) or (
            max_output_dimension,
        )
    if len(items) > 64 or not all(plain_int(item) and len(item) <= 5 for item in items):
        raise SettingsError("AUTO_WIDTHS", "expected 1 to 64 comma-separated widths in px")
    widths = tuple(int(item) for item in items)
    if any(b <= a for a, b in pairwise(widths)):
        raise SettingsError("AUTO_WIDTHS", "widths must be strictly ascending")
    if widths[0] < 1 or widths[-1] > max_output_dimension:
        raise SettingsError(
            "AUTO_WIDTHS",
            f"widths must be between 1 and MAX_OUTPUT_DIMENSION ({max_output_dimension})",
        )
    return widths


def _cors_origins(environ: Mapping[str, str]) -> tuple[str, ...]:
    origins = _list(environ, "CORS_ORIGINS")
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise SettingsError(
                "CORS_ORIGINS",
                f"expected origins like https://example.com or *, got {origin[:60]!r}",
            )
    return origins


def _networks(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated addresses or networks (``*``: any)."""
    allowed = _list(environ, name) or default
    for item in allowed:
        try:
            if item != "*":
                ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(
                name,
                f"expected addresses or networks like 127.0.0.1 or 10.0.0.0/8, got {item[:40]!r}",
            ) from None
    return allowed


HOST = re.compile(
    r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", re.ASCII
)


def _hosts(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated host names, ``*.example.com`` for subdomains (no scheme, port or
    path: such an entry could never match a host)."""
    hosts = tuple(h.lower() for h in _list(environ, name))
    for host in hosts:
        if not HOST.fullmatch(host):
            raise SettingsError(
                name,
                f"expected host names like img.example.com or *.example.com, got {host[:60]!r}",
            )
    return hosts


def _exposure(environ: Mapping[str, str]) -> dict[str, Any]:
    """What bounds a directly exposed origin: ``METRICS_ALLOW`` and the connection limits."""
    return dict(
        metrics_allow=_networks(environ, "METRICS_ALLOW", ("127.0.0.1", "::1")),
        header_timeout_seconds=_number(environ, "HEADER_TIMEOUT_SECONDS", 10.0, 0.1, 3600),
        body_timeout_seconds=_number(environ, "BODY_TIMEOUT_SECONDS", 60.0, 0.1, 86400),
        max_connections=_integer(environ, "MAX_CONNECTIONS", 1000, 1, 1_000_000),
        metrics_dir=Path(environ["IMGORIGIN_METRICS_DIR"])
        if environ.get("IMGORIGIN_METRICS_DIR")
        else None,
    )


def _fetching(environ: Mapping[str, str], env: str) -> dict[str, Any]:
    """The guarded fetcher's settings (docs/fetching.md); the test switch never in production."""
    loopback = environ.get("FETCH_ALLOW_LOOPBACK_FOR_TESTS", "").strip() in ("1", "true")
    if loopback and env == "production":
        raise SettingsError("FETCH_ALLOW_LOOPBACK_FOR_TESTS", "is for tests: never in production")
    return dict(
        fetch_connect_timeout_seconds=_number(
            environ, "FETCH_CONNECT_TIMEOUT_SECONDS", 5, 0.1, 600
        ),
        fetch_timeout_seconds=_number(environ, "FETCH_TIMEOUT_SECONDS", 30, 0.1, 3600),
        fetch_private_hosts=frozenset(h.lower() for h in _list(environ, "FETCH_PRIVATE_HOSTS")),
        fetch_allow_loopback_for_tests=loopback,
        url_upload_hosts=_hosts(environ, "URL_UPLOAD_HOSTS"),
        url_upload_ports=_ports(environ, "URL_UPLOAD_PORTS"),
        url_uploads_per_minute=_integer(environ, "URL_UPLOADS_PER_MINUTE", 10, 1),
        url_upload_concurrency=_integer(environ, "URL_UPLOAD_CONCURRENCY", 2, 1, 1000),
    )


def _sources(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SOURCES_FILE`` (origin.sources.config), the source cache's bound, the operators."""
    name = environ.get("SOURCES_FILE", "").strip()
    try:
        sources = load_sources(Path(name)) if name else MappingProxyType({})
    except SourceError as exc:
        raise SettingsError("SOURCES_FILE", str(exc)) from None
    return dict(
        sources=sources,
        source_cache_max_bytes=_integer(environ, "SOURCE_CACHE_MAX_BYTES", 1_073_741_824, 0),
        operator_emails=frozenset(e.lower() for e in _list(environ, "OPERATOR_EMAILS")),
    )


def _public(environ: Mapping[str, str]) -> dict[str, Any]:
    """``PRESETS_FILE`` (origin.named) and strict public delivery's bounds (origin.public)."""
    name = environ.get("PRESETS_FILE", "").strip()
    try:
        presets = load_presets(Path(name)) if name else Presets()
    except ValueError as exc:
        raise SettingsError("PRESETS_FILE", str(exc)) from None
    return dict(
        presets=presets.chains,
        unsigned_presets=presets.unsigned,
        transformations_max_per_user=_integer(
            environ, "TRANSFORMATIONS_MAX_PER_USER", 100, 0, 100_000
        ),
        unsigned_renders_per_image=_integer(environ, "UNSIGNED_RENDERS_PER_IMAGE", 60, 1),
        unsigned_renders_per_user=_integer(environ, "UNSIGNED_RENDERS_PER_USER", 600, 1),
        transformation_max_age_seconds=_integer(
            environ, "TRANSFORMATION_MAX_AGE_SECONDS", 86400, 0, 31_536_000
        ),
        user_key_renders_per_minute=_integer(environ, "USER_KEY_RENDERS_PER_MINUTE", 300, 1),
    )
