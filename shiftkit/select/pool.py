"""The pool a selection draws from: never a dev, test or bridge image.

From a manifest and a splits table the pool is

* every image of split ``unlabelled`` (``ingest --unlabelled``), and
* the target's train images not labelled for training: status ``unused`` in a budget table
  (``data/curve/budgets/<k>.parquet``: the images outside budget k), or, when the table has no
  ``unused`` row (the plain ``data/splits/splits.parquet``), every target train image, since
  then the question is which of them to label first.

Or, without a manifest, every image of a folder (searched recursively) or of a listing (CSV or
parquet with a ``path`` column, relative to the listing's folder).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError

UNLABELLED, UNUSED, TRAIN = "unlabelled", "unused", "train"
POOL_COLUMNS = ("image_id", "path", "abspath", "split", "domain")


def from_tables(manifest: str | os.PathLike[str], splits: str | os.PathLike[str], target_domain: str) -> pl.DataFrame:
    """The pool of a manifest and splits table (see the module docstring), sorted by image_id.

    Raises:
        InputPathError, SchemaError: on a missing or malformed table.
        DataError: when the pool is empty.
    """
    man = io.read_table(manifest, schema.MANIFEST)
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    j = man.select("image_id", "path", "root", "domain").join(spl.select("image_id", "split"), on="image_id")
    target = pl.col("domain") == target_domain
    status = UNUSED if (spl["split"] == UNUSED).any() else TRAIN
    rows = j.filter((pl.col("split") == UNLABELLED) | (target & (pl.col("split") == status))).sort("image_id")
    if not rows.height:
        raise DataError(
            f"{splits} has no image to select from: no split '{UNLABELLED}' and no {target_domain!r} image with "
            f"split '{status}' (the pool is never dev, test or bridge)."
        )
    paths = [str(p) for p in io.image_paths(rows, manifest)]
    return rows.select("image_id", "path", pl.Series("abspath", paths, dtype=pl.String), "split", "domain")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def from_images(source: str | os.PathLike[str]) -> pl.DataFrame:
    """The pool of a folder (every image file under it) or a listing (CSV/parquet with ``path``).

    Raises:
        InputPathError: when ``source`` does not exist.
        DataError: when it holds no image, or a listed file is missing.
    """
    from shiftkit.training.unlabelled import image_files

    src = Path(source)
    files = image_files(src, option="--images")
    base = src if src.is_dir() else src.resolve().parent
    rel = [p.relative_to(base).as_posix() if p.is_relative_to(base) else str(p) for p in files]
    return pl.DataFrame({"image_id": [_sha(p) for p in files], "path": rel,
                         "abspath": [str(p.resolve()) for p in files], "split": "pool", "domain": "pool"})
