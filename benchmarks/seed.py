"""The images imgorigin serves in W1–W5, stored before a run as an upload stores them: fixed
ids, one bench user, the originals with their working copies (or without, to measure them)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

IMAGE_IDS = {
    name: hashlib.sha256(f"bench/{name}".encode()).hexdigest()[:32]
    for name in ("w1.jpg", "w3.png", "w5.gif", "w7.jpg")
}


def seed(env: dict[str, str], images: dict[str, Path], working_copies: bool = True) -> None:
    """Store the originals, their working copies and rows as an upload does (the upload's
    own ``store_image``); ``working_copies=False`` stores the originals alone."""
    from origin import working_copies
    from origin.analysis import analyse
    from origin.ingest import store_image
    from origin.probe import probe_upload
    from origin.records import ImageRecord
    from origin.services import open_services
    from origin.settings import Settings

    settings = Settings.from_environ(env)
    user_id = hashlib.sha256(b"bench/user").hexdigest()[:32]

    async def go() -> None:
        async with open_services(settings) as services:
            now = datetime.now(UTC)
            await services.users.create(user_id, "bench@example.invalid", "!", now)
            for name, path in images.items():
                data = path.read_bytes()
                probe = probe_upload(data, max_source_pixels=settings.max_source_pixels)
                image = ImageRecord(
                    id=IMAGE_IDS[name],
                    user_id=user_id,
                    original_filename=name,
                    mime_type=probe.mime_type,
                    format=probe.format,
                    size_bytes=len(data),
                    width=probe.width,
                    height=probe.height,
                    storage_key=f"{user_id}/{IMAGE_IDS[name]}/original.{name.rsplit('.', 1)[1]}",
                    content_hash=hashlib.sha256(data).hexdigest(),
                    created_at=now,
                    analysis=analyse(data),  # W7's faces, found once as an upload does
                )
                local = services.storage.blocking is not None
                levels = working_copies.build_for(data, probe, local) if working_copies else []
                await store_image(services, image, data, levels)

    asyncio.run(go())
