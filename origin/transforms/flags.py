"""Flags: ``fl_<flag>[.<flag>…]`` — how the output is written, for the whole plan.

``fl_`` is also the flip token (``fl_h``, ``fl_v``, ``fl_hv``: origin.transforms.orient); a
value made of flag names is read as flags instead, and several are joined with ``.`` as in
Cloudinary (``fl_keep_icc.smaller``). Flags hold for the whole plan, from whichever stage
holds them (like ``f_`` and ``q_``), and are spelled in the canonical name sorted.

- ``keep_icc``: an RGB source with an embedded profile keeps its pixels in that profile and
  the profile is embedded in the output (by default every source is converted to sRGB).
  CMYK and grey sources are still converted to sRGB (no output format here carries CMYK);
- ``keep_copyright``: the copyright and artist EXIF fields, the rights fields of IPTC
  (by-line, credit, source, copyright notice) and of XMP (``dc:rights``, ``dc:creator``,
  ``xmpRights:*``, ``photoshop:Credit``/``Source``) are written into the output; everything
  else (GPS, camera, dates, comments) is still stripped;
- ``smaller``: when the derivative comes out larger than the original, the original's bytes
  are answered instead — only when nothing visible changed: same size, same format, no
  step but a resize that leaves the size as it is, and an original without EXIF, XMP or
  IPTC (so stripping never depends on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from origin.transforms.arguments import bad
from origin.transforms.declarations import Scope, Token
from origin.transforms.limits import Limits

FLAG_NAMES = ("keep_copyright", "keep_icc", "smaller")
FLIPS = ("h", "v", "hv")


@dataclass(frozen=True)
class Flags:
    """A set of flags, sorted; read under the ``flags`` key (a plan-level token)."""

    names: tuple[str, ...]
    token_key = "flags"  # parse.split_tokens files the token under this key

    def spell(self) -> str:
        return "fl_" + ".".join(self.names)


@dataclass(frozen=True)
class FlipOrFlags:
    """``h``, ``v``, ``hv`` (a flip), or flag names joined with ``.``."""

    def parse(self, token: str, text: str, limits: Limits) -> str | Flags:
        if text in FLIPS:
            return text
        names = text.split(".")
        if any(name not in FLAG_NAMES for name in names):
            raise bad(token, f"expected h, v, hv or flags ({', '.join(FLAG_NAMES)})")
        if len(set(names)) != len(names):
            raise bad(token, "repeated flag")
        return Flags(tuple(sorted(names)))

    def describe(self) -> dict[str, Any]:
        return {"type": "choice", "options": list(FLIPS), "flags": list(FLAG_NAMES)}


FLAGS = Token(
    "flags",
    "flags",
    None,  # written as fl_<flag>[.<flag>…]: the fl_ token's argument files it here
    "Output flags for the whole plan: keep_icc, keep_copyright, smaller (joined with '.').",
    scope=Scope.PLAN,
)
