"""Render the pictures of docs/url-api.md with the engine itself.

Run: .venv/bin/python docs/make_pictures.py   (writes docs/img/*.jpg, ~200 px wide)
"""

from __future__ import annotations

import os
import sys

import pyvips
import skimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from origin.render import render  # noqa: E402
from origin.transforms.parse import parse_path  # noqa: E402
from origin.transforms.registry import examples  # noqa: E402

IMAGE_ID = "0" * 32
MARK_ID = "1" * 32


def pictures() -> dict[str, str]:
    """Every picture the transform declarations ask for (origin.transforms.registry), each
    chain rendered from chelsea.png (451x300), or astronaut.png (512x512) when the picture
    is about faces (its name says ``face``); ``w_200`` is appended as a last stage when
    the chain leaves the picture larger than that, so pages stay small."""
    return {name: chain.format(overlay=MARK_ID) for name, chain in examples().items()}


def data(name: str) -> bytes:
    path = os.path.join(os.path.dirname(skimage.__file__), "data", f"{name}.png")
    return bytes(pyvips.Image.new_from_file(path).pngsave_buffer())


def main() -> None:
    out_dir = os.path.join(HERE, "img")
    os.makedirs(out_dir, exist_ok=True)
    source = data("chelsea")
    mark = data("coffee")
    person = data("astronaut")
    total = 0
    for name, chain in pictures().items():
        if name in ("original", "c_limit"):
            chain = "/".join(p for p in (chain, "w_200") if p)
        path = f"/i/{IMAGE_ID}/{chain}/{name}.jpg" if chain else f"/i/{IMAGE_ID}/{name}.jpg"
        plan = parse_path(path)
        rendered = render(person if "face" in name else source, plan, overlays={MARK_ID: mark})
        with open(os.path.join(out_dir, f"{name}.jpg"), "wb") as f:
            f.write(rendered.body)
        total += len(rendered.body)
        print(f"{name:18} {rendered.width}x{rendered.height} {len(rendered.body)} bytes  {chain}")
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
