"""The budgets of the learning curve: nested, label-stratified, seeded subsets of the target's *train*
split, one splits table per budget.

The k images of a budget are the first k of one seeded order (:func:`draw_order`), so the 100 are
inside the 300; every other split (bridge, dev, test) is untouched, so every point of a curve is
measured on the same images. Target train images outside the budget get the split ``unused``,
which training and evaluation never read. :func:`write_budgets` writes the tables (``0.parquet``,
``all.parquet``, ...) and ``budgets.json``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import ConfigError, DataError
from shiftkit.curve.arms import UNUSED
from shiftkit.curve.params import CurveParams

ALL = "all"  # the budget that keeps every labelled target train image
BUDGETS_JSON = "budgets.json"

Budget = int | str


def check_budgets(budgets: Sequence[Budget], where: str = "curve.budgets") -> tuple[Budget, ...]:
    """Validate a budget list: distinct integers >= 0 and at most one ``all``; returned ascending.

    Raises:
        ConfigError: on an empty list, a negative or non-integer entry or a repeated entry.
    """
    if not budgets:
        raise ConfigError(f"The {where!r} parameter must list at least one budget (for example [0, all]).")
    for b in budgets:
        ok = b == ALL or (isinstance(b, int) and not isinstance(b, bool) and b >= 0)
        if not ok:
            raise ConfigError(f"The {where!r} parameter must hold integers >= 0 or 'all'. Got {b!r} instead.")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"The {where!r} parameter lists a budget twice: {list(budgets)!r}.")
    return tuple(sorted(budgets, key=lambda b: math.inf if b == ALL else b))


def budget_name(budget: Budget) -> str:
    """The budget as it appears in paths and stage names: ``0``, ``300``, ``all``."""
    return str(budget)


def parse_budget(text: str) -> Budget:
    """``'all'`` or a non-negative integer, from a command line or a file name.

    Raises:
        ConfigError: on anything else.
    """
    if text == ALL:
        return ALL
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"A budget must be an integer >= 0 or 'all'. Got {text!r} instead.")
    return value


def target_train(splits: pl.DataFrame, manifest: pl.DataFrame, target_domain: str) -> pl.DataFrame:
    """The labelled target images of the train split: image_id, label (sorted by image_id)."""
    rows = (
        splits.select("image_id", "split")
        .join(manifest.select("image_id", "domain", "label"), on="image_id", how="inner")
        .filter((pl.col("split") == "train") & (pl.col("domain") == target_domain) & pl.col("label").is_not_null())
    )
    return rows.select("image_id", "label").sort("image_id")


def draw_order(pool: pl.DataFrame, seed: int) -> pl.DataFrame:
    """One seeded order of ``pool`` (image_id, label) whose every prefix is stratified by label.

    Each label's images are shuffled; the i-th image of a label with m images gets the key
    (i + u) / m, u a seeded offset in [0, 1) per label, and the pool is sorted by key. A prefix of
    any length k then holds each label within one image of k x its share, and a shorter prefix is
    inside a longer one. Returns image_id, label, rank (0-based).
    """
    rng = np.random.default_rng(seed)
    pool = pool.sort("image_id")
    frames = []
    for label in sorted(pool["label"].unique().to_list()):
        ids = pool.filter(pl.col("label") == label)["image_id"].to_numpy()
        perm = rng.permutation(len(ids))
        offset = rng.random()
        keys = (np.arange(len(ids)) + offset) / len(ids)
        frames.append(pl.DataFrame({"image_id": ids[perm], "label": [label] * len(ids), "key": keys}))
    if not frames:
        return pl.DataFrame(schema={"image_id": pl.String, "label": pl.String, "rank": pl.Int64})
    ordered = pl.concat(frames).sort("key", "label", "image_id")
    return ordered.select("image_id", "label", pl.int_range(pl.len()).alias("rank"))


def budget_size(budget: Budget, available: int, where: str = "curve.budgets") -> int:
    """How many target train images a budget keeps.

    Raises:
        DataError: when an integer budget asks for more images than the target's train split has.
    """
    if budget == ALL:
        return available
    if budget > available:
        raise DataError(
            f"The {where!r} parameter asks for {budget} labelled target images, but the target's train split "
            f"holds {available}; use a budget <= {available} or 'all'."
        )
    return int(budget)


def budget_splits(splits: pl.DataFrame, order: pl.DataFrame, budget: Budget) -> pl.DataFrame:
    """The splits table with only the first ``budget`` images of ``order`` left in train.

    The other target train images get the split ``unused``; every other row is unchanged.
    """
    k = budget_size(budget, order.height)
    dropped = order.filter(pl.col("rank") >= k).select("image_id", pl.lit(True).alias("_drop"))
    out = splits.join(dropped, on="image_id", how="left")
    out = out.with_columns(
        pl.when(pl.col("_drop").fill_null(False)).then(pl.lit(UNUSED)).otherwise(pl.col("split")).alias("split")
    )
    return out.drop("_drop").select(splits.columns)


def budget_file(budgets_dir: str | os.PathLike[str], budget: Budget) -> Path:
    """The splits table of ``budget`` in the budgets folder: ``<dir>/300.parquet``."""
    return Path(budgets_dir) / f"{budget_name(budget)}.parquet"


def write_budgets(
    manifest: str | os.PathLike[str], splits: str | os.PathLike[str], out_dir: str | os.PathLike[str],
    params: CurveParams,
) -> dict[str, int]:
    """One splits table per budget in ``out_dir`` (``0.parquet``, ``all.parquet``, ...) and
    ``budgets.json`` (labelled target train images per budget, and per label). Returns the counts.

    Raises:
        DataError: when a budget asks for more images than the target's train split holds.
    """
    man = io.read_table(manifest, schema.MANIFEST)
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    pool = target_train(spl, man, params.target_domain)
    order = draw_order(pool, params.seed)
    counts: dict[str, int] = {}
    per_label: dict[str, dict[str, int]] = {}
    with io.replace_dir(out_dir, owned=("*.parquet", BUDGETS_JSON)) as tmp:
        # budget 0 is always written: it is also the web-only model's table (finetune's start)
        io.write_table(budget_splits(spl, order, 0), budget_file(tmp, 0), schema.SPLITS_TABLE)
        for b in params.budgets:
            name = budget_name(b)
            k = budget_size(b, order.height)
            io.write_table(budget_splits(spl, order, b), budget_file(tmp, b), schema.SPLITS_TABLE)
            counts[name] = k
            kept = order.filter(pl.col("rank") < k)["label"].value_counts().sort("label")
            per_label[name] = dict(zip(kept["label"].to_list(), kept["count"].to_list(), strict=True))
        io.write_json(tmp / BUDGETS_JSON, {"target_domain": params.target_domain, "seed": params.seed,
                                           "images": counts, "per_label": per_label})
    return counts


def budgets_summary(counts: dict[str, int], out_dir: str | os.PathLike[str]) -> str:
    """The budgets step's one-line summary."""
    shown = ", ".join(f"{k}: {v}" for k, v in counts.items())
    return f"curve budgets (labelled target train images) {shown}; wrote {out_dir}/"
