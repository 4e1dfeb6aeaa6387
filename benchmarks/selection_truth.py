"""The selection simulation's claims over seeds, on real digits (tests/select_helpers.py's scenario):

- informative: the web images lack two of the target's classes, so their images are the informative
  ones; the rate at which a saving is claimed for margin / clue (power);
- null: the pool is near copies of one image, so every image is equally informative; the rate at
  which any saving is claimed (false claims), to compare with the Holm level (1 - curve.level) / 2.

    PYTHONPATH=. python benchmarks/selection_truth.py [--seeds 5] [--first-seed 0] [--strategies random margin clue]
        [--null-only]

Each seed trains the web-only model and 2 rounds per strategy, random's with curve.random_draws (3)
draws each: 11 trainings, minutes on 2 cores.

Measured (2026-12-03, ``--null-only --seeds 10``, strategies random, margin, clue, 2 rounds of 30):
- before random's draws (one run of random; intervals from the dev images alone): a saving claimed
  in 1 of 10 seeds (10%, above the Holm level of 2.5%): seed 1, margin 33.3% dev error at 30 labels
  against random's 38.3%; two fine-tunings on near-identical images differ by several points;
- with 3 draws of random, their spread added to every claim as training noise: 0 of 10 seeds
  (209-320 s a seed on 2 cores shared at a load average of 5 to 9).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.select_helpers import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--strategies", nargs="+", default=["random", "margin", "clue"])
    ap.add_argument("--null-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    kinds = ["null"] if a.null_only else ["informative", "null"]
    for kind in kinds:
        claims = 0
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                r = simulate(Path(tmp), tuple(a.strategies), copies=kind == "null", seed=seed)
            hit = [s for s in r["savings"] if s["claimed"]]
            claims += bool(hit)
            errs = {(p["strategy"], p["labels"]): round(p["dev_error"], 3) for p in r["points"]}
            print(f"{kind} seed {seed}: {len(hit)} claim(s) in {time.perf_counter() - t:.0f} s; {r['sentence']} {errs}",
                  flush=True)
        print(f"{kind}: a saving claimed in {claims} of {a.seeds} seeds (Holm level {(1 - 0.95) / 2:.3f})", flush=True)


if __name__ == "__main__":
    main()
