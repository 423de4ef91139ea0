"""The plans of verified paths, parsed once: an LRU in front of the registry's parser.

Parsing a path costs more than answering a cache hit, so a path's ``Plan`` is kept with its
canonical string and the last derivative key made from it (reused while the image and
overlays stay the same). ``Accept`` matters only to an ``f_auto`` path, and only through the
format it negotiates: a plan per format, not per browser's ``Accept`` (at most two others:
AVIF, WebP). A ``w_auto``/``dpr_auto`` path has a plan per snapped Client Hints (at most
AUTO_WIDTHS + 1 times 6). A path that names a user's transformation (``t_``) is kept per
version of the owner's definitions (origin.named), so an edit is never answered from the
old plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from cachetools import LRUCache

from origin.cache import Key, key_of
from origin.hints import NO_HINTS, Hints, resolve
from origin.named import Named
from origin.records import ImageRecord
from origin.request import Headers
from origin.transforms.formats import negotiated_format
from origin.transforms.limits import Limits
from origin.transforms.parse import parse_path
from origin.transforms.plan import Plan

PLAN_CACHE_ENTRIES = 4096


class Prepared:
    """A parsed path, and the last key made from it (reused while the sources match)."""

    __slots__ = ("canonical", "formats", "key", "plan", "variants")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.canonical = plan.canonical()
        self.key: Key | None = None
        self.formats: dict[str, Prepared] | None = None
        self.variants: dict[Hints, Prepared] | None = None

    def key_for(self, image: ImageRecord, overlays: tuple[ImageRecord, ...]) -> Key:
        """The derivative's key, reused while the image and overlays stay the same."""
        hashes = tuple(o.content_hash for o in overlays)
        last = self.key
        if last is not None and last.content_hash == image.content_hash and last.overlays == hashes:
            return last
        key = self.key = key_of(image, self.canonical, self.plan.format or image.format, hashes)
        return key


class Plans:
    """The process's plan cache (``PLAN_CACHE_ENTRIES`` paths)."""

    def __init__(
        self, presets: Mapping[str, str], limits: Limits, auto_widths: tuple[int, ...]
    ) -> None:
        self.presets = presets
        self.limits = limits
        self.auto_widths = auto_widths
        self.paths: LRUCache[str, Prepared] = LRUCache(PLAN_CACHE_ENTRIES)

    def prepared(self, path: str, headers: Headers, named: Named | None = None) -> Prepared:
        """The plan of a verified ``path`` for this request's ``Accept`` and Client Hints;
        ``named``: what ``t_`` means for the image's owner (the operator's presets if None)."""
        presets, entry = self.presets, path
        if named is not None and named.version:
            presets, entry = named.chains, f"{path}\n{named.version}"
        prepared = self._negotiated(path, entry, presets, headers.accept)
        if prepared.plan.client_hints:
            prepared = self._hinted(prepared, path, presets, headers)
        return prepared

    def _negotiated(
        self, path: str, entry: str, presets: Mapping[str, str], accept: str | None
    ) -> Prepared:
        cached = self.paths.get(entry)
        if cached is None:
            plan = parse_path(path, presets=presets, limits=self.limits)
            cached = self.paths[entry] = Prepared(plan)
        plan = cached.plan
        if not plan.negotiated:
            return cached
        fmt = negotiated_format(accept, plan.format)
        if fmt is None or fmt == plan.format:
            return cached
        if cached.formats is None:
            cached.formats = {}
        found = cached.formats.get(fmt)
        if found is None:
            found = cached.formats[fmt] = Prepared(dataclasses.replace(plan, format=fmt))
        return found

    def _hinted(
        self, prepared: Prepared, path: str, presets: Mapping[str, str], headers: Headers
    ) -> Prepared:
        """The plan for this request's snapped hints (``prepared`` itself, parsed without
        hints, when the request gave none)."""
        hints = resolve(prepared.plan.client_hints, headers.width, headers.dpr, self.auto_widths)
        if hints == NO_HINTS:
            return prepared
        if prepared.variants is None:
            prepared.variants = {}
        found = prepared.variants.get(hints)
        if found is None:
            plan = parse_path(
                path,
                accept=headers.accept,
                presets=presets,
                limits=self.limits,
                hints=hints,
            )
            found = prepared.variants[hints] = Prepared(plan)
        return found
