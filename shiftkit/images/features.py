"""The cheap features of a decoded image, shared by ``shift`` and ``synth``: a small grey thumbnail
and the properties of ``decode.measure``, plus the per-property scale that standardises distances;
and the colour features the synthesis fit adds (``colour_features``), which are all zero on grey
images, so that grey data is scored exactly as without them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from shiftkit.images import decode as images

PROPS = images.PROPERTY_COLUMNS


def image_features(pixels: np.ndarray, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """One image's cheap features: a size x size grey thumbnail in [0, 1], and its properties."""
    work = images.working_image(pixels)
    thumb = cv2.resize(work, (size, size), interpolation=cv2.INTER_AREA).ravel()
    props = images.measure(pixels)
    return thumb, np.array([props[k] for k in PROPS], dtype=np.float64)


def cheap_features(pixels: Sequence[np.ndarray], size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Thumbnails (n, size*size) and properties (n, len(PROPS)) of decoded images."""
    thumbs, props = [], []
    for p in pixels:
        t, q = image_features(p, size)
        thumbs.append(t)
        props.append(q)
    if not thumbs:
        return np.zeros((0, size * size)), np.zeros((0, len(PROPS)))
    return np.vstack(thumbs).astype(np.float64), np.vstack(props)


def property_scale(props: np.ndarray) -> np.ndarray:
    """Per-property scale used to standardise distances: the reference set's std (never ~0)."""
    std = props.std(axis=0) if len(props) else np.ones(props.shape[1])
    floor = np.maximum(1e-3, 0.05 * np.abs(props.mean(axis=0))) if len(props) else 1.0
    return np.maximum(std, floor)


COLOUR_THUMB = 4  # side of the a*/b* (CIE Lab) thumbnail of the colour features
_COLOUR_WORK = 32  # colour statistics are taken on an area reduction to this side (cheap, same for both sets)
COLOUR_STATS = ("a_mean", "b_mean", "a_std", "b_std", "saturation", "saturation_std", "log_r_g", "log_b_g",
                "log_sr_sg", "log_sb_sg")


def colour_length(size: int = COLOUR_THUMB) -> int:
    """The number of colour features per image."""
    return 2 * size * size + len(COLOUR_STATS)


def is_grey(pixels: np.ndarray) -> bool:
    """True for a one-channel image or an RGB image whose three channels are equal."""
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return True
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]))


def colour_features(pixels: np.ndarray, size: int = COLOUR_THUMB) -> np.ndarray:
    """One image's colour features: a ``size`` x ``size`` thumbnail of the a* and b* channels of CIE
    Lab (the perceptual opponent axes, in Lab units / 100), and per-channel statistics: the mean and
    spread of a* and b* and of the HSV saturation, and the log ratios of the red and blue channels'
    means and spreads to the green one's (a white-balance error moves these). Statistics are taken
    on an area reduction to 32 pixels (cv2 calls only: ~0.1 ms an image).

    Exactly zero for a grey image (one channel, or three equal ones).
    """
    out = np.zeros(colour_length(size), dtype=np.float64)
    if is_grey(pixels):
        return out
    rgb = np.ascontiguousarray(pixels[..., :3])
    if min(rgb.shape[:2]) > _COLOUR_WORK:
        rgb = cv2.resize(rgb, (_COLOUR_WORK, _COLOUR_WORK), interpolation=cv2.INTER_AREA)
    f = np.multiply(rgb, np.float32(1.0 / 255.0), dtype=np.float32)
    lab = cv2.cvtColor(f, cv2.COLOR_RGB2Lab)
    thumb = cv2.resize(lab, (size, size), interpolation=cv2.INTER_AREA)
    n = size * size
    out[:n] = thumb[..., 1].ravel() / 100.0
    out[n:2 * n] = thumb[..., 2].ravel() / 100.0
    lab_mean, lab_std = cv2.meanStdDev(lab)
    sat_mean, sat_std = cv2.meanStdDev(cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 1])
    means, stds = cv2.meanStdDev(f)
    means, stds = means.ravel() + 1e-3, stds.ravel() + 1e-3
    out[2 * n:] = (
        lab_mean[1, 0] / 100.0, lab_mean[2, 0] / 100.0, lab_std[1, 0] / 100.0, lab_std[2, 0] / 100.0,
        sat_mean[0, 0], sat_std[0, 0],
        np.log(means[0] / means[1]), np.log(means[2] / means[1]),
        np.log(stds[0] / stds[1]), np.log(stds[2] / stds[1]),
    )
    return out


def colour_matrix(pixels: Sequence[np.ndarray], size: int = COLOUR_THUMB) -> np.ndarray:
    """Colour features (n, ``colour_length(size)``) of decoded images."""
    if not len(pixels):
        return np.zeros((0, colour_length(size)))
    return np.vstack([colour_features(p, size) for p in pixels])


_NETS: dict[tuple[str, int], object] = {}  # per process: (model, seed) -> a timm backbone in eval mode


def backbone_matrix(pixels: Sequence[np.ndarray], model: str, *, size: int = 64, seed: int = 0,
                    batch: int = 64) -> np.ndarray:
    """Pooled output (n, d) of a timm backbone (``pretrained=False``: weights drawn from ``seed``)
    on images resized to ``size``; grey images are repeated to three channels. torch and timm are
    imported here only, and the network is built once per process.

    Raises:
        ModelError: when ``model`` is not a timm model name.
    """
    import torch

    from shiftkit.core.errors import ModelError

    torch.set_num_threads(1)  # the fit's worker processes share the cores
    net = _NETS.get((model, seed))
    if net is None:
        import timm

        torch.manual_seed(seed)
        try:
            net = timm.create_model(model, pretrained=False, num_classes=0).eval()
        except RuntimeError as exc:
            raise ModelError(f"synth.fit_model {model!r} is not a timm model name: {exc}.") from exc
        _NETS[(model, seed)] = net
    rows = []
    with torch.no_grad():
        for i in range(0, len(pixels), batch):
            arr = []
            for px in pixels[i:i + batch]:
                px = np.repeat(px[..., None], 3, axis=2) if px.ndim == 2 else px[..., :3]
                interp = cv2.INTER_AREA if min(px.shape[:2]) >= size else cv2.INTER_LINEAR
                arr.append(cv2.resize(np.ascontiguousarray(px), (size, size), interpolation=interp))
            x = torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).float().div(255.0)
            rows.append(net((x - 0.5) / 0.25).numpy())  # type: ignore[operator]
    return np.vstack(rows).astype(np.float64) if rows else np.zeros((0, 0))
