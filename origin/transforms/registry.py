"""The registry: every token and every transform, in one literal order.

``STAGE_ORDER`` is both how a stage is spelled canonically and the order its steps run in:
the effects on faces (they see the stage's input, where the stored faces hold), resize,
rotate, flip, the other effects (as written), background, overlay. ``TOKENS`` maps each
key of the URL grammar to its declaration; ``RULES`` has every rule with the tokens that
declare it, in the order a stage's rules are checked (the first broken one is the answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from origin.transforms import effects, flags, orient, output, overlay, resize
from origin.transforms.arguments import Name
from origin.transforms.declarations import Rule, Scope, Token, Transform

PRESET = Token(
    "t",
    "preset",
    # "\-": the pattern is also an <input pattern>, which browsers compile with the "v" flag
    Name(r"[A-Za-z0-9_.\-]{1,64}", "malformed preset name"),
    "A named chain (the operator's PRESETS_FILE, or the image owner's /api/transformations; "
    "presets win), expanded in place: a one-stage chain joins its stage, a longer one must be "
    "alone in its stage; a named chain cannot use t_.",
    scope=Scope.PRESET,
)

# Where the effects go in a stage: each is a transform of its own (effects.EFFECTS).
FACE_EFFECTS_SLOT = "face effects"  # effects.ON_FACES
EFFECTS_SLOT = "effects"  # every other effect
STAGE_ORDER: tuple[Transform | str, ...] = (
    FACE_EFFECTS_SLOT,
    resize.RESIZE,
    orient.ROTATE,
    orient.FLIP,
    EFFECTS_SLOT,
    output.BACKGROUND,
    overlay.OVERLAY,
)
STAGE_TRANSFORMS: tuple[Transform, ...] = tuple(t for t in STAGE_ORDER if isinstance(t, Transform))

TOKENS: Mapping[str, Token] = MappingProxyType(
    {
        token.key: token
        for token in (
            *resize.RESIZE.tokens,
            orient.ROTATE_TOKEN,
            orient.FLIP_TOKEN,
            effects.EFFECT_TOKEN,
            output.BACKGROUND_TOKEN,
            *overlay.OVERLAY.tokens,
            output.FORMAT,
            output.QUALITY,
            output.VERSION,
            flags.FLAGS,
            PRESET,
        )
    }
)
# Every rule with the keys of the tokens that declare it (token order), checked by rank.
RULES: tuple[tuple[Rule, tuple[str, ...]], ...] = tuple(
    sorted(
        (
            (rule, tuple(key for key, token in TOKENS.items() if rule in token.rules))
            for rule in {rule: None for token in TOKENS.values() for rule in token.rules}
        ),
        key=lambda found: found[0].rank,
    )
)
PLAN_KEYS = tuple(key for key, token in TOKENS.items() if token.scope is Scope.PLAN)

# Pictures of docs/url-api.md that no single transform owns (name -> chain).
GENERAL_EXAMPLES: Mapping[str, str] = MappingProxyType(
    {
        "original": "",
        "q_10": "w_200,q_10",
        "chain": "w_200,h_200,c_fill,g_auto/e_grayscale/r_90,e_contrast:30",
    }
)


def in_slot(slot: str, declared: Iterable[Transform]) -> list[Transform]:
    """The effects of ``declared`` that go in ``slot`` (in their order)."""
    first = slot == FACE_EFFECTS_SLOT
    return [t for t in declared if (t.name in effects.ON_FACES) == first]


def transforms() -> tuple[Transform, ...]:
    """Every transform: the stage's, with the effects where they go."""
    found: list[Transform] = []
    for entry in STAGE_ORDER:
        if isinstance(entry, Transform):
            found.append(entry)
        else:
            found.extend(in_slot(entry, effects.EFFECTS.values()))
    return tuple(found)


def examples() -> dict[str, str]:
    """Every picture of docs/url-api.md: its name and chain."""
    found = dict(GENERAL_EXAMPLES)
    for transform in transforms():
        found.update(transform.examples)
    return found
