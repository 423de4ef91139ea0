"""Webhook endpoints and their delivery log: a user's own, by id (another user's is simply
not found); ``emit``, an event's fan-out into deliveries and their jobs, in the transaction of
what it reports; and what a delivery job reads and records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from origin.records import new_id
from origin.settings_groups import Background
from origin.store import queue
from origin.store.database import Database, count_of_user, lock_row
from origin.store.tables import users, webhook_deliveries, webhooks
from origin.webhooks import signing
from origin.webhooks.events import (
    FAILED,
    KIND,
    PENDING,
    QUOTA_WARNING_SHARE,
    TEST_EVENT,
    message_id,
    payload,
)


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime
    previous_until: datetime | None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "created_at": self.created_at.isoformat(),
            "previous_secret_valid_until": (
                None if self.previous_until is None else self.previous_until.isoformat()
            ),
        }


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        row.id, row.url, tuple(json.loads(row.events)), row.created_at, row.previous_until
    )


ENDPOINT_COLUMNS = (
    webhooks.c.id,
    webhooks.c.url,
    webhooks.c.events,
    webhooks.c.created_at,
    webhooks.c.previous_until,
)
DELIVERY_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.event_type,
    webhook_deliveries.c.state,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.last_status,
    webhook_deliveries.c.created_at,
    webhook_deliveries.c.last_attempt_at,
    webhook_deliveries.c.next_attempt_at,
)


class AlreadyRegistered(Exception):
    """The user has an endpoint at that URL already (its id is the argument)."""


class TooMany(Exception):
    pass


@dataclass(frozen=True)
class Webhooks:
    db: Database
    background: Background

    async def create(self, user_id: str, url: str, events: tuple[str, ...]) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (shown once); ``TooMany`` past the per-user bound,
        ``AlreadyRegistered`` when the user has one at ``url`` (a ``notification_url`` names
        one endpoint, and no event goes twice to one URL)."""
        secret = signing.new_secret()
        at = datetime.now(UTC)
        webhook_id = new_id()
        async with self.db.write() as conn:
            await lock_row(conn, users, user_id)  # the bound: one create at a time
            if (
                await count_of_user(conn, webhooks, user_id)
                >= self.background.webhooks_max_per_user
            ):
                raise TooMany(user_id)
            same = await conn.scalar(
                sa.select(webhooks.c.id)
                .where(webhooks.c.user_id == user_id)
                .where(webhooks.c.url == url)
            )
            if same is not None:
                raise AlreadyRegistered(same)
            await conn.execute(
                webhooks.insert().values(
                    id=webhook_id,
                    user_id=user_id,
                    url=url,
                    events=json.dumps(list(events)),
                    secret=secret,
                    created_at=at,
                )
            )
        return Endpoint(webhook_id, url, events, at, None), secret

    async def of_user(self, user_id: str) -> list[Endpoint]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(*ENDPOINT_COLUMNS)
                .where(webhooks.c.user_id == user_id)
                .order_by(webhooks.c.created_at, webhooks.c.id)
            )
            return [_endpoint(r) for r in rows]

    async def get(self, user_id: str, webhook_id: str) -> Endpoint | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(*ENDPOINT_COLUMNS)
                    .where(webhooks.c.id == webhook_id)
                    .where(webhooks.c.user_id == user_id)
                )
            ).first()
        return None if row is None else _endpoint(row)

    async def delete(self, user_id: str, webhook_id: str) -> bool:
        """The endpoint and its log; its pending jobs find nothing and end."""
        async with self.db.write() as conn:
            await conn.execute(
                webhook_deliveries.delete()
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .where(webhook_deliveries.c.user_id == user_id)
            )
            result = await conn.execute(
                webhooks.delete()
                .where(webhooks.c.id == webhook_id)
                .where(webhooks.c.user_id == user_id)
            )
        return result.rowcount == 1

    async def rotate(self, user_id: str, webhook_id: str) -> tuple[str, datetime] | None:
        """A new secret (shown once); the old one keeps signing beside it until the time
        returned (``WEBHOOK_SECRET_OVERLAP_SECONDS``)."""
        secret = signing.new_secret()
        until = datetime.now(UTC) + timedelta(
            seconds=self.background.webhook_secret_overlap_seconds
        )
        async with self.db.write() as conn:
            result = await conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id)
                .where(webhooks.c.user_id == user_id)
                .values(previous_secret=webhooks.c.secret, previous_until=until, secret=secret)
            )
        return (secret, until) if result.rowcount == 1 else None

    async def test(self, user_id: str, webhook_id: str) -> str | None:
        """Queue a ``webhook.test`` ping to this endpoint only; its delivery id (None: the
        endpoint is gone)."""
        body = payload(TEST_EVENT, {"webhook_id": webhook_id})
        async with self.db.write() as conn:
            return await deliver(conn, self.background, webhook_id, user_id, TEST_EVENT, body)

    async def deliveries(self, user_id: str, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(*DELIVERY_COLUMNS)
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .where(webhook_deliveries.c.user_id == user_id)
                .order_by(webhook_deliveries.c.seq.desc())
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    async def redeliver(self, user_id: str, webhook_id: str, delivery_id: str) -> bool:
        """Send a failed (or delivered) delivery again, same message id, a fresh schedule."""
        async with self.db.write() as conn:
            result = await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery_id)
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .where(webhook_deliveries.c.user_id == user_id)
                .where(webhook_deliveries.c.state != PENDING)
                .values(state=PENDING, next_attempt_at=datetime.now(UTC), last_error=None)
            )
            if result.rowcount != 1:
                return False
            await queue.add(
                conn,
                KIND,
                {"delivery": delivery_id},
                retries=len(self.background.webhook_retry_schedule),
                user_id=user_id,
            )
        return True


