"""Output: ``f_`` (format) and ``q_`` (quality) for the whole plan, and ``b_`` (the stage's
background: what ``c_pad`` and a turn fill with, and what an output without alpha is
flattened onto — the chain's last ``b_``). The encoders themselves are origin.encode's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from origin.transforms.arguments import Choice, Int, integer
from origin.transforms.declarations import Phase, Rule, Scope, Token, Transform
from origin.transforms.formats import FORMATS
from origin.transforms.limits import Limits
from origin.transforms.padding import BackgroundArg, Fill, spell_background


@dataclass(frozen=True)
class QualityArgument:
    """1–100, or ``auto`` (None: the lowest quality that keeps the image the same)."""

    def parse(self, token: str, text: str, limits: Limits) -> int | None:
        return None if text == "auto" else integer(token, text, 1, 100)

    def describe(self) -> dict[str, Any]:
        return {"type": "integer", "min": 1, "max": 100, "auto": "q_auto"}


FORMAT = Token(
    "f",
    "format",
    Choice((*FORMATS, "auto"), aliases={"jpg": "jpeg"}, why="unknown format"),
    "Output format; auto = AVIF, then WebP, from Accept, else the extension's.",
    scope=Scope.PLAN,
)
QUALITY = Token(
    "q",
    "quality",
    QualityArgument(),
    "Encoder quality 1–100, or auto: the lowest that keeps the image visually the same.",
    scope=Scope.PLAN,
)
VERSION = Token(
    "v",
    "version",
    Int(1, 1_000_000_000),
    "The image's version (minted URLs of a replaced image carry it): it only makes the URL "
    "new for caches; any version answers the current image.",
    scope=Scope.PLAN,
)
BACKGROUND_TOKEN = Token(
    "b",
    "background",
    BackgroundArg(),
    "rrggbb, rrggbbaa, white, black or transparent: the background for c_pad, a turn, and "
    "(the chain's last) flattening for formats without alpha. For c_pad also auto (the "
    "border's dominant colour) or blurred[:1..2000] (a blurred, enlarged copy of the image).",
    rules=(
        Rule(
            14,
            "b_auto and b_blurred need c_pad",
            lambda s: isinstance(s.value("b"), Fill) and s.value("c") != "pad",
        ),
    ),
)

BACKGROUND = Transform(
    name="background",
    phase=Phase.SETTING,
    doc="The stage's background colour (read by pad, rotate and the output).",
    tokens=(BACKGROUND_TOKEN,),
    build=lambda s, b: s.value("b"),
    spell=lambda value: [f"b_{spell_background(value)}"],
    examples={
        "b": "w_200,h_100,c_pad,b_ff6600",
        "b_auto": "w_200,h_100,c_pad,b_auto",
        "b_blurred": "w_200,h_100,c_pad,b_blurred",
    },
)
