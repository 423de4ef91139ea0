"""What a process holds open: made once in the lifespan, closed on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from origin.settings import Settings
from origin.store.database import Database
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.keys import SigningKeys
from origin.store.objects import Storage, open_storage
from origin.store.users import Users
from origin.transforms.limits import Limits
from origin.workers import VipsPool


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    users: Users
    images: Images
    derivatives: Derivatives
    keys: SigningKeys
    storage: Storage
    pool: VipsPool
    limits: Limits


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with AsyncExitStack() as stack:
        db = Database(settings.database_url)
        stack.push_async_callback(db.close)
        storage = await open_storage(stack, settings)
        stack.push_async_callback(storage.close)
        yield Runtime(
            settings=settings,
            db=db,
            users=Users(db),
            images=Images(db),
            derivatives=Derivatives(db),
            keys=SigningKeys(db),
            storage=storage,
            pool=VipsPool(settings.concurrency, settings.queue_max, settings.queue_timeout_seconds),
            limits=limits_of(settings),
        )


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_output_dimension=settings.max_output_dimension,
        max_source_pixels=settings.max_source_pixels,
        max_output_pixels=settings.max_output_pixels,
        max_frames=settings.max_frames,
    )
