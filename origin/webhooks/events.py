"""Events: their names and payload. Their fan-out (one delivery and its job per endpoint
that wants one, in the transaction of what they report) is origin.store.webhooks ``emit``.

The payload (schema v1, docs/webhooks.md and docs/webhook-event.schema.json) is
``{"type", "timestamp", "data"}``; fields are only ever added within v1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from origin.records import ImageRecord, new_id

EVENTS = (
    "image.uploaded",
    "image.replaced",
    "image.deleted",
    "derivative.ready",
    "derivative.failed",
    "quota.warning",
)
TEST_EVENT = "webhook.test"  # POST /api/webhooks/{id}/test: to that endpoint only
KIND = "webhook"  # the job kind of a delivery
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
QUOTA_WARNING_SHARE = 0.9


def image_data(image: ImageRecord) -> dict[str, Any]:
    """An image as events show it (no URLs: a backend asks the API for those)."""
    return {
        "id": image.id,
        "original_filename": image.original_filename,
        "format": image.format,
        "mime_type": image.mime_type,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
        "created_at": image.created_at.isoformat(),
    }


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(event_type: str, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": timestamp(), "data": data}, separators=(",", ":")
    )


def message_id() -> str:
    return "msg_" + new_id()
