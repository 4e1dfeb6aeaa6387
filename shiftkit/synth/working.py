"""The fit's working size: large images are fitted reduced, and the recipe is scaled back to full size.

The fit's features see an image through an 8x8 thumbnail, a 64-pixel working image and a 32-pixel
colour reduction (``shiftkit/images/features.py``), so degrading every candidate at a phone's full
resolution buys nothing but time: on 256-pixel photos it was most of the fit's time (see
``benchmarks/synth_photos.py``). The fit therefore reduces both samples by ONE factor ``f`` (area
interpolation), so that the larger of their median short sides becomes ``side``: the two sets keep
their relative sizes, so resolution steps (relative scales) mean the same thing. Parameters in
pixels, or per-pixel amplitudes (``ParamSpec.pixel_unit``: blur sigmas, kernel sizes, noise) are
divided by ``f`` when the fitted recipe is scaled back (:func:`to_full_size`): a blur of 1 pixel on
the reduced image is a blur of 1/f pixels on the full one, and white noise of std s added to the full
image has std ~ s x f once reduced by f. Images already at or below ``side`` are fitted as they are
(the digits example: 28 pixels), so small data is fitted exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from shiftkit.synth.recipe import Recipe
from shiftkit.synth.registry import Step, get


def working_factor(web: Sequence[np.ndarray], target: Sequence[np.ndarray], side: int) -> float:
    """The one reduction factor of both samples (1.0: no reduction; ``side`` <= 0 never reduces)."""
    if side <= 0 or not len(web) or not len(target):
        return 1.0
    larger = max(float(np.median([min(p.shape[:2]) for p in s])) for s in (web, target))
    return min(1.0, side / larger)


def reduce(pixels: Sequence[np.ndarray], factor: float) -> list[np.ndarray]:
    """Every image reduced by ``factor`` (area interpolation; at least one pixel a side)."""
    if factor >= 1.0:
        return list(pixels)
    out = []
    for p in pixels:
        h, w = p.shape[:2]
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        out.append(cv2.resize(np.ascontiguousarray(p), size, interpolation=cv2.INTER_AREA))
    return out


def to_full_size(recipe: Recipe, factor: float) -> Recipe:
    """``recipe`` fitted on images reduced by ``factor``, for full-size images: every pixel-unit
    parameter divided by ``factor`` (kept within its bounds, rounded when integral)."""
    if factor >= 1.0 or not recipe.steps:
        return recipe
    steps = []
    for s in recipe.steps:
        spec = get(s.name).params
        ranges = {}
        for k, (lo, hi) in s.ranges.items():
            ps = spec[k]
            if ps.pixel_unit:
                lo, hi = (min(ps.high, max(ps.low, v / factor)) for v in (lo, hi))
                lo, hi = (float(round(lo)), float(round(hi))) if ps.integer else (round(lo, 4), round(hi, 4))
            ranges[k] = (lo, hi)
        steps.append(Step(s.name, s.p, ranges))
    return Recipe(tuple(steps))
