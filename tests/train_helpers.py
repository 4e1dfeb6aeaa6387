"""Builders for the training tests: a real two-domain manifest + splits written to disk.

The manifest's image properties are dummy zeros (training does not read them) but have the
schema's dtypes; image_id is the sha256 of each file's bytes, as ingest computes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from tests import helpers


def manifest_rows(root: Path, domain: str, table_dir: Path, paths: list[Path]) -> pl.DataFrame:
    n = len(paths)
    rel = [p.relative_to(root).as_posix() for p in paths]
    return pl.DataFrame(
        {
            "image_id": [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths],
            "path": rel,
            "root": [io.relative_root(root, table_dir)] * n,
            "domain": [domain] * n,
            "label": [p.parent.name for p in paths],
            "width": [0] * n,
            "height": [0] * n,
            "format": ["PNG"] * n,
            "mode": ["L"] * n,
            "phash": [0] * n,
            "blur": [0.0] * n,
            "brightness": [0.0] * n,
            "contrast": [0.0] * n,
            "effective_res": [0.0] * n,
            "noise": [0.0] * n,
            "extent": [0.0] * n,
            "jpeg_quality": [None] * n,
            "drop": [1] * n,
            "dup_group": [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths],
        },
        schema_overrides={"jpeg_quality": pl.Float64},
    )


def build_example(
    base: Path,
    n_web: int = 120,
    n_target: int = 90,
    n_dev: int = 30,
    n_test: int = 30,
    n_bridge: int = 20,
    seed: int = 0,
) -> tuple[Path, Path]:
    """MNIST web + load_digits target folders, a manifest and a splits table; returns their paths.

    dev and test come from the target; the rest of the target joins train; bridge is carved
    from the web images.
    """
    web_x, web_y = helpers.mnist(n_web)
    tgt_x, tgt_y = helpers.digits(n_target)
    web = helpers.write_folder(base / "raw" / "web", web_x, web_y, prefix="mnist")
    tgt = helpers.write_folder(base / "raw" / "target", tgt_x, tgt_y, prefix="digit")
    table_dir = base / "manifest"
    table_dir.mkdir(parents=True, exist_ok=True)
    man = pl.concat(
        [
            manifest_rows(base / "raw" / "web", "web", table_dir, web),
            manifest_rows(base / "raw" / "target", "target", table_dir, tgt),
        ]
    )
    man = man.unique("image_id", keep="first", maintain_order=True)
    manifest_path = io.write_table(man, table_dir / "manifest.parquet", schema.MANIFEST)
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * man.height, dtype=object)
    is_tgt = (man["domain"] == "target").to_numpy()
    tgt_idx = rng.permutation(np.flatnonzero(is_tgt))
    split[tgt_idx[:n_dev]] = "dev"
    split[tgt_idx[n_dev : n_dev + n_test]] = "test"
    web_idx = rng.permutation(np.flatnonzero(~is_tgt))
    split[web_idx[:n_bridge]] = "bridge"
    spl = pl.DataFrame({"image_id": man["image_id"], "split": split.tolist(), "group": man["dup_group"]})
    splits_path = io.write_table(spl, base / "splits" / "splits.parquet", schema.SPLITS_TABLE)
    return manifest_path, splits_path


def build_synth(base: Path, manifest_path: Path, splits_path: Path, per_parent: int = 1, limit: int = 20) -> Path:
    """Blurred, downscaled copies of train/bridge web images as a synth table (label omitted:
    the trainer takes it from the parent)."""
    from PIL import Image, ImageFilter

    man = io.read_table(manifest_path, schema.MANIFEST)
    spl = io.read_table(splits_path, schema.SPLITS_TABLE)
    rows = (
        man.join(spl, on="image_id")
        .filter((pl.col("domain") == "web") & pl.col("split").is_in(["train", "bridge"]))
        .head(limit)
    )
    out_dir = base / "synth"
    recs = []
    for r, src in zip(rows.to_dicts(), io.image_paths(rows, manifest_path), strict=False):
        for c in range(per_parent):
            im = Image.open(src).filter(ImageFilter.GaussianBlur(1.0)).resize((8, 8), Image.BILINEAR)
            rel = f"images/{r['label']}/{r['image_id'][:12]}_{c}.png"
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            im.save(out_dir / rel)
            recs.append(
                {
                    "image_id": hashlib.sha256((out_dir / rel).read_bytes()).hexdigest(),
                    "parent_id": r["image_id"],
                    "split": r["split"],
                    "path": rel,
                    "recipe": '{"blur": 1.0}',
                }
            )
    return io.write_table(pl.DataFrame(recs), out_dir / "synth.parquet", schema.SYNTH)
