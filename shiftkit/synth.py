"""Target-like synthesis: degradation recipes over albumentations, fitted to the target.

A **recipe** is an ordered list of steps; each step names a registered degradation, a probability
and a range per parameter. Applying a recipe to one image with one seed first *samples* the exact
values of every step (a json-able record), then applies the steps that fired, in order. The record
alone reproduces the image (``reproduce``): the same seed always gives the same bytes.

Degradations wrap albumentations 2.x: each one builds its albumentations transform once per
process and calls the transform's ``apply`` with the exact values we sampled (building a
transform validates its arguments with pydantic, which costs several times more than applying
it to a small image). Geometry, binarisation and grey-level quantisation, which albumentations
does not offer in the form we need, use albumentations' functional layer or cv2; the pen width
(``stroke``) is albumentations' Morphological, turned round for dark ink on a light background.

``fit_recipe`` chooses steps and values so that degraded web images become hard to tell from
target images (a cross-validated domain classifier on cheap features, plus the distance between
property distributions): a beam search over a grid of single steps (and of the one pair that
only pays together: binarise, then reduce) with successive halving, a coordinate search that
nudges the chosen values, then pruning of steps that do not pay.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from shiftkit.errors import ConfigError, RegistryError

RECIPE_VERSION = 1


# ---------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a degradation: its allowed bounds, whether integral, its default range."""

    low: float
    high: float
    default: tuple[float, float]
    integer: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Degradation:
    """A registered degradation: how to build its albumentations transform and apply values."""

    name: str
    kind: str  # geometry, tone, blur, resolution, noise, quantisation, compression
    params: dict[str, ParamSpec]
    build: Callable[[], Any]
    apply: Callable[[Any, np.ndarray, dict[str, float], int], np.ndarray]
    doc: str = ""


_REGISTRY: dict[str, Degradation] = {}
_TRANSFORMS: dict[str, Any] = {}  # per process: name -> built albumentations transform


def register(deg: Degradation) -> Degradation:
    """Register a degradation under its name.

    Raises:
        RegistryError: when the name is already registered.
    """
    if deg.name in _REGISTRY:
        raise RegistryError(f"Degradation {deg.name!r} is registered twice; registered: {', '.join(names())}.")
    _REGISTRY[deg.name] = deg
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
        raise RegistryError(
            f"Unknown degradation {name!r}; valid names: {', '.join(names())}."
        ) from None


def _transform(name: str) -> Any:
    t = _TRANSFORMS.get(name)
    if t is None:
        t = _TRANSFORMS[name] = get(name).build()
    return t


# --- the degradations ------------------------------------------------------------------------


def _alb():
    import albumentations as A  # heavy: imported only when a recipe is applied

    return A


def _background(img: np.ndarray) -> float | tuple[float, ...]:
    """The background level: the median of the border pixels (per channel)."""
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]], axis=0)
    med = np.median(border.reshape(border.shape[0], -1), axis=0)
    return float(med[0]) if med.size == 1 else tuple(float(v) for v in med)


def _affine(img: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    from albumentations.augmentations.geometric import functional as fgeo

    h, w = img.shape[:2]
    return fgeo.warp_affine(
        img, matrix, cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR,
        _background(img), cv2.BORDER_CONSTANT, (h, w),
    )


def _zoom(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # scale > 1 zooms in (the object fills more of the frame), < 1 zooms out (a distant object)
    h, w = img.shape[:2]
    s = v["scale"]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[s, 0, cx - s * cx], [0, s, cy - s * cy], [0, 0, 1]], dtype=np.float64)
    return _affine(img, m)


