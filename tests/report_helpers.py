"""Builders of predictions, manifests and synth tables for the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from tests import helpers


def make_predictions(
    spec: dict[str, tuple[int, float]],
    *,
    classes: int = 10,
    seed: int = 0,
    domain: dict[str, str] | None = None,
    id_prefix: str = "",
) -> pl.DataFrame:
    """Predictions with EXACTLY round(n * error) wrong images per split: ``{split: (n, error)}``.

    Image ids are ``<prefix><split>-<i>`` so that two runs built with the same spec share ids.
    """
    rng = np.random.default_rng(seed)
    domain = domain or {"train": "web", "bridge": "web", "dev": "target", "test": "target"}
    frames = []
    for split, (n, err) in spec.items():
        k = int(round(n * err))
        wrong = np.zeros(n, bool)
        wrong[rng.choice(n, size=k, replace=False)] = True
        label = rng.integers(0, classes, size=n)
        pred = np.where(wrong, (label + 1 + rng.integers(0, classes - 1, size=n)) % classes, label)
        conf = np.round(rng.uniform(0.3, 1.0, size=n), 6)
        frames.append(
            pl.DataFrame(
                {
                    "image_id": [f"{id_prefix}{split}-{i:06d}" for i in range(n)],
                    "split": [split] * n,
                    "domain": [domain.get(split, "web")] * n,
                    "label": label.astype(str),
                    "pred": pred.astype(str),
                    "confidence": conf,
                    "correct": ~wrong,
                }
            )
        )
    return schema.conform(pl.concat(frames), schema.PREDICTIONS)


def write_predictions(df: pl.DataFrame, path: Path) -> Path:
    io.write_table(df, path, schema.PREDICTIONS)
    return path


def example_run(tmp: Path, *, dev_error: float = 0.3, synth: bool = True, seed: int = 0) -> dict[str, Path]:
    """A small real run: MNIST as web (train/bridge), load_digits as target (dev/test), image files
    on disk, a manifest with properties and predictions whose dev errors concentrate on blurry
    images of classes 3 and 8.
    """
    from shiftkit.images.decode import decode, measure

    rng = np.random.default_rng(seed)
    web_x, web_y = helpers.mnist(300)
    tgt_x, tgt_y = helpers.digits(300)
    helpers.write_folder(tmp / "raw" / "web", web_x, web_y, prefix="mnist")
    helpers.write_folder(tmp / "raw" / "target", tgt_x, tgt_y, prefix="digit")
    rows = []
    for dom, xs, ys, prefix in (("web", web_x, web_y, "mnist"), ("target", tgt_x, tgt_y, "digit")):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            rel = f"{int(y)}/{prefix}_{i:05d}.png"
            props = measure(decode(tmp / "raw" / dom / rel).pixels)
            rows.append(
                {
                    "image_id": f"{dom}-{i:05d}",
                    "path": rel,
                    "root": f"raw/{dom}",
                    "domain": dom,
                    "label": str(int(y)),
                    "width": x.shape[1],
                    "height": x.shape[0],
                    "format": "PNG",
                    "mode": "L",
                    "drop": 1,
                    "dup_group": f"{dom}-{i:05d}",
                    "jpeg_quality": None,
                    **{k: v for k, v in props.items() if k in schema.MANIFEST.columns},
                }
            )
    manifest = schema.conform(pl.DataFrame(rows), schema.MANIFEST)
    io.write_table(manifest, tmp / "manifest.parquet", schema.MANIFEST)
    web_split = np.where(np.arange(300) < 220, "train", "bridge")
    tgt_split = np.where(np.arange(300) < 150, "dev", "test")
    blur = manifest.filter(pl.col("domain") == "target")["blur"].to_numpy()
    blurry = blur < np.quantile(blur, 0.5)
    preds = []
    for dom, ys, splits in (("web", web_y, web_split), ("target", tgt_y, tgt_split)):
        for i, (y, s) in enumerate(zip(ys, splits, strict=True)):
            y = int(y)
            if dom == "web":
                wrong = rng.random() < (0.02 if s == "train" else 0.06)
            else:
                p = dev_error * (1.6 if blurry[i] else 0.4) * (1.8 if y in (3, 8) else 0.8)
                wrong = rng.random() < min(p, 0.95)
            pred = (y + 5) % 10 if y in (3, 8) and wrong else (y + 1) % 10 if wrong else y
            preds.append(
                {
                    "image_id": f"{dom}-{i:05d}",
                    "split": s,
                    "domain": dom,
                    "label": str(y),
                    "pred": str(pred),
                    "confidence": float(np.round(rng.uniform(0.5, 1.0), 6)),
                    "correct": not wrong,
                }
            )
    synth_rows = []
    if synth:
        for i in range(0, 300, 3):
            s = str(web_split[i])
            wrong = rng.random() < 0.15
            y = int(web_y[i])
            preds.append(
                {
                    "image_id": f"synth-{i:05d}",
                    "split": s,
                    "domain": "synth",
                    "label": str(y),
                    "pred": str((y + 1) % 10 if wrong else y),
                    "confidence": float(np.round(rng.uniform(0.5, 1.0), 6)),
                    "correct": not wrong,
                }
            )
            synth_rows.append(
                {
                    "image_id": f"synth-{i:05d}",
                    "parent_id": f"web-{i:05d}",
                    "split": s,
                    "path": f"images/{i:05d}.png",
                    "recipe": '{"blur": 1.0}',
                }
            )
    pred_df = schema.conform(pl.DataFrame(preds), schema.PREDICTIONS)
    out = {"predictions": write_predictions(pred_df, tmp / "predictions.parquet"), "manifest": tmp / "manifest.parquet"}
    if synth:
        io.write_table(pl.DataFrame(synth_rows), tmp / "synth.parquet", schema.SYNTH)
        out["synth"] = tmp / "synth.parquet"
    return out
