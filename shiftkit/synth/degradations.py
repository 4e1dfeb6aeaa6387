"""The degradations: each function declared once, with its registration, beside its code.

Degradations wrap albumentations 2.x: each one builds its albumentations transform once per
process and calls the transform's ``apply`` with the exact values a recipe sampled (building a
transform validates its arguments with pydantic, which costs several times more than applying
it to a small image). Geometry, binarisation and grey-level quantisation, which albumentations
does not offer in the form we need, use albumentations' functional layer or cv2; the pen width
(``stroke``) is albumentations' Morphological, turned round for dark ink on a light background.

Every function has the signature ``fn(transform, pixels, values, seed) -> pixels``; its
``@degradation`` decorator (``shiftkit/synth/registry.py``) names it, places it in the canonical
order (``order``: framing first, resolution loss, then sensor and codec) and gives the grid of
values the fit tries. The fit tries the grids in the order the functions are declared here.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np

from shiftkit.synth.registry import GridContext, Move, ParamSpec, Transform, degradation

P = ParamSpec


def _alb():
    import albumentations as A  # heavy: imported only when a recipe is applied

    return A


def _background(img: np.ndarray) -> float | tuple[float, ...]:
    """The background level: the median of the border pixels (per channel)."""
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]], axis=0)
    med = np.median(border.reshape(border.shape[0], -1), axis=0)
    return float(med[0]) if med.size == 1 else tuple(float(v) for v in med)


def _grey(p: np.ndarray) -> np.ndarray:
    return p if p.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(p), cv2.COLOR_RGB2GRAY)


def _affine(img: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    from albumentations.augmentations.geometric import functional as fgeo

    h, w = img.shape[:2]
    return fgeo.warp_affine(
        img, matrix, cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR,
        _background(img), cv2.BORDER_CONSTANT, (h, w),
    )


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


def _content_mask(img: np.ndarray, level: float) -> tuple[np.ndarray, bool]:
    """Pixels further than ``level`` x the grey range from the border's level; whether that is light."""
    grey = _grey(img).astype(np.int16)
    lo, hi = int(grey.min()), int(grey.max())
    bg = _background(grey.astype(np.uint8))
    return np.abs(grey - bg) > level * max(hi - lo, 1), bool(bg > 127)


# --- framing and pose ------------------------------------------------------------------------


@degradation(
    "crop_to_content", kind="geometry", order=40, geometry=True,
    params={"margin_x": P(-0.4, 1.0, (0.0, 0.0), doc="border added left and right, fraction of the box"),
            "margin_y": P(-0.4, 1.0, (0.0, 0.0), doc="border added above and below, fraction of the box"),
            "stretch": P(0.0, 1.0, (1.0, 1.0), doc="0 keeps the aspect ratio, 1 fills the frame")},
    grid=[{"margin_x": mx, "margin_y": my, "stretch": stretch}
          for my in (0.0, 0.1) for mx in (0.0, 0.15, 0.3) for stretch in (0.0, 1.0)],
    doc="crop to the content's bounding box and resize to the frame",
)
def _crop_to_content(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
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


@degradation(
    "zoom", kind="geometry", order=50, geometry=True,
    params={"scale": P(0.1, 10.0, (0.8, 1.25), doc=">1 zooms in, <1 zooms out")},
    grid=[{"scale": 0.7}, {"scale": 1.4}],
    doc="zoom about the centre, padding with the background",
)
def _zoom(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # scale > 1 zooms in (the object fills more of the frame), < 1 zooms out (a distant object)
    h, w = img.shape[:2]
    s = v["scale"]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[s, 0, cx - s * cx], [0, s, cy - s * cy], [0, 0, 1]], dtype=np.float64)
    return _affine(img, m)


