"""Two-domain digit sets for the mitigation arms (tests/test_adapt.py, benchmarks/arms.py).

The web domain is MNIST as it is (white digits on black); the target, in the style of MNIST-M
(Ganin et al. 2016), is other MNIST digits blended with random crops of scikit-learn's two real
photographs (``china.jpg``, ``flower.jpg``): each pixel is |crop - digit|, so the digit shows as
the photo's colours inverted over a textured, coloured background. No degradation of the synthesis
registry expresses that shift (it is neither blur, resolution, noise, JPEG nor framing), and a
model trained on the web images alone errs on most target images, while features that ignore
colour and texture would carry over: the shift feature alignment is meant to fix.

With ``shift="none"`` the target is other MNIST digits unchanged: a pair without shift.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from shiftkit.core import files as io
from shiftkit.core import schema
from tests import helpers
from tests.train_helpers import manifest_rows


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(im, dtype=np.uint8) for im in load_sample_images().images)


def blend(digits: np.ndarray, seed: int) -> np.ndarray:
    """MNIST-M-style images: (N, 28, 28) grey digits -> (N, 28, 28, 3) |photo crop - digit|."""
    rng = np.random.default_rng(seed)
    pics = photos()
    out = np.empty((len(digits), 28, 28, 3), dtype=np.uint8)
    for i, d in enumerate(digits):
        pic = pics[rng.integers(len(pics))]
        y, x = rng.integers(0, pic.shape[0] - 28), rng.integers(0, pic.shape[1] - 28)
        crop = pic[y : y + 28, x : x + 28].astype(np.int16)
        out[i] = np.abs(crop - d.astype(np.int16)[..., None]).astype(np.uint8)
    return out


def on_texture(digits: np.ndarray, seed: int, strength: float = 0.6) -> np.ndarray:
    """Digits laid over dimmed random crops of the photos: (N, 28, 28) -> (N, 28, 28, 3), each pixel
    max(digit, strength x crop): the digit keeps its polarity, the background becomes a coloured texture."""
    rng = np.random.default_rng(seed)
    pics = photos()
    out = np.empty((len(digits), 28, 28, 3), dtype=np.uint8)
    for i, d in enumerate(digits):
        pic = pics[rng.integers(len(pics))]
        y, x = rng.integers(0, pic.shape[0] - 28), rng.integers(0, pic.shape[1] - 28)
        crop = pic[y : y + 28, x : x + 28].astype(np.float32) * strength
        out[i] = np.maximum(crop, d.astype(np.float32)[..., None]).astype(np.uint8)
    return out


def tinted(digits: np.ndarray, seed: int) -> np.ndarray:
    """Digits at half contrast on one dark teal background, with a faint texture from the photos:
    (N, 28, 28) -> (N, 28, 28, 3). A colour and contrast change shared by every image (which
    batch-norm statistics of the target absorb) plus a per-image texture (which they do not)."""
    rng = np.random.default_rng(seed)
    pics = photos()
    bg = np.array([20.0, 110.0, 120.0], dtype=np.float32)
    out = np.empty((len(digits), 28, 28, 3), dtype=np.uint8)
    for i, d in enumerate(digits):
        pic = pics[rng.integers(len(pics))]
        y, x = rng.integers(0, pic.shape[0] - 28), rng.integers(0, pic.shape[1] - 28)
        crop = pic[y : y + 28, x : x + 28].astype(np.float32)
        out[i] = np.clip(bg + 0.5 * d.astype(np.float32)[..., None] + 0.25 * (crop - crop.mean()), 0, 255)
    return out


def _write(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> list[Path]:
    paths = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        d = root / str(int(lab))
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{prefix}_{i:05d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def build_pair(base: Path, *, shift: str = "mnistm", n_web: int = 600, n_target: int = 400, n_dev: int = 200,
               n_test: int = 100, n_bridge: int = 50, n_unlabelled: int = 0, seed: int = 0
               ) -> tuple[Path, Path, Path | None]:
    """A web/target pair on disk: manifest, splits (target: train, dev, test; web: train, bridge) and,
    when ``n_unlabelled``, a flat folder of further target images without labels (else None).
    Every digit appears once (different MNIST digits per role)."""
    x, y = helpers.mnist(n_web + n_bridge + n_target + n_unlabelled, offset=seed * 1000)
    web_n = n_web + n_bridge
    tx, ty = x[web_n : web_n + n_target], y[web_n : web_n + n_target]
    ux = x[web_n + n_target :]
    if shift == "mnistm":
        tx, ux = blend(tx, seed), blend(ux, seed + 7919)
    elif shift == "tint":
        tx, ux = tinted(tx, seed), tinted(ux, seed + 7919)
    elif shift == "texture":
        tx, ux = on_texture(tx, seed), on_texture(ux, seed + 7919)
    web = _write(base / "raw" / "web", x[:web_n], y[:web_n], "web")
    tgt = _write(base / "raw" / "target", tx, ty, "tgt")
    table_dir = base / "manifest"
    table_dir.mkdir(parents=True, exist_ok=True)
    man = pl.concat([manifest_rows(base / "raw" / "web", "web", table_dir, web),
                     manifest_rows(base / "raw" / "target", "target", table_dir, tgt)])
    man = man.unique("image_id", keep="first", maintain_order=True)
    m = io.write_table(man, table_dir / "manifest.parquet", schema.MANIFEST)
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * man.height, dtype=object)
    is_tgt = (man["domain"] == "target").to_numpy()
    t_idx = rng.permutation(np.flatnonzero(is_tgt))
    split[t_idx[:n_dev]] = "dev"
    split[t_idx[n_dev : n_dev + n_test]] = "test"
    split[rng.permutation(np.flatnonzero(~is_tgt))[:n_bridge]] = "bridge"
    spl = pl.DataFrame({"image_id": man["image_id"], "split": split.tolist(), "group": man["dup_group"]})
    s = io.write_table(spl, base / "splits" / "splits.parquet", schema.SPLITS_TABLE)
    folder = None
    if n_unlabelled:
        folder = base / "unlabelled"
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(ux):
            Image.fromarray(img).save(folder / f"u_{i:05d}.png")
    return m, s, folder


def image_ids(folder: Path) -> set[str]:
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.png"))}
