"""Camera degradations: what a phone's lens, sensor and image pipeline do to a photo.

Each is one ``@degradation`` (``registry.py``), in the canonical order of a camera: the lens
(vignetting 84, chromatic aberration 86), the resolution (the phone's resize, 121), the sensor's
noise (Poisson-Gaussian, 125), then the image signal processor (white balance 131, exposure and
gamma 133, saturation 134, sharpening 136) and the codec (JPEG with chroma subsampling, 171).
Where the fit's samples tell a value, the grid holds it (``GridContext.colour``): the white
balance's per-channel gains from the target's channel means against the web's, the saturation factor and the
exposure from their saturation and brightness. Colour steps have no grid on grey data (the
context's colour is None), and on a grey image they return it unchanged.

albumentations 2.x provides the chromatic aberration, gamma, saturation and unsharp-mask
functions used here; vignetting, a white balance with exact per-channel gains (a lookup table
per channel), noise whose variance grows with the signal (shot noise) plus read noise from one
seed, a resize with the cheap non-antialiased interpolation of a phone's scaler, and a JPEG
whose chroma subsampling is chosen are written here (cv2 and numpy).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from shiftkit.synth.registry import GridContext, Move, ParamSpec, Transform, degradation

P = ParamSpec


def _rgb(img: np.ndarray) -> bool:
    return img.ndim == 3 and img.shape[2] == 3


def _channel_lut(img: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Multiply each channel by its gain (clipped), by a 256-entry lookup table per channel."""
    ramp = np.arange(256, dtype=np.float32)
    out = np.empty_like(img)
    for c, g in enumerate(gains):
        lut = np.clip(np.rint(ramp * g), 0, 255).astype(np.uint8)
        out[..., c] = cv2.LUT(np.ascontiguousarray(img[..., c]), lut)
    return out


# --- the lens --------------------------------------------------------------------------------


@degradation(
    "vignette", kind="vignette", order=84,
    params={"strength": P(0.0, 0.9, (0.2, 0.4), doc="darkening at the corners (share of the level)")},
    grid=[{"strength": 0.25}, {"strength": 0.5}],
    doc="lens vignetting: a radial fall-off of light, 1 - strength x (r / r_corner)^2",
)
def _vignette(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    h, w = img.shape[:2]
    ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2.0) / max((h - 1) / 2.0, 1.0)
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) / max((w - 1) / 2.0, 1.0)
    r2 = (ys[:, None] ** 2 + xs[None, :] ** 2) / 2.0  # 1 at the corners
    gain = 1.0 - np.float32(v["strength"]) * r2
    if img.ndim == 3:
        gain = gain[..., None]
    return np.clip(np.rint(img.astype(np.float32) * gain), 0, 255).astype(np.uint8)


@degradation(
    "chromatic_aberration", kind="aberration", order=86,
    params={"red": P(-0.5, 0.5, (0.02, 0.02), doc="radial distortion of the red channel (relative)"),
            "blue": P(-0.5, 0.5, (-0.02, -0.02), doc="radial distortion of the blue channel (relative)")},
    grid=lambda ctx: [{"red": 0.03, "blue": -0.03}] if ctx.colour is not None else [],
    doc="lateral chromatic aberration: red and blue scaled radially against green "
        "(albumentations' chromatic_aberration)",
)
def _chromatic_aberration(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    if not _rgb(img):
        return img
    return fpix.chromatic_aberration(np.ascontiguousarray(img), v["red"], 0.0, v["blue"], 0.0, cv2.INTER_LINEAR)


# --- resolution: the phone's scaler ----------------------------------------------------------


def _resize_grid(ctx: GridContext) -> list[Move]:
    if ctx.target_side >= ctx.web_side:
        return []
    s = round(ctx.target_side / ctx.web_side, 4)
    return [{"scale": s, "cubic": c} for c in (0, 1)]


@degradation(
    "phone_resize", kind="resolution", order=121,
    params={"scale": P(0.01, 1.0, (0.5, 0.5), doc="side fraction kept"),
            "cubic": P(0, 1, (0, 0), integer=True, doc="0: bilinear, 1: bicubic; neither low-passes first")},
    grid=_resize_grid,
    doc="resize to the target's size as a phone's scaler does: bilinear or bicubic without low-pass "
        "(aliasing), the output staying small",
)
def _phone_resize(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = max(v["scale"], 1.0 / min(h, w))
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_CUBIC if int(v["cubic"]) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), shape, interpolation=interp)


