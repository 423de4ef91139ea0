"""The cache keys the shipped nginx stored each image's answers under (origin.edge_keys
records them; origin.purge names them when the image changes)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from origin.store.database import Database, Transaction
from origin.store.tables import edge_keys, images

MAX_PER_IMAGE = 2000  # keys kept per image (more distinct URLs of one image are not noted)
NAMES = re.compile(r"(?:^|[/,])t_([^/,|?]+)")  # the t_ names a key's path uses


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


async def add(db: Database, found: Iterable[tuple[str, str]]) -> None:
    """Record (image id, key) pairs; those known already, or whose image is gone, are not."""
    wanted = {(image_id, key_hash(key)): key for image_id, key in found}
    if not wanted:
        return
    ids = sorted({image_id for image_id, _ in wanted})
    at = datetime.now(UTC)
    async with db.read() as conn:
        have = set(
            (
                await conn.execute(
                    sa.select(edge_keys.c.image_id, edge_keys.c.key_hash).where(
                        edge_keys.c.image_id.in_(ids)
                    )
                )
            ).tuples()
        )
    counts = Counter(image_id for image_id, _ in have)
    rows = []
    for (image_id, digest), key in wanted.items():
        if (image_id, digest) in have or counts[image_id] >= MAX_PER_IMAGE:
            continue
        counts[image_id] += 1
        rows.append({"image_id": image_id, "key_hash": digest, "key": key, "created_at": at})
    if not rows:
        return
    try:
        async with db.write() as conn:
            await conn.execute(edge_keys.insert(), rows)
    except IntegrityError:  # another process recorded one meanwhile, or an image went
        for row in rows:
            await db.insert_new(edge_keys, row)


async def take_of_image(conn: Transaction, image_id: str) -> list[str]:
    """The image's keys, forgotten (the caller purges them): in the caller's transaction."""
    where = edge_keys.c.image_id == image_id
    keys = list((await conn.execute(sa.select(edge_keys.c.key).where(where))).scalars())
    await conn.execute(edge_keys.delete().where(where))
    return keys


async def take_naming(conn: Transaction, user_id: str, name: str) -> list[str]:
    """The keys of the user's images whose URL uses ``t_<name>``, forgotten."""
    rows = await conn.execute(
        sa.select(edge_keys.c.image_id, edge_keys.c.key_hash, edge_keys.c.key)
        .join(images, images.c.id == edge_keys.c.image_id)
        .where(images.c.user_id == user_id)
        .where(edge_keys.c.key.contains(f"t_{name}"))
    )
    picked = [r for r in rows if name in NAMES.findall(r.key.split("?", 1)[0])]
    for row in picked:
        await conn.execute(
            edge_keys.delete()
            .where(edge_keys.c.image_id == row.image_id)
            .where(edge_keys.c.key_hash == row.key_hash)
        )
    return [r.key for r in picked]
