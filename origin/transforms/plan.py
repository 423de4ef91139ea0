"""What to do with one image: a ``Plan`` of ``Stage``s, each an ordered tuple of steps.

Both are immutable; ``Plan.canonical()`` is equal for equal meaning (the SEO name is not
part of it) and names the derivative (origin.cache.Key).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from origin.transforms.arguments import Colour
from origin.transforms.declarations import Applied


@dataclass(frozen=True)
class Stage:
    """One ``/``-separated stage: its steps in the registry's order (resize, rotate, flip,
    effects as written, background, overlay)."""

    steps: tuple[Applied, ...] = ()

    def __iter__(self) -> Iterator[Applied]:
        return iter(self.steps)

    def value(self, name: str) -> Any:
        """The value of the step named ``name`` (``resize``, ``blur``…), or None."""
        for step in self.steps:
            if step.transform.name == name:
                return step.value
        return None

    def canonical(self) -> str:
        return ",".join(token for step in self.steps for token in step.spell())


@dataclass(frozen=True)
class Plan:
    """What to do with one image.

    `format` is the output format (one of FORMATS), or None for "the source's format": that
    happens for `.json` without `f_` (the source format is unknown at parse time) and for a
    query without `format` (/transform). The renderer resolves None against the source.
    """

    image_id: str
    stages: tuple[Stage, ...]
    format: str | None
    name: str
    ext: str
    metadata_only: bool
    negotiated: bool
    quality: int | None
    auto_quality: bool
    overlay_ids: tuple[str, ...]
    flatten: Colour | None = field(default=None)  # last `b_` of the chain, for alpha-less output
    client_hints: tuple[str, ...] = ()  # "width" for w_auto, "dpr" for dpr_auto (hints.py)
    flags: tuple[str, ...] = ()  # fl_ output flags, sorted (origin.transforms.flags)

    def canonical(self) -> str:
        """Equal for equal meaning; the SEO `name` is not part of it."""
        parts = [self.image_id, *(s.canonical() for s in self.stages)]
        out = [f"f_{self.format or 'source'}"]
        if self.auto_quality:
            out.append("q_auto")
        elif self.quality is not None:
            out.append(f"q_{self.quality}")
        if self.flags:
            out.append("fl_" + ".".join(self.flags))
        if self.metadata_only:
            out.append("json")
        parts.append(",".join(out))
        return "/".join(parts)
