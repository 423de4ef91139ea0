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

from origin.path import parse_path  # noqa: E402
from origin.pipeline import render  # noqa: E402

IMAGE_ID = "0" * 32
MARK_ID = "1" * 32

# picture name -> chain (each rendered from chelsea.png, 451x300); "w_200" is appended as a
# last stage when the chain leaves the picture larger than that, so pages stay small.
PICTURES: dict[str, str] = {
    "original": "",
    "w": "w_120",
    "h": "h_80",
    "w_share": "w_0.25",
    "c_fit": "w_150,h_150",
    "c_fill": "w_150,h_150,c_fill",
    "c_limit": "w_900,c_limit",
    "c_pad": "w_150,h_150,c_pad,b_203040",
    "c_scale": "w_150,h_150,c_scale",
    "c_crop": "w_150,h_150,c_crop,x_40,y_20",
    "g_north": "w_200,h_80,c_fill,g_north",
    "g_south": "w_200,h_80,c_fill,g_south",
    "g_auto": "w_100,h_150,c_fill,g_auto",
    "g_entropy": "w_100,h_150,c_fill,g_entropy",
    "ar": "w_200,ar_1:1,c_fill",
    "dpr": "w_100,dpr_2",
    "r_90": "w_200/r_90",
    "r_30": "w_200/r_30,b_ffcc00",
    "fl_h": "w_200/fl_h",
    "fl_v": "w_200/fl_v",
    "fl_hv": "w_200/fl_hv",
    "e_grayscale": "w_200/e_grayscale",
    "e_sepia": "w_200/e_sepia",
    "e_blur": "w_200/e_blur",
    "e_blur_300": "w_200/e_blur:300",
    "e_sharpen": "w_200/e_sharpen:400",
    "e_brightness": "w_200/e_brightness:40",
    "e_brightness_neg": "w_200/e_brightness:-40",
    "e_contrast": "w_200/e_contrast:60",
    "e_contrast_neg": "w_200/e_contrast:-60",
    "e_saturation": "w_200/e_saturation:80",
    "e_saturation_neg": "w_200/e_saturation:-80",
    "e_pixelate": "w_200/e_pixelate",
    "e_pixelate_12": "w_200/e_pixelate:12",
    "b": "w_200,h_100,c_pad,b_ff6600",
    "q_10": "w_200,q_10",
    "l_text": "w_200/l_text:%C2%A9%20imgorigin,co_ffffff,fs_16,x_6,y_4",
    "l_text_north": "w_200/l_text:Hello%2C%20cat,g_north,co_ffff00,fs_20,y_6,o_80",
    "l_image": f"w_200/l_{MARK_ID},w_0.3,o_60,x_8,y_8",
    "chain": "w_200,h_200,c_fill,g_auto/e_grayscale/r_90,e_contrast:30",
}


def data(name: str) -> bytes:
    path = os.path.join(os.path.dirname(skimage.__file__), "data", f"{name}.png")
    return bytes(pyvips.Image.new_from_file(path).pngsave_buffer())


def main() -> None:
    out_dir = os.path.join(HERE, "img")
    os.makedirs(out_dir, exist_ok=True)
    source = data("chelsea")
    mark = data("coffee")
    total = 0
    for name, chain in PICTURES.items():
        if name in ("original", "c_limit"):
            chain = "/".join(p for p in (chain, "w_200") if p)
        path = f"/i/{IMAGE_ID}/{chain}/{name}.jpg" if chain else f"/i/{IMAGE_ID}/{name}.jpg"
        plan = parse_path(path)
        rendered = render(source, plan, overlays={MARK_ID: mark})
        with open(os.path.join(out_dir, f"{name}.jpg"), "wb") as f:
            f.write(rendered.body)
        total += len(rendered.body)
        print(f"{name:18} {rendered.width}x{rendered.height} {len(rendered.body)} bytes  {chain}")
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
