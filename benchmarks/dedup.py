"""Near-duplicate grouping time over 25k / 50k / 100k real phashes, and its growth per doubling.

The hashes are shiftkit phashes of the 60,000 MNIST training digits plus those of their
transposes (real pictures, with the crowded buckets of real phashes). Grouping all-pairs would
grow 4x per doubling; multi-index hashing should stay well below that.

    PYTHONPATH=. /work/venv/bin/python benchmarks/dedup.py [--radius 4]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np

from shiftkit import dedup, images

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


def mnist_phashes(n: int) -> np.ndarray:
    with gzip.open(MNIST / "train-images-idx3-ubyte.gz", "rb") as fh:
        x = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    pics = np.concatenate([x, x.transpose(0, 2, 1)])[:n]
    return np.array([images.phash(images.working_image(np.ascontiguousarray(p))) for p in pics], dtype=np.uint64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=int, default=4)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mnist", type=Path, default=MNIST)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    hashes = mnist_phashes(max(sizes))
    print(f"phashes of {hashes.size:,} MNIST images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rng = np.random.default_rng(0)
    order = rng.permutation(hashes.size)  # every size draws from originals and transposes alike
    prev = None
    print(f"{'hashes':>8} {'seconds':>8} {'groups':>8} {'pairs':>9} {'x per doubling':>15}")
    for n in sizes:
        h = hashes[order[:n]]
        keys = [f"{k:06d}" for k in range(n)]
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            groups = dedup.group_ids(keys, h, args.radius)
            best = min(best, time.perf_counter() - t)
        pairs = dedup.hamming_pairs(np.unique(h), None, args.radius)[0].size
        ratio = "" if prev is None else f"{(best / prev[1]) ** (1 / np.log2(n / prev[0])):.2f}"
        print(f"{n:>8,} {best:>8.3f} {len(set(groups)):>8,} {pairs:>9,} {ratio:>15}")
        prev = (n, best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
