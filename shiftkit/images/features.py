"""The cheap features of a decoded image, shared by ``shift`` and ``synth``: a small grey thumbnail
and the properties of ``decode.measure``, plus the per-property scale that standardises distances.
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
