"""Near-duplicate grouping time over 25k / 50k / 100k real phashes, and its growth per doubling.

``--catch`` measures instead what the groups hold, through the real ingest: every image of a set
(2,000 MNIST digits; the 1,797 load_digits) and a copy of it enlarged 2x and re-encoded as JPEG
are ingested together; the share of copies grouped with their original, the largest group and
the number of groups of several images are printed for the phash alone (connected components
at the radius, as before thumbnails) and for pairs confirmed by the thumbnails (``dedup``).

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

from shiftkit.images import decode as images
from shiftkit.images import dedup  # noqa: E402
from tests import helpers  # noqa: E402  (MNIST: shared if present, else shipped)


def mnist_phashes(n: int) -> np.ndarray:
    """phashes of ``n`` MNIST pictures: the digits, then their transposes (tests/helpers.py mnist_many)."""
    pics = helpers.mnist_many(n)[0]
    return np.array([images.phash(images.working_image(np.ascontiguousarray(p))) for p in pics], dtype=np.uint64)


def catch(radius: int) -> None:
    import tempfile

    import polars as pl
    from PIL import Image

    from shiftkit.ingest.stage import ingest
    from tests import helpers

    mx, my = helpers.mnist(2000, 30000)
    dx, dy = helpers.digits()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, xs, ys in (("MNIST", mx, my), ("load_digits", dx, dy)):
            for q, rs in ((75, Image.BICUBIC), (90, Image.BILINEAR)):
                root = tmp / f"{name}-{q}"
                helpers.write_folder(root, xs, ys, prefix="o")
                for i, (img, lab) in enumerate(zip(xs, ys, strict=False)):
                    im = Image.fromarray(img)
                    im.resize((im.width * 2, im.height * 2), rs).save(
                        root / str(int(lab)) / f"c_{i:05d}.jpg", quality=q
                    )
                ingest({"d": root}, tmp / f"m-{name}-{q}", params=None)
                m = pl.read_parquet(tmp / f"m-{name}-{q}" / "manifest.parquet").sort("drop", "image_id")
                m = m.with_columns(
                    kind=pl.col("path").str.extract(r"/(o|c)_"),
                    i=pl.col("path").str.extract(r"_(\d+)\.").cast(pl.Int64),
                )
                thumbs = np.frombuffer(b"".join(m["thumb"].to_list()), np.uint8).reshape(m.height, -1)
                keys, h = m["image_id"].to_list(), m["phash"].to_numpy()
                for how, groups in (
                    ("phash only", dedup.group_ids(keys, h, radius)),
                    ("phash + thumbnail", dedup.group_ids(keys, h, radius, thumbs=thumbs)),
                ):
                    g = m.with_columns(group=pl.Series(groups))
                    pairs = g.filter(pl.col("kind") == "o").join(g.filter(pl.col("kind") == "c"), on="i")
                    caught = (pairs["group"] == pairs["group_right"]).mean()
                    sizes = g.group_by("group").len()["len"]
                    print(
                        f"{name} 2x JPEG q{q}, radius {radius}, {how}: {caught:.1%} of {pairs.height:,} copies grouped "
                        f"with their original; largest group {sizes.max()}, "
                        f"{int((sizes > 2).sum())} groups of > 2 images"
                    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catch", action="store_true", help="what the groups hold (see above), not the speed")
    ap.add_argument("--radius", type=int, default=4)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.catch:
        catch(2 if args.radius == 4 and "--radius" not in (argv or sys.argv) else args.radius)
        return 0
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
