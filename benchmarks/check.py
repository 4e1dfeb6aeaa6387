"""Near-copy detection of ``shiftkit check`` and its speed, measured through the real ingest.

1. Catch rate: every image of a set (2,000 MNIST digits; the 1,797 load_digits) is saved again
   enlarged 2x and re-encoded as JPEG; both folders are ingested and the Hamming distance between
   each image's phash and its copy's is counted. The share within each radius is the share of
   such copies a check with that ``ingest.near_dup_radius`` names as leakage; the false-link rate
   is the share of distinct originals that have another original within the radius.
2. Speed: ``shiftkit check`` of a clean 1,000-image drop against a 4,797-image reference.

Run: ``PYTHONPATH=. python benchmarks/check.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from shiftkit.core.files import read_table
from shiftkit.core.schema import MANIFEST
from shiftkit.images.dedup import hamming_pairs
from shiftkit.ingest.stage import ingest
from tests import helpers

RADII = (2, 4, 6, 8, 10)


def _hashes(folder: Path, out: Path) -> pl.DataFrame:
    ingest({"d": folder}, out)
    m = read_table(out / "manifest.parquet", MANIFEST)
    return m.select(pl.col("path").str.extract(r"_(\d+)\.").cast(pl.Int64).alias("i"), "phash").sort("i")


def catch_rate(name: str, images: np.ndarray, labels: np.ndarray, tmp: Path, quality: int, resample) -> None:
    src, dst = tmp / f"{name}-src", tmp / f"{name}-{quality}-{resample}"
    if not src.exists():
        helpers.write_folder(src, images, labels, prefix="o")
    for i, (img, lab) in enumerate(zip(images, labels, strict=False)):
        d = dst / str(int(lab))
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        im.resize((im.width * 2, im.height * 2), resample).save(d / f"c_{i:05d}.jpg", quality=quality)
    a = _hashes(src, tmp / f"m-{name}-src")
    b = _hashes(dst, tmp / f"m-{dst.name}")
    both = a.join(b, on="i", suffix="_copy")
    x = both["phash"].to_numpy().astype(np.uint64) ^ both["phash_copy"].to_numpy().astype(np.uint64)
    dist = np.bitwise_count(x)
    rates = ", ".join(f"<= {r}: {np.mean(dist <= r):.1%}" for r in RADII)
    print(
        f"{name} 2x {'bilinear' if resample == Image.BILINEAR else 'bicubic'} JPEG q{quality}: "
        f"copies within {rates}; max {dist.max()} bits"
    )
    h = a["phash"].to_numpy().astype(np.uint64)
    uniq = np.unique(h)
    links = []
    for r in RADII:
        i, j = hamming_pairs(uniq, None, r)
        linked = np.zeros(uniq.size, bool)
        linked[i] = linked[j] = True
        links.append(f"<= {r}: {linked.mean():.1%}")
    print(f"  distinct {name} originals linked to another original within {', '.join(links)}")


def main() -> int:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        mx, my = helpers.mnist_many(2000, 30000)
        dx, dy = helpers.digits()
        for name, x, y in (("MNIST", mx, my), ("load_digits", dx, dy)):
            for q, rs in ((75, Image.BICUBIC), (90, Image.BILINEAR)):
                catch_rate(name, x, y, tmp, q, rs)

        from shiftkit.check.stage import run_check
        from shiftkit.params import load_params
        from shiftkit.splits.stage import run_split

        ref_x, ref_y = helpers.mnist_many(3000)
        helpers.write_folder(tmp / "ref" / "web", ref_x, ref_y, prefix="w")
        helpers.write_folder(tmp / "ref" / "target", dx, dy, prefix="t")
        ingest({"web": tmp / "ref" / "web", "target": tmp / "ref" / "target"}, tmp / "refm")
        run_split(tmp / "refm" / "manifest.parquet", tmp / "refs")
        nx, ny = helpers.mnist_many(1000, 50000)
        helpers.write_folder(tmp / "drop" / "web", nx, ny, prefix="n")
        t0 = time.perf_counter()
        report = run_check(
            [str(tmp / "drop")],
            tmp / "refm" / "manifest.parquet",
            splits=tmp / "refs" / "splits.parquet",
            out=tmp / "out",
            params=load_params(None).check, ingest_params=load_params(None).ingest,
            raise_on_fail=False,
        )
        s = time.perf_counter() - t0
        print(
            f"check of a clean 1,000-image drop against 4,797 reference images: {s:.2f} s, verdict {report.verdict}, "
            f"{len(report.warnings)} warning(s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
