"""W1–W6 and the distinct parameter sets that keep cold runs from ever repeating a URL.

A cold workload's URL list is ``POOL`` parameter sets drawn without replacement (fixed seed)
from a grid around the nominal request: fit boxes of 280–320 × 180–220 with q 76–84 for
W1/W2, crop corners 80–179 × 80–179 for W3, fit boxes 220–259 × 120–149 for W5, fill
boxes 180–220 × 280–320 with q 76–84 for W7. Each
distinct set is a distinct canonical plan (a distinct derivative key for imgorigin), and
the harness starts every run where the previous one stopped, so no URL repeats within a
server's runs. The first entry is always the nominal request (the one probed for bytes).
W4 is the nominal W1 URL, repeated: a cache hit after the first request. W7 (imgorigin
only: no peer detects faces out of the box) is a group photograph, each request a portrait
``g_face`` fill with ``e_blur_faces`` over the faces the upload stored: its CPU per request
is the table's, beside W1's.

W6 is W1 from a remote source (``benchmarks/upstream.py``: a loopback static server that
serves W1's photo under any ``/photos/<object>/w1.jpg``), in two rows. Each parameter set
also names the remote object. **W6-cold**: a new object per request (``c0``, ``c1``, …), so
every request fetches before it renders. **W6-warm**: ``WARM_OBJECTS`` objects in turn
(``w0``…``w3``), each requested once before the run (``primers``, a box outside the grid),
so every measured request renders a source the server already keeps. Both walk W1's grid
of renders, so no derivative repeats either.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]
POOL = 20_000
SEED = 7
WARM_OBJECTS = 4  # W6-warm's remote objects, fetched once before the run
PRIMER = {"w": 200, "h": 150, "q": 80}  # W6-warm's fetching request: outside every grid


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    source: str  # file name of the original
    ext: str  # output format extension
    kind: str  # "fit" or "crop"
    mode: str  # "cold" (caches off, URLs never repeat) or "hot" (one URL, caches on)
    nominal: Params
    remote: str = ""  # W6: "cold" (a new remote object per request) or "warm" (a few, kept)
    ours_only: bool = False  # W7: no peer runs it, and it has no floor row or target

    @property
    def server_mode(self) -> str:
        """How the servers are started for it: "cold", "hot", or for W6 "remote-cold" and
        "remote-warm" (the remote source configured, caches as in "cold"; a start per row,
        so that each peer runs as it is strongest for that row, and neither row's objects
        are in the other's source cache)."""
        return f"remote-{self.remote}" if self.remote else self.mode

    @property
    def local_cold(self) -> bool:
        """A cold workload on an upload (W1–W3, W5): the ones with a floor row and the p99
        target; W6 renders W1's pipeline from a remote source and has neither."""
        return self.mode == "cold" and not self.remote and not self.ours_only

    def params(self) -> list[Params]:
        if self.mode == "hot":
            return [self.nominal]
        chosen = self._grid()
        if self.remote:
            return [dict(p, object=self.object_name(i)) for i, p in enumerate(chosen)]
        return chosen

    def object_name(self, index: int) -> str:
        """The remote object of the ``index``-th request: new each time (cold), or one of
        the few kept (warm)."""
        if self.remote == "cold":
            return f"c{index}"
        return f"w{index % WARM_OBJECTS}"

    def primers(self) -> list[Params]:
        """The requests that bring W6-warm's objects into the servers' source caches before
        anything is measured: one per object, a render no measured request asks for."""
        if self.remote != "warm":
            return []
        return [dict(PRIMER, object=self.object_name(i)) for i in range(WARM_OBJECTS)]

    def _grid(self) -> list[Params]:
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
        if self.kind == "face":  # portrait boxes: g_face decides what a cut keeps
            return [("w", range(180, 221)), ("h", range(280, 321)), ("q", range(76, 85))]
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
        Workload(
            "W7",
            "2400×1600 JPEG, 8 faces → fill 200×300 on the faces, faces blurred → JPEG q80",
            "w7.jpg",
            "jpg",
            "face",
            "cold",
            {"w": 200, "h": 300, "q": 80},
            ours_only=True,
        ),
    )
}


def from_remote(name: str, title: str, remote: str) -> Workload:
    """W1 from a remote source: its request, grid and output (W6)."""
    return dataclasses.replace(WORKLOADS["W1"], name=name, title=title, remote=remote)


WORKLOADS.update(
    (w.name, w)
    for w in (
        from_remote(
            "W6-cold", "W1 from a remote source, a new object per request (fetch + render)", "cold"
        ),
        from_remote("W6-warm", "W1 from a remote source already kept (render only)", "warm"),
    )
)


def select(names: str) -> list[str]:
    """``--workloads``: comma-separated names in any case; a family (``W6``) stands for
    every workload of it (``W6-cold``, ``W6-warm``). ``ValueError`` names the unknown."""
    chosen: list[str] = []
    for token in (t.strip().upper() for t in names.split(",") if t.strip()):
        found = [n for n in WORKLOADS if token in (n.upper(), n.split("-")[0].upper())]
        if not found:
            raise ValueError(token)
        chosen += [n for n in found if n not in chosen]
    return chosen
