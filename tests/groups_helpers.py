"""Photos of objects, for the group tests and the group truth benchmark (benchmarks/groups_truth.py).

Objects are cells of a grid over the real photographs of the photos example (one photograph =
one class); views are crops around a cell (``shiftkit.ingest.photos.crop_view``). The truth run
renders web and target alike (the same sharp crops): the only difference between the domains is
which objects they show, so the true data mismatch is zero and the gap to new objects is variance.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.ingest import photos
from shiftkit.report.params import ReportParams
from shiftkit.splits.assignment import assign
from shiftkit.splits.params import SplitParams


@functools.lru_cache(maxsize=2)
def object_views(objects: int = 16, views: int = 4, size: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every view of every object of every class: images (n, size, size, 3), labels, object ids.

    The same for every seed (the views are drawn with seed 0); which objects a run gives to web
    and to target is the run's seed.
    """
    xs, labels, objs = [], [], []
    for k, src in enumerate(photos.SOURCES):
        photo = photos.load_photo(src)
        centres, side = photos._grid(photo.width, photo.height, objects)
        for o in range(objects):
            for v in range(views):
                rng = np.random.default_rng([0, k, o, v])
                xs.append(np.asarray(photos.crop_view(photo, centres[o], side, size, rng)))
                labels.append(src.label)
                objs.append(f"{src.label}-o{o:02d}")
    return np.stack(xs), np.array(labels), np.array(objs)


def _features(x: np.ndarray) -> np.ndarray:
    """A 6x6 colour thumbnail by block means (24 px views), in [0, 1]."""
    n, s = len(x), x.shape[1]
    b = s // 6
    return x[:, : 6 * b, : 6 * b].reshape(n, 6, b, 6, b, 3).mean(axis=(2, 4)).reshape(n, -1) / 255.0


def _manifest(ids, domains, labels, groups) -> pl.DataFrame:
    n = len(ids)
    nothing = pl.Series([None] * n, dtype=pl.Float64)
    return schema.conform(pl.DataFrame({
        "image_id": ids, "path": [f"{i}.png" for i in ids], "root": ["none"] * n, "domain": domains,
        "label": labels, "width": [24] * n, "height": [24] * n, "format": ["PNG"] * n, "mode": ["RGB"] * n,
        "phash": pl.Series([0] * n, dtype=pl.UInt64), "blur": nothing, "brightness": nothing, "contrast": nothing,
        "effective_res": nothing, "noise": nothing, "extent": nothing, "jpeg_quality": nothing,
        "drop": [1] * n, "dup_group": ids, "group": pl.Series(groups, dtype=pl.String),
    }), schema.MANIFEST)


def groups_truth_run(tmp: Path, seed: int, with_groups: bool, web_objects: int = 10):
    """Web and target rendered alike, showing different objects: split (with or without the user's
    groups), train a logistic regression on train, predict every split, build the report.

    Returns the report's data (``shiftkit.report.stage.ReportData``).
    """
    from sklearn.linear_model import LogisticRegression

    from shiftkit.report.stage import build_report

    x, labels, objs = object_views()
    rng = np.random.default_rng(seed)
    domain = np.empty(len(x), object)
    for label in np.unique(labels):
        names = np.unique(objs[labels == label])
        web = set(rng.permutation(names)[:web_objects].tolist())
        sel = labels == label
        domain[sel] = np.where(np.isin(objs[sel], list(web)), "web", "target")
    ids = [f"{d}-{o}-{i}" for i, (d, o) in enumerate(zip(domain, objs, strict=True))]
    groups = list(objs) if with_groups else [None] * len(ids)
    manifest = _manifest(ids, list(domain), list(labels), groups)
    splits = assign(manifest, SplitParams(seed=seed, bridge=0.2, dev=0.4, test=0.3)).table
    split = dict(zip(splits["image_id"].to_list(), splits["split"].to_list(), strict=True))
    s = np.array([split[i] for i in ids])
    feats = _features(x)
    model = LogisticRegression(max_iter=300, C=1.0).fit(feats[s == "train"], labels[s == "train"])
    proba = model.predict_proba(feats)
    pred = model.classes_[proba.argmax(axis=1)]
    keep = np.isin(s, ["train", "bridge", "dev", "test"])
    preds = schema.conform(pl.DataFrame({
        "image_id": np.array(ids)[keep], "split": s[keep], "domain": domain[keep].astype(str),
        "label": labels[keep], "pred": pred[keep], "confidence": proba.max(axis=1)[keep],
        "correct": (pred == labels)[keep],
    }), schema.PREDICTIONS)
    name = f"g{int(with_groups)}-{seed}"
    io.write_table(preds, tmp / f"{name}-predictions.parquet", schema.PREDICTIONS)
    io.write_table(manifest, tmp / f"{name}-manifest.parquet", schema.MANIFEST)
    return build_report(tmp / f"{name}-predictions.parquet", manifest=tmp / f"{name}-manifest.parquet",
                        params=ReportParams(gallery=0))
