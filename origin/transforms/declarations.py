"""What a transform declaration is: tokens with their grammar and rules, a phase, a
canonical spelling, a size without pixels, a cost, and ``apply``.

A *token* is ``key_value`` in a URL (``w_300``); a *transform* is one step of a stage that
reads one or more tokens (``resize`` reads ``w_ h_ c_ g_ x_ y_ ar_ dpr_``; every effect is a
transform of its own, written ``e_<name>``). A stage is an ordered tuple of ``Applied``
(transform, value) pairs, in the registry's order (origin.transforms.registry), which is
both the canonical spelling's order and the order the steps run in.

Everything a step receives besides the frames is immutable: its own value and the
``StageContext`` the renderer makes for its stage.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from origin.pixels import Frames as Frames  # a transform's working image, re-exported here
from origin.transforms.arguments import Argument, Colour
from origin.transforms.limits import Limits

Size = tuple[int, int]


class Phase(enum.IntEnum):
    """When a step runs. LOAD (shrink-on-load) comes first, OUTPUT (``f_``/``q_`` and the
    encoder) last; in between, each stage runs its steps in this order."""

    LOAD = 0
    GEOMETRY = 1
    ORIENT = 2
    EFFECT = 3
    SETTING = 4  # read by other steps (b_: pad, rotate and the output's flatten), no pixels
    OVERLAY = 5
    OUTPUT = 6


class Scope(enum.Enum):
    STAGE = "stage"  # belongs to its stage
    PLAN = "plan"  # f_, q_: set the whole plan, from whichever stage holds them
    PRESET = "preset"  # t_: expanded in place before anything else


@dataclass(frozen=True)
class Written:
    """A token as parsed: its key, how it was written (for messages), its value."""

    key: str
    raw: str
    value: Any


class Seen:
    """The tokens of one stage by key (effects apart, in the order written)."""

    __slots__ = ("effects", "tokens")

    def __init__(self, tokens: dict[str, Written], effects: list[Written]) -> None:
        self.tokens = tokens
        self.effects = effects

    def __contains__(self, key: str) -> bool:
        return key in self.tokens

    def raw(self, key: str) -> str:
        found = self.tokens.get(key)
        return "" if found is None else found.raw

    def value(self, key: str, default: Any = None) -> Any:
        found = self.tokens.get(key)
        return default if found is None else found.value


@dataclass(frozen=True, eq=False)
class Rule:
    """A condition on a stage that, when ``broken``, refuses the token that declares it with
    ``message`` (400 ``bad_transform``: "<message>: '<token as written>'"). A stage's rules
    are checked by ``rank``, then in token order; the first broken one is the answer (so a
    URL with several faults is always told the same one)."""

    rank: int
    message: str
    broken: Callable[[Seen], bool]


@dataclass(frozen=True)
class Token:
    """One ``key_value`` of the URL grammar."""

    key: str
    title: str
    argument: Argument | None  # None: the value is read by its transform (``e_``, ``l_``)
    doc: str
    rules: tuple[Rule, ...] = ()
    scope: Scope = Scope.STAGE
    aliases: tuple[str, ...] = ()  # other keys that mean the same
    # Which Client Hint (origin.hints.WIDTH / DPR) a parsed value consults, if any.
    hint: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Building:
    """What a transform's ``build`` may read besides the stage's tokens."""

    limits: Limits
    hints: Any  # origin.hints.Hints: the request's snapped Client Hints


@dataclass(frozen=True)
class StageContext:
    """What a step receives besides the frames and its value. Immutable; one per stage.

    ``planned_from``, ``cut_at_load``, ``focal`` and ``faces`` are set for the first stage
    only: the size the source was scaled from while loading (shrink-on-load), whether loading
    already cut the stage's fixed crop (origin.render.fixed_cut), its stored attention point
    and its stored faces (origin.faces; None: not known, found when a step needs them)."""

    limits: Limits
    background: Colour | None = None
    fill: Any = None  # c_pad's b_auto / b_blurred (origin.transforms.padding.Fill)
    overlays: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    planned_from: Size | None = None
    cut_at_load: bool = False
    focal: tuple[float, float] | None = None
    faces: tuple[tuple[float, float, float, float], ...] | None = None


Apply = Callable[[Frames, Any, StageContext], Frames]


@dataclass(frozen=True, eq=False)
class Transform:
    """One step of a stage, declared once.

    - ``tokens``: what it reads, in canonical order; ``rules`` of those are checked first;
    - ``build(seen, building)``: its value for the stage, or None when the stage leaves it
      out (defaults only);
    - ``spell(value)``: the canonical tokens (defaults dropped, values normalised);
    - ``size(size, value, limits)``: the output size without pixels (None: unchanged);
    - ``cost(value)``: its weight per pixel in the work budget (0: not counted);
    - ``held``: when more of the chain reads its output, compute it once into memory (a
      neighbourhood operation read tile by tile would run again for every tile);
    - ``apply(frames, value, context)``: the libvips work (None: nothing to draw).
    """

    name: str
    phase: Phase
    doc: str
    tokens: tuple[Token, ...]
    build: Callable[[Seen, Building], Any]
    spell: Callable[[Any], Sequence[str]]
    apply: Apply | None = None
    size: Callable[[Size, Any, Limits], Size] | None = None
    cost: Callable[[Any], float] | None = None
    held: bool = False
    examples: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Applied:
    """A transform with its value, as one step of a stage."""

    transform: Transform
    value: Any

    def spell(self) -> Sequence[str]:
        return self.transform.spell(self.value)
