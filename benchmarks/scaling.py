"""How the cost of the data stages grows with the number of images: 10k, 20k, 40k.

Real MNIST digits (28x28 PNG, from ../shared/datasets/mnist) as web and load_digits as target,
through the real stage functions: ingest (decode, properties, hashes, near-duplicate groups),
split, and synthesis with a fixed recipe (no fit). Each size is a fresh folder. Prints seconds,
images/s and the growth per doubling (2.0 = linear). Training is left out: its cost per image is
constant (benchmarks/train.py measures its throughput).

    PYTHONPATH=. python benchmarks/scaling.py [--sizes 10000,20000,40000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import helpers  # noqa: E402  (real MNIST and load_digits loaders)

RECIPE = {
    "steps": [
        {"name": "crop_to_content", "p": 1.0, "params": {}},
        {"name": "gaussian_blur", "p": 1.0, "params": {"sigma": [0.3, 1.0]}},
    ]
}


def build(root: Path, n: int) -> dict[str, Path]:
    x, y = helpers.mnist_many(n)
    tx, ty = helpers.digits()
    helpers.write_folder(root / "web", x, y, prefix="web")
    helpers.write_folder(root / "target", tx, ty, prefix="digit")
    return {"web": root / "web", "target": root / "target"}


def run(n: int, tmp: Path) -> dict[str, float]:
    from shiftkit.ingest.stage import ingest
    from shiftkit.params import load_params
    from shiftkit.splits.stage import run_split
    from shiftkit.synth import run_synth

    params = load_params(REPO / "params.yaml")
    domains = build(tmp / "raw", n)
    out: dict[str, float] = {}
    t = time.perf_counter()
    ingest(domains, tmp / "manifest", params=params.ingest)
    out["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    run_split(tmp / "manifest" / "manifest.parquet", tmp / "splits", params.split)
    out["split"] = time.perf_counter() - t
    recipe = tmp / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    t = time.perf_counter()
    run_synth(
        tmp / "manifest" / "manifest.parquet",
        tmp / "splits" / "splits.parquet",
        tmp / "synth",
        params.synth,
        recipe_path=recipe,
        preview=0,
    )
    out["synth"] = time.perf_counter() - t
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,20000,40000")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="shiftkit-scaling-") as tmp:
            rows.append((n, run(n, Path(tmp))))
    stages = list(rows[0][1])
    print(f"{'web images':>10} " + " ".join(f"{s + ' s':>10} {s + ' img/s':>12}" for s in stages))
    for n, t in rows:
        total = n + 1797
        print(f"{n:>10,} " + " ".join(f"{t[s]:>10.2f} {total / t[s]:>12,.0f}" for s in stages))
    for (n0, a), (n1, b) in zip(rows, rows[1:], strict=False):
        growth = ", ".join(f"{s} x{b[s] / a[s]:.2f}" for s in stages)
        print(f"growth {n0:,} -> {n1:,} images (x{n1 / n0:.1f}): {growth}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
