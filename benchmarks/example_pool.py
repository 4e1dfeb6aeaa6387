"""The example's unlabelled pool: the report's label-free estimate against the pool's real error.

The digits example writes its pool as ``data/raw/unlabelled/digit_<index>.png``, where the index is
the image's row in scikit-learn's ``load_digits``; the pipeline never sees a label for it. After
``dvc repro`` this script looks each pool image's label up by that index, computes the real error
of the report's model (``synth-all``) on the pool, and prints it beside the report's estimate
(``reports/metrics.json``, ``label_free``) and the dev audit, for every estimator variant.

    dvc repro && python benchmarks/example_pool.py [--repo .]

It reads, never writes. Run it on a finished pipeline (a clone is fine: paths are relative).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.ingest.example import load_digits_images


def pool_truth(repo: Path, predictions: str) -> pl.DataFrame:
    """The pool's prediction rows with the label looked up from ``load_digits`` by the file's index."""
    pred = io.read_table(repo / predictions, schema.PREDICTIONS).filter(pl.col("split") == schema.UNLABELLED)
    man = io.read_table(repo / "data/manifest/manifest.parquet", schema.MANIFEST).select("image_id", "path")
    rows = pred.select("image_id", "pred").join(man, on="image_id", how="inner")
    _, labels = load_digits_images()
    index = [int(re.search(r"digit_(\d{4})\.png$", p).group(1)) for p in rows["path"].to_list()]
    return rows.with_columns(label=pl.Series([str(int(labels[i])) for i in index]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("."), help="the folder dvc repro ran in")
    ap.add_argument("--predictions", default="data/curve/predictions/synth-all/predictions.parquet")
    args = ap.parse_args()
    rows = pool_truth(args.repo, args.predictions)
    real = 1 - (rows["pred"] == rows["label"]).mean()
    lf = json.loads((args.repo / "reports/metrics.json").read_text())["label_free"]
    print(f"pool: {rows.height:,} images, real error {100 * real:.1f}% (labels from load_digits by index)")
    print(f"chosen: {lf['chosen']}")
    for name, per in lf["estimators"].items():
        u, d = per.get(schema.UNLABELLED), per["dev"]
        mark = " <- chosen" if name == lf["chosen"] else ""
        print(f"  {name:28s} pool {100 * u['estimate']:5.1f}% [{100 * u['ci_low']:.1f}, {100 * u['ci_high']:.1f}] "
              f"miss {100 * abs(u['estimate'] - real):4.1f} pts | dev audit {100 * d['estimate']:5.1f}% "
              f"[{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}] actual {100 * d['actual']:.1f}%{mark}")


if __name__ == "__main__":
    main()
