"""The degradation registry: every degradation is declared once, by a decorator beside its function.

A declaration carries everything the rest of the package needs to know about a degradation::

    @degradation("zoom", kind="geometry", order=50, geometry=True,
                 params={"scale": ParamSpec(0.1, 10.0, (0.8, 1.25))},
                 grid=[{"scale": 0.7}, {"scale": 1.4}])
    def _zoom(t, img, values, seed): ...

- ``kind``: the slot the fit fills; a recipe holds at most one step of each kind.
- ``order``: the step's place in the canonical order the fit composes steps in
  (:func:`canonical_order` sorts by it: framing first, then resolution loss, then sensor and codec).
- ``grid``: the values the fit tries (``shiftkit/synth/fit.py``): a list of parameter mappings,
  or a function of the :class:`GridContext` (what the fit measured on its samples) returning
  mappings or ready steps. The fit tries the grids in the order the degradations were declared.
- ``build``: makes the albumentations transform once per process (None: the function needs none).

The registry is strict: a second declaration of a name, or a lookup of an unknown one, raises
:class:`~shiftkit.core.errors.RegistryError` listing the valid names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from shiftkit.core.errors import RegistryError

# an albumentations transform (or None for degradations that use cv2 alone); its class depends on
# the degradation, so it stays untyped here
Transform = Any
ApplyFn = Callable[[Transform, np.ndarray, dict[str, float], int], np.ndarray]
# one move of the fit: parameter values of this degradation, a ready step, or steps applied together
Move = Union[Mapping[str, Any], "Step", tuple["Step", ...]]  # Step: below, used by recipe.py
GridFn = Callable[["GridContext"], Iterable[Move]]


@dataclass(frozen=True)
class Step:
    """One step of a recipe (``recipe.py``): a registered degradation's name, its probability and a range
    per parameter. Here, below the recipes, because a fit's move (``Move``) may be a ready step."""

    name: str
    p: float = 1.0
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "p": self.p, "params": {k: list(v) for k, v in sorted(self.ranges.items())}}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a degradation: its allowed bounds, whether integral, its default range."""

    low: float
    high: float
    default: tuple[float, float]
    integer: bool = False
    doc: str = ""
    # a length in pixels or a per-pixel amplitude (noise): a value fitted on images reduced by a
    # factor f (the fit's working size, ``fit.py``) is divided by f for the full-size recipe
    pixel_unit: bool = False


@dataclass(frozen=True)
class GridContext:
    """What a grid may depend on: medians and levels measured on the fit's samples."""

    web_side: float  # median short side of the web sample, in pixels
    target_side: float  # median short side of the target sample
    target_levels: int  # distinct grey levels over the whole target sample
    target_jpeg: tuple[float, ...] = ()  # estimated JPEG qualities of the target sample (JPEG files only)
    colour: ColourStats | None = None  # colour statistics of both samples (None: both grey)


@dataclass(frozen=True)
class ColourStats:
    """Colour statistics of the fit's two samples, from which camera steps derive their grids
    (``camera.py``): each is the median over images, web then target."""

    web_means: tuple[float, float, float]  # per-channel (R, G, B) means in [0, 1]
    target_means: tuple[float, float, float]
    web_saturation: float  # mean HSV saturation in [0, 1]
    target_saturation: float
    web_luma: float  # mean grey level in [0, 1]
    target_luma: float


@dataclass(frozen=True)
class Degradation:
    """A registered degradation: how to build its transform, apply exact values, and fit it."""

    name: str
    kind: str  # the fit's slot: geometry, tone, blur, resolution, noise, quantisation, compression...
    order: float  # place in the canonical order (lower: applied earlier)
    params: dict[str, ParamSpec]
    build: Callable[[], Transform]
    apply: ApplyFn
    grid: Sequence[Mapping[str, Any]] | GridFn | None = None
    geometry: bool = False  # moves or reframes the content (what a resolution-only shift must not need)
    doc: str = ""

    def moves(self, ctx: GridContext) -> list[Move]:
        """The grid's moves for ``ctx`` (empty when the fit never tries this degradation)."""
        if self.grid is None:
            return []
        return list(self.grid(ctx) if callable(self.grid) else self.grid)


_REGISTRY: dict[str, Degradation] = {}
_TRANSFORMS: dict[str, Transform] = {}  # per process: name -> built albumentations transform


def _no_transform() -> None:
    return None


def register(deg: Degradation) -> Degradation:
    """Register a degradation under its name.

    Raises:
        RegistryError: when the name is already registered.
    """
    if deg.name in _REGISTRY:
        raise RegistryError(f"Degradation {deg.name!r} is registered twice; registered: {', '.join(names())}.")
    _REGISTRY[deg.name] = deg
    return deg


def degradation(
    name: str,
    *,
    kind: str,
    order: float,
    params: dict[str, ParamSpec],
    grid: Sequence[Mapping[str, Any]] | GridFn | None = None,
    build: Callable[[], Transform] | None = None,
    geometry: bool = False,
    doc: str = "",
) -> Callable[[ApplyFn], ApplyFn]:
    """Decorator: register the decorated ``fn(transform, pixels, values, seed) -> pixels`` as ``name``.

    Raises:
        RegistryError: when ``name`` is already registered.
    """

    def wrap(fn: ApplyFn) -> ApplyFn:
        register(Degradation(name, kind, order, dict(params), build or _no_transform, fn, grid, geometry,
                             doc or (fn.__doc__ or "").strip()))
        return fn

    return wrap


def unregister(name: str) -> Degradation:
    """Remove a registered degradation (and its built transform); returns it.

    Raises:
        RegistryError: when ``name`` is unknown.
    """
    deg = get(name)
    del _REGISTRY[name]
    _TRANSFORMS.pop(name, None)
    return deg


def names() -> list[str]:
    """Names of every registered degradation, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Degradation:
    """The degradation registered as ``name``.

    Raises:
        RegistryError: when ``name`` is unknown; the message lists the valid names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(f"Unknown degradation {name!r}; valid names: {', '.join(names())}.") from None


def declared() -> list[Degradation]:
    """Every registered degradation, in the order they were declared (the fit's grid order)."""
    return list(_REGISTRY.values())


def canonical_order() -> tuple[str, ...]:
    """Registered names in the order the fit composes steps (by ``order``, then name)."""
    return tuple(d.name for d in sorted(_REGISTRY.values(), key=lambda d: (d.order, d.name)))


def geometry_names() -> tuple[str, ...]:
    """Degradations that move or reframe the content, in canonical order."""
    return tuple(n for n in canonical_order() if _REGISTRY[n].geometry)


def transform(name: str) -> Transform:
    """The degradation's transform, built on first use in this process."""
    t = _TRANSFORMS.get(name)
    if t is None:
        t = _TRANSFORMS[name] = get(name).build()
    return t


def warm() -> None:
    """Import albumentations and build every transform now (before worker processes fork)."""
    for name in names():
        transform(name)
