"""Domain records: what the store keeps and hands back, as frozen values with no SQL.

The store (origin.store) maps rows to these and back; the rest of the service (the
lookup, the handler, the admin API, the upload-time analysis and working copies) knows only
these. The two exceptions are the store's refusals a caller acts on.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def new_id() -> str:
    """The id of a new record (a user, an image, a token, a key): 32 random hex digits."""
    return secrets.token_hex(16)


def is_id(text: str) -> bool:
    """Whether ``text`` has the shape `new_id` gives: what a path or a token may name."""
    return _ID.fullmatch(text) is not None


_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)


class EmailTaken(Exception):
    """An account with this email (compared without case) exists."""


class ReplacedMeanwhile(Exception):
    """The image was replaced (or deleted) by another request since it was read."""


class QuotaWouldBeExceeded(Exception):
    """Adding the image would put the user's stored bytes over the quota."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    password_hash: str
    storage_used_bytes: int
    image_count: int
    created_at: datetime
    public: bool = False  # the default of the account's new uploads (strict public delivery)


@dataclass(frozen=True)
class Analysis:
    """What the upload-time analysis found in the upright original (see origin.analysis)."""

    blurhash: str
    dominant_color: str  # "#rrggbb"
    focal_x: float  # the libvips attention focal point, as fractions (0..1)
    focal_y: float  # of the upright original's width and height
    # The faces found (origin.faces): (x, y, width, height) as fractions of the upright
    # original, largest first; None: not looked for (a row from before migration 11).
    faces: tuple[tuple[float, float, float, float], ...] | None = None

    @property
    def focal(self) -> tuple[float, float]:
        return self.focal_x, self.focal_y


@dataclass(frozen=True)
class WorkingCopy:
    """A reduced, visually lossless version of an original, stored at upload (origin.working_copies)."""

    width: int
    height: int
    storage_key: str


@dataclass(frozen=True)
class ImageRecord:
    id: str
    user_id: str
    original_filename: str
    mime_type: str
    format: str
    size_bytes: int
    width: int
    height: int
    storage_key: str
    content_hash: str
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    analysis: Analysis | None = None  # None for rows stored before migration 2
    working_copies: tuple[WorkingCopy, ...] = ()  # smallest first; not counted in the quota
    public: bool = False  # may be served unsigned through its owner's unsigned t_ (origin.public)
    version: int = 1  # one more at each replace (PUT /api/images/{id})


@dataclass(frozen=True)
class DerivativeRecord:
    image_id: str
    variant: str
    storage_key: str
    media_type: str
    size_bytes: int
    width: int
    height: int
    created_at: datetime


@dataclass(frozen=True)
class AutoQualityRecord:
    """The quality the q_auto search chose for one image, chain and format (cache.Key.choice)."""

    image_id: str
    variant: str
    format: str
    quality: int
    ssim: float
    created_at: datetime


@dataclass(frozen=True)
class RefreshTokenRecord:
    id: str
    user_id: str
    family_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    spent_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class SigningKeyRecord:
    id: str
    user_id: str
    secret: str = field(repr=False)
    created_at: datetime


class Rotation(enum.Enum):
    ROTATED = "rotated"
    REUSED = "reused"  # a spent token came back: its whole family is now revoked
    INVALID = "invalid"  # unknown, expired or revoked


@dataclass(frozen=True)
class SourceObjectRecord:
    """A remote object kept in the source cache (origin.sources.cache): which object, where
    its bytes are, what they are, and the upstream's validators."""

    id: str  # sha256(source NUL object key)[:32]
    source: str
    object_key: str
    storage_key: str
    content_hash: str  # sha256 of the bytes: the upstream version
    format: str
    size_bytes: int
    width: int
    height: int
    etag: str | None
    last_modified: str | None
    fetched_at: datetime
    checked_at: datetime
    analysis: Analysis | None = None
    working_copies: tuple[WorkingCopy, ...] = ()  # smallest first, as an image's

    @property
    def owner(self) -> str:
        """The prefix the source's objects and derivatives are stored under."""
        return f"sources/{self.source}"

    def as_image(self) -> ImageRecord:
        """The object as the render pipeline sees an image (origin.derivatives): owned by its
        source's prefix, so a derivative is stored at ``sources/{source}/{id}/derived/…``."""
        return ImageRecord(
            id=self.id,
            user_id=self.owner,
            original_filename=self.object_key.rsplit("/", 1)[-1][:255],
            mime_type=f"image/{self.format}",
            format=self.format,
            size_bytes=self.size_bytes,
            width=self.width,
            height=self.height,
            storage_key=self.storage_key,
            content_hash=self.content_hash,
            created_at=self.fetched_at,
            analysis=self.analysis,
            working_copies=self.working_copies,
        )


@dataclass(frozen=True)
class TransformationRecord:
    """A user's named transformation (``/api/transformations/{name}``, used as ``t_<name>``).

    ``chain`` is written as the URL grammar writes it; ``unsigned`` lets a public image be
    served through it without a signature, in one of ``formats`` (output extensions)."""

    user_id: str
    name: str
    chain: str
    unsigned: bool
    formats: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
