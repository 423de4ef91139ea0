"""The services a process holds open — database, repositories, object storage, render pool —
made once in the lifespan, closed on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from origin.ratelimit import InProcessLimiter, Limiter, RedisLimiter, redis_client
from origin.render_pool import RenderPool
from origin.settings import Settings
from origin.store.database import Database
from origin.store.derivative_index import SOURCES
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.keys import SigningKeys
from origin.store.objects import Storage, open_storage
from origin.store.sources import SourceObjects
from origin.store.transformations import Transformations
from origin.store.users import Users
from origin.transforms.limits import Limits


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    users: Users
    images: Images
    derivatives: Derivatives
    keys: SigningKeys
    transformations: Transformations
    sources: SourceObjects  # the source cache's rows (origin.sources)
    source_derivatives: Derivatives  # their derivatives and q_auto choices
    storage: Storage
    pool: RenderPool
    limits: Limits
    limiter: Limiter  # rate-limit counters: this process's, or shared through REDIS_URL


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        db = Database(settings.database_url)
        stack.push_async_callback(db.close)
        storage = await open_storage(stack, settings)
        stack.push_async_callback(storage.close)
        limiter: Limiter = InProcessLimiter()
        if settings.redis_url:
            client = redis_client(settings.redis_url)
            stack.push_async_callback(client.aclose)
            limiter = RedisLimiter(client)
        yield Services(
            settings=settings,
            db=db,
            users=Users(db),
            images=Images(db),
            derivatives=Derivatives(db),
            keys=SigningKeys(db),
            transformations=Transformations(db),
            sources=SourceObjects(db),
            source_derivatives=Derivatives(db, SOURCES),
            storage=storage,
            pool=RenderPool(
                settings.concurrency,
                settings.queue_max,
                settings.queue_timeout_seconds,
                settings.background.job_render_share,
            ),
            limits=limits_of(settings),
            limiter=limiter,
        )


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_output_dimension=settings.max_output_dimension,
        max_source_pixels=settings.max_source_pixels,
        max_output_pixels=settings.max_output_pixels,
        max_frames=settings.max_frames,
    )