@degradation(
    "shear", kind="slant", order=10, geometry=True,
    params={"angle": P(-45.0, 45.0, (-10.0, 10.0), doc="degrees; > 0 leans the top right")},
    grid=[{"angle": -12.0}, {"angle": 12.0}],
    doc="horizontal shear (slant) about the centre, padding with the background",
)
def _shear(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # horizontal shear about the centre: positive angles lean the top to the right
    h = img.shape[0]
    k = math.tan(math.radians(v["angle"]))
    cy = (h - 1) / 2.0
    m = np.array([[1, -k, k * cy], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    return _affine(img, m)


@degradation(
    "translate", kind="geometry", order=60, geometry=True,
    params={"dx": P(-0.5, 0.5, (-0.1, 0.1), doc="fraction of the width"),
            "dy": P(-0.5, 0.5, (-0.1, 0.1), doc="fraction of the height")},
    grid=[{"dx": (-0.1, 0.1), "dy": (-0.1, 0.1)}],
    doc="shift, padding with the background",
)
def _translate(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    h, w = img.shape[:2]
    m = np.array([[1, 0, v["dx"] * w], [0, 1, v["dy"] * h], [0, 0, 1]], dtype=np.float64)
    return _affine(img, m)


# per-copy variety of pose and pen path: a range, so every copy draws its own values
@degradation(
    "rotate", kind="tilt", order=20, geometry=True,
    params={"angle": P(-45.0, 45.0, (-10.0, 10.0), doc="degrees; > 0 turns counter-clockwise")},
    grid=[{"angle": (-8.0, 8.0)}],
    doc="rotation about the centre, padding with the background",
)
def _rotate(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # about the centre; positive angles turn counter-clockwise. A range gives each copy its own
    # tilt, as a hand never writes two digits at the same angle
    h, w = img.shape[:2]
    m = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), v["angle"], 1.0), [0, 0, 1]])
    return _affine(img, m)


@degradation(
    "elastic", kind="elastic", order=30, geometry=True,
    params={"alpha": P(0.0, 10.0, (1.0, 1.0), doc="displacement scale, fraction of the short side"),
            "sigma": P(0.01, 1.0, (0.15, 0.15), doc="smoothness of the field, fraction of the short side")},
    grid=[{"alpha": 1.0, "sigma": 0.15}, {"alpha": 2.0, "sigma": 0.25}],
    build=lambda: _alb().ElasticTransform(p=1.0),
    doc="albumentations ElasticTransform's displacement field (a hand's wobble), padding with the background",
)
def _elastic(_t: Transform, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
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


# --- ink -------------------------------------------------------------------------------------


@degradation(
    "threshold", kind="binarise", order=70,
    params={"level": P(0.05, 0.95, (0.5, 0.5),
                       doc="content: further than this share of the grey range from the border")},
    grid=[{"level": 0.5}],
    doc="binarise: content to full contrast, the rest to the background",
)
def _threshold(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # scanned forms and fax-like targets were binarised before any reduction: their grey levels
    # come from averaging black and white pixels, not from the pen's own shading
    mask, light = _content_mask(img, v["level"])
    fg, bg = (0, 255) if light else (255, 0)
    out = np.where(mask, np.uint8(fg), np.uint8(bg)).astype(np.uint8)
    return out if img.ndim == 2 else np.repeat(out[..., None], img.shape[2], axis=2)


@degradation(
    "stroke", kind="stroke", order=80,
    params={"size": P(-9, 9, (2, 2), integer=True, doc="elliptic kernel side; > 0 thickens the content, < 0 thins",
                      pixel_unit=True)},
    grid=[{"size": -2}, {"size": 2}, {"size": 3}],
    build=lambda: _alb().Morphological(p=1.0),
    doc="albumentations Morphological (pen width)",
)
def _stroke(t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.geometric import functional as fgeo

    size = int(v["size"])
    if size == 0:
        return img
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(size), abs(size)))
    # dilation grows light regions: on a light background the content is dark and grows by erosion
    thicker = size > 0
    light = _background(_grey(img)) > 127
    return fgeo.morphology(img, kernel, "dilation" if thicker != light else "erosion")


# --- tone and blur ---------------------------------------------------------------------------


@degradation(
    "brightness_contrast", kind="tone", order=130,
    params={"brightness": P(-1.0, 1.0, (-0.1, 0.1)), "contrast": P(-1.0, 1.0, (-0.1, 0.1))},
    grid=[{"brightness": b, "contrast": c} for b, c in ((0.1, 0.0), (-0.1, 0.0), (0.0, 0.25), (0.0, 0.5), (0.0, -0.3))],
    build=lambda: _alb().RandomBrightnessContrast(p=1.0),
    doc="albumentations RandomBrightnessContrast",
)
def _brightness_contrast(t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    # albumentations' convention: alpha = 1 + contrast, beta = brightness * max value
    return t.apply(img, alpha=1.0 + v["contrast"], beta=v["brightness"] * 255.0)


def _blur_grid(ctx: GridContext) -> list[Move]:
    # sigmas in pixels of a 64-pixel image, scaled up for larger web images
    side = ctx.web_side
    return [{"sigma": sigma * side / 64.0 if side > 64 else sigma} for sigma in (0.5, 1.0, 2.0)]


@degradation(
    "gaussian_blur", kind="blur", order=90,
    params={"sigma": P(0.05, 20.0, (0.5, 1.5), doc="pixels", pixel_unit=True)},
    grid=_blur_grid,
    build=lambda: _alb().GaussianBlur(p=1.0),
    doc="albumentations GaussianBlur",
)
def _gaussian_blur(t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.blur import functional as fblur

    return t.apply(img, kernel=fblur.create_gaussian_kernel_1d(v["sigma"], 0))


@degradation(
    "defocus_blur", kind="blur", order=100,
    params={"radius": P(1, 30, (2, 4), integer=True, pixel_unit=True),
            "alias_blur": P(0.0, 5.0, (0.1, 0.5), pixel_unit=True)},
    grid=lambda ctx: [{"radius": max(1, round(ctx.web_side / 32)), "alias_blur": 0.2}],
    build=lambda: _alb().Defocus(p=1.0),
    doc="albumentations Defocus",
)
def _defocus(t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    return t.apply(img, radius=int(v["radius"]), alias_blur=v["alias_blur"])


@degradation(
    "motion_blur", kind="blur", order=110,
    params={"kernel": P(3, 63, (3, 7), integer=True, doc="odd kernel size", pixel_unit=True),
            "angle": P(0.0, 360.0, (0.0, 360.0)),
            "direction": P(-1.0, 1.0, (-1.0, 1.0))},
    grid=lambda ctx: [{"kernel": max(3, int(ctx.web_side / 16) | 1)}],
    build=lambda: _alb().MotionBlur(p=1.0),
    doc="albumentations MotionBlur",
)
def _motion_blur(t: Transform, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    from albumentations.augmentations.blur import functional as fblur

    k = int(v["kernel"]) | 1
    kernel = fblur.create_motion_kernel(k, v["angle"], v["direction"], True, random.Random(seed))
    total = float(kernel.sum())
    return t.apply(img, kernel=kernel.astype(np.float32) / (total if total > 0 else 1.0))


# --- resolution ------------------------------------------------------------------------------


def _downscale_grid(ctx: GridContext) -> list[Move]:
    from shiftkit.synth.recipe import make_step

    scales = {0.25, 0.5}
    if ctx.target_side < ctx.web_side:
        scales.add(round(ctx.target_side / ctx.web_side, 4))  # the target's own size, when smaller
    moves: list[Move] = []
    for s in sorted(scales):
        moves += [{"scale": s, "keep_size": 0}, {"scale": s, "keep_size": 1}]
        # binarising only pays together with a reduction (a scanner that counts ink per cell, as
        # load_digits was made): alone, the hard edges look sharper than any blurry target, so
        # the pair is one move of the search
        moves.append((make_step("threshold", level=0.5), make_step("downscale", scale=s, keep_size=0)))
    return moves


@degradation(
    "downscale", kind="resolution", order=120,
    params={"scale": P(0.01, 1.0, (0.25, 0.5), doc="side fraction kept"),
            "keep_size": P(0, 1, (1, 1), integer=True, doc="1: enlarge back to the input size, 0: stay small")},
    grid=_downscale_grid,
    build=lambda: _alb().Downscale(
        p=1.0, interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}),
    doc="albumentations Downscale (area down, linear up)",
)
def _downscale(t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
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


# --- sensor and codec ------------------------------------------------------------------------


@degradation(
    "gauss_noise", kind="noise", order=140,
    params={"std": P(0.0, 1.0, (0.01, 0.05), doc="fraction of 255", pixel_unit=True)},
    grid=[{"std": 0.02}, {"std": 0.06}],
    build=lambda: _alb().GaussNoise(p=1.0),
    doc="albumentations GaussNoise",
)
def _gauss_noise(t: Transform, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    noise = fpix.generate_noise(
        "gaussian", "per_pixel", img.shape, {"mean_range": (0.0, 0.0), "std_range": (v["std"], v["std"])},
        255.0, 1.0, np.random.default_rng(seed),
    )
    return t.apply(img, noise_map=noise)


@degradation(
    "iso_noise", kind="noise", order=150,
    params={"color_shift": P(0.0, 1.0, (0.01, 0.05), pixel_unit=True),
            "intensity": P(0.0, 2.0, (0.1, 0.5), pixel_unit=True)},
    build=lambda: _alb().ISONoise(p=1.0),
    doc="albumentations ISONoise",
)
def _iso_noise(t: Transform, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    grey = img.ndim == 2
    rgb = np.repeat(img[..., None], 3, axis=2) if grey else img
    out = t.apply(rgb, color_shift=v["color_shift"], intensity=v["intensity"], random_seed=seed)
    return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) if grey else out


_QUANT_LUT: dict[int, np.ndarray] = {}


def _quantize_grid(ctx: GridContext) -> list[Move]:
    levels = {8, 32}
    if ctx.target_levels <= 64:
        levels.add(max(2, ctx.target_levels))  # the target's own grey levels, when visibly quantised
    return [{"levels": lv} for lv in sorted(levels)]


@degradation(
    "quantize", kind="quantisation", order=160,
    params={"levels": P(2, 256, (16, 16), integer=True, doc="grey levels kept")},
    grid=_quantize_grid,
    doc="uniform grey-level quantisation",
)
def _quantize(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    levels = int(v["levels"])
    lut = _QUANT_LUT.get(levels)
    if lut is None:
        step = 255.0 / (levels - 1)
        lut = _QUANT_LUT[levels] = np.clip(np.rint(np.rint(np.arange(256) / step) * step), 0, 255).astype(np.uint8)
    return fpix.apply_lut(img, lut, inplace=False) if hasattr(fpix, "apply_lut") else cv2.LUT(img, lut)


def _jpeg_grid(ctx: GridContext) -> list[Move]:
    if not ctx.target_jpeg:  # only a JPEG target suggests re-encoding, at its own estimated quality
        return []
    q = float(np.median(ctx.target_jpeg))
    return [{"quality": qq} for qq in sorted({max(1, round(q - 10)), round(q), min(100, round(q + 10))})]


@degradation(
    "jpeg", kind="compression", order=170,
    params={"quality": P(1, 100, (50, 90), integer=True)},
    grid=_jpeg_grid,
    build=lambda: _alb().ImageCompression(p=1.0),
    doc="albumentations ImageCompression (JPEG)",
)
def _jpeg(t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    return t.apply(img, quality=int(v["quality"]), image_type=".jpg")
