"""origin.transforms.budget.output_size: the dry run of a chain's geometry equals what rendering gives."""

from __future__ import annotations

import pytest

from origin.errors import LimitExceeded
from origin.render import render
from origin.transforms import budget
from origin.transforms.limits import DEFAULT_LIMITS, Limits
from origin.transforms.parse import parse_path
from tests.origin.conftest import IMAGE_ID, animated, exif_jpeg, photo, quadrant

CHAINS = [
    "",
    "w_200",
    "h_77",
    "w_0.33",
    "w_640,c_fill,ar_16:9",
    "c_fill,ar_16:9",
    "ar_1:1,c_crop",
    "w_333,h_100,c_fill,g_auto",
    "w_120,h_300,c_pad,b_black",
    "c_pad,ar_1:2",
    "w_900,c_limit",
    "w_900",
    "w_50,h_50,c_scale",
    "w_100,h_60,c_crop,g_south_east",
    "w_500,h_500,c_crop,x_350,y_20",
    "w_300,r_90",
    "w_300,r_30",
    "w_211,r_-17,b_00ff0080",
    "w_300/r_45/w_0.5",
    "w_320,c_fill,ar_4:3/e_grayscale/l_text:hello,w_0.5",
    "r_180,fl_hv/w_100,dpr_2.5",
    "w_100,h_100,c_fit,r_91",
]


@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("source", ["quadrant", "exif6", "astronaut"])
def test_dry_run_equals_the_render(chain: str, source: str) -> None:
    data = {"quadrant": quadrant("png"), "exif6": exif_jpeg(6), "astronaut": photo()}[source]
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.png" if chain else f"/i/{IMAGE_ID}/x.png")
    made = render(data, plan)
    width, height = {"quadrant": (400, 300), "exif6": (400, 300), "astronaut": (512, 512)}[source]
    assert budget.output_size(width, height, plan.stages, DEFAULT_LIMITS) == (
        made.width,
        made.height,
    )


def test_animations_too() -> None:
    plan = parse_path(f"/i/{IMAGE_ID}/w_25,h_25,c_fill/r_30/x.gif")
    made = render(animated("gif"), plan)
    assert budget.output_size(60, 40, plan.stages, DEFAULT_LIMITS) == (made.width, made.height)


@pytest.mark.parametrize("chain", ["w_0.9/r_45", "w_3000", "w_100,h_50,c_pad/h_1500"])
def test_limits_are_those_of_the_render(chain: str) -> None:
    limits = Limits(max_output_dimension=2000)
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.png", limits=Limits(max_output_dimension=8192))
    with pytest.raises(LimitExceeded):
        budget.output_size(2000, 1900, plan.stages, limits)
