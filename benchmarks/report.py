"""Benchmark: `shiftkit report` on 1,000,000 predictions with 1,000 bootstrap replicates.

Limit: under 10 s for the whole report (read, decompose over clusters, analyse, render
md/html/json, plots). Prints seconds per phase and the ratio to the limit (< 1.0 passes). A manifest with the
image properties is joined too (``--no-manifest`` to leave it out); its files do not exist, so the
gallery lists images without thumbnails.

    PYTHONPATH=. python benchmarks/report.py [--rows 1000000] [--replicates 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

LIMIT_S = 10.0


def build(rows: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    split = rng.choice(np.array(["train", "bridge", "dev", "test"]), size=rows, p=[0.55, 0.15, 0.15, 0.15])
    err = np.select([split == "train", split == "bridge", split == "dev"], [0.02, 0.05, 0.12], 0.13)
    wrong = rng.random(rows) < err
    label = rng.integers(0, 20, rows)
    pred = np.where(wrong, (label + rng.integers(1, 20, rows)) % 20, label)
    ids = pl.Series("image_id", np.arange(rows)).cast(pl.String).str.zfill(12)
    preds = pl.DataFrame(
        {
            "image_id": ids,
            "split": split,
            "domain": np.where(np.isin(split, ["dev", "test"]), "target", "web"),
            "label": pl.Series(label).cast(pl.String),
            "pred": pl.Series(pred).cast(pl.String),
            "confidence": rng.uniform(0.2, 1.0, rows),
            "correct": ~wrong,
        }
    )
    manifest = pl.DataFrame(
        {
            "image_id": ids,
            "path": ids + ".png",
            "root": pl.repeat("images", rows, eager=True),
            "domain": preds["domain"],
            "label": preds["label"],
            "width": np.full(rows, 64, np.int32),
            "height": np.full(rows, 64, np.int32),
            "format": pl.repeat("PNG", rows, eager=True),
            "mode": pl.repeat("L", rows, eager=True),
            "phash": rng.integers(0, 2**63, rows, dtype=np.uint64),
            "blur": rng.gamma(2.0, 0.01, rows),
            "brightness": rng.uniform(0, 1, rows),
            "contrast": rng.uniform(0, 0.5, rows),
            "effective_res": rng.integers(4, 64, rows).astype(float),
            "noise": rng.uniform(0, 0.1, rows),
            "extent": rng.uniform(0.3, 1, rows),
            "jpeg_quality": pl.repeat(None, rows, dtype=pl.Float64, eager=True),
            "drop": np.ones(rows, np.int32),
            # one image in ten is a near copy of the one before it: the bootstrap resamples clusters
            "dup_group": pl.Series(np.where(np.arange(rows) % 10 == 1, np.arange(rows) - 1, np.arange(rows)))
            .cast(pl.String).str.zfill(12),
        }
    )
    return preds, manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--no-manifest", action="store_true")
    args = ap.parse_args(argv)
    from shiftkit.core import files as io
    from shiftkit.core import schema
    from shiftkit.report.params import ReportParams
    from shiftkit.report.stage import build_report, write_report

    preds, manifest = build(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        io.write_table(preds, tmp / "predictions.parquet", schema.PREDICTIONS)
        if not args.no_manifest:
            io.write_table(manifest, tmp / "manifest.parquet", schema.MANIFEST)
        params = ReportParams(replicates=args.replicates)
        t0 = time.perf_counter()
        data = build_report(
            tmp / "predictions.parquet",
            manifest=None if args.no_manifest else tmp / "manifest.parquet",
            params=params,
        )
        t1 = time.perf_counter()
        write_report(data, tmp / "reports")
        t2 = time.perf_counter()
    total = t2 - t1 + (t1 - t0)
    print(f"rows {args.rows:,}, replicates {args.replicates:,}, manifest {'no' if args.no_manifest else 'yes'}")
    print(f"compute (read, decompose, analyse): {t1 - t0:.2f} s; "
          f"render (md, html, figures, json, plots): {t2 - t1:.2f} s")
    verdict = "PASS" if total < LIMIT_S else "FAIL"
    print(f"total {total:.2f} s; limit {LIMIT_S:.0f} s; ratio {total / LIMIT_S:.2f} ({verdict})")
    print(f"diagnosis {data.decomposition.diagnosis}")
    return 0 if total < LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
