"""The schema: SQLAlchemy Core tables, the only description of the database.

Ids are 32 lowercase hex characters (128 random bits). Times are stored as naive UTC and
read back as aware UTC, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

ID = sa.String(32)
# An auto-incrementing integer key that works on both backends (SQLite only
# auto-increments an INTEGER PRIMARY KEY).
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (portable ordering)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    # The lower-cased email: unique, so "A@x.io" and "a@x.io" are one account.
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("storage_used_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("image_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The default of new uploads' `public` (migration 7; strict public delivery).
    sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("original_filename", sa.String(255), nullable=False),
    sa.Column("mime_type", sa.String(40), nullable=False),
    sa.Column("format", sa.String(10), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("storage_key", sa.String(200), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Upload-time analysis (migration 2; NULL in rows from before it, computed per request
    # then): the BlurHash and dominant colour (#rrggbb) of the upright original, and the
    # libvips attention focal point as fractions (0..1) of its width and height.
    sa.Column("blurhash", sa.String(64), nullable=True),
    sa.Column("dominant_color", sa.String(7), nullable=True),
    sa.Column("focal_x", sa.Float, nullable=True),
    sa.Column("focal_y", sa.Float, nullable=True),
    # The faces found (migration 11; origin/faces.py): JSON [[x, y, w, h], …] as fractions of
    # the upright original, largest first; NULL: not looked for (detected per request then).
    sa.Column("faces", sa.Text, nullable=True),
    # Working copies (migration 4; origin/working_copies.py): JSON [[width, height, storage_key], …]
    # of the reduced versions stored under the image's prefix; NULL: none.
    sa.Column("working_copies", sa.Text, nullable=True),
    # Served unsigned through its owner's `unsigned` transformations (migration 7).
    sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()),
    # 1, and one more at each replace (migration 8): objects of version n > 1 are stored
    # as original.v{n}.{ext} and work/v{n}/…; minted URLs carry v_{n}.
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Index("ix_images_user_created", "user_id", "created_at"),
)

# Users' named transformations (migration 7; origin/named.py): `t_<name>` in their URLs.
transformations = sa.Table(
    "transformations",
    metadata,
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("chain", sa.Text, nullable=False),
    sa.Column("unsigned", sa.Boolean, nullable=False),
    sa.Column("formats", sa.String(100), nullable=False),  # "webp,jpg": unsigned extensions
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


def derivative_columns() -> list[sa.Column[Any]]:
    """A derivative's columns after its owner's id: the same for uploads (here) and remote
    source objects (below), so one repository serves both (origin.store.derivatives)."""
    return [
        # sha256 of the canonical plan (and negotiated format): the derivative's identity.
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    ]


def choice_columns() -> list[sa.Column[Any]]:
    """A q_auto choice's columns after its owner's id and ``variant`` (cache.Key.choice)."""
    return [
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("quality", sa.Integer, nullable=False),
        sa.Column("ssim", sa.Float, nullable=False),  # of the search sample at that quality
        sa.Column("created_at", UTCDateTime, nullable=False),
    ]


transformed_images = sa.Table(
    "transformed_images",
    metadata,
    sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("image_id", ID, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    *derivative_columns(),
    # When a request last used it (migration 9; written in batches, memory hits sampled):
    # the derivative store's sweep evicts the least recently used first. NULL: created_at.
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("image_id", "variant", name="uq_transformed_variant"),
)

# q_auto choices (migration 3; origin/quality.py): the encoder quality the SSIM search chose
# for one image, chain and format, so the search runs once. `variant` is cache.Key.choice.
auto_qualities = sa.Table(
    "auto_qualities",
    metadata,
    sa.Column("image_id", ID, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("variant", sa.String(64), primary_key=True),
    *choice_columns(),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # Every token issued from one login shares a family; reuse of a spent token revokes it.
    sa.Column("family_id", ID, nullable=False, index=True),
    # sha256 of the opaque token: the token itself is never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("spent_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # HMAC verification needs the secret itself; treat database access as key access.
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_signing_keys_user", "user_id"),
)

# ---- remote sources (migration 5; origin/sources/): the operator's, never a user's ---------

# A remote object's bytes kept in the source cache, with the upstream's validators. `id` is
# the first 32 hex digits of sha256(source NUL object key): stable for one object; the
# content hash names its upstream version (derivative keys and q_auto choices depend on it).
source_objects = sa.Table(
    "source_objects",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("storage_key", sa.String(200), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("format", sa.String(10), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("etag", sa.String(512), nullable=True),
    sa.Column("last_modified", sa.String(64), nullable=True),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),  # the last read or revalidation
    sa.Column("blurhash", sa.String(64), nullable=True),
    sa.Column("dominant_color", sa.String(7), nullable=True),
    sa.Column("focal_x", sa.Float, nullable=True),
    sa.Column("focal_y", sa.Float, nullable=True),
    sa.Column("faces", sa.Text, nullable=True),  # as images.faces
    # Working copies, as images.working_copies, and their bytes (counted in the cache's bound);
    # made once the object is asked for again (origin.sources.cache).
    sa.Column("working_copies", sa.Text, nullable=True),
    sa.Column("copies_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_source_objects_checked", "checked_at"),
)

# The derivatives of source objects and their q_auto choices: the same columns as
# transformed_images and auto_qualities (the column `object_id` is keyed `image_id` in Python,
# so one repository serves both), going with their object.
source_derivatives = sa.Table(
    "source_derivatives",
    metadata,
    sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
    sa.Column(
        "object_id",
        ID,
        sa.ForeignKey("source_objects.id", ondelete="CASCADE"),
        nullable=False,
        key="image_id",
    ),
    *derivative_columns(),
    sa.UniqueConstraint("image_id", "variant", name="uq_source_derivative_variant"),
)

source_auto_qualities = sa.Table(
    "source_auto_qualities",
    metadata,
    sa.Column(
        "object_id",
        ID,
        sa.ForeignKey("source_objects.id", ondelete="CASCADE"),
        primary_key=True,
        key="image_id",
    ),
    sa.Column("variant", sa.String(64), primary_key=True),
    *choice_columns(),
)

# ---- background work (migration 6; origin/jobs/, origin/webhooks/: docs/background.md) ------

# The durable job queue every process shares. `due_at` is when a queued job may run, or when
# a running job's lease runs out (heartbeats move it on); `claim` names the run that holds
# the lease, so only that run can finish the job. `kind` picks the handler, `payload` is its
# JSON; `user_id` (no foreign key: a job outlives nothing it needs) bounds per-user backlogs.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("user_id", ID, nullable=True),
    sa.Column("state", sa.String(10), nullable=False),  # queued, running, done, failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("claim", ID, nullable=True),
    sa.Column("last_error", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Index("ix_jobs_state_due", "state", "due_at"),
)

# An image's eager derivatives: the origin path each stands for (unsigned) and its state
# (queued, running, done, failed; evicted once a storage budget removes it).
eager_derivatives = sa.Table(
    "eager_derivatives",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("image_id", ID, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    sa.Column("transform", sa.String(2000), nullable=False),
    sa.Column("format", sa.String(10), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=True),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("error_code", sa.String(40), nullable=True),
    sa.Column("notification_url", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_eager_image", "image_id"),
)

# A user's webhook endpoints: the events they want (a JSON list), the signing secret and,
# for a while after a rotation, the previous one (both sign until `previous_until`).
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("previous_secret", sa.String(100), nullable=True),
    sa.Column("previous_until", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_webhooks_user", "user_id"),
)

# One event sent (or to be sent) to one endpoint: `id` is the Standard Webhooks message id,
# the same on every attempt. `state`: pending, delivered, failed. `last_status` is the last
# HTTP status, NULL when there was none (no detail on why: the log is no port scanner).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("webhook_id", ID, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", ID, nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(20), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Index("ix_deliveries_webhook", "webhook_id", "seq"),
    sa.Index("ix_deliveries_user_state", "user_id", "state"),
)


# The cache keys the shipped nginx stored an image's answers under (migration 10;
# origin.edge_keys): sent by nginx with each request it proxies, so a purge names each entry
# exactly. `key_hash` (sha256 of `key`) keeps the unique index short.
edge_keys = sa.Table(
    "edge_keys",
    metadata,
    sa.Column("image_id", ID, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
