"""How far apart two image sets are: property drift, a domain classifier and an MMD test.

``compare`` takes two lists of image paths (from a manifest with split/domain filters, or from
two folders) and returns per-property two-sample statistics (Kolmogorov-Smirnov, Wasserstein),
the cross-validated AUC of a classifier that tries to tell the sets apart, and the maximum mean
discrepancy with an RBF kernel (median heuristic) and a permutation p-value (k + 1) / (n + 1).
Features are cheap (a 16x16 grey thumbnail and the properties of ``images.measure``) unless a
timm model is named, whose pooled output is used instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shiftkit.core.errors import ConfigError, DataError, ImageDecodeError, InputPathError, ModelError
from shiftkit.images import decode as images
from shiftkit.images.features import PROPS, image_features, property_scale
from shiftkit.stats.twosample import domain_scores, mmd_test, property_distance, property_tests

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


# ---------------------------------------------------------------------------------------------
# image sets


@dataclass(frozen=True)
class ImageSet:
    """A named list of image files (absolute paths)."""

    name: str
    paths: tuple[Path, ...]
    description: str


def folder_set(name: str, folder: str | Path) -> ImageSet:
    """Every image file under ``folder`` (recursively, sorted).

    Raises:
        InputPathError: when the folder does not exist.
        DataError: when it holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputPathError(f"Image folder {root} does not exist or is not a folder.")
    paths = tuple(sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
    if not paths:
        raise DataError(f"The image set {name!r} is empty: no image file ({', '.join(IMAGE_SUFFIXES)}) under {root}.")
    return ImageSet(name, paths, f"folder {root}")


def manifest_set(
    name: str,
    manifest: str | Path,
    *,
    splits: str | Path | None = None,
    split: Sequence[str] = (),
    domain: Sequence[str] = (),
) -> ImageSet:
    """The images of a manifest, optionally filtered by split (needs the splits table) and domain.

    Raises:
        InputPathError: when a table is missing.
        ConfigError: when a split filter is given without a splits table.
        DataError: when no image matches.
    """
    import polars as pl

    from shiftkit.core import files as io
    from shiftkit.core import schema

    df = io.read_table(manifest, schema.MANIFEST)
    if split:
        if splits is None:
            raise ConfigError(f"Filtering the image set {name!r} by split needs --splits (the splits table).")
        sp = io.read_table(splits, schema.SPLITS_TABLE).select("image_id", "split")
        df = df.join(sp, on="image_id", how="inner").filter(pl.col("split").is_in(list(split)))
    if domain:
        df = df.filter(pl.col("domain").is_in(list(domain)))
    df = df.sort("image_id")
    what = (
        ", ".join(
            x
            for x in (f"split={'/'.join(split)}" if split else "", f"domain={'/'.join(domain)}" if domain else "")
            if x
        )
        or "no filter"
    )
    if df.height == 0:
        raise DataError(f"The image set {name!r} is empty: manifest {manifest} with {what} matched no image.")
    return ImageSet(name, tuple(io.image_paths(df, manifest)), f"manifest {manifest} ({what})")


def _load(path: Path) -> np.ndarray:
    try:
        return images.decode(path).pixels
    except ImageDecodeError as exc:
        raise DataError(f"Cannot decode image {path}: {exc}.") from exc


def _features_of_path(args: tuple[str, int]) -> tuple[np.ndarray, np.ndarray, str]:
    path, size = args
    px = _load(Path(path))
    t, q = image_features(px, size)
    return t, q, "L" if px.ndim == 2 else "RGB"


def _sample(s: ImageSet, n: int, seed: int) -> list[Path]:
    if n <= 0 or len(s.paths) <= n:
        return list(s.paths)
    idx = np.sort(np.random.default_rng(seed).choice(len(s.paths), size=n, replace=False))
    return [s.paths[i] for i in idx]


def _backbone_features(paths: Sequence[Path], model: str, *, size: int, seed: int, batch: int = 64) -> np.ndarray:
    """Pooled output of a timm backbone (random init unless weights are cached locally)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ModelError("Backbone features need torch.") from exc
    try:
        from shiftkit.training import models as sk_models  # the training issue's module, when present

        net = sk_models.create_backbone(model, pretrained=False)  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        import timm

        torch.manual_seed(seed)
        try:
            net = timm.create_model(model, pretrained=False, num_classes=0)
        except RuntimeError as exc:
            raise ModelError(f"Unknown timm model {model!r}: {exc}.") from exc
    net.eval()
    feats = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            arr = []
            for p in paths[i : i + batch]:
                px = _load(Path(p))
                px = np.repeat(px[..., None], 3, axis=2) if px.ndim == 2 else px
                px = cv2.resize(
                    px, (size, size), interpolation=cv2.INTER_AREA if min(px.shape[:2]) >= size else cv2.INTER_LINEAR
                )
                arr.append(px)
            x = torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).float().div(255.0)
            x = (x - 0.5) / 0.25
            feats.append(net(x).numpy())
    return np.vstack(feats).astype(np.float64)


def set_features(
    paths: Sequence[Path], *, size: int = 16, workers: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Thumbnails, properties and normalised modes of image files, decoded in parallel."""
    from shiftkit.runtime.imap import imap

    rows = list(imap(_features_of_path, [(str(p), size) for p in paths], workers=workers, chunksize=16))
    thumbs = np.vstack([r[0] for r in rows])
    props = np.vstack([r[1] for r in rows])
    return thumbs, props, [r[2] for r in rows]


def compare(
    a: ImageSet,
    b: ImageSet,
    *,
    max_images: int = 500,
    folds: int = 5,
    permutations: int = 500,
    seed: int = 0,
    feature_size: int = 16,
    model: str | None = None,
    model_size: int = 64,
    workers: int = 0,
) -> dict[str, Any]:
    """Distances between two image sets (see the module docstring). Returns a json-able dict.

    Images of mixed modes (grey, RGB, palette, with alpha, 16-bit) are normalised by
    ``images.decode`` and compared in grey (cheap features) or RGB (backbone features).

    Raises:
        DataError: when a set is empty, too small for cross-validation, or an image cannot be decoded.
        ModelError: when ``model`` is not a timm model.
        ConfigError: when a parameter is out of range.
    """
    if folds < 2:
        raise ConfigError(f"The 'folds' parameter of shift must be an integer >= 2. Got {folds!r} instead.")
    if permutations < 0:
        raise ConfigError(f"The 'permutations' parameter of shift must be >= 0. Got {permutations!r} instead.")
    for s in (a, b):
        if not s.paths:
            raise DataError(f"The image set {s.name!r} is empty ({s.description}).")
    pa, pb = _sample(a, max_images, seed), _sample(b, max_images, seed + 1)
    ta, qa, ma = set_features(pa, size=feature_size, workers=workers)
    tb, qb, mb = set_features(pb, size=feature_size, workers=workers)
    if model:
        xa = _backbone_features(pa, model, size=model_size, seed=seed)
        xb = _backbone_features(pb, model, size=model_size, seed=seed)
        features = f"timm {model} pooled output ({xa.shape[1]} dims, {model_size}x{model_size} input)"
    else:
        xa, xb = np.hstack([ta, qa]), np.hstack([tb, qb])
        features = f"{feature_size}x{feature_size} grey thumbnail + {len(PROPS)} properties"
    scale = property_scale(np.vstack([qa, qb]))
    dom = domain_scores(xa, xb, folds=folds, seed=seed)
    mmd = mmd_test(xa, xb, permutations=permutations, seed=seed)
    return {
        "a": {
            "name": a.name,
            "source": a.description,
            "images": len(a.paths),
            "sampled": len(pa),
            "modes": sorted(set(ma)),
        },
        "b": {
            "name": b.name,
            "source": b.description,
            "images": len(b.paths),
            "sampled": len(pb),
            "modes": sorted(set(mb)),
        },
        "features": features,
        "properties": property_tests(qa, qb, scale, PROPS),
        "property_distance": property_distance(qa, qb, scale),
        "domain_auc": {**dom, "folds": folds, "classifier": "logistic regression (C=0.1, standardised)"},
        "mmd": mmd,
        "seed": seed,
    }


def render_table(result: dict[str, Any]):
    """A rich table of a ``compare`` result (per property, then the set-level measures)."""
    from rich.table import Table

    a, b = result["a"], result["b"]
    t = Table(
        title=f"shift: {a['name']} (n={a['sampled']} of {a['images']}) vs {b['name']} "
        f"(n={b['sampled']} of {b['images']})"
    )
    for col in ("property", f"mean {a['name']}", f"mean {b['name']}", "KS", "KS p", "Wasserstein", "W (std units)"):
        t.add_column(col, justify="right" if col != "property" else "left")
    for name, r in result["properties"].items():
        t.add_row(
            name,
            f"{r['mean_a']:.4g}",
            f"{r['mean_b']:.4g}",
            f"{r['ks']:.3f}",
            f"{r['ks_p']:.3g}",
            f"{r['wasserstein']:.4g}",
            f"{r['wasserstein_std']:.3f}",
        )
    t.caption = (
        f"domain AUC {result['domain_auc']['auc']:.3f} ({result['domain_auc']['folds']}-fold); "
        f"MMD^2 {result['mmd']['mmd2']:.4g}, p = {result['mmd']['p_value']:.3g} "
        f"({result['mmd']['permutations']} permutations); property distance {result['property_distance']:.3f}; "
        f"features: {result['features']}"
    )
    return t
