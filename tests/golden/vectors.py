"""Golden vectors: what a derivative's identity is, per URL, recorded once and held forever.

Each vector is one request to the origin (a path, an ``Accept``, Client Hints, a policy
query) and what it must give: the plan's canonical string, the derivative's storage key and
its ETag. A changed identity would make every cache — the origin's store, nginx, every CDN
— treat an existing derivative as new (or worse, a new one as old), so the redesign of the
URL grammar and the transforms is held to these byte for byte.

``python -m tests.golden.vectors`` adds vectors for URLs not recorded yet (a new token) and
never rewrites a recorded one; the test (``test_golden.py``) reads the file. The first
vectors were recorded on the commit before the transform registry (docs/architecture.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).with_name("vectors.json")

# Fixed facts of the two images every vector is about.
USER = "5" * 32
IMAGE = "a" * 32  # a 4000 × 3000 JPEG
IMAGE_HASH = "1" * 64
OVERLAY = "b" * 32  # a 400 × 100 PNG, the same owner's
OVERLAY_HASH = "2" * 64
PRESETS = {
    "thumb": "w_200,h_200,c_fill,g_auto",
    "card": "w_640,ar_16:9,c_fill/e_sharpen",
    "web": "f_auto,q_auto",
    "grey": "e_grayscale",
    "hinted": "w_auto:320,dpr_auto",
}
ACCEPTS = {
    "avif": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
    "webp": "image/webp,*/*",
    "none": "*/*",
}

# Chains (the part between the image id and the file name) and extensions.
CHAINS = [
    "",
    "w_300",
    "h_200",
    "w_300,h_200",
    "w_0.5",
    "w_1.0,h_0.25",
    "w_300,h_200,c_fit",
    "w_300,h_200,c_fill",
    "w_300,h_200,c_limit",
    "w_300,h_200,c_pad",
    "w_300,h_200,c_scale",
    "w_300,h_200,c_crop",
    "w_300,h_200,c_crop,x_10,y_20",
    "c_crop,x_100,y_50",
    "w_300,c_crop,x_0",
    *(
        f"w_300,h_200,c_fill,g_{g}"
        for g in (
            "center",
            "north",
            "south",
            "east",
            "west",
            "north_east",
            "north_west",
            "south_east",
            "south_west",
            "auto",
            "entropy",
        )
    ),
    "w_300,h_200,c_pad,g_north_west",
    "w_300,h_200,c_crop,g_auto",
    "w_300,ar_16:9",
    "h_200,ar_4:3",
    "ar_32:18,c_fill",
    "ar_1:1,c_crop,g_auto",
    "ar_3:2,c_pad,b_black",
    "w_300,dpr_2",
    "w_300,h_200,dpr_1.5",
    "w_0.5,dpr_2.25",
    "h_150,dpr_3",
    "w_300,dpr_1",
    "r_90",
    "r_-90",
    "r_270",
    "r_360",
    "r_30",
    "r_45,b_ff000080",
    "fl_h",
    "fl_v",
    "fl_hv",
    "w_300,r_90,fl_h",
    "e_grayscale",
    "e_sepia",
    "e_blur",
    "e_blur:300",
    "e_sharpen",
    "e_sharpen:50",
    "e_brightness:20",
    "e_brightness:-30",
    "e_contrast:40",
    "e_saturation:-100",
    "e_pixelate",
    "e_pixelate:12",
    "e_grayscale,e_blur:50,e_contrast:10",
    "e_contrast:10,e_grayscale",
    "w_300,h_200,c_pad,b_white",
    "w_300,h_200,c_pad,b_FF8800",
    "w_300,h_200,c_pad,b_transparent",
    "w_300,h_200,c_pad,b_00ff00cc",
    "q_50",
    "q_auto",
    "w_300,q_90",
    "f_jpg",
    "f_png",
    "f_webp",
    "f_avif",
    "f_gif",
    "f_auto",
    "f_auto,q_auto",
    "w_300,f_auto",
    "t_thumb",
    "t_card",
    "t_web",
    "t_grey,w_300",
    "w_300/t_grey",
    "t_hinted",
    f"l_{OVERLAY}",
    f"l_{OVERLAY},w_0.25,g_north_west,x_10,y_5,o_60",
    f"w_400/l_{OVERLAY},w_100,g_south",
    "l_text:Hello",
    "l_text:Hello%2C%20world%20%E2%9C%93,co_ff0000,fs_24,g_north,o_80",
    "l_text:a%2Fb,w_0.5",
    "w_auto",
    "w_auto:320",
    "w_auto,c_fill,ar_16:9",
    "dpr_auto,w_300",
    "w_auto:400,dpr_auto",
    "w_%33%30%30",
    "e_blur%3A300",
    "w_300,h_200,c_fill,g_auto/e_grayscale/r_90,e_contrast:30",
    "w_1000/w_500/w_250",
    "c_crop,w_2000,h_1500,x_100,y_100/w_300,h_300,c_fill/fl_h,e_sepia",
    "w_600,h_400,c_fill/r_45,b_white/w_300",
    f"w_800/l_{OVERLAY},o_50/l_text:%C2%A9%202026,g_south_west/f_webp,q_70",
]
EXTENSIONS = ["jpg", "webp", "png", "json"]

# (chain, ext, accept key, Sec-CH-Width, Sec-CH-DPR) of requests whose answer varies.
VARIED = [
    ("f_auto", "jpg", "avif", None, None),
    ("f_auto", "jpg", "webp", None, None),
    ("f_auto", "jpg", "none", None, None),
    ("f_auto,q_auto", "png", "webp", None, None),
    ("w_300,f_auto", "json", "avif", None, None),
    ("t_web", "jpg", "avif", None, None),
    ("w_auto", "jpg", "none", "500", None),
    ("w_auto", "jpg", "none", "1", None),
    ("w_auto", "jpg", "none", "99999", None),
    ("w_auto:320", "webp", "none", "700", "2"),
    ("dpr_auto,w_300", "jpg", "none", None, "1.3"),
    ("dpr_auto,w_300", "jpg", "none", None, "3"),
    ("w_auto:400,dpr_auto", "jpg", "none", "800", "2"),
    ("t_hinted", "jpg", "none", "640", "1.5"),
    ("w_auto,c_fill,ar_16:9,f_auto", "jpg", "webp", "300", None),
]

# Policy URLs: (template, policy, fill arguments).
POLICIES = [
    (
        "w_*,dpr_*,c_fill,ar_4:3/photo.*",
        "w_100to300by100.dpr_2.f_png-webp",
        {"w": 200, "dpr": "2", "f": "webp"},
    ),
    (
        "w_*,dpr_*,c_fill,ar_4:3/photo.*",
        "w_100to300by100.dpr_2.f_png-webp",
        {"w": 100, "dpr": "1", "f": "png"},
    ),
    ("w_*,c_fit/hero.*", "w_320to1280by160.f_avif-webp-jpg", {"w": 640, "f": "avif"}),
    ("w_*/e_grayscale/x.*", "w_160-320.f_jpg", {"w": 320, "f": "jpg"}),
]


def requests() -> list[dict[str, Any]]:
    """Every request a vector is recorded for, in a fixed order."""
    found: list[dict[str, Any]] = []
    for chain in CHAINS:
        for ext in EXTENSIONS:
            found.append({"chain": chain, "ext": ext, "accept": None, "width": None, "dpr": None})
    for chain, ext, accept, width, dpr in VARIED:
        found.append(
            {"chain": chain, "ext": ext, "accept": ACCEPTS[accept], "width": width, "dpr": dpr}
        )
    for template, policy, filled in POLICIES:
        found.append({"template": template, "policy": policy, "fill": filled})
    return found


def request_id(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True)


def load() -> dict[str, dict[str, Any]]:
    if not VECTORS.exists():
        return {}
    return {request_id(v["request"]): v for v in json.loads(VECTORS.read_text())}


def save(vectors: dict[str, dict[str, Any]]) -> None:
    ordered = sorted(vectors.values(), key=lambda v: request_id(v["request"]))
    VECTORS.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    import asyncio

    from tests.golden.origin import record

    vectors = load()
    missing = [r for r in requests() if request_id(r) not in vectors]
    for request, answer in zip(missing, asyncio.run(record(missing)), strict=True):
        vectors[request_id(request)] = {"request": request, **answer}
    save(vectors)
    print(f"{len(missing)} vector(s) added, {len(vectors)} in all: {VECTORS}")


if __name__ == "__main__":
    main()