# --- the sensor ------------------------------------------------------------------------------


@degradation(
    "sensor_noise", kind="noise", order=125,
    params={"shot": P(0.0, 0.5, (0.03, 0.03), doc="noise std at full white (shot noise: variance ~ signal)",
                      pixel_unit=True),
            "read": P(0.0, 0.3, (0.01, 0.01), doc="signal-independent noise std (read noise)", pixel_unit=True)},
    grid=[{"shot": 0.04, "read": 0.005}, {"shot": 0.08, "read": 0.01}, {"shot": 0.02, "read": 0.02}],
    doc="Poisson-Gaussian sensor noise: std = sqrt(shot^2 x level + read^2), levels in [0, 1], per channel",
)
def _sensor_noise(_t: Transform, img: np.ndarray, v: dict[str, float], seed: int) -> np.ndarray:
    x = img.astype(np.float32) * np.float32(1.0 / 255.0)
    std = np.sqrt(np.float32(v["shot"]) ** 2 * x + np.float32(v["read"]) ** 2)
    noise = np.random.default_rng(seed).standard_normal(x.shape, dtype=np.float32)
    return np.clip(np.rint((x + noise * std) * 255.0), 0, 255).astype(np.uint8)


# --- the image signal processor --------------------------------------------------------------


def _white_balance_grid(ctx: GridContext) -> list[Move]:
    c = ctx.colour
    if c is None:
        return []
    # a warm and a cool cast, then the gains that map the web's channel means onto the target's,
    # as a line search along that direction (the estimate carries the sets' content differences):
    # a camera's white balance and exposure error in one move
    moves: list[Move] = [{"red": 1.1, "green": 1.0, "blue": 0.9}, {"red": 0.9, "green": 1.0, "blue": 1.1}]
    gains = [t / max(w, 1e-3) for w, t in zip(c.web_means, c.target_means, strict=True)]
    for k in (0.5, 0.75, 1.0, 1.25):
        r, g, b = (round(min(4.0, max(0.25, x**k)), 4) for x in gains)
        moves.append({"red": r, "green": g, "blue": b})
    return moves


