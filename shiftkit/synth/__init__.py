"""Target-like synthesis: degradation recipes over albumentations, fitted to the target.

One module per idea:

- ``registry.py``: the strict registry and the ``@degradation`` decorator that declares a
  degradation once (name, kind, canonical order, parameters, the fit's grid).
- ``degradations.py``: the degradation functions, each with its declaration. Adding a
  degradation is one decorated function there (or in any module that is imported).
- ``camera.py``: the camera degradations (lens, sensor, image processor, codec), whose grids come
  from the colour statistics of the fit's samples.
- ``working.py``: the fit's working size (large images fitted reduced, the recipe scaled back).
- ``recipe.py``: recipes (of ``registry.Step``s), the per-image records that reproduce every copy.
- ``fit.py``: the beam search that chooses a recipe (its settings: ``FitSettings``).
- ``weighting.py``: the density-ratio weighting of parents.
- ``tables.py``: the fit on the pipeline's tables (target train images only) and the
  weighting's held-out check.
- ``workers.py``: per-image work in worker processes (through ``shiftkit.runtime.imap.imap``).
- ``stage.py``: the synth stage, writing its output folder as one set.
"""

from __future__ import annotations

from shiftkit.synth import camera as _camera  # noqa: F401  (registers the camera degradations)
from shiftkit.synth import degradations as _degradations  # noqa: F401  (registers the built-in degradations)
from shiftkit.synth.degradations import content_box
from shiftkit.synth.fit import FitResult, FitSettings, candidates, fit_recipe, grid_context
from shiftkit.synth.recipe import (
    RECIPE_VERSION,
    Recipe,
    apply_record,
    child_seed,
    describe,
    describe_record,
    high_order_recipe,
    load_recipe,
    load_weighting,
    make_step,
    recipe_file_dict,
    reproduce,
)
from shiftkit.synth.registry import (
    Degradation,
    GridContext,
    ParamSpec,
    Step,
    canonical_order,
    degradation,
    geometry_names,
    get,
    names,
    register,
    unregister,
    warm,
)
from shiftkit.synth.stage import run_synth, write_contact_sheet
from shiftkit.synth.tables import SYNTH_SPLITS, fit_from_tables
from shiftkit.synth.workers import encode_png, moved_features

__all__ = [
    "CANONICAL_ORDER", "GEOMETRY", "RECIPE_VERSION", "SYNTH_SPLITS", "Degradation", "FitResult", "FitSettings",
    "GridContext", "ParamSpec", "Recipe", "Step", "apply_record", "candidates", "canonical_order", "child_seed",
    "content_box", "degradation", "describe", "describe_record", "encode_png", "fit_from_tables", "fit_recipe",
    "geometry_names", "get", "grid_context", "high_order_recipe", "load_recipe", "load_weighting", "make_step",
    "moved_features", "names", "recipe_file_dict", "register", "reproduce", "run_synth", "unregister", "warm",
    "write_contact_sheet",
]


def __getattr__(name: str) -> tuple[str, ...]:
    # derived from the registry at each access, so a degradation registered later is included
    if name == "CANONICAL_ORDER":
        return canonical_order()
    if name == "GEOMETRY":
        return geometry_names()
    raise AttributeError(f"module 'shiftkit.synth' has no attribute {name!r}")
