"""Builders for the synthesis and shift tests: manifests and splits tables without ingest.

The manifest rows conform to schema.MANIFEST (properties from shiftkit.images.decode.measure, ``root``
relative to the manifest's folder), so the tests do not depend on the ingest issue's code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.images import decode as images


def manifest_rows(root: Path, domain: str, table_dir: Path) -> list[dict]:
    """One manifest row per image under ``root/<label>/``."""
    rows = []
    rel_root = io.relative_root(root, table_dir)
    for p in sorted(Path(root).rglob("*.*")):
        data = p.read_bytes()
        dec = images.decode(data)
        props = images.measure(dec.pixels)
        image_id = hashlib.sha256(data).hexdigest()
        rows.append({
            "image_id": image_id,
            "path": p.relative_to(root).as_posix(),
            "root": rel_root,
            "domain": domain,
            "label": p.parent.name,
            "width": dec.width,
            "height": dec.height,
            "format": dec.format,
            "mode": dec.mode,
            **props,
            "jpeg_quality": dec.jpeg_quality,
            "drop": 1,
            "dup_group": image_id,
        })
    return rows


def write_manifest(table_path: Path, domains: dict[str, Path]) -> pl.DataFrame:
    """Write a manifest of ``{domain: folder}`` to ``table_path`` and return it."""
    rows = []
    for domain, root in domains.items():
        rows.extend(manifest_rows(root, domain, table_path.parent))
    df = pl.DataFrame(rows)
    io.write_table(df, table_path, schema.MANIFEST)
    return io.read_table(table_path, schema.MANIFEST)


def write_splits(table_path: Path, manifest: pl.DataFrame, target: str = "target", seed: int = 0) -> pl.DataFrame:
    """Target images into train/dev/test (60/20/20), every other domain into train/bridge (90/10)."""
    out = []
    for row in manifest.sort("image_id").iter_rows(named=True):
        u = int(row["image_id"][:8], 16) / 16**8
        if row["domain"] == target:
            split = "train" if u < 0.6 else ("dev" if u < 0.8 else "test")
        else:
            split = "train" if u < 0.9 else "bridge"
        out.append({"image_id": row["image_id"], "split": split, "group": row["dup_group"]})
    df = pl.DataFrame(out)
    io.write_table(df, table_path, schema.SPLITS_TABLE)
    return df


def reduce(images_: np.ndarray, size: int) -> np.ndarray:
    """Images reduced to size x size with area interpolation (the 'only resolution differs' pair)."""
    import cv2

    return np.stack([cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in images_])


def small_tables(root: Path, web: tuple[np.ndarray, np.ndarray],
                 target: tuple[np.ndarray, np.ndarray]) -> tuple[Path, Path]:
    """Image folders of ``web`` and ``target`` (images, labels) under ``root``, their manifest and
    splits tables; returns (manifest path, splits path)."""
    from tests import helpers

    helpers.write_folder(root / "web", *web, prefix="w")
    helpers.write_folder(root / "target", *target, prefix="t")
    manifest = write_manifest(root / "manifest" / "manifest.parquet", {"web": root / "web", "target": root / "target"})
    write_splits(root / "splits" / "splits.parquet", manifest)
    return root / "manifest" / "manifest.parquet", root / "splits" / "splits.parquet"


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path (empty when it does not exist)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}
