"""Argument grammar as data: how a token's value is read, spelled and described.

Each kind of value is a small frozen object with ``parse(token, text, limits)`` (the
percent-decoded text after ``key_``; ``token`` is the token as written, for messages),
``spell(value)`` (its canonical text) and ``describe()`` (its JSON for ``GET /api/grammar``).
A bad value raises ``BadTransform`` (or ``LimitExceeded`` past a limit) naming the token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

from origin.errors import BadTransform, LimitExceeded
from origin.errors import shown as show
from origin.transforms.limits import Limits

Colour = tuple[int, int, int, int]
# An integer is pixels; a float is a share of the input side (after `dpr_`, possibly above 1).
Length = int | float

NAMED_COLOURS: Mapping[str, Colour] = MappingProxyType(
    {
        "white": (255, 255, 255, 255),
        "black": (0, 0, 0, 255),
        "transparent": (0, 0, 0, 0),
    }
)

_INT = re.compile(r"-?[0-9]+", re.ASCII)
MAX_DIGITS = 10  # longer is out of every range (v_'s top is 10**9), and never converted
_PIXELS = re.compile(r"[0-9]{1,7}", re.ASCII)
_SHARE = re.compile(r"(?:0?\.[0-9]{1,6}|1\.0{1,6})", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?", re.ASCII)
_RATIO = re.compile(r"([0-9]{1,5}):([0-9]{1,5})", re.ASCII)
_DPR = re.compile(r"[0-9](?:\.[0-9]{1,2})?", re.ASCII)
IMAGE_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)


def bad(token: str, why: str) -> BadTransform:
    return BadTransform(f"{why}: '{show(token)}'")


class Argument(Protocol):
    def parse(self, token: str, text: str, limits: Limits) -> Any: ...
    def describe(self) -> dict[str, Any]: ...


def integer(token: str, text: str, low: int, high: int) -> int:
    if not _INT.fullmatch(text):
        raise bad(token, "expected an integer")
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise bad(token, f"out of range {low}..{high}")
    number = int(text)
    if not low <= number <= high:
        raise bad(token, f"out of range {low}..{high}")
    return number


@dataclass(frozen=True)
class Int:
    """An integer in ``low..high``; ``modulo`` folds it (degrees)."""

    low: int
    high: int
    default: int | None = None
    modulo: int | None = None

    def parse(self, token: str, text: str, limits: Limits) -> int:
        number = integer(token, text, self.low, self.high)
        return number % self.modulo if self.modulo else number

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "integer", "min": self.low, "max": self.high}
        if self.default is not None:
            found["default"] = self.default
        return found


@dataclass(frozen=True)
class Choice:
    """One of ``options`` (``aliases`` map other spellings onto them); ``in_overlay``: the
    ones a stage with ``l_`` takes, when fewer (the grammar says so for the console)."""

    options: tuple[str, ...]
    default: str | None = None
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    why: str = "unknown value"
    in_overlay: tuple[str, ...] | None = None

    def parse(self, token: str, text: str, limits: Limits) -> str:
        text = self.aliases.get(text, text)
        if text not in self.options:
            raise bad(token, self.why)
        return text

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "choice", "options": list(self.options)}
        if self.aliases:
            found["aliases"] = dict(self.aliases)
        if self.default is not None:
            found["default"] = self.default
        if self.in_overlay is not None:
            found["overlay_options"] = list(self.in_overlay)
        return found


def pixels_or_share(token: str, text: str, limits: Limits) -> Length:
    if _SHARE.fullmatch(text):
        share = float(text)
        if share <= 0:
            raise bad(token, "a share must be in (0,1]")
        return share
    if not _PIXELS.fullmatch(text):
        raise bad(token, "expected pixels or a share in (0,1]")
    px = int(text)
    if px < 1:
        raise bad(token, "expected at least 1 px")
    if px > limits.max_output_dimension:
        raise LimitExceeded(
            f"'{show(token)}' is above the maximum dimension {limits.max_output_dimension}"
        )
    return px


def spell_length(value: Length) -> str:
    """Pixels as an integer; a share always with a point (`1.0`, never `1`: that is 1 px)."""
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)).normalize(), "f")
    return text if "." in text else text + ".0"


@dataclass(frozen=True)
class Size:
    """Pixels (1 to ``MAX_OUTPUT_DIMENSION``) or a share of the input side in (0, 1]."""

    def parse(self, token: str, text: str, limits: Limits) -> Length:
        return pixels_or_share(token, text, limits)

    def describe(self) -> dict[str, Any]:
        return {"type": "length", "pixels": [1, "MAX_OUTPUT_DIMENSION"], "share": "(0,1]"}


@dataclass(frozen=True)
class AutoWidth:
    """`w_auto[:fallback]`: the width hint, else `fallback` CSS px (times the DPR)."""

    fallback: int | None = None


@dataclass(frozen=True)
class Width:
    """``w_``: a ``Size``, or ``auto`` / ``auto:<fallback px>`` (the width Client Hint)."""

    def parse(self, token: str, text: str, limits: Limits) -> Length | AutoWidth:
        if text == "auto":
            return AutoWidth()
        if text.startswith("auto:"):
            fallback = pixels_or_share(token, text[5:], limits)
            if not isinstance(fallback, int):
                raise bad(token, "w_auto's fallback must be pixels")
            return AutoWidth(fallback)
        return pixels_or_share(token, text, limits)

    def describe(self) -> dict[str, Any]:
        return {**Size().describe(), "auto": "auto or auto:<fallback px>: the width hint"}


AUTO_DPR = "auto"  # `dpr_auto`: the DPR hint, else 1


@dataclass(frozen=True)
class Dpr:
    """1 to 4 with up to two decimals, or ``auto`` (the DPR Client Hint)."""

    def parse(self, token: str, text: str, limits: Limits) -> Decimal | str:
        if text == AUTO_DPR:
            return AUTO_DPR
        if not _DPR.fullmatch(text):
            raise bad(token, "expected 1 to 4 with up to two decimals")
        dpr = Decimal(text)
        if not Decimal(1) <= dpr <= Decimal(4):
            raise bad(token, "out of range 1..4")
        return dpr

    def describe(self) -> dict[str, Any]:
        return {"type": "decimal", "min": 1, "max": 4, "decimals": 2, "auto": "the DPR hint"}


@dataclass(frozen=True)
class Ratio:
    """``W:H``, reduced (``32:18`` is ``16:9``), at most 100:1 either way."""

    def parse(self, token: str, text: str, limits: Limits) -> tuple[int, int]:
        m = _RATIO.fullmatch(text)
        if not m or int(m[1]) == 0 or int(m[2]) == 0:
            raise bad(token, "expected W:H")
        w, h = int(m[1]), int(m[2])
        if max(w / h, h / w) > 100:
            raise bad(token, "aspect ratio out of range")
        d = math.gcd(w, h)
        return (w // d, h // d)

    def describe(self) -> dict[str, Any]:
        return {"type": "ratio", "format": "W:H", "max": "100:1"}


def spell_colour(c: Colour) -> str:
    return "".join(f"{v:02x}" for v in (c if c[3] != 255 else c[:3]))


@dataclass(frozen=True)
class ColourArg:
    """``rrggbb``, ``rrggbbaa`` or a colour name."""

    def parse(self, token: str, text: str, limits: Limits) -> Colour:
        if text in NAMED_COLOURS:
            return NAMED_COLOURS[text]
        if not _HEX.fullmatch(text):
            raise bad(token, "expected rrggbb, rrggbbaa or a colour name")
        v = text.lower()
        alpha = int(v[6:8], 16) if len(v) == 8 else 255
        return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16), alpha)

    def describe(self) -> dict[str, Any]:
        return {"type": "colour", "formats": ["rrggbb", "rrggbbaa"], "names": list(NAMED_COLOURS)}


@dataclass(frozen=True)
class Name:
    """A name matching ``pattern`` (a preset's)."""

    pattern: str
    why: str

    def parse(self, token: str, text: str, limits: Limits) -> str:
        if not re.fullmatch(self.pattern, text, re.ASCII):
            raise bad(token, self.why)
        return text

    def describe(self) -> dict[str, Any]:
        return {"type": "name", "pattern": self.pattern}
