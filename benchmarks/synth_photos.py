"""Benchmark: the synthesis fit on photos (issue 21): time, chosen recipe, domain AUC, colour vs grey.

The pair (``tests/camera_helpers.py``): crops of real photographs (scikit-learn's sample images),
web images 256-pixel JPEGs (q92), target images other crops through a phone camera of its own
(224 pixels, resolution loss, lens blur, a warm white-balance error, Poisson-Gaussian noise,
JPEG q75 4:2:0). The fit runs as the synth stage runs it (``fit_from_tables`` with the params
defaults: 160 web and 160 target images sampled, all cores), on:

- ``colour``: the pair as made;
- ``grey``: the same images converted to grey (the acceptance: the colour fit's domain AUC after
  the fit within 0.1 of the grey fit's);
- ``full``: the colour pair with ``fit_side: 0`` (every candidate degraded at full size, as before
  issue 21), for the speed-up (skip with ``--no-full``; it takes minutes).

It prints wall seconds and CPU seconds (this process and its workers): on a shared machine the CPU
seconds / cores is the better estimate of the wall time on idle cores.

    PYTHONPATH=. python benchmarks/synth_photos.py [--n 240] [--no-full] [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shiftkit.params import params_from_mapping  # noqa: E402
from shiftkit.synth import describe  # noqa: E402
from shiftkit.synth.tables import fit_from_tables  # noqa: E402
from tests import camera_helpers as ch  # noqa: E402
from tests import synth_helpers as sh  # noqa: E402


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def tables(root: Path, n: int, grey: bool) -> tuple[Path, Path]:
    web, target = ch.write_pair(root, n, n, grey=grey)
    manifest = sh.write_manifest(root / "manifest" / "manifest.parquet", {"web": web, "target": target})
    sh.write_splits(root / "splits" / "splits.parquet", manifest)
    return root / "manifest" / "manifest.parquet", root / "splits" / "splits.parquet"


def run(name: str, n: int, grey: bool, workers: int, **synth: object) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"synth-photos-{name}-"))
    try:
        manifest, splits = tables(root, n, grey)
        import polars as pl

        params = params_from_mapping({"synth": {"workers": workers, "weighting": "none", **synth}}).synth
        mdf, sdf = pl.read_parquet(manifest), pl.read_parquet(splits)
        c0, t0 = _cpu(), time.perf_counter()
        fit = fit_from_tables(mdf, sdf, manifest, params, workers=workers)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        print(f"{name:6s} fit {wall:6.1f} s wall, {cpu:6.1f} s CPU; AUC {fit.before['auc']:.3f} -> "
              f"{fit.after['auc']:.3f}; recipe: {describe(fit.recipe)}", flush=True)
        return {"wall": wall, "cpu": cpu, "auc": fit.after["auc"], "names": fit.recipe.names}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=240, help="images per domain (the issue: 480 in all)")
    ap.add_argument("--no-full", action="store_true", help="skip the full-size fit (minutes)")
    ap.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    args = ap.parse_args(argv)
    os.environ.setdefault("SHIFTKIT_PROGRESS", "0")
    colour = run("colour", args.n, False, args.workers)
    grey = run("grey", args.n, True, args.workers)
    print(f"colour step chosen: {bool({'white_balance', 'saturation'} & set(colour['names']))}; "
          f"AUC after: colour {colour['auc']:.3f}, grey {grey['auc']:.3f}, difference "
          f"{colour['auc'] - grey['auc']:+.3f} (goal: within 0.1)")
    if not args.no_full:
        full = run("full", args.n, False, args.workers, fit_side=0)
        print(f"working size speed-up: {full['cpu'] / colour['cpu']:.1f}x CPU, "
              f"{full['wall'] / colour['wall']:.1f}x wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
