"""Client Hints for ``w_auto`` and ``dpr_auto``: raw header values → snapped ``Hints``.

Pure: no web framework. The handler collects the raw values of ``Sec-CH-Width``/``Width``
and ``Sec-CH-DPR``/``DPR`` in its single pass over the request headers; ``resolve`` turns
them into the few values a plan may depend on, so caches stay small:

- a width hint (physical pixels: CSS width × DPR, as the hint is defined) snaps UP to the
  nearest ``AUTO_WIDTHS`` entry, and to the largest entry above it;
- a DPR hint snaps UP to the nearest of 1, 1.5, 2, 3, 4 (4 is ``dpr_``'s own cap);
- a missing or malformed hint is no hint (the URL's fallback applies, never an error).

``Sec-CH-*`` wins over the legacy header of the same meaning when both are sent.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal

DPR_STEPS = (Decimal(1), Decimal("1.5"), Decimal(2), Decimal(3), Decimal(4))
# Sent with every answer whose URL uses w_auto or dpr_auto (see docs/responsive.md: browsers
# act on Accept-CH only in a page's own answer, so this is for the record and for proxies).
ACCEPT_CH = b"Sec-CH-Width, Sec-CH-DPR, Width, DPR"
WIDTH = "width"  # the kinds of hint a Plan may use (Plan.client_hints)
DPR = "dpr"
VARY_NAMES = {WIDTH: "Sec-CH-Width, Width", DPR: "Sec-CH-DPR, DPR"}
# The request headers read, as ASGI names them: width (Sec-CH first), then DPR.
HEADERS = (b"sec-ch-width", b"width", b"sec-ch-dpr", b"dpr")

# Any well-formed number, however large (above the largest step: the largest step); 64
# digits past leading zeros bound what int() and Decimal read. nginx.conf's maps agree.
_WIDTH_VALUE = re.compile(rb"\s*0*([0-9]{1,64})\s*")
_DPR_VALUE = re.compile(rb"\s*0*([0-9]{1,64}(?:\.[0-9]{1,6})?)\s*")


@dataclass(frozen=True)
class Hints:
    """Snapped hint values; None where the request gave no usable hint."""

    width: int | None = None  # physical px, one of AUTO_WIDTHS
    dpr: Decimal | None = None  # one of DPR_STEPS


NO_HINTS = Hints()


def snap_width(raw: bytes | None, widths: tuple[int, ...]) -> int | None:
    """The smallest of ``widths`` (ascending) at least ``raw`` px; the largest above them."""
    if raw is None or not widths:
        return None
    found = _WIDTH_VALUE.fullmatch(raw)
    if found is None or int(found[1]) < 1:
        return None
    return widths[min(bisect_left(widths, int(found[1])), len(widths) - 1)]


def snap_dpr(raw: bytes | None) -> Decimal | None:
    """The smallest of ``DPR_STEPS`` at least ``raw``; 4 above it; None for no usable value."""
    if raw is None:
        return None
    found = _DPR_VALUE.fullmatch(raw)
    if found is None or Decimal(found[1].decode("ascii")) <= 0:
        return None
    value = Decimal(found[1].decode("ascii"))
    return DPR_STEPS[min(bisect_left(DPR_STEPS, value), len(DPR_STEPS) - 1)]


def resolve(
    uses: tuple[str, ...], width: bytes | None, dpr: bytes | None, widths: tuple[int, ...]
) -> Hints:
    """The hints a plan that ``uses`` those kinds depends on (only those: fewer variants)."""
    return Hints(
        width=snap_width(width, widths) if WIDTH in uses else None,
        dpr=snap_dpr(dpr) if DPR in uses else None,
    )


def vary(negotiated: bool, uses: tuple[str, ...]) -> bytes:
    """``Vary`` for an answer: ``Accept`` with ``f_auto``, and the hint headers consulted."""
    names = ["Accept"] if negotiated else []
    names += [VARY_NAMES[kind] for kind in (WIDTH, DPR) if kind in uses]
    return ", ".join(names).encode("ascii")