def _translate(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    h, w = img.shape[:2]
    m = np.array([[1, 0, v["dx"] * w], [0, 1, v["dy"] * h], [0, 0, 1]], dtype=np.float64)
    return _affine(img, m)


def _shear(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # horizontal shear about the centre: positive angles lean the top to the right
    h, w = img.shape[:2]
    k = math.tan(math.radians(v["angle"]))
    cy = (h - 1) / 2.0
    m = np.array([[1, -k, k * cy], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    return _affine(img, m)


def _rotate(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # about the centre; positive angles turn counter-clockwise. A range gives each copy its own
    # tilt, as a hand never writes two digits at the same angle
    h, w = img.shape[:2]
    m = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), v["angle"], 1.0), [0, 0, 1]])
    return _affine(img, m)


def _elastic(_t: Any, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    from albumentations.augmentations.geometric import functional as fgeo

    # albumentations ElasticTransform's own displacement field, drawn from the step's seed so a
    # record reproduces it; alpha and sigma are fractions of the short side, so one recipe bends
    # a 28-pixel and a 512-pixel digit alike
    h, w = img.shape[:2]
    side = float(min(h, w))
    dx, dy = fgeo.generate_displacement_fields(
        (h, w), v["alpha"] * side, max(v["sigma"] * side, 0.5), False, (0, 0),
        np.random.default_rng(seed), "gaussian",
    )
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return fgeo.remap(img, xs + dx, ys + dy, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT, _background(img))


def content_box(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right), exclusive ends, of what differs from the border's level.

    Content is a pixel more than a quarter of the grey range away from the border median (the
    rule of ``images.content_extent``); None for a uniform image.
    """
    grey = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    grey = grey.astype(np.int16)
    lo, hi = int(grey.min()), int(grey.max())
    if hi - lo < 1:
        return None
    bg = _background(grey.astype(np.uint8))
    mask = np.abs(grey - bg) > 0.25 * (hi - lo)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _crop_to_content(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.geometric import functional as fgeo

    box = content_box(img)
    if box is None:
        return img
    h, w = img.shape[:2]
    top, left, bottom, right = box
    bh, bw = bottom - top, right - left
    # stretch 0 keeps the content's aspect ratio (square box around it), 1 fills the frame
    side = max(bh, bw)
    bh = bh + (1.0 - v["stretch"]) * (side - bh)
    bw = bw + (1.0 - v["stretch"]) * (side - bw)
    bh, bw = bh * (1.0 + 2.0 * v["margin_y"]), bw * (1.0 + 2.0 * v["margin_x"])
    cy, cx = (top + bottom) / 2.0, (left + right) / 2.0
    # an affine map of the box onto the frame pads with the background where the box leaves it
    sx, sy = w / bw, h / bh
    m = np.array(
        [[sx, 0, -(cx - bw / 2.0) * sx], [0, sy, -(cy - bh / 2.0) * sy], [0, 0, 1]], dtype=np.float64
    )
    interp = cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR
    return fgeo.warp_affine(img, m, interp, _background(img), cv2.BORDER_CONSTANT, (h, w))


def _gaussian_blur(t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.blur import functional as fblur

    return t.apply(img, kernel=fblur.create_gaussian_kernel_1d(v["sigma"], 0))


def _defocus(t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    return t.apply(img, radius=int(v["radius"]), alias_blur=v["alias_blur"])


def _motion_blur(t: Any, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    from albumentations.augmentations.blur import functional as fblur

    k = int(v["kernel"]) | 1
    kernel = fblur.create_motion_kernel(k, v["angle"], v["direction"], True, random.Random(seed))
    total = float(kernel.sum())
    return t.apply(img, kernel=kernel.astype(np.float32) / (total if total > 0 else 1.0))


def _downscale(t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # never below one pixel on the short side
    scale = max(v["scale"], 1.0 / min(img.shape[:2]))
    if int(v["keep_size"]):
        return t.apply(img, scale=scale)
    from albumentations.augmentations.geometric import functional as fgeo

    # a small output keeps the target's own pixel grid: enlarging it again (as a model's input
    # resize will) adds an interpolation the target images never went through
    h, w = img.shape[:2]
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    return fgeo.resize(img, shape, cv2.INTER_AREA)


def _jpeg(t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    return t.apply(img, quality=int(v["quality"]), image_type=".jpg")


def _gauss_noise(t: Any, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    noise = fpix.generate_noise(
        "gaussian", "per_pixel", img.shape, {"mean_range": (0.0, 0.0), "std_range": (v["std"], v["std"])},
        255.0, 1.0, np.random.default_rng(seed),
    )
    return t.apply(img, noise_map=noise)


def _iso_noise(t: Any, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    grey = img.ndim == 2
    rgb = np.repeat(img[..., None], 3, axis=2) if grey else img
    out = t.apply(rgb, color_shift=v["color_shift"], intensity=v["intensity"], random_seed=seed)
    return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) if grey else out


def _brightness_contrast(t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # albumentations' convention: alpha = 1 + contrast, beta = brightness * max value
    return t.apply(img, alpha=1.0 + v["contrast"], beta=v["brightness"] * 255.0)


def _content_mask(img: np.ndarray, level: float) -> tuple[np.ndarray, bool]:
    """Pixels further than ``level`` x the grey range from the border's level; whether that is light."""
    grey = _grey(img).astype(np.int16)
    lo, hi = int(grey.min()), int(grey.max())
    bg = _background(grey.astype(np.uint8))
    return np.abs(grey - bg) > level * max(hi - lo, 1), bool(bg > 127)


def _threshold(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # scanned forms and fax-like targets were binarised before any reduction: their grey levels
    # come from averaging black and white pixels, not from the pen's own shading
    mask, light = _content_mask(img, v["level"])
    fg, bg = (0, 255) if light else (255, 0)
    out = np.where(mask, np.uint8(fg), np.uint8(bg)).astype(np.uint8)
    return out if img.ndim == 2 else np.repeat(out[..., None], img.shape[2], axis=2)


def _stroke(t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.geometric import functional as fgeo

    size = int(v["size"])
    if size == 0:
        return img
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(size), abs(size)))
    # dilation grows light regions: on a light background the content is dark and grows by erosion
    thicker = size > 0
    light = _background(_grey(img)) > 127
    return fgeo.morphology(img, kernel, "dilation" if thicker != light else "erosion")


_QUANT_LUT: dict[int, np.ndarray] = {}


def _quantize(_t: Any, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    levels = int(v["levels"])
    lut = _QUANT_LUT.get(levels)
    if lut is None:
        step = 255.0 / (levels - 1)
        lut = _QUANT_LUT[levels] = np.clip(np.rint(np.rint(np.arange(256) / step) * step), 0, 255).astype(np.uint8)
    return fpix.apply_lut(img, lut, inplace=False) if hasattr(fpix, "apply_lut") else cv2.LUT(img, lut)


def _register_builtins() -> None:
    A = _alb  # transforms are built lazily, on first use in each process
    P = ParamSpec
    register(Degradation(
        "crop_to_content", "geometry",
        {"margin_x": P(-0.4, 1.0, (0.0, 0.0), doc="border added left and right, fraction of the box"),
         "margin_y": P(-0.4, 1.0, (0.0, 0.0), doc="border added above and below, fraction of the box"),
         "stretch": P(0.0, 1.0, (1.0, 1.0), doc="0 keeps the aspect ratio, 1 fills the frame")},
        lambda: None, _crop_to_content, "crop to the content's bounding box and resize to the frame"))
    register(Degradation(
        "zoom", "geometry", {"scale": P(0.1, 10.0, (0.8, 1.25), doc=">1 zooms in, <1 zooms out")},
        lambda: None, _zoom, "zoom about the centre, padding with the background"))
    register(Degradation(
        "shear", "slant", {"angle": P(-45.0, 45.0, (-10.0, 10.0), doc="degrees; > 0 leans the top right")},
        lambda: None, _shear, "horizontal shear (slant) about the centre, padding with the background"))
    register(Degradation(
        "rotate", "tilt", {"angle": P(-45.0, 45.0, (-10.0, 10.0), doc="degrees; > 0 turns counter-clockwise")},
        lambda: None, _rotate, "rotation about the centre, padding with the background"))
    register(Degradation(
        "elastic", "elastic",
        {"alpha": P(0.0, 10.0, (1.0, 1.0), doc="displacement scale, fraction of the short side"),
         "sigma": P(0.01, 1.0, (0.15, 0.15), doc="smoothness of the field, fraction of the short side")},
        lambda: A().ElasticTransform(p=1.0), _elastic,
        "albumentations ElasticTransform's displacement field (a hand's wobble), padding with the background"))
    register(Degradation(
        "translate", "geometry",
        {"dx": P(-0.5, 0.5, (-0.1, 0.1), doc="fraction of the width"),
         "dy": P(-0.5, 0.5, (-0.1, 0.1), doc="fraction of the height")},
        lambda: None, _translate, "shift, padding with the background"))
    register(Degradation(
        "threshold", "binarise",
        {"level": P(0.05, 0.95, (0.5, 0.5), doc="content: further than this share of the grey range from the border")},
        lambda: None, _threshold, "binarise: content to full contrast, the rest to the background"))
    register(Degradation(
        "stroke", "stroke",
        {"size": P(-9, 9, (2, 2), integer=True, doc="elliptic kernel side; > 0 thickens the content, < 0 thins")},
        lambda: A().Morphological(p=1.0), _stroke, "albumentations Morphological (pen width)"))
    register(Degradation(
        "brightness_contrast", "tone",
        {"brightness": P(-1.0, 1.0, (-0.1, 0.1)), "contrast": P(-1.0, 1.0, (-0.1, 0.1))},
        lambda: A().RandomBrightnessContrast(p=1.0), _brightness_contrast, "albumentations RandomBrightnessContrast"))
    register(Degradation(
        "gaussian_blur", "blur", {"sigma": P(0.05, 20.0, (0.5, 1.5), doc="pixels")},
        lambda: A().GaussianBlur(p=1.0), _gaussian_blur, "albumentations GaussianBlur"))
    register(Degradation(
        "defocus_blur", "blur",
        {"radius": P(1, 30, (2, 4), integer=True), "alias_blur": P(0.0, 5.0, (0.1, 0.5))},
        lambda: A().Defocus(p=1.0), _defocus, "albumentations Defocus"))
    register(Degradation(
        "motion_blur", "blur",
        {"kernel": P(3, 63, (3, 7), integer=True, doc="odd kernel size"), "angle": P(0.0, 360.0, (0.0, 360.0)),
         "direction": P(-1.0, 1.0, (-1.0, 1.0))},
        lambda: A().MotionBlur(p=1.0), _motion_blur, "albumentations MotionBlur"))
    register(Degradation(
        "downscale", "resolution",
        {"scale": P(0.01, 1.0, (0.25, 0.5), doc="side fraction kept"),
         "keep_size": P(0, 1, (1, 1), integer=True, doc="1: enlarge back to the input size, 0: stay small")},
        lambda: A().Downscale(p=1.0, interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}),
        _downscale, "albumentations Downscale (area down, linear up)"))
    register(Degradation(
        "gauss_noise", "noise", {"std": P(0.0, 1.0, (0.01, 0.05), doc="fraction of 255")},
        lambda: A().GaussNoise(p=1.0), _gauss_noise, "albumentations GaussNoise"))
    register(Degradation(
        "iso_noise", "noise", {"color_shift": P(0.0, 1.0, (0.01, 0.05)), "intensity": P(0.0, 2.0, (0.1, 0.5))},
        lambda: A().ISONoise(p=1.0), _iso_noise, "albumentations ISONoise"))
    register(Degradation(
        "quantize", "quantisation", {"levels": P(2, 256, (16, 16), integer=True, doc="grey levels kept")},
        lambda: None, _quantize, "uniform grey-level quantisation"))
    register(Degradation(
        "jpeg", "compression", {"quality": P(1, 100, (50, 90), integer=True)},
        lambda: A().ImageCompression(p=1.0), _jpeg, "albumentations ImageCompression (JPEG)"))


_register_builtins()

# framing and pose: what the fit must not choose when only resolution differs
GEOMETRY = ("shear", "rotate", "elastic", "crop_to_content", "zoom", "translate")

# the order the fit composes steps in: framing first, resolution loss, then sensor and codec
CANONICAL_ORDER = (
    "shear", "rotate", "elastic", "crop_to_content", "zoom", "translate", "threshold", "stroke", "gaussian_blur", "defocus_blur",
    "motion_blur", "downscale", "brightness_contrast", "gauss_noise", "iso_noise", "quantize", "jpeg",
)


def warm() -> None:
    """Import albumentations and build every transform now (before worker processes fork)."""
    for name in names():
        _transform(name)


# ---------------------------------------------------------------------------------------------
# recipes


@dataclass(frozen=True)
class Step:
    """One step of a recipe: a degradation name, its probability and a range per parameter."""

    name: str
    p: float = 1.0
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "p": self.p, "params": {k: list(v) for k, v in sorted(self.ranges.items())}}


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
        return cls.from_dict(data, source)

    def sample(self, seed: int) -> dict[str, Any]:
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

    def apply(self, pixels: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Degrade ``pixels`` (uint8 grey or RGB) with ``seed``: the new pixels and their record."""
        record = self.sample(seed)
        return apply_record(pixels, record), record


def apply_record(pixels: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """Apply the exact steps of a record (from ``Recipe.sample``) to ``pixels``.

    Raises:
        RegistryError: when a step names an unknown degradation.
    """
    out = np.ascontiguousarray(pixels)
    for st in record["steps"]:
        deg = get(st["name"])
        out = deg.apply(_transform(deg.name), out, st["values"], int(st["seed"]))
        if out.dtype != np.uint8:
            out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def reproduce(recipe_json: str | dict[str, Any], parent_pixels: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# fitting


@dataclass
class FitResult:
    """The fitted recipe and the search log (before/after measures, candidates tried)."""

    recipe: Recipe
    before: dict[str, float]
    after: dict[str, float]
    log: list[dict[str, Any]]
    sizes: dict[str, int]
    seconds: float
    weighting: Any = None  # a weighting.Weighting when the fit keeps parent weighting
    weighting_check: dict[str, Any] | None = None  # its held-out check (also when not kept)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "recipe": recipe_file_dict(self.recipe, self.weighting),
            "before": self.before,
            "after": self.after,
            "rounds": self.log,
            "sample_sizes": self.sizes,
            "seconds": round(self.seconds, 2),
        }
        if self.weighting_check is not None:
            out["weighting"] = self.weighting_check
        return out


def recipe_file_dict(recipe: Recipe, weighting: Any = None) -> dict[str, Any]:
    """What recipe.json holds: the recipe and, when the fit kept it, the parent weighting."""
    out = recipe.to_dict()
    if weighting is not None:
        out["weighting"] = weighting.to_dict()
    return out


def _candidates(
    web: Sequence[np.ndarray], target: Sequence[np.ndarray], target_jpeg: Sequence[float | None], high_order: bool
) -> list[Step]:
    """The grid of single steps the search tries, some of them derived from the target sample."""
    web_side = float(np.median([min(p.shape[:2]) for p in web]))
    tgt_side = float(np.median([min(p.shape[:2]) for p in target]))
    cands: list[Step | tuple[Step, ...]] = []
    for my in (0.0, 0.1):
        for mx in (0.0, 0.15, 0.3):
            for stretch in (0.0, 1.0):
                cands.append(make_step("crop_to_content", margin_x=mx, margin_y=my, stretch=stretch))
    for s in (0.7, 1.4):
        cands.append(make_step("zoom", scale=s))
    for angle in (-12.0, 12.0):
        cands.append(make_step("shear", angle=angle))
    cands.append(make_step("translate", dx=(-0.1, 0.1), dy=(-0.1, 0.1)))
    # per-copy variety of pose and pen path: a range, so every copy draws its own values
    cands.append(make_step("rotate", angle=(-8.0, 8.0)))
    for alpha, sigma in ((1.0, 0.15), (2.0, 0.25)):
        cands.append(make_step("elastic", alpha=alpha, sigma=sigma))
    cands.append(make_step("threshold", level=0.5))
    for size in (-2, 2, 3):
        cands.append(make_step("stroke", size=size))
    for b, c in ((0.1, 0.0), (-0.1, 0.0), (0.0, 0.25), (0.0, 0.5), (0.0, -0.3)):
        cands.append(make_step("brightness_contrast", brightness=b, contrast=c))
    for sigma in (0.5, 1.0, 2.0):
        cands.append(make_step("gaussian_blur", sigma=sigma * web_side / 64.0 if web_side > 64 else sigma))
    cands.append(make_step("defocus_blur", radius=max(1, round(web_side / 32)), alias_blur=0.2))
    cands.append(make_step("motion_blur", kernel=max(3, int(web_side / 16) | 1)))
    scales = {0.25, 0.5}
    if tgt_side < web_side:
        scales.add(round(tgt_side / web_side, 4))  # the target's own size, when smaller
    for s in sorted(scales):
        for keep in (0, 1):
            cands.append(make_step("downscale", scale=s, keep_size=keep))
        # binarising only pays together with a reduction (a scanner that counts ink per cell, as
        # load_digits was made): alone, the hard edges look sharper than any blurry target, so
        # the pair is one move of the search
        cands.append((make_step("threshold", level=0.5), make_step("downscale", scale=s, keep_size=0)))
    for std in (0.02, 0.06):
        cands.append(make_step("gauss_noise", std=std))
    levels = {8, 32}
    distinct = len(np.unique(np.concatenate([_grey(p).ravel() for p in target])))
    if distinct <= 64:
        levels.add(max(2, distinct))  # the target's own grey levels, when visibly quantised
    for lv in sorted(levels):
        cands.append(make_step("quantize", levels=lv))
    qualities = [q for q in target_jpeg if q is not None]
    if qualities:  # only a JPEG target suggests re-encoding, at its own estimated quality
        q = float(np.median(qualities))
        for qq in sorted({max(1, round(q - 10)), round(q), min(100, round(q + 10))}):
            cands.append(make_step("jpeg", quality=qq))
    if high_order:
        cands.append(Step("high_order", 1.0, {}))
    return cands


def _grey(p: np.ndarray) -> np.ndarray:
    return p if p.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(p), cv2.COLOR_RGB2GRAY)


def _with_step(recipe: Recipe, step: Step | tuple[Step, ...]) -> Recipe:
    """``recipe`` with ``step`` in its kind's slot (one step per kind), in canonical order.

    A tuple of steps is one move: each goes into its own slot.
    """
    if isinstance(step, tuple):
        for s in step:
            recipe = _with_step(recipe, s)
        return recipe
    if step.name == "high_order":
        return Recipe(recipe.steps + high_order_recipe().steps)
    kind = get(step.name).kind
    steps = [s for s in recipe.steps if get(s.name).kind != kind] + [step]
    order = {n: i for i, n in enumerate(CANONICAL_ORDER)}
    steps.sort(key=lambda s: order.get(s.name, len(order)))
    return Recipe(tuple(steps))


class _Objective:
    """Scores a recipe on fixed samples: lower is closer to the target."""

    def __init__(self, web, target, *, feature_size: int, seed: int, dist_weight: float, folds: int) -> None:
        from shiftkit import shift

        self.web = list(web)
        self.seed = seed
        self.folds = folds
        self.feature_size = feature_size
        self.dist_weight = dist_weight
        self.target_pix, self.target_props = shift.cheap_features(target, feature_size)
        self.scale = shift.property_scale(self.target_props)

    def measure(self, recipe: Recipe, n: int | None = None) -> dict[str, float]:
        from shiftkit import shift

        web = self.web if n is None else self.web[:n]
        moved = [recipe.apply(p, self.seed + i)[0] if recipe.steps else p for i, p in enumerate(web)]
        pix, props = shift.cheap_features(moved, self.feature_size)
        nt = len(self.target_pix) if n is None else min(len(self.target_pix), max(n, 2 * self.folds))
        x = np.hstack([pix, props])
        y = np.hstack([self.target_pix[:nt], self.target_props[:nt]])
        dom = shift.domain_scores(x, y, folds=self.folds, seed=self.seed)
        dist = shift.property_distance(props, self.target_props[:nt], self.scale)
        score = max(dom["separability"], 0.0) + self.dist_weight * dist / props.shape[1]
        return {
            "auc": round(dom["auc"], 4),
            "separability": round(dom["separability"], 4),
            "property_distance": round(dist, 4),
            "score": round(score, 4),
        }


def fit_recipe(
    web: Sequence[np.ndarray],
    target: Sequence[np.ndarray],
    *,
    target_jpeg: Sequence[float | None] | None = None,
    seed: int = 0,
    max_steps: int = 6,
    min_gain: float = 0.03,
    feature_size: int = 8,
    dist_weight: float = 1.0,
    folds: int = 3,
    keep: float = 0.25,
    widen: float = 0.15,
    high_order: bool = False,
    workers: int = 1,
    beam: int = 3,
    patience: int = 1,
    refine: int = 6,
    on_round: Callable[[str], None] | None = None,
) -> FitResult:
    """Choose a recipe that makes ``web`` images hard to tell from ``target`` images.

    Beam search over recipes: each round extends each of the ``beam`` best recipes so far with
    every candidate step (added, or replacing the step of the same kind), scores the extensions
    on a quarter of the web sample, the best ``keep`` share again on the whole sample
    (successive halving), and goes on while the best score drops by at least ``min_gain``.
    A coordinate search then nudges the chosen values (up to ``refine`` moves); up to twice, one
    more round extends the refined recipe and is refined in turn when it gains ``min_gain``
    (a step can pay only once the others' values are right); steps whose removal costs less
    than ``min_gain`` are pruned. The score is the
    separability (1 - log-loss / ln 2) of a cross-validated domain classifier, which keeps falling
    where its AUC sits at 1, plus ``dist_weight`` x the mean 1-D Wasserstein distance of
    standardised properties. Finally each chosen value is widened to a range of +-``widen``
    (relative) when that costs less than half of ``min_gain``, so that copies vary.

    Raises:
        DataError: when either sample is empty or too small to cross-validate.
    """
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    warm()
    # BLAS threads inside many tiny logistic regressions cost more than they give, and would
    # fight the worker processes for the cores
    with threadpool_limits(1):
        return _fit(web, target, target_jpeg, seed, max_steps, min_gain, feature_size, dist_weight,
                    folds, keep, widen, high_order, workers, on_round, t0, beam, patience, refine)


def _worker_init() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _fit(web, target, target_jpeg, seed, max_steps, min_gain, feature_size, dist_weight,
         folds, keep, widen, high_order, workers, on_round, t0, beam, patience, refine) -> FitResult:
    from shiftkit.errors import DataError

    if len(web) < 2 * folds or len(target) < 2 * folds:
        raise DataError(
            f"Fitting a recipe needs at least {2 * folds} web and {2 * folds} target images. "
            f"Got {len(web)} web and {len(target)} target images instead."
        )
    obj = _Objective(web, target, feature_size=feature_size, seed=seed, dist_weight=dist_weight, folds=folds)
    say = on_round or (lambda _m: None)
    identity = Recipe()
    before = obj.measure(identity)
    say(f"before: AUC {before['auc']:.3f}, property distance {before['property_distance']:.3f}")
    cands = _candidates(web, target, target_jpeg or [], high_order)
    small = max(4 * folds, len(web) // 4)
    log: list[dict[str, Any]] = []
    # the beam: the best few recipes so far with their full-sample measures
    frontier: list[tuple[Recipe, dict[str, float]]] = [(identity, before)]
    best_recipe, best = identity, before
    seen = {identity.to_json()}
    stale = 0
    for rnd in range(max_steps):
        tr = time.perf_counter()
        trials: list[Recipe] = []
        for base, _m in frontier:
            for c in cands:
                if isinstance(c, Step) and c.name == "high_order" and "jpeg" in base.names:
                    continue
                t = _with_step(base, c)
                if t.to_json() not in seen:
                    seen.add(t.to_json())
                    trials.append(t)
        if not trials:
            break
        scored = _halving(obj, trials, small, keep, workers)
        pool = sorted(frontier + scored, key=lambda rm: rm[1]["score"])
        # one recipe per combination of steps: a beam of near-copies would explore nothing new
        by_names: dict[tuple[str, ...], tuple[Recipe, dict[str, float]]] = {}
        for r, m in pool:
            by_names.setdefault(tuple(r.names), (r, m))
        frontier = list(by_names.values())[:beam]
        round_best, round_m = pool[0]
        gain = best["score"] - round_m["score"]
        entry = {
            "round": rnd + 1, "tried": len(trials), "best": round_best.to_dict(), "best_measures": round_m,
            "gain": round(gain, 4), "accepted": gain >= min_gain, "seconds": round(time.perf_counter() - tr, 2),
            "top": [{"recipe": r.names, "steps": [s.to_dict() for s in r.steps], **m} for r, m in pool[:6]],
        }
        log.append(entry)
        if gain < min_gain:
            stale += 1
            say(f"round {rnd + 1}: best {round_best.names} score {round_m['score']:.3f} vs {best['score']:.3f}: "
                f"not enough gain ({stale}/{patience + 1})")
            if stale > patience:
                break
            continue
        stale = 0
        best_recipe, best = round_best, round_m
        say(f"round {rnd + 1}: {best_recipe.names} AUC {best['auc']:.3f}, distance {best['property_distance']:.3f}")
    best_recipe, best = _refine(obj, best_recipe, best, refine, workers, log, say)
    # refined values can make a step pay that did not at the grid's values (grey levels once the
    # binarising level is right): one more round from the refined recipe, refined again if it gains
    for _ in range(2 if max_steps else 0):
        trials = [_with_step(best_recipe, c) for c in cands
                  if not (isinstance(c, Step) and c.name == "high_order" and "jpeg" in best_recipe.names)]
        trials = [t for t in trials if t != best_recipe]
        trials = list({t.to_json(): t for t in trials}.values())
        cand, m = min(_halving(obj, trials, small, keep, workers), key=lambda rm: rm[1]["score"])
        if best["score"] - m["score"] < min_gain:
            break
        log.append({"extend": cand.to_dict(), "measures": m})
        say(f"extend: {cand.names} AUC {m['auc']:.3f}, distance {m['property_distance']:.3f}")
        best_recipe, best = _refine(obj, cand, m, refine, workers, log, say)
    best_recipe, best = _prune(obj, best_recipe, best, min_gain, log, say)
    best_recipe, best = _widen(obj, best_recipe, best, widen, min_gain / 2.0)
    say(f"after: AUC {best['auc']:.3f}, property distance {best['property_distance']:.3f}")
    sizes = {"web": len(web), "target": len(target), "rung1": small}
    return FitResult(best_recipe, before, best, log, sizes, time.perf_counter() - t0)


def _neighbours(recipe: Recipe) -> list[Recipe]:
    """Recipes that move one point-valued parameter of one step a notch up or down."""
    out = []
    for i, s in enumerate(recipe.steps):
        spec = get(s.name).params
        for k, (lo, hi) in sorted(s.ranges.items()):
            ps = spec[k]
            if lo != hi or (ps.integer and ps.high - ps.low <= 1):
                continue
            step = 0.05 * (ps.high - ps.low)
            proposals = {lo * 0.7, lo * 1.4} if abs(lo) > 2 * step else {lo - step, lo + step}
            for v in sorted(proposals):
                v = min(ps.high, max(ps.low, float(round(v)) if ps.integer else round(v, 4)))
                if v == lo:
                    continue
                steps = list(recipe.steps)
                steps[i] = Step(s.name, s.p, {**s.ranges, k: (v, v)})
                out.append(Recipe(tuple(steps)))
    return out


def _refine(obj: _Objective, recipe: Recipe, current: dict[str, float], rounds: int, workers: int, log, say):
    """Coordinate search: nudge one value at a time while the score keeps dropping."""
    for r in range(rounds):
        trials = _neighbours(recipe)
        if not trials:
            break
        scored = _score_all(obj, trials, workers)
        cand, m = min(scored, key=lambda rm: rm[1]["score"])
        if m["score"] >= current["score"] - 0.005:
            break
        recipe, current = cand, m
        log.append({"refine": r + 1, "recipe": recipe.to_dict(), "measures": m})
        say(f"refine {r + 1}: {describe(recipe)}: score {m['score']:.3f}")
    return recipe, current


def _score_all(obj: _Objective, trials: list[Recipe], workers: int):
    from shiftkit.parallel import imap

    global _FIT_STATE
    _FIT_STATE = (obj, trials)
    try:
        res = list(imap(_score_trial, [(i, None) for i in range(len(trials))], workers=workers, chunksize=1,
                        initializer=_worker_init))
    finally:
        _FIT_STATE = None
    return list(zip(trials, res))


def _halving(obj: _Objective, trials: list[Recipe], small: int, keep: float, workers: int):
    """Score every trial on ``small`` images, the best ``keep`` share again on the whole sample."""
    from shiftkit.parallel import imap

    global _FIT_STATE
    _FIT_STATE = (obj, trials)
    try:
        rung1 = list(imap(_score_trial, [(i, small) for i in range(len(trials))], workers=workers,
                          chunksize=1, initializer=_worker_init))
        order = sorted(range(len(trials)), key=lambda i: (rung1[i]["score"], i))
        top = order[: max(2, math.ceil(keep * len(trials)))]
        rung2 = list(imap(_score_trial, [(i, None) for i in top], workers=workers, chunksize=1,
                          initializer=_worker_init))
    finally:
        _FIT_STATE = None
    return [(trials[i], m) for i, m in zip(top, rung2)]


def _prune(obj: _Objective, recipe: Recipe, current: dict[str, float], min_gain: float, log, say):
    """Drop steps whose removal costs less than ``min_gain``: the simplest recipe that fits."""
    changed = True
    while changed and recipe.steps:
        changed = False
        for s in recipe.steps:
            smaller = Recipe(tuple(x for x in recipe.steps if x is not s))
            m = obj.measure(smaller)
            if m["score"] < current["score"] + min_gain:
                log.append({"pruned": s.name, "measures": m})
                say(f"prune: {s.name} adds less than {min_gain:g}; dropped")
                recipe, current, changed = smaller, m, True
                break
    return recipe, current


_FIT_STATE: tuple[_Objective, list[Recipe]] | None = None


def _score_trial(item: tuple[int, int | None]) -> dict[str, float]:
    # runs in a forked worker that inherited _FIT_STATE: only the trial's index travels
    i, n = item
    obj, trials = _FIT_STATE  # type: ignore[misc]
    return obj.measure(trials[i], n)


def _widen(obj: _Objective, recipe: Recipe, current: dict[str, float], widen: float, slack: float):
    if widen <= 0 or not recipe.steps:
        return recipe, current
    steps = []
    for s in recipe.steps:
        spec = get(s.name).params
        ranges = {}
        for k, (lo, hi) in s.ranges.items():
            if lo != hi or spec[k].integer and abs(lo) < 4:
                ranges[k] = (lo, hi)
                continue
            a, b = lo - abs(lo) * widen, hi + abs(hi) * widen
            a, b = max(spec[k].low, a), min(spec[k].high, b)
            ranges[k] = (float(round(a)), float(round(b))) if spec[k].integer else (round(a, 4), round(b, 4))
        steps.append(Step(s.name, s.p, ranges))
    wide = Recipe(tuple(steps))
    if wide == recipe:
        return recipe, current
    m = obj.measure(wide)
    if m["score"] <= current["score"] + slack:
        return wide, m
    return recipe, current


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


def describe_record(record: dict[str, Any]) -> str:
    """A short text of the exact values in a per-image record."""
    if not record["steps"]:
        return "identity"
    return "; ".join(
        st["name"] + " " + ",".join(f"{k}={v:g}" for k, v in sorted(st["values"].items())) for st in record["steps"]
    )


# ---------------------------------------------------------------------------------------------
# the synth stage: fit (or reuse) a recipe, then degraded copies of web train/bridge images

SYNTH_SPLITS = ("train", "bridge")  # children never reach dev or test
_RECIPE: Recipe | None = None  # per worker process, set by _init_worker


def _init_synth_worker(recipe_json: str) -> None:
    global _RECIPE
    _RECIPE = Recipe.from_json(recipe_json)
    warm()


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of uint8 grey or RGB pixels (cv2's encoder: no timestamps, stable bytes)."""
    arr = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 grey or BGR array
        raise ValueError("cv2 could not encode the image as PNG")
    return buf.tobytes()


def _write_file(path: str, data: bytes) -> None:
    # the whole images folder is staged and renamed at the end, so a plain write is safe here
    with open(path, "wb") as fh:
        fh.write(data)


def _synth_one(item: tuple[str, str, str, int]) -> tuple[str, str, str]:
    """Worker: decode a parent, degrade it with its seed, write the PNG; a small record back."""
    from shiftkit.images import decode

    src, dst, rel, seed = item
    pixels = decode(src).pixels
    out, record = _RECIPE.apply(pixels, seed)  # type: ignore[union-attr]
    data = encode_png(out)
    _write_file(dst, data)
    return rel, hashlib.sha256(data).hexdigest(), json.dumps(record, sort_keys=True, separators=(",", ":"))


def _pick(seed: int, image_id: str, fraction: float) -> bool:
    if fraction >= 1.0:
        return True
    h = int.from_bytes(hashlib.sha256(f"{seed}:pick:{image_id}".encode()).digest()[:8], "big")
    return h / 2.0**64 < fraction


def _sample_rows(df, n: int, seed: int):
    if df.height <= n:
        return df
    idx = np.sort(np.random.default_rng(seed).choice(df.height, size=n, replace=False))
    return df[idx.tolist()]


def _decode_many(paths: Sequence[Any], workers: int) -> list[Any]:
    from shiftkit.images import decode
    from shiftkit.parallel import imap

    return list(imap(decode, [str(p) for p in paths], workers=workers, chunksize=16))


def fit_from_tables(manifest_df, splits_df, manifest_path, params, *, workers: int = 0, say=None) -> FitResult:
    """Fit a recipe on target TRAIN images (never dev or test) and web images of the training pool.

    Raises:
        DataError: when either domain has too few images in the training pool.
    """
    import polars as pl

    from shiftkit import io
    from shiftkit.errors import DataError

    df = manifest_df.join(splits_df.select("image_id", "split"), on="image_id", how="inner").sort("image_id")
    tgt = df.filter((pl.col("domain") == params.target_domain) & (pl.col("split") == "train"))
    web = df.filter((pl.col("domain") == params.web_domain) & pl.col("split").is_in(list(SYNTH_SPLITS)))
    for name, part, dom in (("target", tgt, params.target_domain), ("web", web, params.web_domain)):
        if part.height < 6:
            raise DataError(
                f"Fitting a recipe needs at least 6 {name} images (domain {dom!r}, split "
                f"{'train' if name == 'target' else 'train/bridge'}). Got {part.height} instead."
            )
    tgt_fit = _sample_rows(tgt, params.fit_target, params.seed)
    web_fit = _sample_rows(web, params.fit_web, params.seed + 1)
    tdec = _decode_many(io.image_paths(tgt_fit, manifest_path), workers)
    wdec = _decode_many(io.image_paths(web_fit, manifest_path), workers)
    result = fit_recipe(
        [d.pixels for d in wdec], [d.pixels for d in tdec], target_jpeg=[d.jpeg_quality for d in tdec],
        seed=params.seed, max_steps=params.max_rounds, min_gain=params.min_gain,
        feature_size=params.feature_size, widen=params.widen, high_order=params.high_order,
        workers=workers, beam=params.beam, patience=params.patience, refine=params.refine, on_round=say,
    )
    if params.weighting != "none":
        result.weighting, result.weighting_check = _fit_weighting_from_tables(
            result.recipe, tgt, web, set(tgt_fit["image_id"]), set(web_fit["image_id"]), manifest_path, params,
            workers=workers, say=say or (lambda _m: None),
        )
    return result


def _moved_features(item: tuple[str, int, int]) -> np.ndarray:
    """Worker: the cheap features (thumbnail + properties) of one parent's degraded copy."""
    from shiftkit import shift
    from shiftkit.images import decode

    src, seed, size = item
    pixels = decode(src).pixels
    out = _RECIPE.apply(pixels, seed)[0] if _RECIPE.steps else pixels  # type: ignore[union-attr]
    thumb, props = shift.image_features(out, size)
    return np.r_[thumb.astype(np.float64), props]


def moved_features(recipe: Recipe, paths: Sequence[Any], seeds: Sequence[int], size: int, workers: int,
                   label: str | None = None) -> np.ndarray:
    """Features of every image of ``paths`` degraded by ``recipe`` with its seed (rows in order).

    With ``label``, a progress bar of that name shows the pass.
    """
    from shiftkit.console import make_progress, rate_text
    from shiftkit.parallel import imap, resolve_workers

    items = [(str(p), int(s), size) for p, s in zip(paths, seeds)]
    if not items:
        return np.zeros((0, size * size))
    n = resolve_workers(workers)
    chunk = max(1, min(64, len(items) // (16 * n)))
    rows = []
    t0 = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task(label or "features", total=len(items), rate="", visible=label is not None)
        for k, row in enumerate(imap(_moved_features, items, workers=n, chunksize=chunk,
                                     initializer=_init_synth_worker, initargs=(recipe.to_json(),)), 1):
            rows.append(row)
            if k % 64 == 0 or k == len(items):
                progress.update(task, completed=k, rate=rate_text(k, time.perf_counter() - t0))
    return np.vstack(rows)


def _fit_weighting_from_tables(recipe, tgt, web, tgt_seen, web_seen, manifest_path, params, *, workers, say):
    """Fit the parent weighting and check it on target train images the fit has not seen.

    The target train images (at most ``weight_sample``) are split in two: half of those the
    recipe fit did not sample are held out; the weights are fitted on the rest against half of
    a web sample, and resample the other half. The check compares the cross-validated domain
    AUC against the held-out target images of: the plain web half, its degraded copies, and
    its degraded copies resampled by the weights (the same number of rows). The weighting is
    kept when it lowers that AUC by at least ``min_gain``; the kept model is then refitted on
    every sampled image.

    Returns:
        (weighting or None, the check as a json-able dict).
    """
    from shiftkit import io, shift
    from shiftkit import weighting as wt

    fs = params.feature_size
    tgt = _sample_rows(tgt, params.weight_sample, params.seed + 2)
    web = _sample_rows(web, params.weight_sample, params.seed + 3)
    rng = np.random.default_rng([params.seed, 0xB1A5])
    unseen = np.flatnonzero(~np.isin(tgt["image_id"].to_numpy(), list(tgt_seen)))
    held = np.sort(rng.permutation(unseen)[: len(unseen) // 2])
    fit_t = np.setdiff1d(np.arange(tgt.height), held)
    w_unseen = np.flatnonzero(~np.isin(web["image_id"].to_numpy(), list(web_seen)))
    w_held = np.sort(rng.permutation(w_unseen)[: len(w_unseen) // 2])
    fit_w = np.setdiff1d(np.arange(web.height), w_held)
    folds = 3
    info: dict[str, Any] = {"used": False, "clip": params.weight_clip, "feature_size": fs,
                            "sizes": {"target_fit": int(fit_t.size), "target_held_out": int(held.size),
                                      "web_fit": int(fit_w.size), "web_held_out": int(w_held.size)}}
    if min(held.size, w_held.size, fit_t.size) < 2 * folds:
        info["reason"] = (f"too few target train images to check the weighting on images the fit has not "
                          f"seen ({held.size} held out; needs {2 * folds})")
        say(f"parent weighting: not used: {info['reason']}")
        return None, info
    tpaths = io.image_paths(tgt, manifest_path)
    wpaths = io.image_paths(web, manifest_path)
    seeds = [child_seed(params.seed, i, 0) for i in web["image_id"]]
    t_feats = moved_features(Recipe(), tpaths, [0] * len(tpaths), fs, workers)
    w_moved = moved_features(recipe, wpaths, seeds, fs, workers)
    w_plain = moved_features(Recipe(), [wpaths[i] for i in w_held], [0] * w_held.size, fs, workers)
    model = wt.fit_weighting(w_moved[fit_w], t_feats[fit_t], feature_size=fs, clip=params.weight_clip,
                             seed=params.seed)
    weights = model.weights(w_moved[w_held])
    picked = wt.expand(wt.allocate(weights, int(w_held.size), params.seed))
    target_held = t_feats[held]
    scale = shift.property_scale(target_held[:, fs * fs:])

    def measure(x: np.ndarray) -> dict[str, float]:
        dom = shift.domain_scores(x, target_held, folds=folds, seed=params.seed)
        dist = shift.property_distance(x[:, fs * fs:], target_held[:, fs * fs:], scale)
        return {"auc": round(dom["auc"], 4), "property_distance": round(dist, 4)}

    info["held_out"] = {
        "plain": measure(w_plain),
        "recipe": measure(w_moved[w_held]),
        "weighted": measure(w_moved[w_held][picked]),
    }
    info["effective_share"] = round(wt.effective_share(weights), 4)
    info["distinct_share"] = round(float(np.unique(picked).size / w_held.size), 4)
    gain = info["held_out"]["recipe"]["auc"] - info["held_out"]["weighted"]["auc"]
    info["used"] = bool(gain >= params.min_gain)
    h = info["held_out"]
    say(f"parent weighting, on {held.size} held-out target train images: AUC plain {h['plain']['auc']:.3f}, "
        f"recipe {h['recipe']['auc']:.3f}, recipe + weighting {h['weighted']['auc']:.3f} (effective sample "
        f"{info['effective_share']:.0%} of parents): {'kept' if info['used'] else 'not kept (gain < min_gain)'}")
    if not info["used"]:
        return None, info
    final = wt.fit_weighting(w_moved, t_feats, feature_size=fs, clip=params.weight_clip, seed=params.seed)
    info["model"] = final.to_dict()
    return final, info


def load_recipe(path: Any) -> Recipe:
    """Read a recipe.json written by a previous run (or by hand).

    Raises:
        InputPathError: when the file is missing.
        ConfigError, RegistryError: when it is not a valid recipe.
    """
    data = _recipe_file(path)
    return Recipe.from_dict(data, source=f"recipe file {path}")


def load_weighting(path: Any) -> Any:
    """The parent weighting saved beside a recipe (recipe.json or fit.json), or None.

    Raises:
        InputPathError: when the file is missing.
        ConfigError: when the saved weighting is invalid.
    """
    from shiftkit.weighting import Weighting

    data = _recipe_file(path)
    if not isinstance(data, dict) or data.get("weighting") is None:
        return None
    return Weighting.from_dict(data["weighting"], source=f"parent weighting in {path}")


def _recipe_file(path: Any) -> Any:
    from shiftkit import io

    data = io.read_json(path)
    if isinstance(data, dict) and "recipe" in data and "steps" not in data:
        data = data["recipe"]  # a fit.json holds the recipe too
    return data


def run_synth(
    manifest: Any,
    splits: Any,
    out_dir: Any,
    params: Any,
    *,
    recipe_path: Any = None,
    preview: int | None = None,
) -> dict[str, Any]:
    """The synth stage: fit (or load) a recipe and write degraded copies with the synth table.

    Writes ``synth.parquet`` (schema.SYNTH, paths relative to ``out_dir``), ``images/``,
    ``recipe.json``, ``fit.json`` and, when asked, ``preview.png``. With ``params.enabled``
    false, only an empty synth table is written.

    Raises:
        InputPathError: when a table or the recipe file is missing.
        DataError: when there are no web images to degrade or too few images to fit.
        ConfigError, RegistryError: when a saved recipe is invalid.
    """
    import os
    import shutil
    from pathlib import Path

    import polars as pl

    from shiftkit import io, schema
    from shiftkit.console import console, make_progress, rate_text
    from shiftkit.errors import DataError
    from shiftkit.parallel import imap, resolve_workers

    out = io.ensure_dir(out_dir)
    table_path = out / "synth.parquet"
    if not params.enabled:
        io.write_table(schema.empty(schema.SYNTH, with_optional=True), table_path, schema.SYNTH)
        return {"enabled": False, "images": 0}
    mdf = io.read_table(manifest, schema.MANIFEST)
    sdf = io.read_table(splits, schema.SPLITS_TABLE)
    recipe_path = recipe_path or (params.recipe or None)
    say = (lambda m: console.print(f"synth fit: {m}"))
    if recipe_path:
        recipe = load_recipe(recipe_path)
        weighting = load_weighting(recipe_path) if params.weighting != "none" else None
        fit_info: dict[str, Any] = {"reused": str(recipe_path), "recipe": recipe_file_dict(recipe, weighting)}
        console.print(f"synth: reusing recipe {recipe_path}: {describe(recipe)}"
                      + (" with its parent weighting" if weighting is not None else ""))
    else:
        result = fit_from_tables(mdf, sdf, manifest, params, workers=params.workers, say=say)
        recipe, weighting = result.recipe, result.weighting
        fit_info = result.to_dict()
        console.print(f"synth: fitted recipe: {describe(recipe)} ({result.seconds:.1f} s)")
        console.print(
            f"synth: domain AUC {result.before['auc']:.3f} -> {result.after['auc']:.3f}; property distance "
            f"{result.before['property_distance']:.3f} -> {result.after['property_distance']:.3f} "
            f"(fit sample: {result.sizes['web']} web, {result.sizes['target']} target)"
        )
        check = result.weighting_check or {}
        if "held_out" in check:
            h, n = check["held_out"], check["sizes"]["target_held_out"]
            console.print(
                f"synth: on {n} held-out target train images: domain AUC {h['plain']['auc']:.3f} (web) -> "
                f"{h['recipe']['auc']:.3f} (recipe) -> {h['weighted']['auc']:.3f} (recipe + parent weighting, "
                f"{'kept' if check['used'] else 'not kept'}); property distance "
                f"{h['plain']['property_distance']:.2f} -> {h['recipe']['property_distance']:.2f} -> "
                f"{h['weighted']['property_distance']:.2f}"
            )
    io.write_json(out / "recipe.json", recipe_file_dict(recipe, weighting))
    io.write_json(out / "fit.json", fit_info)

    web = (
        mdf.join(sdf.select("image_id", "split"), on="image_id", how="inner")
        .filter((pl.col("domain") == params.web_domain) & pl.col("split").is_in(list(SYNTH_SPLITS)))
        .sort("image_id")
    )
    if web.height == 0:
        raise DataError(
            f"There are no {params.web_domain!r} images in train or bridge to synthesise from "
            f"(manifest {manifest}, splits {splits})."
        )
    weighted: dict[str, Any] | None = None
    if weighting is None:
        parents = web.filter(pl.Series([_pick(params.seed, i, params.fraction) for i in web["image_id"]]))
        counts = [params.copies] * parents.height
    else:
        parents, counts, weighted = _weighted_parents(web, manifest, recipe, weighting, params)
        console.print(
            f"synth: parent weighting: {weighted['copies']} copies over {weighted['parents']} of {web.height} "
            f"parents (at most {weighted['max_copies']} each; effective sample {weighted['effective_share']:.0%})"
        )
    src_paths = io.image_paths(parents, manifest)
    stage = out / ".images.partial"
    if stage.exists():
        shutil.rmtree(stage)
    items, meta = [], []
    for row, src, n_copies in zip(parents.iter_rows(named=True), src_paths, counts):
        for c in range(n_copies):
            rel = f"images/{row['split']}/{row['label']}/{row['image_id'][:16]}_c{c}.png"
            dst = stage / rel.split("/", 1)[1]
            items.append((str(src), str(dst), rel, child_seed(params.seed, row["image_id"], c)))
            meta.append((row["image_id"], row["split"], row["label"], row["dup_group"], c))
    for d in sorted({str(Path(i[1]).parent) for i in items}):
        os.makedirs(d, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task("synth", total=len(items), rate="")
        # chunks small enough that no worker idles long at the end, large enough to amortise IPC
        n_workers = resolve_workers(params.workers)
        chunk = max(1, min(64, len(items) // (16 * n_workers)))
        for k, rec in enumerate(imap(_synth_one, items, workers=n_workers, chunksize=chunk,
                                     initializer=_init_synth_worker, initargs=(recipe.to_json(),)), 1):
            rows.append(rec)
            if k % 64 == 0 or k == len(items):
                progress.update(task, completed=k, rate=rate_text(k, time.perf_counter() - t0))
    seconds = time.perf_counter() - t0
    final = out / "images"
    old = out / ".images.old"
    if final.exists():
        final.rename(old)
    stage.rename(final) if items else final.mkdir(exist_ok=True)
    if old.exists():
        shutil.rmtree(old)
    table = pl.DataFrame(
        {
            "image_id": [r[1] for r in rows],
            "parent_id": [m[0] for m in meta],
            "split": [m[1] for m in meta],
            "path": [r[0] for r in rows],
            "recipe": [r[2] for r in rows],
            "domain": ["synth"] * len(rows),
            "label": [m[2] for m in meta],
            "dup_group": [m[3] for m in meta],
            "copy": [m[4] for m in meta],
        },
        schema={**schema.SYNTH.columns, **schema.SYNTH.optional},
    )
    io.write_table(table, table_path, schema.SYNTH)
    n_preview = params.preview if preview is None else preview
    if n_preview:
        write_contact_sheet(out / "preview.png", [(s, out / r[0], r[2]) for s, r in zip(src_paths, rows)][:n_preview])
    return {
        "enabled": True,
        "images": len(rows),
        "parents": parents.height,
        "seconds": round(seconds, 2),
        "rate": round(len(rows) / seconds, 1) if seconds > 0 else None,
        "recipe": describe(recipe),
        "fit": {k: fit_info.get(k) for k in ("before", "after") if k in fit_info},
        "weighting": weighted,
    }


def _weighted_parents(web, manifest: Any, recipe: Recipe, weighting: Any, params: Any):
    """Parents and their numbers of copies, shared out by the density-ratio weights.

    Every web train/bridge image is degraded once (its copy 0, the same image synthesis writes
    first) to weigh it; ``fraction x copies x`` the number of web images copies are then shared
    out by systematic resampling. Returns (parents with at least one copy, their copies, a
    summary).
    """
    import polars as pl

    from shiftkit import io
    from shiftkit import weighting as wt

    seeds = [child_seed(params.seed, i, 0) for i in web["image_id"]]
    feats = moved_features(recipe, io.image_paths(web, manifest), seeds, weighting.feature_size, params.workers,
                           label="weigh parents")
    weights = weighting.weights(feats)
    total = max(1, round(params.fraction * params.copies * web.height))
    counts = wt.allocate(weights, total, params.seed)
    keep = counts > 0
    summary = {
        "copies": int(total), "parents": int(keep.sum()), "max_copies": int(counts.max()),
        "effective_share": round(wt.effective_share(weights), 4),
    }
    return web.filter(pl.Series(keep)), counts[keep].tolist(), summary


def write_contact_sheet(path: Any, pairs: Sequence[tuple[Any, Any, str]], cell: int = 112, columns: int = 4) -> None:
    """A PNG for a person: each parent beside its degraded copy, the exact values under them."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    from shiftkit import io
    from shiftkit.images import decode

    font = ImageFont.load_default()
    text_h = 48
    w, h = 2 * cell + 8, cell + text_h
    n = len(pairs)
    rows = max(1, math.ceil(n / columns))
    sheet = Image.new("RGB", (columns * (w + 8) + 8, rows * (h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (src, dst, record) in enumerate(pairs):
        x0, y0 = 8 + (k % columns) * (w + 8), 8 + (k // columns) * (h + 8)
        for j, p in enumerate((src, dst)):
            px = decode(p).pixels
            im = Image.fromarray(px).convert("RGB").resize((cell, cell), Image.NEAREST)
            sheet.paste(im, (x0 + j * (cell + 8), y0))
        text = describe_record(json.loads(record))
        lines = textwrap.wrap(text, width=max(20, (2 * cell) // 6))[:4]
        draw.multiline_text((x0, y0 + cell + 2), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=1)
    with io.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
