"""What one plan may ask for: sizes, stages, tokens, text, and the work budget."""

from __future__ import annotations

from dataclasses import dataclass

# The effect budget is a blur of this sigma (`e_blur:500`) over MAX_OUTPUT_PIXELS, or the
# strongest blur (σ 100) over a quarter of it.
EFFECT_BUDGET_SIGMA = 25


@dataclass(frozen=True)
class Limits:
    max_output_dimension: int = 8192
    max_source_pixels: int = 100_000_000
    max_stages: int = 8
    max_tokens_per_stage: int = 16
    max_text_length: int = 200
    # The work budget (origin.transforms.budget, docs/url-api.md#work-budget): the largest
    # image a chain makes times its frames, and the frames of an animated output.
    max_output_pixels: int = 25_000_000
    max_frames: int = 1000

    @property
    def max_effect_cost(self) -> int:
        """What blur, sharpen and pixelate may cost over a chain (weight × pixels)."""
        return EFFECT_BUDGET_SIGMA * self.max_output_pixels


DEFAULT_LIMITS = Limits()
