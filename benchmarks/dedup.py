"""Near-duplicate grouping time over 25k / 50k / 100k real phashes, and its growth per doubling.

The hashes are shiftkit phashes of the 60,000 MNIST training digits plus those of their
transposes (real pictures, with the crowded buckets of real phashes). Grouping all-pairs would
grow 4x per doubling; multi-index hashing should stay well below that.

    PYTHONPATH=. /work/venv/bin/python benchmarks/dedup.py [--radius 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shiftkit import dedup, images  # noqa: E402
from tests import helpers  # noqa: E402  (MNIST: shared if present, else shipped)


def mnist_phashes(n: int) -> np.ndarray:
    """phashes of ``n`` MNIST pictures: the digits, then their transposes (tests/helpers.py mnist_many)."""
    pics = helpers.mnist_many(n)[0]
    return np.array([images.phash(images.working_image(np.ascontiguousarray(p))) for p in pics], dtype=np.uint64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=int, default=4)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--repeat", type=int, default=3)
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
