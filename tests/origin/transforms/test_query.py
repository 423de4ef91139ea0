"""The legacy `/transform` query API maps onto the same Plan as the URL grammar."""

from __future__ import annotations

import pytest

from origin.errors import BadTransform, LimitExceeded, OriginError
from origin.render import render
from origin.transforms.effects import EFFECTS
from origin.transforms.parse import parse_path
from origin.transforms.query import parameters, parse_query
from tests.origin.conftest import (
    IMAGE_ID,
    OTHER_ID,
    RED,
    YELLOW,
    close,
    colour_at,
    decode,
    quadrant,
)


def stages_of(chain: str) -> str:
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.jpg" if chain else f"/i/{IMAGE_ID}/x.jpg")
    return "/".join(s.canonical() for s in plan.stages)


def legacy(params: dict[str, str]) -> str:
    return "/".join(s.canonical() for s in parse_query(IMAGE_ID, params).stages)


@pytest.mark.parametrize(
    ("params", "chain"),
    [
        ({}, ""),
        ({"resize": "300x200"}, "w_300,h_200"),
        ({"resize": "300x200!"}, "w_300,h_200,c_scale"),
        ({"resize": "300x"}, "w_300"),
        ({"resize": "x200"}, "h_200"),
        ({"resize": "50%"}, "w_0.5,h_0.5"),
        ({"resize": "100%"}, "w_1.0,h_1.0"),
        ({"crop": "300x200"}, "w_300,h_200,c_crop"),
        ({"crop": "300x200+10+20"}, "w_300,h_200,c_crop,x_10,y_20"),
        ({"crop": "300x200 10 20"}, "w_300,h_200,c_crop,x_10,y_20"),
        ({"rotate": "90"}, "r_90"),
        ({"rotate": "-45"}, "r_-45"),
        ({"flip": "horizontal"}, "fl_h"),
        ({"flip": "vertical"}, "fl_v"),
        ({"grayscale": "true"}, "e_grayscale"),
        ({"grayscale": "false"}, ""),
        ({"sepia": "true"}, "e_sepia"),
        ({"blur": "50"}, "e_blur:50"),
        ({"sharpen": "200"}, "e_sharpen:200"),
        ({"brightness": "-20"}, "e_brightness:-20"),
        ({"contrast": "30"}, "e_contrast:30"),
        ({"watermark": "text:Hello, world/1"}, "l_text:Hello%2C%20world%2F1"),
        ({"watermark": f"image:{OTHER_ID}"}, f"l_{OTHER_ID}"),
        (
            {
                "contrast": "5",
                "blur": "3",
                "sepia": "true",
                "grayscale": "true",
                "flip": "vertical",
                "rotate": "90",
                "resize": "100x",
                "crop": "50x50+1+2",
                "watermark": "text:w",
                "sharpen": "4",
                "brightness": "6",
            },
            "w_50,h_50,c_crop,x_1,y_2/w_100,r_90,fl_v,e_grayscale,e_sepia,e_blur:3,e_sharpen:4,"
            "e_brightness:6,e_contrast:5/l_text:w",
        ),
    ],
)
def test_params_map_to_the_url_grammar(params: dict[str, str], chain: str) -> None:
    assert legacy(params) == stages_of(chain)


def test_plan_level_params() -> None:
    plan = parse_query(IMAGE_ID, {"format": "jpeg", "quality": "70"})
    assert (plan.format, plan.quality, plan.metadata_only) == ("jpeg", 70, False)
    assert parse_query(IMAGE_ID, {}).format is None  # the source's format
    assert parse_query(IMAGE_ID, {"compress": "true"}).quality == 60
    assert parse_query(IMAGE_ID, {"compress": "false"}).quality is None
    plan = parse_query(IMAGE_ID, {"watermark": f"image:{OTHER_ID}"})
    assert plan.overlay_ids == (OTHER_ID,)


def test_same_canonical_as_the_url() -> None:
    plan = parse_query(IMAGE_ID, {"resize": "300x200", "format": "webp", "quality": "70"})
    assert plan.canonical() == parse_path(f"/i/{IMAGE_ID}/w_300,h_200,q_70/x.webp").canonical()


def test_renders_crop_then_resize() -> None:
    plan = parse_query(IMAGE_ID, {"crop": "200x150+200+150", "resize": "100x", "format": "png"})
    r = render(quadrant("png"), plan)
    img = decode(r.body)
    assert (img.width, img.height) == (100, 75)
    assert close(colour_at(img, 50, 37), YELLOW, 5)
    plan = parse_query(IMAGE_ID, {"resize": "40x30!"})
    r = render(quadrant("png"), plan)
    assert r.format == "png" and close(colour_at(decode(r.body), 5, 5), RED, 5)


@pytest.mark.parametrize(
    ("params", "error", "named"),
    [
        ({"size": "1"}, BadTransform, "size"),
        ({"resize": "300"}, BadTransform, "resize"),
        ({"resize": "x"}, BadTransform, "resize"),
        ({"resize": "0x10"}, BadTransform, "resize"),
        ({"resize": "0%"}, BadTransform, "resize"),
        ({"resize": "150%"}, BadTransform, "resize"),
        ({"resize": "9000x"}, LimitExceeded, "resize"),
        ({"crop": "300x200+10"}, BadTransform, "crop"),
        ({"crop": "300x200-10-20"}, BadTransform, "crop"),
        ({"crop": "axb"}, BadTransform, "crop"),
        ({"rotate": "400"}, BadTransform, "rotate"),
        ({"rotate": "ninety"}, BadTransform, "rotate"),
        ({"flip": "both"}, BadTransform, "flip"),
        ({"format": "bmp"}, BadTransform, "format"),
        ({"quality": "0"}, BadTransform, "quality"),
        ({"quality": "101"}, BadTransform, "quality"),
        ({"grayscale": "yes"}, BadTransform, "grayscale"),
        ({"sepia": "1"}, BadTransform, "sepia"),
        ({"blur": "0"}, BadTransform, "blur"),
        ({"sharpen": "3000"}, BadTransform, "sharpen"),
        ({"brightness": "101"}, BadTransform, "brightness"),
        ({"contrast": "-101"}, BadTransform, "contrast"),
        ({"watermark": "Hello"}, BadTransform, "watermark"),
        ({"watermark": "image:xyz"}, BadTransform, "watermark"),
        ({"watermark": "text:" + "a" * 201}, LimitExceeded, "watermark"),
        ({"compress": "yes"}, BadTransform, "compress"),
        ({"compress": "true", "quality": "50"}, BadTransform, "compress"),
    ],
)
def test_errors_name_the_parameter(
    params: dict[str, str], error: type[OriginError], named: str
) -> None:
    with pytest.raises(error) as info:
        parse_query(IMAGE_ID, params)
    assert type(info.value) is error
    assert named in info.value.message


def test_bad_image_id() -> None:
    with pytest.raises(BadTransform, match="bad image id"):
        parse_query("nope", {})


def test_every_parameter_is_registered() -> None:
    """The stage parameters: the query API's own, and one per declared effect."""
    assert set(parameters()) == {"resize", "crop", "rotate", "flip", "watermark", *EFFECTS}
