"""Who owns an image and which keys sign for them, without a database round trip per request.

Two small ``TTLCache``s sit in front of the repository:

- image id → its ``ImageRecord`` (owner, storage key, content hash, format, size, analysis,
  working copies),
  or ``None`` (absent: cached too, so a flood of unknown ids costs one query per id per TTL);
- owner → the UTF-8 bytes of their signing keys;
- owner → what ``t_`` means for their images (origin.named: the operator's presets over the
  owner's transformations).

``TTL_SECONDS`` (3 s) bounds how long another process keeps answering for a deleted image,
accepting a deleted key or refusing a new one, or answering with an edited transformation's
old definition. The process that changes an image, a key or a transformation calls
``forget_image`` / ``forget_user_keys`` / ``forget_user_transformations`` and is up to date
at once. A
lookup that started before a ``forget`` does not store what it read (``_epoch``), so a read
racing the change cannot put the stale row (or key list) back.
"""

from __future__ import annotations

from typing import Protocol

from cachetools import TTLCache

from origin.cache import Flights
from origin.named import Named, Presets, named_for
from origin.records import ImageRecord, SigningKeyRecord, TransformationRecord, is_id

TTL_SECONDS = 3.0
MAX_ENTRIES = 100_000


class Images(Protocol):  # origin.store.images
    async def get(self, image_id: str, *, user_id: str | None = None) -> ImageRecord | None: ...


class Keys(Protocol):  # origin.store.keys
    async def of_user(self, user_id: str) -> list[SigningKeyRecord]: ...


class Transformations(Protocol):  # origin.store.transformations
    async def of_user(self, user_id: str) -> list[TransformationRecord]: ...


class Lookup:
    def __init__(
        self,
        images: Images,
        keys: Keys,
        transformations: Transformations | None = None,
        presets: Presets | None = None,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.image_rows = images
        self.key_rows = keys
        self.transformation_rows = transformations
        self.presets = presets or Presets()
        self._named: TTLCache[str, Named] = TTLCache(max_entries, ttl)
        self._named_reads: Flights[Named] = Flights()
        self._images: TTLCache[str, ImageRecord | None] = TTLCache(max_entries, ttl)
        self._keys: TTLCache[str, tuple[bytes, ...]] = TTLCache(max_entries, ttl)
        self._epoch = 0
        # One read per id (per epoch) however many requests miss at once, e.g. at TTL expiry.
        self._image_reads: Flights[ImageRecord | None] = Flights()
        self._key_reads: Flights[tuple[bytes, ...]] = Flights()
        self.queries = 0  # repository round trips made (for tests and benchmarks)

    async def image(self, image_id: str) -> ImageRecord | None:
        """The image's record, or None when the id is malformed, unknown or deleted."""
        try:
            return self._images[image_id]
        except KeyError:
            pass
        if not is_id(image_id):
            return None
        epoch = self._epoch
        return await self._image_reads.join(
            (image_id, epoch), lambda: self._read_image(image_id, epoch)
        )

    async def _read_image(self, image_id: str, epoch: int) -> ImageRecord | None:
        self.queries += 1
        record = await self.image_rows.get(image_id)
        if epoch == self._epoch:
            self._images[image_id] = record
        return record

    async def user_keys(self, user_id: str) -> tuple[bytes, ...]:
        """The owner's active signing secrets, as the UTF-8 bytes they sign with."""
        try:
            return self._keys[user_id]
        except KeyError:
            pass
        epoch = self._epoch
        return await self._key_reads.join((user_id, epoch), lambda: self._read_keys(user_id, epoch))

    async def _read_keys(self, user_id: str, epoch: int) -> tuple[bytes, ...]:
        self.queries += 1
        keys = tuple(k.secret.encode("utf-8") for k in await self.key_rows.of_user(user_id))
        if epoch == self._epoch:
            self._keys[user_id] = keys
        return keys

    async def named(self, user_id: str) -> Named:
        """What ``t_`` means for the owner's images (operator presets over their own)."""
        try:
            return self._named[user_id]
        except KeyError:
            pass
        epoch = self._epoch
        return await self._named_reads.join(
            (user_id, epoch), lambda: self._read_named(user_id, epoch)
        )

    async def _read_named(self, user_id: str, epoch: int) -> Named:
        records = []
        if self.transformation_rows is not None:
            self.queries += 1
            records = await self.transformation_rows.of_user(user_id)
        named = named_for(self.presets, records)
        if epoch == self._epoch:
            self._named[user_id] = named
        return named

    @property
    def epoch(self) -> int:
        """Bumped by every ``forget_*``: whatever was derived from earlier reads is stale."""
        return self._epoch

    def forget_image(self, image_id: str) -> None:
        self._epoch += 1
        self._images.pop(image_id, None)

    def forget_user_keys(self, user_id: str) -> None:
        self._epoch += 1
        self._keys.pop(user_id, None)

    def forget_user_transformations(self, user_id: str) -> None:
        self._epoch += 1
        self._named.pop(user_id, None)
