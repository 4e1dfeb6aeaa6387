"""The manifest, the split and the report's error counts at millions of rows (synthetic rows).

Each step runs in its own process, so that its peak resident memory (ru_maxrss) is its own:
  make    build N manifest rows (sha256-like ids, paths, labels of 1,000 classes, 10% target,
          2% of the images in groups of 4 near copies) and write manifest.parquet (shiftkit.core.files);
  read    read it back through shiftkit.core.files.read_table (schema check);
  scan    polars' lazy scan: the target rows' ids and labels only (what a partitioned,
          lazily scanned manifest would cost per question);
  split   shiftkit.splits.stage.run_split on it (default params: dev/test from the target);
  report  the error decomposition's counts and bootstrap on N predictions (shiftkit.stats.decompose).
Prints seconds, peak RSS and the file size per step, and the linear estimate at --estimate rows.

    PYTHONPATH=. python benchmarks/manifest_scale.py [--rows 10000000] [--estimate 100000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = ("make", "read", "scan", "split", "report")


def _ids(n: int, seed: int):
    import numpy as np
    import polars as pl

    raw = np.frombuffer(np.random.default_rng(seed).bytes(n * 32), dtype=np.uint8).reshape(n, 32).copy()
    raw[:, -1] |= 1  # no trailing zero byte (numpy's fixed-width bytes would drop it)
    return pl.Series("image_id", raw.view("S32").ravel()).bin.encode("hex")


def make(n: int, folder: Path) -> None:
    import numpy as np
    import polars as pl

    from shiftkit.core import files as io
    from shiftkit.core import schema

    rng = np.random.default_rng(0)
    ids = _ids(n, 0)
    idx = np.arange(n)
    grouped = (idx // 4) % 50 == 0
    target = rng.random(n) < 0.1
    df = pl.DataFrame({
        "image_id": ids,
        "label": pl.Series(rng.integers(0, 1000, n)).cast(pl.String),
        "domain": pl.Series(np.where(target, "target", "web")),
        "width": rng.integers(200, 1024, n).astype(np.int32),
        "height": rng.integers(200, 1024, n).astype(np.int32),
        "phash": rng.integers(0, 2**63, n, dtype=np.uint64),
        **{c: rng.random(n) for c in ("blur", "brightness", "contrast", "effective_res", "noise", "extent")},
        "dup_group": ids.gather(np.where(grouped, idx - idx % 4, idx)),
    }).with_columns(
        path=pl.format("{}/{}.jpg", pl.col("label"), pl.col("image_id").str.slice(0, 16)),
        root=pl.format("../raw/{}", pl.col("domain")),
        format=pl.lit("JPEG"), mode=pl.lit("RGB"), jpeg_quality=pl.lit(90.0), drop=pl.lit(1, pl.Int32),
    )
    io.write_table(df, folder / "manifest.parquet", schema.MANIFEST)


def report(n: int) -> None:
    import numpy as np
    import polars as pl

    from shiftkit.stats import bootstrap, decompose

    rng = np.random.default_rng(1)
    splits = np.array(["train", "bridge", "dev", "test"])[rng.integers(0, 4, n)]
    correct = rng.random(n) > np.select([splits == "train", splits == "bridge"], [0.05, 0.08], 0.15)
    preds = pl.DataFrame({"image_id": _ids(n, 1), "split": splits, "correct": correct})
    counts = bootstrap.split_counts(preds)
    decompose.decompose(counts, replicates=1000, seed=0)


def step(name: str, n: int, folder: Path) -> dict:
    t0 = time.perf_counter()
    if name == "make":
        make(n, folder)
    elif name == "read":
        from shiftkit.core import files as io
        from shiftkit.core import schema

        io.read_table(folder / "manifest.parquet", schema.MANIFEST)
    elif name == "scan":
        import polars as pl

        (pl.scan_parquet(folder / "manifest.parquet").filter(pl.col("domain") == "target")
         .select("image_id", "label").collect())
    elif name == "split":
        from shiftkit.splits.params import SplitParams
        from shiftkit.splits.stage import run_split

        run_split(folder / "manifest.parquet", folder / "splits", SplitParams())
    elif name == "report":
        report(n)
    seconds = time.perf_counter() - t0
    return {"step": name, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--estimate", type=int, default=100_000_000)
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:  # a child: one step, its figures as json on stdout
        print(json.dumps(step(args.step, args.rows, Path(args.dir))))
        return 0
    with tempfile.TemporaryDirectory(prefix="shiftkit-manifest-scale-") as tmp:
        factor = args.estimate / args.rows
        print(f"{'step':8s} {'rows':>12s} {'seconds':>9s} {'peak RSS MB':>12s}   "
              f"linear estimate at {args.estimate:,} rows")
        for name in args.steps.split(","):
            res = subprocess.run([sys.executable, __file__, "--step", name, "--rows", str(args.rows), "--dir", tmp],
                                 capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{name:8s} {args.rows:>12,} {r['seconds']:>9.1f} {r['peak_rss_mb']:>12,.0f}   "
                  f"{r['seconds'] * factor:,.0f} s, {r['peak_rss_mb'] * factor / 1024:,.1f} GB", flush=True)
            if name == "make":
                size = (Path(tmp) / "manifest.parquet").stat().st_size
                print(f"manifest.parquet: {size / 2**20:,.0f} MiB ({size / args.rows:.0f} bytes/row; "
                      f"{size * factor / 2**30:,.1f} GiB at {args.estimate:,} rows)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
