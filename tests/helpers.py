"""Real image data for tests: MNIST digits (web-like) and load_digits (target-like).

MNIST comes from ../shared/datasets/mnist (the IDX files); load_digits ships with
scikit-learn. Nothing is fetched from the network.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "datasets" / "mnist"


@functools.lru_cache(maxsize=1)
def _mnist_all() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(MNIST_DIR / "train-images-idx3-ubyte.gz", "rb") as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(MNIST_DIR / "train-labels-idx1-ubyte.gz", "rb") as fh:
        labels = np.frombuffer(fh.read(), np.uint8, offset=8)
    return images, labels


def mnist(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real MNIST digits (uint8, 28x28, white on black) and their labels 0..9."""
    images, labels = _mnist_all()
    return images[offset : offset + n].copy(), labels[offset : offset + n].copy()


@functools.lru_cache(maxsize=1)
def _digits_all() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    return images, d.target.astype(np.uint8)


def digits(n: int | None = None, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real 8x8 digits from scikit-learn's load_digits (17 grey levels scaled to 0..255)."""
    images, labels = _digits_all()
    end = None if n is None else offset + n
    return images[offset:end].copy(), labels[offset:end].copy()


def write_folder(
    root: Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    ext: str = "png",
    prefix: str = "img",
    size: int | None = None,
    **save_kwargs,
) -> list[Path]:
    """Write an ImageFolder ``root/<label>/<prefix>_<i>.<ext>``; optionally resized to ``size``."""
    paths = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = Path(root) / str(int(lab))
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if size is not None:
            im = im.resize((size, size), Image.BILINEAR)
        p = d / f"{prefix}_{i:05d}.{ext}"
        im.save(p, **save_kwargs)
        paths.append(p)
    return paths
