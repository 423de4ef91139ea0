"""W1–W5 and the distinct parameter sets that keep cold runs from ever repeating a URL.

A cold workload's URL list is ``POOL`` parameter sets drawn without replacement (fixed seed)
from a grid around the nominal request: fit boxes of 280–320 × 180–220 with q 76–84 for
W1/W2, crop corners 80–179 × 80–179 for W3, fit boxes 220–259 × 120–149 for W5. Each
distinct set is a distinct canonical plan (a distinct derivative key for imgorigin), and
the harness starts every run where the previous one stopped, so no URL repeats within a
server's runs. The first entry is always the nominal request (the one probed for bytes).
W4 is the nominal W1 URL, repeated: a cache hit after the first request.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]
POOL = 20_000
SEED = 7


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    source: str  # file name of the original
    ext: str  # output format extension
    kind: str  # "fit" or "crop"
    mode: str  # "cold" (caches off, URLs never repeat) or "hot" (one URL, caches on)
    nominal: Params

    def params(self) -> list[Params]:
        if self.mode == "hot":
            return [self.nominal]
        grid = list(itertools.product(*(values for _, values in self._axes())))
        random.Random(SEED).shuffle(grid)
        names = [name for name, _ in self._axes()]
        fixed = {k: v for k, v in self.nominal.items() if k not in names}
        chosen = [self.nominal]
        for combo in grid:
            p = dict(fixed, **dict(zip(names, combo, strict=True)))
            if p != self.nominal:
                chosen.append(p)
            if len(chosen) >= POOL:
                break
        return chosen

    def _axes(self) -> list[tuple[str, range]]:
        if self.kind == "crop":
            return [("x", range(80, 180)), ("y", range(80, 180))]
        if self.ext == "gif":
            return [("w", range(220, 260)), ("h", range(120, 150))]
        return [("w", range(280, 321)), ("h", range(180, 221)), ("q", range(76, 85))]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "W1",
            "4000×3000 JPEG → fit 300×200 → JPEG q80",
            "w1.jpg",
            "jpg",
            "fit",
            "cold",
            {"w": 300, "h": 200, "q": 80},
        ),
        Workload(
            "W2",
            "4000×3000 JPEG → fit 300×200 → WebP q80",
            "w1.jpg",
            "webp",
            "fit",
            "cold",
            {"w": 300, "h": 200, "q": 80},
        ),
        Workload(
            "W3",
            "1920×1080 PNG → crop 1000×600 at 100,100 → rotate 90 → PNG",
            "w3.png",
            "png",
            "crop",
            "cold",
            {"x": 100, "y": 100, "cw": 1000, "ch": 600, "r": 90},
        ),
        Workload(
            "W4",
            "W1 from the result cache (hit)",
            "w1.jpg",
            "jpg",
            "fit",
            "hot",
            {"w": 300, "h": 200, "q": 80},
        ),
        Workload(
            "W5",
            "480×270 GIF, 24 frames → fit 240×135 → animated GIF",
            "w5.gif",
            "gif",
            "fit",
            "cold",
            {"w": 240, "h": 135},
        ),
    )
}