@degradation(
    "white_balance", kind="colour", order=131,
    params={"red": P(0.25, 4.0, (1.0, 1.0), doc="gain of the red channel"),
            "green": P(0.25, 4.0, (1.0, 1.0), doc="gain of the green channel"),
            "blue": P(0.25, 4.0, (1.0, 1.0), doc="gain of the blue channel")},
    grid=_white_balance_grid,
    doc="white balance and exposure: a gain per channel (a colour cast when they differ)",
)
def _white_balance(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    if not _rgb(img):
        return img
    return _channel_lut(img, (v["red"], v["green"], v["blue"]))


def _exposure_grid(ctx: GridContext) -> list[Move]:
    """Moves fitted to the samples' mean grey levels only (no fixed moves: on two samples of one
    distribution a fixed gamma fits the noise of the property distance). The gain is the ratio of
    the means, the gamma the one that maps the web's mean level onto the target's (w ** g = t).
    Grey samples (no colour statistics) get none: the digits' tone steps cover them."""
    c = ctx.colour
    if c is None or not (0.02 < c.web_luma < 0.98 and 0.02 < c.target_luma < 0.98):
        return []
    moves: list[Move] = []
    e = round(min(4.0, max(0.25, c.target_luma / c.web_luma)), 4)
    if abs(e - 1.0) > 0.03:
        moves.append({"exposure": e, "gamma": 1.0})
        g = round(min(3.0, max(0.3, math.log(c.target_luma) / math.log(c.web_luma))), 4)
        if abs(g - 1.0) > 0.03:
            moves.append({"exposure": 1.0, "gamma": g})
    return moves


@degradation(
    "exposure_gamma", kind="exposure", order=133,
    params={"exposure": P(0.25, 4.0, (1.0, 1.0), doc="linear gain of the level"),
            "gamma": P(0.3, 3.0, (1.0, 1.0), doc="tone curve level^gamma (> 1 darkens the mid-tones)")},
    grid=_exposure_grid,
    doc="exposure (a gain) and gamma (albumentations' gamma_transform)",
)
def _exposure_gamma(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    ramp = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip(np.rint(255.0 * np.clip(ramp * v["exposure"], 0, 1) ** v["gamma"]), 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(img), lut)


def _saturation_grid(ctx: GridContext) -> list[Move]:
    c = ctx.colour
    if c is None:
        return []
    moves: list[Move] = [{"factor": 0.7}, {"factor": 1.3}]
    if c.web_saturation > 0.01:
        f = round(min(3.0, max(0.0, c.target_saturation / c.web_saturation)), 4)
        if abs(f - 1.0) > 0.03:
            moves.append({"factor": f})
    return moves


@degradation(
    "saturation", kind="saturation", order=134,
    params={"factor": P(0.0, 3.0, (1.0, 1.0), doc="0: grey, 1: unchanged, > 1: more saturated")},
    grid=_saturation_grid,
    doc="colour saturation (albumentations' adjust_saturation_torchvision)",
)
def _saturation(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    if not _rgb(img):
        return img
    return fpix.adjust_saturation_torchvision(np.ascontiguousarray(img), v["factor"])


@degradation(
    "sharpen", kind="sharpen", order=136,
    params={"amount": P(0.0, 5.0, (0.5, 0.5), doc="unsharp-mask gain (halo strength)"),
            "radius": P(0.3, 10.0, (1.0, 1.0), doc="blur sigma of the mask, pixels", pixel_unit=True)},
    grid=[{"amount": 0.6, "radius": 1.0}, {"amount": 1.5, "radius": 1.5}],
    doc="the phone's sharpening: an unsharp mask with halos (albumentations' unsharp_mask)",
)
def _sharpen(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    from albumentations.augmentations.pixel import functional as fpix

    sigma = v["radius"]
    ksize = 2 * max(1, math.ceil(3 * sigma)) + 1
    out = fpix.unsharp_mask(np.ascontiguousarray(img), ksize, sigma, v["amount"], 0)
    return out.reshape(img.shape)


# --- the codec -------------------------------------------------------------------------------

_SAMPLING = {0: "IMWRITE_JPEG_SAMPLING_FACTOR_444", 1: "IMWRITE_JPEG_SAMPLING_FACTOR_422",
             2: "IMWRITE_JPEG_SAMPLING_FACTOR_420"}


def _jpeg_chroma_grid(ctx: GridContext) -> list[Move]:
    if not ctx.target_jpeg or ctx.colour is None:  # a JPEG target in colour: its quality, 4:2:0 as phones write
        return []
    q = float(np.median(ctx.target_jpeg))
    return [{"quality": round(q), "chroma": 2}]


@degradation(
    "jpeg_chroma", kind="compression", order=171,
    params={"quality": P(1, 100, (70, 90), integer=True),
            "chroma": P(0, 2, (2, 2), integer=True, doc="chroma subsampling: 0 4:4:4, 1 4:2:2, 2 4:2:0")},
    grid=_jpeg_chroma_grid,
    doc="JPEG with a chosen chroma subsampling (cv2's libjpeg encoder)",
)
def _jpeg_chroma(_t: Transform, img: np.ndarray, v: dict[str, float], _seed: int) -> np.ndarray:
    rgb = _rgb(img)
    arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if rgb else img
    flags = [cv2.IMWRITE_JPEG_QUALITY, int(v["quality"])]
    if rgb:
        flags += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, getattr(cv2, _SAMPLING[int(v["chroma"])])]
    ok, buf = cv2.imencode(".jpg", arr, flags)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 grey or BGR array
        return img
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if rgb else cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if rgb else out.reshape(img.shape)
