"""The cache keys the shipped nginx stored each image's answers under (origin.edge_keys
records them; origin.purge names them when the image changes)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from origin.named import Uses, definition, names_in
from origin.store.database import Database, Transaction
from origin.store.tables import edge_keys, images, transformations
from origin.store.transformations import record_of

MAX_PER_IMAGE = 2000  # keys kept per image (more distinct URLs of one image are not noted)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# In an answer nginx stored: the image's version and public flag, and the owner's
# transformations its URL went through with their definitions (origin.named.Named.uses).
Served = tuple[int, bool, Uses]


async def add(db: Database, found: Mapping[tuple[str, str], Served]) -> list[str]:
    """Record the (image id, key) pairs nginx stored an answer under, each as it was served;
    those known already are not. Returns the keys whose image has changed (version, public)
    or gone since, or a transformation of whose was edited or deleted: its purge has run
    without them, so the caller purges them instead of recording them.

    One transaction, the images' and transformations' rows read locked (PostgreSQL; SQLite's
    write transaction holds the database): a delete, replace, privacy change or edit waits
    for it, and then takes these keys with the others."""
    wanted = {(image_id, key_hash(key)): (key, served) for (image_id, key), served in found.items()}
    if not wanted:
        return []
    ids = sorted({image_id for image_id, _ in wanted})
    at = datetime.now(UTC)
    async with db.write() as conn:
        rows = (
            await conn.execute(
                sa.select(images.c.id, images.c.user_id, images.c.version, images.c.public)
                .where(images.c.id.in_(ids))
                .order_by(images.c.id)
                .with_for_update(read=True)
            )
        ).all()
        owners = {r.id: r.user_id for r in rows}
        current = {r.id: (int(r.version), bool(r.public)) for r in rows}
        defined = await _definitions(conn, owners, found.values())
        recorded = await conn.execute(
            sa.select(edge_keys.c.image_id, edge_keys.c.key_hash).where(
                edge_keys.c.image_id.in_(ids)
            )
        )
        have = {(r.image_id, r.key_hash) for r in recorded}
        counts = Counter(image_id for image_id, _ in have)
        stale, new = [], []
        for (image_id, digest), (key, served) in wanted.items():
            version, public, uses = served
            owner = owners.get(image_id, "")
            now = tuple((name, defined.get((owner, name), "")) for name, _ in uses)
            if current.get(image_id) != (version, public) or now != uses:
                stale.append(key)
            elif (image_id, digest) not in have and counts[image_id] < MAX_PER_IMAGE:
                counts[image_id] += 1
                new.append({"image_id": image_id, "key_hash": digest, "key": key, "created_at": at})
        if new:
            # Another process may record one of them meanwhile (its lock on the images is
            # shared too): those are there already. Inserted in one order in every process,
            # so two such never wait on each other's rows (a deadlock).
            new.sort(key=lambda row: (row["image_id"], row["key_hash"]))
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            await conn.execute(dialect.insert(edge_keys).on_conflict_do_nothing(), new)
    return stale


async def _definitions(
    conn: Transaction, owners: Mapping[str, str], served: Iterable[Served]
) -> dict[tuple[str, str], str]:
    """The current definitions of the transformations the keys went through, by (owner,
    name), their rows read locked; one gone is absent."""
    names = sorted({name for _, _, uses in served for name, _ in uses})
    if not names:
        return {}
    rows = await conn.execute(
        transformations.select()
        .where(transformations.c.user_id.in_(sorted(set(owners.values()))))
        .where(transformations.c.name.in_(names))
        .order_by(transformations.c.user_id, transformations.c.name)
        .with_for_update(read=True)
    )
    return {(r.user_id, r.name): definition(record_of(r._mapping)) for r in rows}


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
        .where(
            sa.or_(edge_keys.c.key.contains(f"t_{name}"), edge_keys.c.key.contains("%"))
        )  # a percent-encoded name is found by names_in, which decodes
    )
    picked = [r for r in rows if name in names_in(r.key)]
    for row in picked:
        await conn.execute(
            edge_keys.delete()
            .where(edge_keys.c.image_id == row.image_id)
            .where(edge_keys.c.key_hash == row.key_hash)
        )
    return [r.key for r in picked]
