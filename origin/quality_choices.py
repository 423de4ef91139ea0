"""``q_auto``'s memory: the quality a search chose for an image, chain and format
(``Key.choice``) is read before a render, so only the first render of it searches
(origin.quality), and a search's choice is stored after the answer (the first stored one
stays)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from origin import quality
from origin.cache import Key
from origin.records import AutoQualityRecord, ImageRecord
from origin.store.derivatives import Derivatives as DerivativeRows
from origin.transforms.plan import Plan

log = logging.getLogger("imgorigin.origin")


async def known(
    target: float, key: Key, image: ImageRecord, plan: Plan, rows: DerivativeRows
) -> quality.AutoQuality:
    """How the render resolves ``q_auto``: the quality remembered for this image, chain and
    format, else a search at ``target`` (``AUTO_QUALITY_SSIM``)."""
    if not plan.auto_quality or key.format not in quality.RANGES:
        return quality.AutoQuality(target)
    record = await rows.auto_quality(image.id, key.choice)
    return quality.AutoQuality(target, None if record is None else record.quality)


def searched(key: Key, image: ImageRecord, choice: quality.Choice) -> AutoQualityRecord:
    """The row to keep for a search's ``choice`` (logged)."""
    log.info(
        "q_auto search: image %s %s quality %d (SSIM %.4f, %d encodes)",
        image.id,
        key.format,
        choice.quality,
        choice.ssim or 0.0,
        choice.encodes,
    )
    return AutoQualityRecord(
        image_id=image.id,
        variant=key.choice,
        format=key.format,
        quality=choice.quality,
        ssim=choice.ssim or 0.0,
        created_at=datetime.now(UTC),
    )


async def keep(record: AutoQualityRecord, content_hash: str, rows: DerivativeRows) -> None:
    """Store a choice made on the pixels ``content_hash`` names (after the answer; nothing
    when the image was replaced meanwhile); a failure is logged."""
    try:
        await rows.add_auto_quality(record, content_hash)
    except Exception:  # the answer is out; the next render without the row searches again
        log.exception("could not store the q_auto choice for image %s", record.image_id)