def _delivery(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": row.id,
        "event_type": row.event_type,
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "created_at": iso(row.created_at),
        "last_attempt_at": iso(row.last_attempt_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.state == PENDING else None,
    }


# ---- events into deliveries ------------------------------------------------------------


async def emit(
    conn: AsyncConnection,
    background: Background,
    user_id: str,
    event_type: str,
    data: dict[str, Any],
    notification_url: str | None = None,
) -> int:
    """Queue ``event_type`` for each of the user's endpoints subscribed to it, and for the
    endpoint registered at ``notification_url`` (a per-call notification) whatever it is
    subscribed to. Returns the deliveries queued."""
    rows = (
        await conn.execute(
            sa.select(webhooks.c.id, webhooks.c.url, webhooks.c.events).where(
                webhooks.c.user_id == user_id
            )
        )
    ).all()
    targets = [
        row.id
        for row in rows
        if event_type in json.loads(row.events)
        or (notification_url is not None and row.url == notification_url)
    ]
    body = payload(event_type, data)
    queued = 0
    for webhook_id in targets:
        queued += await deliver(conn, background, webhook_id, user_id, event_type, body) is not None
    return queued


async def deliver(
    conn: AsyncConnection,
    background: Background,
    webhook_id: str,
    user_id: str,
    event_type: str,
    body: str,
) -> str | None:
    """One delivery and its job; past ``WEBHOOK_PENDING_MAX`` pending deliveries of the user,
    the delivery is recorded failed (``backlog_full``: visible, re-deliverable) and not
    queued, so a dead endpoint cannot grow the queue without bound. None when the endpoint
    is gone. The user's row is locked while the pending ones are counted (deliveries queued
    at once counted past the bound: 19 pending of 5), then the endpoint's, which a delete
    then waits for (its cascade takes this delivery; an endpoint deleted first is found
    gone, where the insert broke the foreign key: a 500, a failed upload, a job run twice)."""
    await lock_row(conn, users, user_id)
    if not await lock_row(conn, webhooks, webhook_id):
        return None
    pending = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(webhook_deliveries)
        .where(webhook_deliveries.c.user_id == user_id)
        .where(webhook_deliveries.c.state == PENDING)
    )
    full = int(pending or 0) >= background.webhook_pending_max
    delivery_id = message_id()
    await conn.execute(
        webhook_deliveries.insert().values(
            id=delivery_id,
            webhook_id=webhook_id,
            user_id=user_id,
            event_type=event_type,
            payload=body,
            state=FAILED if full else PENDING,
            attempts=0,
            last_error="backlog_full" if full else None,
            created_at=datetime.now(UTC),
            next_attempt_at=None if full else datetime.now(UTC),
        )
    )
    if not full:
        await queue.add(
            conn,
            KIND,
            {"delivery": delivery_id},
            retries=len(background.webhook_retry_schedule),
            user_id=user_id,
        )
    return delivery_id


async def quota_crossed(
    conn: AsyncConnection, background: Background, user_id: str, added: int, quota: int
) -> None:
    """``quota.warning`` when the upload just charged (``added`` bytes, in this transaction)
    took the user's usage from under 90 % of ``quota`` to 90 % or more: once per crossing."""
    used = int(
        await conn.scalar(sa.select(users.c.storage_used_bytes).where(users.c.id == user_id)) or 0
    )
    line = quota * QUOTA_WARNING_SHARE
    if quota > 0 and used - added < line <= used:
        data = {
            "storage_used_bytes": used,
            "quota_bytes": quota,
            "threshold": QUOTA_WARNING_SHARE,
        }
        await emit(conn, background, user_id, "quota.warning", data)


# ---- what a delivery job reads and records ------------------------------------------------


@dataclass(frozen=True)
class ToSend:
    body: bytes
    url: str
    secrets: tuple[str, ...]  # the current one, and the previous one while it overlaps


async def to_send(db: Database, delivery_id: str) -> ToSend | None:
    """A pending delivery with its endpoint's URL and secrets; None when it is gone (its
    endpoint deleted) or no longer pending."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(
                    webhook_deliveries.c.payload,
                    webhook_deliveries.c.state,
                    webhooks.c.url,
                    webhooks.c.secret,
                    webhooks.c.previous_secret,
                    webhooks.c.previous_until,
                )
                .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
                .where(webhook_deliveries.c.id == delivery_id)
            )
        ).first()
    if row is None or row.state != PENDING:
        return None
    secrets = [row.secret]
    if row.previous_secret and row.previous_until and row.previous_until > datetime.now(UTC):
        secrets.append(row.previous_secret)
    return ToSend(row.payload.encode("utf-8"), row.url, tuple(secrets))


async def record_attempt(conn: AsyncConnection, delivery_id: str, **values: object) -> None:
    """One more try of a delivery and its outcome (state, last status, next attempt)."""
    await conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            **values,
            attempts=webhook_deliveries.c.attempts + 1,
            last_attempt_at=datetime.now(UTC),
        )
    )


async def has_endpoint(db: Database, user_id: str, url: str) -> bool:
    async with db.read() as conn:
        found = await conn.scalar(
            sa.select(webhooks.c.id)
            .where(webhooks.c.user_id == user_id)
            .where(webhooks.c.url == url)
        )
    return found is not None
