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


class PrefixCache:
    """The fit's web sample degraded by the prefixes of the recipes it extends, so that a candidate
    that adds a step after them degrades from there, not from the start.

    A beam round tries every candidate step on each of a few recipes, and most candidates land
    after the recipe's last step (the canonical order puts resolution, sensor and codec late);
    a coordinate-search move changes one step and keeps the steps before it. The outputs are
    exact: a recipe's record draws the values of its steps in order, so a prefix's record is the
    first steps of the whole record, and applying the remaining steps of the record to the
    prefix's output gives the same bytes as applying the whole record. :meth:`prime` runs in the
    parent process before the trials fork (workers inherit the cache); it holds at most
    ``max_bytes`` of images.
    """

    def __init__(self, web: Sequence[np.ndarray], seed: int, max_bytes: int = 384 * 2**20) -> None:
        self.web = list(web)
        self.seed = seed
        self.max_bytes = max_bytes
        self._outputs: dict[str, list[np.ndarray]] = {}

    def moved(self, recipe: Recipe, n: int | None = None) -> list[np.ndarray]:
        """The first ``n`` web images (all: None) degraded by ``recipe``, each with seed ``seed + i``."""
        from shiftkit.synth.recipe import apply_record

        web = self.web if n is None else self.web[:n]
        if not recipe.steps:
            return web
        for k in range(len(recipe.steps), 0, -1):
            prefix = Recipe(recipe.steps[:k])
            base = self._outputs.get(prefix.to_json())
            if base is None:
                continue
            out = []
            for i in range(len(web)):
                record = recipe.sample(self.seed + i)
                done = len(prefix.sample(self.seed + i)["steps"])
                out.append(apply_record(base[i], {**record, "steps": record["steps"][done:]}))
            return out
        return [recipe.apply(p, self.seed + i)[0] for i, p in enumerate(web)]

    def prime(self, recipes: Sequence[Recipe]) -> None:
        """Hold the outputs of every prefix of ``recipes`` (and drop any other)."""
        wanted = [Recipe(r.steps[:k]) for r in recipes for k in range(1, len(r.steps) + 1)]
        keys = {p.to_json() for p in wanted}
        self._outputs = {k: v for k, v in self._outputs.items() if k in keys}
        held = sum(a.nbytes for v in self._outputs.values() for a in v)
        for p in sorted(wanted, key=lambda r: len(r.steps)):
            key = p.to_json()
            if key in self._outputs:
                continue
            out = self.moved(p)
            held += sum(a.nbytes for a in out)
            if held > self.max_bytes:
                break
            self._outputs[key] = out
