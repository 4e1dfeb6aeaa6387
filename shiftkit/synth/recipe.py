"""Recipes: ordered degradation steps, their exact per-image values, and the record that reproduces them.

A **recipe** is an ordered list of steps; each step names a registered degradation
(``shiftkit/synth/degradations.py``), a probability and a range per parameter. Applying a recipe
to one image with one seed first *samples* the exact values of every step (a json-able record),
then applies the steps that fired, in order. The record alone reproduces the image
(:func:`reproduce`): the same seed always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftkit.core.errors import ConfigError
from shiftkit.synth.registry import Step, get, transform

if TYPE_CHECKING:
    from shiftkit.synth.weighting import Weighting

RECIPE_VERSION = 1

# a per-image record (Recipe.sample) and a recipe's dict form: json objects
Record = dict[str, Any]


def make_step(name: str, p: float = 1.0, **ranges: float | Sequence[float]) -> Step:
    """A validated step; a scalar value stands for the range [value, value].

    Raises:
        RegistryError: when ``name`` is not a registered degradation.
        ConfigError: when ``p`` is not in [0, 1], a parameter is unknown, or a range is reversed
            or outside the parameter's bounds.
    """
    deg = get(name)
    try:
        p = float(p)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"The 'p' parameter of step {name!r} must be a number in [0, 1]. Got {p!r} instead.") from exc
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"The 'p' parameter of step {name!r} must be a number in [0, 1]. Got {p!r} instead.")
    unknown = sorted(set(ranges) - set(deg.params))
    if unknown:
        raise ConfigError(
            f"Step {name!r} has no parameter(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(deg.params))}."
        )
    out: dict[str, tuple[float, float]] = {}
    for pname, spec in deg.params.items():
        raw = ranges.get(pname, spec.default)
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            lo = hi = float(raw)
        else:
            try:
                lo, hi = (float(x) for x in raw)  # type: ignore[union-attr]
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"The {pname!r} range of step {name!r} must be a number or [low, high]. Got {raw!r} instead."
                ) from exc
        if not (spec.low <= lo <= hi <= spec.high) or math.isnan(lo) or math.isnan(hi):
            raise ConfigError(
                f"The {pname!r} range of step {name!r} must lie within [{_num(spec.low)}, {_num(spec.high)}] "
                f"with low <= high. Got [{_num(lo)}, {_num(hi)}] instead."
            )
        if spec.integer:
            lo, hi = float(round(lo)), float(round(hi))
        out[pname] = (lo, hi)
    return Step(name, p, out)


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Recipe:
    """An ordered list of steps, applied in order, each firing with its probability."""

    steps: tuple[Step, ...] = ()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return {"version": RECIPE_VERSION, "steps": [s.to_dict() for s in self.steps]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> Recipe:
        """Build and validate a recipe from its dict form.

        Raises:
            ConfigError: when the structure or a value is invalid.
            RegistryError: when a step names an unknown degradation.
        """
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ConfigError(f"The {source} must be a mapping with a 'steps' list. Got {str(data)[:80]!r} instead.")
        steps = []
        for i, raw in enumerate(data["steps"]):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise ConfigError(f"Step {i} of the {source} must be a mapping with a 'name'. Got {raw!r} instead.")
            params = raw.get("params", {}) or {}
            if not isinstance(params, dict):
                raise ConfigError(f"The 'params' of step {i} ({raw['name']}) must be a mapping. Got {params!r}.")
            steps.append(make_step(raw["name"], raw.get("p", 1.0), **params))
        return cls(tuple(steps))

    @classmethod
    def from_json(cls, text: str, source: str = "recipe") -> Recipe:
        """Parse a recipe from json text.

        Raises:
            ConfigError: when the text is not json or the recipe is invalid.
            RegistryError: when a step names an unknown degradation.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The {source} is not valid json: {exc}.") from exc
        except RecursionError as exc:  # "[[[[...": a recipe is two levels deep
            raise ConfigError(f"The {source} is nested too deeply to be a recipe ({_SHAPE}).") from exc
        return cls.from_dict(data, source)

    def sample(self, seed: int) -> Record:
        """The exact values of one application with ``seed``: a json-able record.

        Every step draws its values whether it fires or not, so changing one step's probability
        never changes the values another step draws.
        """
        rng = np.random.default_rng(seed)
        applied = []
        for step in self.steps:
            spec = get(step.name).params
            fires = bool(rng.random() < step.p)
            values: dict[str, float] = {}
            for pname in sorted(step.ranges):
                lo, hi = step.ranges[pname]
                if spec[pname].integer:
                    values[pname] = int(rng.integers(int(lo), int(hi) + 1))
                else:
                    values[pname] = round(float(rng.uniform(lo, hi)) if hi > lo else lo, 6)
            step_seed = int(rng.integers(0, 2**31 - 1))
            if fires:
                applied.append({"name": step.name, "values": values, "seed": step_seed})
        return {"version": RECIPE_VERSION, "seed": int(seed), "steps": applied}

    def apply(self, pixels: np.ndarray, seed: int) -> tuple[np.ndarray, Record]:
        """Degrade ``pixels`` (uint8 grey or RGB) with ``seed``: the new pixels and their record."""
        record = self.sample(seed)
        return apply_record(pixels, record), record


