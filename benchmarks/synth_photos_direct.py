"""Benchmark: ``fit_recipe`` alone on a photo pair folder, with CPU seconds (issue 21's figures).

Builds (once) the pair of ``tests/camera_helpers.py`` under ``--root`` (240 web 256-px JPEGs,
240 target 224-px phone JPEGs; ``--grey`` the same images in grey), fits on the first 160 of
each (the stage's sample size) with the params defaults unless told, all cores, and prints wall
and CPU seconds (this process and its workers; on a busy machine CPU / cores estimates the wall
time on idle cores), the recipe and the domain AUC before and after.

    PYTHONPATH=. python benchmarks/synth_photos_direct.py --root /tmp/pair [--grey] [--fit-side 64]
        [--max-steps 6] [--refine 6]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shiftkit.synth import describe, fit_recipe  # noqa: E402
from tests import camera_helpers as ch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--grey", action="store_true")
    ap.add_argument("--fit-side", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--refine", type=int, default=6)
    ap.add_argument("--patience", type=int, default=1)
    args = ap.parse_args(argv)
    os.environ.setdefault("SHIFTKIT_PROGRESS", "0")
    if not (args.root / "web").exists():
        ch.write_pair(args.root, 240, 240, grey=args.grey)
    web, _ = ch.load_folder(args.root / "web")
    target, quality = ch.load_folder(args.root / "target")
    t0 = time.perf_counter()
    fit = fit_recipe(web[:160], target[:160], target_jpeg=quality[:160], workers=0, fit_side=args.fit_side,
                     max_steps=args.max_steps, refine=args.refine, patience=args.patience)
    wall = time.perf_counter() - t0
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
    print(f"fit_side {args.fit_side}: {wall:.1f} s wall, {cpu:.1f} s CPU (imports and decoding included); "
          f"AUC {fit.before['auc']:.3f} -> {fit.after['auc']:.3f}; {describe(fit.recipe)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
