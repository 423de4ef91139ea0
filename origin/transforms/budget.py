"""Sizes and work without pixels: what a chain makes of a source of a given size, and
whether that is within the work budget (docs/url-api.md#work-budget).

Each transform declares its own ``size`` (resize, rotate; the others keep the size) and
``cost`` (blur, sharpen, pixelate), so a new transform is sized and weighed by its
declaration alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from origin.errors import LimitExceeded
from origin.transforms.limits import EFFECT_BUDGET_SIGMA, Limits
from origin.transforms.plan import Stage


def stage_sizes(
    width: int, height: int, stages: Sequence[Stage], limits: Limits
) -> list[tuple[int, int]]:
    """The size of the image each stage makes from an upright ``width`` x ``height`` source
    (each step's declared ``size``, in order). No stage: the source's size. Raises
    LimitExceeded where rendering would."""
    size = (width, height)
    sizes = []
    for stage in stages:
        for step in stage:
            if step.transform.size is not None:
                size = step.transform.size(size, step.value, limits)
        sizes.append(size)
    if max(size) > limits.max_output_dimension:
        raise LimitExceeded(
            f"the output would be {size[0]}x{size[1]}, above the maximum dimension "
            f"{limits.max_output_dimension}"
        )
    return sizes or [size]


@dataclass(frozen=True)
class Work:
    """What a chain costs, from its geometry alone (docs/url-api.md#work-budget)."""

    size: tuple[int, int]  # the output's
    frames: int  # of the output (an animation's; else 1)
    largest: tuple[int, int]  # the largest image a stage makes
    effects: float  # blur, sharpen and pixelate: Σ weight × pixels, over every frame

    @property
    def pixels(self) -> int:
        return self.largest[0] * self.largest[1] * self.frames


def plan_work(
    width: int, height: int, stages: Sequence[Stage], limits: Limits, frames: int = 1
) -> Work:
    """The work of ``stages`` on an upright ``width`` x ``height`` source whose output has
    ``frames`` frames: the sizes of ``stage_sizes``, and each stage's steps weighed at the
    size they run at (a stage's effects come after its crop/resize and rotation)."""
    sizes = stage_sizes(width, height, stages, limits)
    effects = 0.0
    for stage, (w, h) in zip(stages, sizes, strict=False):
        weight = sum(s.transform.cost(s.value) for s in stage if s.transform.cost is not None)
        effects += weight * w * h * frames
    largest = max(sizes, key=lambda size: size[0] * size[1])
    return Work(sizes[-1], frames, largest, effects)


def check_work(work: Work, limits: Limits) -> None:
    """LimitExceeded naming the limit when ``work`` is over the budget."""
    if work.pixels > limits.max_output_pixels:
        w, h = work.largest
        shown = f"{work.frames} frames of {w}x{h}" if work.frames > 1 else f"{w}x{h}"
        raise LimitExceeded(
            f"the chain makes {work.pixels} pixels ({shown}), above MAX_OUTPUT_PIXELS "
            f"{limits.max_output_pixels}"
        )
    if work.effects > limits.max_effect_cost:
        raise LimitExceeded(
            f"the chain's blur, sharpen and pixelate cost {work.effects:.0f} (weight × pixels, "
            f"every frame), above the effect budget {limits.max_effect_cost} "
            f"({EFFECT_BUDGET_SIGMA} × MAX_OUTPUT_PIXELS)"
        )


def output_size(
    width: int, height: int, stages: Sequence[Stage], limits: Limits, frames: int = 1
) -> tuple[int, int]:
    """The size a chain gives an upright ``width`` x ``height`` source, without pixels,
    checked against the work budget for an output of ``frames`` frames (1: a lower bound
    for any source). Raises LimitExceeded where rendering would."""
    work = plan_work(width, height, stages, limits, frames)
    check_work(work, limits)
    return work.size