def apply_record(pixels: np.ndarray, record: Record) -> np.ndarray:
    """Apply the exact steps of a record (from ``Recipe.sample``) to ``pixels``.

    Raises:
        RegistryError: when a step names an unknown degradation.
    """
    out = np.ascontiguousarray(pixels)
    for st in record["steps"]:
        deg = get(st["name"])
        out = deg.apply(transform(deg.name), out, st["values"], int(st["seed"]))
        if out.dtype != np.uint8:
            out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def reproduce(recipe_json: str | Record, parent_pixels: np.ndarray) -> np.ndarray:
    """Rebuild one synthesised image from its recorded recipe (the synth table's ``recipe``).

    Raises:
        ConfigError: when the record is not valid json or lacks its steps.
        RegistryError: when a step names an unknown degradation.
    """
    if isinstance(recipe_json, str):
        try:
            record = json.loads(recipe_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The recorded recipe is not valid json: {exc}.") from exc
        except RecursionError as exc:
            raise ConfigError(f"The recorded recipe is nested too deeply ({_SHAPE}).") from exc
    else:
        record = recipe_json
    if not isinstance(record, dict) or not isinstance(record.get("steps"), list):
        raise ConfigError(f"The recorded recipe must have a 'steps' list. Got {str(record)[:80]!r} instead.")
    return apply_record(parent_pixels, record)


def high_order_recipe(scale: tuple[float, float] = (0.25, 0.75)) -> Recipe:
    """Real-ESRGAN's randomised two-pass degradation chain (blur, resize, noise, JPEG, twice).

    The second pass fires each step less often and more gently, as in the paper's second order.
    """
    lo, hi = scale
    return Recipe((
        make_step("gaussian_blur", 1.0, sigma=(0.2, 3.0)),
        make_step("downscale", 0.7, scale=(lo, hi)),
        make_step("gauss_noise", 0.5, std=(0.01, 0.12)),
        make_step("jpeg", 1.0, quality=(30, 95)),
        make_step("gaussian_blur", 0.8, sigma=(0.2, 1.5)),
        make_step("downscale", 0.7, scale=(min(1.0, lo * 1.5), min(1.0, hi * 1.2))),
        make_step("iso_noise", 0.4, color_shift=(0.01, 0.05), intensity=(0.1, 0.5)),
        make_step("jpeg", 1.0, quality=(30, 95)),
    ))


def child_seed(seed: int, image_id: str, copy: int) -> int:
    """The seed of one synthesised copy: stable for (params seed, parent, copy), independent of order."""
    digest = hashlib.sha256(f"{seed}:{image_id}:{copy}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def describe(recipe: Recipe) -> str:
    """One line per step: name, probability and ranges (for logs and the contact sheet)."""
    if not recipe.steps:
        return "(identity: no step)"
    parts = []
    for s in recipe.steps:
        rng = ", ".join(f"{k}={_fmt_range(v)}" for k, v in sorted(s.ranges.items()))
        parts.append(f"{s.name}(p={s.p:g}; {rng})")
    return " -> ".join(parts)


def _fmt_range(v: tuple[float, float]) -> str:
    return f"{v[0]:g}" if v[0] == v[1] else f"[{v[0]:g}, {v[1]:g}]"


def describe_record(record: Record) -> str:
    """A short text of the exact values in a per-image record."""
    if not record["steps"]:
        return "identity"
    return "; ".join(
        st["name"] + " " + ",".join(f"{k}={v:g}" for k, v in sorted(st["values"].items())) for st in record["steps"]
    )


def recipe_file_dict(recipe: Recipe, weighting: Weighting | None = None) -> dict[str, Any]:
    """What recipe.json holds: the recipe and, when the fit kept it, the parent weighting."""
    out = recipe.to_dict()
    if weighting is not None:
        out["weighting"] = weighting.to_dict()
    return out


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe.json written by a previous run (or by hand).

    Raises:
        InputPathError: when the file is missing.
        ConfigError, RegistryError: when it is not a valid recipe.
    """
    data = _recipe_file(path)
    return Recipe.from_dict(data, source=f"recipe file {path}")


def load_weighting(path: str | os.PathLike[str]) -> Weighting | None:
    """The parent weighting saved beside a recipe (recipe.json or fit.json), or None.

    Raises:
        InputPathError: when the file is missing.
        ConfigError: when the saved weighting is invalid.
    """
    from shiftkit.synth.weighting import Weighting

    data = _recipe_file(path)
    if not isinstance(data, dict) or data.get("weighting") is None:
        return None
    return Weighting.from_dict(data["weighting"], source=f"parent weighting in {path}")


_SHAPE = "expected {'steps': [{'name': ..., ...}, ...]}"


def _recipe_file(path: str | os.PathLike[str]) -> Any:
    from shiftkit.core import files as io

    try:
        data = io.read_json(path)
    except RecursionError as exc:  # "[[[[..." 50,000 deep: a recipe is two levels deep
        raise ConfigError(f"The recipe file {path} is nested too deeply to be a recipe ({_SHAPE}).") from exc
    if isinstance(data, dict) and "recipe" in data and "steps" not in data:
        data = data["recipe"]  # a fit.json holds the recipe too
    return data
